package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/service"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// idleProvider starts no process: the pool's nodes exist but no agent
// reports for them.
type idleProvider struct{}

func (idleProvider) Name() string                                   { return "metrics-test" }
func (idleProvider) Start(context.Context, provider.NodeSpec) error { return nil }
func (idleProvider) Stop(context.Context, provider.NodeSpec) error  { return nil }
func (idleProvider) Images() []provider.Image                       { return nil }

func ptr[T any](v T) *T { return &v }

// newService is a real service on a SQLite store with account "acct",
// pool "pool" of two nodes no agent runs, and job "job" of three tasks.
func newService(t *testing.T) *service.Service {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, service.Config{Store: st, Provider: idleProvider{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		svc.Close()
		st.Close()
	})
	if _, err := svc.EnsureAccount(ctx, "acct", ""); err != nil {
		t.Fatal(err)
	}
	return svc
}

func populate(t *testing.T, svc *service.Service) {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.PoolAdd(ctx, "acct", &azbatch.CreatePoolContent{ID: ptr("pool"), VMSize: ptr("standard_d2s_v3"), TargetDedicatedNodes: ptr(int32(2))}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.JobAdd(ctx, "acct", &azbatch.CreateJobContent{ID: ptr("job"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool")}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2", "t3"} {
		if _, err := svc.TaskAdd(ctx, "acct", "job", &azbatch.CreateTaskContent{ID: ptr(id), CommandLine: ptr("true")}); err != nil {
			t.Fatal(err)
		}
	}
}

// scrape serves GET /metrics and parses the answer.
func scrape(t *testing.T, h http.Handler, hdr http.Header) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body.String())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value finds the sample of family name with exactly the given labels
// (a subset match); ok false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestStateGauges(t *testing.T) {
	svc := newService(t)
	m := New(Options{Store: "sqlite"})
	m.Attach(svc)
	populate(t, svc)
	fams := scrape(t, m.Handler(), nil)

	for state, want := range map[string]float64{"active": 3, "running": 0, "succeeded": 0, "failed": 0} {
		got, ok := value(fams, "kiln_tasks", map[string]string{"account": "acct", "pool": "pool", "job": "job", "state": state})
		if !ok || got != want {
			t.Errorf("kiln_tasks{state=%q} = %v (present %v), want %v", state, got, ok, want)
		}
	}
	if got, _ := value(fams, "kiln_jobs", map[string]string{"account": "acct", "state": "active"}); got != 1 {
		t.Errorf("kiln_jobs{state=active} = %v, want 1", got)
	}
	if got, _ := value(fams, "kiln_pools", map[string]string{"account": "acct"}); got != 1 {
		t.Errorf("kiln_pools = %v, want 1", got)
	}
	// Every node state is listed; the two nodes are in one of them.
	var total float64
	f := fams["kiln_nodes"]
	if f == nil || len(f.Metric) != len(service.NodeStates) {
		t.Fatalf("kiln_nodes has %v samples, want one per node state (%d)", f, len(service.NodeStates))
	}
	for _, s := range f.Metric {
		total += s.Gauge.GetValue()
	}
	if total != 2 {
		t.Errorf("kiln_nodes sums to %v, want 2", total)
	}
	if got, ok := value(fams, "kiln_store_transaction_duration_seconds", map[string]string{"store": "sqlite"}); !ok || got == 0 {
		t.Errorf("store transactions observed: %v (present %v), want some (the pool, job and tasks were committed)", got, ok)
	}
	if got, _ := value(fams, "kiln_server_leader", nil); got != 1 {
		t.Errorf("kiln_server_leader = %v, want 1", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for name, f := range fams {
		if strings.HasPrefix(name, "kiln_") && f.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}
}

func TestFollowerHasNoState(t *testing.T) {
	m := New(Options{Store: "postgres", Role: func() string { return "follower" }})
	fams := scrape(t, m.Handler(), nil)
	if fams["kiln_tasks"] != nil || fams["kiln_nodes"] != nil {
		t.Errorf("a follower reports state: %v %v", fams["kiln_tasks"], fams["kiln_nodes"])
	}
	if got, ok := value(fams, "kiln_server_leader", nil); !ok || got != 0 {
		t.Errorf("kiln_server_leader = %v (present %v), want 0", got, ok)
	}
	if _, ok := value(fams, "kiln_store_transaction_duration_seconds", map[string]string{"store": "postgres"}); !ok {
		t.Error("the store histogram is not listed with store=postgres")
	}
}

func TestObserverHistograms(t *testing.T) {
	m := New(Options{})
	m.TaskStarted("acct", "pool", "job", 20*time.Millisecond)
	m.TaskStarted("acct", "pool", "job", 3*time.Second)
	m.TaskEnded("acct", "pool", "job", "success", 2*time.Second)
	m.TaskEnded("acct", "pool", "job", "failure", time.Second)
	m.AgentSync("acct", "pool")
	m.AgentSync("acct", "pool")
	m.AgentSync("acct", "pool")
	m.StoreCommit(time.Millisecond, nil)
	m.StoreCommit(time.Millisecond, errors.New("disk full"))
	fams := scrape(t, m.Handler(), nil)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"kiln_task_scheduling_latency_seconds", map[string]string{"account": "acct", "pool": "pool"}, 2},
		{"kiln_task_run_seconds", map[string]string{"pool": "pool", "result": "success"}, 1},
		{"kiln_task_run_seconds", map[string]string{"pool": "pool", "result": "failure"}, 1},
		{"kiln_agent_heartbeats_total", map[string]string{"account": "acct", "pool": "pool"}, 3},
		{"kiln_store_transaction_duration_seconds", map[string]string{"store": "sqlite"}, 2},
		{"kiln_store_transaction_errors_total", map[string]string{"store": "sqlite"}, 1},
	}
	for _, c := range checks {
		if got, _ := value(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The latency histogram puts 20ms and 3s in the right buckets.
	h := fams["kiln_task_scheduling_latency_seconds"].Metric[0].Histogram
	for _, b := range h.Bucket {
		want := uint64(0)
		if b.GetUpperBound() >= 0.025 {
			want = 1
		}
		if b.GetUpperBound() >= 5 {
			want = 2
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v has %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if s := h.GetSampleSum(); s < 3.019 || s > 3.021 {
		t.Errorf("latency sum = %v, want 3.02", s)
	}
}

func TestInstrument(t *testing.T) {
	m := New(Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pools/{poolId}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	})
	mux.HandleFunc("POST /jobs", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok")) // implicit 200
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the recorder: %v", err)
		}
	})
	mux.HandleFunc("GET /abort", func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	})
	op := func(r *http.Request) string {
		if r.Pattern == "" {
			return "other"
		}
		return r.Pattern
	}
	h := m.Instrument(mux, op)
	do := func(method, path string) {
		defer func() {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				t.Fatalf("%s %s panicked: %v", method, path, v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
	}
	do("GET", "/pools/a")
	do("GET", "/pools/b")
	do("POST", "/jobs")
	do("GET", "/stream")
	do("GET", "/abort")
	fams := scrape(t, m.Handler(), nil)
	for _, c := range []struct {
		op, status string
		want       float64
	}{
		{"GET /pools/{poolId}", "404", 2},
		{"POST /jobs", "200", 1},
		{"GET /stream", "200", 1},
		{"GET /abort", "499", 1},
	} {
		l := map[string]string{"operation": c.op, "status": c.status}
		if got, _ := value(fams, "kiln_api_requests_total", l); got != c.want {
			t.Errorf("kiln_api_requests_total%v = %v, want %v", l, got, c.want)
		}
		if got, _ := value(fams, "kiln_api_request_duration_seconds", l); got != c.want {
			t.Errorf("kiln_api_request_duration_seconds%v count = %v, want %v", l, got, c.want)
		}
	}
}

func TestToken(t *testing.T) {
	m := New(Options{Token: "s3cret"})
	h := m.Handler()
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Basic s3cret"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d, want 401 with WWW-Authenticate", auth, rec.Code)
		}
	}
	fams := scrape(t, h, http.Header{"Authorization": {"Bearer s3cret"}})
	if fams["kiln_server_leader"] == nil {
		t.Error("no kiln_server_leader with the right token")
	}
}
