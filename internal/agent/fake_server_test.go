package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// syncAction is what the fake server does with one sync request.
type syncAction int

const (
	actNormal        syncAction = iota
	actFail                     // answer 500 without applying anything
	actApplyThenFail            // apply the events, then answer 500
	actDrop                     // apply the events, then close the connection without an answer
)

// fakeServer is an in-test Kiln server that speaks the agent protocol with
// real HTTP: register, long-poll sync with Seq/Ack, events applied
// idempotently by Seq, the requeue rule (an assignment delivered before a
// sync that does not list it in Known is delivered again), the Applied rule
// (orders of an answer the agent did not apply are sent again) and the
// stale rule (only the newest sync of the node is handed work).
type fakeServer struct {
	t         *testing.T
	srv       *httptest.Server
	secret    string
	heartbeat time.Duration

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	token     string        // token syncs must carry
	registers []protocol.RegisterRequest
	syncs     []protocol.SyncRequest
	events    []protocol.Event // applied, each Seq once
	received  map[int64]time.Time
	ack       int64
	next      protocol.SyncResponse          // handed out with the next answer
	repeat    int                            // repeat next's assignments in this many further answers
	delivered map[string]protocol.Assignment // delivered, not yet completed

	maxSeq       int64                 // highest sync Seq received
	lastAnswered int64                 // Seq of the last sync answered with work
	lastOrders   protocol.SyncResponse // the orders in that answer

	// Hooks, set before the agent starts or under mu.
	registerHook func(n int) int                                  // status to answer register number n with (0: normal)
	syncHook     func(n int, req protocol.SyncRequest) syncAction // n counts syncs from 0
	files        map[string]string                                // served at /blobs/<name>
	fetches      map[string]int                                   // GETs of /blobs/<name>
	fileDelay    time.Duration                                    // before answering a GET of /blobs/<name>
	nodePackages []protocol.Package                               // NodeConfig.Packages at registration
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	s := &fakeServer{
		t:         t,
		secret:    "node-secret",
		heartbeat: 30 * time.Second,
		changed:   make(chan struct{}),
		received:  map[int64]time.Time{},
		delivered: map[string]protocol.Assignment{},
		files:     map[string]string{},
		fetches:   map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathRegister, s.handleRegister)
	mux.HandleFunc("POST "+protocol.PathSync, s.handleSync)
	mux.HandleFunc("GET /blobs/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, ok := s.files[r.PathValue("name")]
		s.fetches[r.PathValue("name")]++
		delay := s.fileDelay
		s.mu.Unlock()
		time.Sleep(delay)
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	})
	mux.HandleFunc("GET /forbidden", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeServer) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *fakeServer) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req protocol.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.registers)
	s.registers = append(s.registers, req)
	s.changedLocked()
	if s.registerHook != nil {
		if code := s.registerHook(n); code != 0 {
			http.Error(w, "refused by test", code)
			return
		}
	}
	// A registration starts a new session: whatever was delivered and is
	// not in Known goes back to the queue.
	for id, as := range s.delivered {
		if !slices.Contains(req.Known, id) {
			s.requeueLocked(id, as)
		}
	}
	s.token = fmt.Sprintf("tok-%d", n)
	writeJSON(w, protocol.RegisterResponse{
		NodeID:            req.NodeID,
		NodeToken:         s.token,
		HeartbeatInterval: protocol.Duration(s.heartbeat),
		Node: protocol.NodeConfig{
			AccountName: "acct",
			AccountURL:  "http://acct.example",
			PoolID:      req.PoolID,
			IsDedicated: true,
			TaskSlots:   4,
			NodeSecret:  s.secret,
			Packages:    s.nodePackages,
		},
	})
}

func (s *fakeServer) requeueLocked(id string, as protocol.Assignment) {
	delete(s.delivered, id)
	for _, q := range s.next.Assignments {
		if q.AttemptID == id {
			return
		}
	}
	s.next.Assignments = append(s.next.Assignments, as)
}

func (s *fakeServer) handleSync(w http.ResponseWriter, r *http.Request) {
	// Read the body to EOF: only then does net/http watch the connection
	// and cancel r.Context() when the agent abandons a long poll.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var req protocol.SyncRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if r.Header.Get("Authorization") != "Bearer "+s.token || s.token == "" {
		s.mu.Unlock()
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	n := len(s.syncs)
	s.syncs = append(s.syncs, req)
	// A sync older than one already received is stale: the agent abandoned
	// it. It gets no work, and its Applied says nothing about later answers.
	stale := req.Seq <= s.maxSeq
	s.maxSeq = max(s.maxSeq, req.Seq)
	s.changedLocked()
	act := actNormal
	if s.syncHook != nil {
		act = s.syncHook(n, req)
	}
	if act == actFail {
		s.mu.Unlock()
		http.Error(w, "failed by test", http.StatusInternalServerError)
		return
	}
	now := time.Now()
	for _, ev := range req.Events {
		if _, dup := s.received[ev.Seq]; dup {
			continue
		}
		s.received[ev.Seq] = now
		s.events = append(s.events, ev)
		if ev.Kind == protocol.EventCompleted {
			delete(s.delivered, ev.AttemptID)
		}
		s.ack = max(s.ack, ev.Seq)
	}
	for id, as := range s.delivered {
		if as.DeliveredIn < req.Seq && !slices.Contains(req.Known, id) {
			s.requeueLocked(id, as)
		}
	}
	if !stale && req.Applied < s.lastAnswered {
		// The last answer was lost: send its orders again.
		lost := s.lastOrders
		s.lastAnswered = 0
		for _, id := range lost.Kill {
			if !slices.Contains(s.next.Kill, id) {
				s.next.Kill = append(s.next.Kill, id)
			}
		}
		for _, d := range lost.Clean {
			if !slices.Contains(s.next.Clean, d) {
				s.next.Clean = append(s.next.Clean, d)
			}
		}
		s.next.Shutdown = s.next.Shutdown || lost.Shutdown
		s.next.Reregister = s.next.Reregister || lost.Reregister
	}
	switch act {
	case actApplyThenFail:
		s.mu.Unlock()
		http.Error(w, "failed by test after applying", http.StatusInternalServerError)
		return
	case actDrop:
		s.mu.Unlock()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}

	// Long poll: answer at once when there is work or the request carried
	// events, else when work arrives or WaitMillis passes.
	timer := time.NewTimer(time.Duration(req.WaitMillis) * time.Millisecond)
	defer timer.Stop()
	token := s.token
	for expired := false; !expired && !stale && s.token == token && len(req.Events) == 0 && !s.hasWorkLocked(); {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			expired = true
		case <-r.Context().Done():
			return // the agent gave up on this request: nothing handed out
		}
		s.mu.Lock()
		stale = req.Seq < s.maxSeq // a newer sync ends this long poll
	}
	if s.token != token {
		s.mu.Unlock()
		http.Error(w, "token revoked while waiting", http.StatusUnauthorized)
		return
	}
	if stale {
		ack := s.ack
		s.mu.Unlock()
		writeJSON(w, protocol.SyncResponse{Ack: ack})
		return
	}
	resp := s.next
	resp.Ack = s.ack
	for i := range resp.Assignments {
		resp.Assignments[i].DeliveredIn = req.Seq
		s.delivered[resp.Assignments[i].AttemptID] = resp.Assignments[i]
	}
	s.lastAnswered = req.Seq
	s.lastOrders = protocol.SyncResponse{Kill: resp.Kill, Clean: resp.Clean, Shutdown: resp.Shutdown, Reregister: resp.Reregister}
	if s.repeat > 0 {
		s.repeat--
		s.next = protocol.SyncResponse{Assignments: slices.Clone(resp.Assignments)}
	} else {
		s.next = protocol.SyncResponse{}
	}
	s.mu.Unlock()
	writeJSON(w, resp)
}

func (s *fakeServer) hasWorkLocked() bool {
	n := s.next
	return len(n.Assignments) > 0 || len(n.Kill) > 0 || len(n.Clean) > 0 || n.Shutdown || n.Reregister
}

// send queues work for the next answer.
func (s *fakeServer) send(f func(next *protocol.SyncResponse)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.next)
	s.changedLocked()
}

func (s *fakeServer) assign(as ...protocol.Assignment) {
	s.send(func(n *protocol.SyncResponse) { n.Assignments = append(n.Assignments, as...) })
}

// waitFor waits until cond, called with s.mu held, holds.
func (s *fakeServer) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// eventsLocked returns the applied events of an attempt of the given kind.
func (s *fakeServer) eventsLocked(attemptID, kind string) []protocol.Event {
	var out []protocol.Event
	for _, ev := range s.events {
		if ev.AttemptID == attemptID && ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits for the first applied event of the attempt and kind.
func (s *fakeServer) waitEvent(attemptID, kind string) protocol.Event {
	s.t.Helper()
	var ev protocol.Event
	s.waitFor(kind+" event of "+attemptID, func() bool {
		evs := s.eventsLocked(attemptID, kind)
		if len(evs) > 0 {
			ev = evs[0]
		}
		return len(evs) > 0
	})
	return ev
}

func (s *fakeServer) lastSyncLocked() protocol.SyncRequest {
	if len(s.syncs) == 0 {
		return protocol.SyncRequest{}
	}
	return s.syncs[len(s.syncs)-1]
}

// waitForgotten waits until the agent sent a sync whose Known lacks id and
// that carries no event.
func (s *fakeServer) waitForgotten(id string) {
	s.t.Helper()
	s.waitFor(id+" to leave Known", func() bool {
		last := s.lastSyncLocked()
		return !slices.Contains(last.Known, id) && len(last.Events) == 0 && last.Seq > 0
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// testLogWriter sends agent logs to t.Log while the test runs.
type testLogWriter struct {
	t    *testing.T
	mu   *sync.Mutex
	done *bool
}

func (w testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !*w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
