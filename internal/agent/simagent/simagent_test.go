package simagent_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/simagent"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// call is one request the fake server received; the test answers it.
type call struct {
	path  string
	auth  string
	body  []byte
	reply chan answer
}

type answer struct {
	status int
	body   any
}

// fakeServer hands every request to the test, in order.
func fakeServer(t *testing.T) (*httptest.Server, <-chan call) {
	calls := make(chan call)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := call{path: r.URL.Path, auth: r.Header.Get("Authorization"), body: b, reply: make(chan answer, 1)}
		select {
		case calls <- c:
		case <-r.Context().Done():
			return
		}
		a := <-c.reply
		if a.status != 0 && a.status != http.StatusOK {
			http.Error(w, "refused", a.status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.body)
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

func next(t *testing.T, calls <-chan call, path string) call {
	t.Helper()
	select {
	case c := <-calls:
		if c.path != path {
			t.Fatalf("request to %s, want %s", c.path, path)
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("no request to %s", path)
	}
	return call{}
}

func nextSync(t *testing.T, calls <-chan call, token string) (call, protocol.SyncRequest) {
	t.Helper()
	c := next(t, calls, protocol.PathSync)
	if c.auth != "Bearer "+token {
		t.Fatalf("sync with Authorization %q, want Bearer %s", c.auth, token)
	}
	var req protocol.SyncRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		t.Fatal(err)
	}
	return c, req
}

func eventSeqs(evs []protocol.Event) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

// TestProtocol walks a simulated agent through the protocol's bookkeeping:
// sync and event sequence numbers, the outbox kept until acknowledged,
// Known, Applied, a duplicate delivery, a 401, and a shutdown.
func TestProtocol(t *testing.T) {
	srv, calls := fakeServer(t)
	done := make(chan error, 1)
	go func() {
		done <- simagent.Run(context.Background(), simagent.Config{ServerURL: srv.URL, PoolID: "p1", NodeID: "n1", Token: "join"})
	}()

	c := next(t, calls, protocol.PathRegister)
	var reg protocol.RegisterRequest
	if err := json.Unmarshal(c.body, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.ProtocolVersion != protocol.Version || reg.NodeID != "n1" || reg.PoolID != "p1" || reg.Token != "join" || len(reg.Known) != 0 {
		t.Fatalf("register %+v", reg)
	}
	c.reply <- answer{body: protocol.RegisterResponse{NodeID: "n1", NodeToken: "tok1", HeartbeatInterval: protocol.Duration(time.Second)}}

	c, req := nextSync(t, calls, "tok1")
	if req.Seq != 1 || req.Applied != 0 || len(req.Events) != 0 || len(req.Known) != 0 || req.WaitMillis != 1000 {
		t.Fatalf("first sync %+v", req)
	}
	c.reply <- answer{body: protocol.SyncResponse{Assignments: []protocol.Assignment{
		{AttemptID: "a1", Kind: protocol.KindTask, JobID: "j", TaskID: "t1", CommandLine: "/bin/true", DeliveredIn: 1},
		{AttemptID: "a2", Kind: protocol.KindTask, JobID: "j", TaskID: "t2", CommandLine: "/bin/true", DeliveredIn: 1},
	}}}

	c, req = nextSync(t, calls, "tok1")
	if req.Seq != 2 || req.Applied != 1 || !slices.Equal(req.Known, []string{"a1", "a2"}) || !slices.Equal(eventSeqs(req.Events), []int64{1, 2, 3, 4}) {
		t.Fatalf("second sync %+v", req)
	}
	for i, want := range []struct{ id, kind string }{{"a1", "started"}, {"a1", "completed"}, {"a2", "started"}, {"a2", "completed"}} {
		ev := req.Events[i]
		if ev.AttemptID != want.id || ev.Kind != want.kind || ev.Time.IsZero() {
			t.Fatalf("event %d: %+v, want %s %s", i, ev, want.id, want.kind)
		}
		if ev.Kind == protocol.EventCompleted && (ev.ExitCode == nil || *ev.ExitCode != 0 || ev.StartTime.IsZero()) {
			t.Fatalf("completed event %+v", ev)
		}
	}
	// Acknowledge a1's events only, and deliver a1 again: it must not run twice.
	c.reply <- answer{body: protocol.SyncResponse{Ack: 2, Assignments: []protocol.Assignment{{AttemptID: "a1", Kind: protocol.KindTask, DeliveredIn: 2}}}}

	c, req = nextSync(t, calls, "tok1")
	if req.Seq != 3 || req.Applied != 2 || !slices.Equal(req.Known, []string{"a2"}) || !slices.Equal(eventSeqs(req.Events), []int64{3, 4}) {
		t.Fatalf("third sync %+v", req)
	}
	c.reply <- answer{status: http.StatusUnauthorized}

	c = next(t, calls, protocol.PathRegister)
	if err := json.Unmarshal(c.body, &reg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(reg.Known, []string{"a2"}) {
		t.Fatalf("register again with known %v, want [a2]", reg.Known)
	}
	c.reply <- answer{body: protocol.RegisterResponse{NodeID: "n1", NodeToken: "tok2", HeartbeatInterval: protocol.Duration(time.Second)}}

	c, req = nextSync(t, calls, "tok2")
	if req.Seq != 4 || req.Applied != 2 || !slices.Equal(eventSeqs(req.Events), []int64{3, 4}) {
		t.Fatalf("sync after registering again %+v", req)
	}
	c.reply <- answer{body: protocol.SyncResponse{Ack: 4, Kill: []string{"a2", "unknown"}, Clean: []string{"workitems/j"}}}

	c, req = nextSync(t, calls, "tok2")
	if req.Seq != 5 || req.Applied != 4 || len(req.Events) != 0 || len(req.Known) != 0 {
		t.Fatalf("sync after the last ack %+v", req)
	}
	c.reply <- answer{body: protocol.SyncResponse{Ack: 4, Shutdown: true}}

	c, req = nextSync(t, calls, "tok2")
	if req.Seq != 6 || req.WaitMillis != 0 {
		t.Fatalf("final sync %+v", req)
	}
	c.reply <- answer{body: protocol.SyncResponse{Ack: 4}}

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the shutdown")
	}
}

func TestRegistrationRefused(t *testing.T) {
	srv, calls := fakeServer(t)
	done := make(chan error, 1)
	go func() { done <- simagent.Run(context.Background(), simagent.Config{ServerURL: srv.URL, NodeID: "n1"}) }()
	next(t, calls, protocol.PathRegister).reply <- answer{status: http.StatusServiceUnavailable} // retried
	next(t, calls, protocol.PathRegister).reply <- answer{status: http.StatusForbidden}          // fatal
	if err := <-done; err == nil {
		t.Fatal("Run succeeded after a 403")
	}
}

func TestCancel(t *testing.T) {
	srv, calls := fakeServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- simagent.Run(ctx, simagent.Config{ServerURL: srv.URL, NodeID: "n1"}) }()
	next(t, calls, protocol.PathRegister).reply <- answer{body: protocol.RegisterResponse{NodeToken: "tok"}}
	c, _ := nextSync(t, calls, "tok")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	c.reply <- answer{body: protocol.SyncResponse{}}
}
