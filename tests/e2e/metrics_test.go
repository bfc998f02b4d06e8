package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsScrape is one parsed GET /metrics.
type metricsScrape map[string]*dto.MetricFamily

// metricsGet scrapes the server's /metrics (with the bearer token when
// not empty) and parses the Prometheus text format.
func metricsGet(t testing.TB, s *Server, token string) (metricsScrape, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, s.URL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func metricsMustGet(t testing.TB, s *Server) metricsScrape {
	t.Helper()
	m, err := metricsGet(t, s, "")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// value sums the samples of family name whose labels include labels
// (a histogram counts its observations).
func (m metricsScrape) value(name string, labels map[string]string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, s := range f.Metric {
		have := map[string]string{}
		for _, l := range s.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Histogram != nil:
			sum += float64(s.Histogram.GetSampleCount())
		}
	}
	return sum
}

// metricsCheckTasks compares kiln_tasks of a job with Get Task Counts.
func metricsCheckTasks(t testing.TB, s *Server, m metricsScrape, jobID string) error {
	r, err := s.Client.GetJobTaskCounts(ctx(t), jobID, nil)
	if err != nil {
		return err
	}
	c := r.TaskCounts
	l := func(state string) map[string]string {
		return map[string]string{"account": testAccount, "pool": jobPool, "job": jobID, "state": state}
	}
	got := map[string]float64{}
	for _, st := range []string{"active", "running", "succeeded", "failed"} {
		got[st] = m.value("kiln_tasks", l(st))
	}
	want := map[string]float64{"active": float64(*c.Active), "running": float64(*c.Running),
		"succeeded": float64(*c.Succeeded), "failed": float64(*c.Failed)}
	for st := range want {
		if got[st] != want[st] {
			return fmt.Errorf("kiln_tasks %v, Get Task Counts %v", got, want)
		}
	}
	if got["succeeded"]+got["failed"] != float64(*c.Completed) {
		return fmt.Errorf("kiln_tasks %v, completed %d", got, *c.Completed)
	}
	return nil
}

// metricsCheckNodes compares kiln_nodes of the pool with List Nodes.
func metricsCheckNodes(t testing.TB, s *Server, m metricsScrape) error {
	nodes, err := s.ListNodes(t, jobPool)
	if err != nil {
		return err
	}
	want := map[string]float64{}
	for _, n := range nodes {
		want[string(*n.State)]++
	}
	f := m["kiln_nodes"]
	if f == nil {
		return fmt.Errorf("no kiln_nodes")
	}
	got := map[string]float64{}
	for _, st := range azbatch.PossibleNodeStateValues() {
		got[string(st)] = m.value("kiln_nodes", map[string]string{"account": testAccount, "pool": jobPool, "state": string(st)})
		if got[string(st)] != want[string(st)] {
			return fmt.Errorf("kiln_nodes %v, List Nodes %v", got, want)
		}
	}
	return nil
}

// TestMetrics runs a job on a real server and checks /metrics against the
// API while the job runs and after: task counts by state, nodes by state,
// request counters, heartbeats and the histograms.
func TestMetrics(t *testing.T) {
	s := jobStartPool(t, 2, 2, nil)

	// Unauthenticated by default, like most Prometheus targets.
	m0 := metricsMustGet(t, s)
	if err := metricsCheckNodes(t, s, m0); err != nil {
		t.Fatal(err)
	}
	if got := m0.value("kiln_nodes", map[string]string{"pool": jobPool, "state": "idle"}); got != 2 {
		t.Fatalf("idle nodes = %v, want 2", got)
	}
	if m0.value("kiln_server_leader", nil) != 1 {
		t.Error("kiln_server_leader is not 1")
	}

	s.CreateJob(t, "mjob", jobPool, nil)
	tasks := []azbatch.CreateTaskContent{
		taskCmd("g1", taskGateCmd), taskCmd("g2", taskGateCmd), taskCmd("g3", taskGateCmd), taskCmd("g4", taskGateCmd),
		taskCmd("ok", "/bin/sh -c 'sleep 0.2'"), taskCmd("bad", "/bin/sh -c 'exit 3'"),
	}
	s.AddTasks(t, "mjob", tasks[:4])
	s.AddTasks(t, "mjob", tasks[4:])

	// During: the four gated tasks fill the four slots, two wait.
	eventually(t, 60*time.Second, "4 running and 2 active tasks in /metrics as in the API", func() error {
		m, err := metricsGet(t, s, "")
		if err != nil {
			return err
		}
		if r, a := m.value("kiln_tasks", map[string]string{"job": "mjob", "state": "running"}),
			m.value("kiln_tasks", map[string]string{"job": "mjob", "state": "active"}); r != 4 || a != 2 {
			return fmt.Errorf("running %v active %v", r, a)
		}
		if err := metricsCheckTasks(t, s, m, "mjob"); err != nil {
			return err
		}
		for _, id := range []string{"g1", "g2", "g3", "g4"} {
			if st := *taskGet(t, s, "mjob", id).State; st != azbatch.TaskStateRunning {
				return fmt.Errorf("task %s is %s", id, st)
			}
		}
		return metricsCheckNodes(t, s, m)
	})
	mid := metricsMustGet(t, s)
	if got := mid.value("kiln_nodes", map[string]string{"pool": jobPool, "state": "running"}); got != 2 {
		t.Errorf("running nodes during the job = %v, want 2", got)
	}
	if got := mid.value("kiln_task_scheduling_latency_seconds", map[string]string{"account": testAccount, "pool": jobPool}); got < 4 {
		t.Errorf("scheduling latency observations during the job = %v, want at least 4", got)
	}
	if got := mid.value("kiln_jobs", map[string]string{"account": testAccount, "state": "active"}); got != 1 {
		t.Errorf("active jobs = %v, want 1", got)
	}

	for _, id := range []string{"g1", "g2", "g3", "g4"} {
		taskRelease(t, s, "mjob", id)
	}
	s.WaitJobTasks(t, "mjob", 60*time.Second)

	// After: every task completed; the nodes are idle again.
	var end metricsScrape
	eventually(t, 30*time.Second, "final /metrics to match the API", func() error {
		m, err := metricsGet(t, s, "")
		if err != nil {
			return err
		}
		if err := metricsCheckTasks(t, s, m, "mjob"); err != nil {
			return err
		}
		if err := metricsCheckNodes(t, s, m); err != nil {
			return err
		}
		end = m
		return nil
	})
	jl := map[string]string{"job": "mjob"}
	if got := end.value("kiln_tasks", merge(jl, "state", "succeeded")); got != 5 {
		t.Errorf("succeeded = %v, want 5", got)
	}
	if got := end.value("kiln_tasks", merge(jl, "state", "failed")); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
	if got := end.value("kiln_nodes", map[string]string{"pool": jobPool, "state": "idle"}); got != 2 {
		t.Errorf("idle nodes after the job = %v, want 2", got)
	}

	// Histograms: every task was scheduled once and ran once.
	pl := map[string]string{"account": testAccount, "pool": jobPool}
	if got := end.value("kiln_task_scheduling_latency_seconds", pl); got != 6 {
		t.Errorf("scheduling latency observations = %v, want 6", got)
	}
	if got := end.value("kiln_task_run_seconds", merge(pl, "result", "success")); got != 5 {
		t.Errorf("successful run time observations = %v, want 5", got)
	}
	if got := end.value("kiln_task_run_seconds", merge(pl, "result", "failure")); got != 1 {
		t.Errorf("failed run time observations = %v, want 1", got)
	}
	if h := end["kiln_task_run_seconds"]; h != nil {
		for _, sm := range h.Metric {
			if sm.Histogram.GetSampleSum() <= 0 {
				t.Errorf("run time sum %v is not positive", sm.Histogram.GetSampleSum())
			}
		}
	}
	if before, after := m0.value("kiln_store_transaction_duration_seconds", map[string]string{"store": "sqlite"}),
		end.value("kiln_store_transaction_duration_seconds", map[string]string{"store": "sqlite"}); before == 0 || after <= before {
		t.Errorf("store transactions: %v before the job, %v after; want some, increasing", before, after)
	}
	if before, after := m0.value("kiln_agent_heartbeats_total", pl), end.value("kiln_agent_heartbeats_total", pl); before == 0 || after <= before {
		t.Errorf("agent heartbeats: %v before the job, %v after; want some, increasing", before, after)
	}

	// Requests, by route pattern and status.
	for _, c := range []struct {
		op, status string
		atLeast    float64
	}{
		{"POST /pools", "201", 1},
		{"POST /jobs", "201", 1},
		{"POST /jobs/{jobId}/addtaskcollection", "200", 2},
		{"GET /jobs/{jobId}/taskcounts", "200", 2},
		{"GET /pools/{poolId}/nodes", "200", 2},
		{"POST /agent/v1/sync", "200", 2},
		{"GET /metrics", "200", 2},
	} {
		l := map[string]string{"operation": c.op, "status": c.status}
		if got := end.value("kiln_api_requests_total", l); got < c.atLeast {
			t.Errorf("kiln_api_requests_total%v = %v, want at least %v", l, got, c.atLeast)
		}
		if got := end.value("kiln_api_request_duration_seconds", l); got < c.atLeast {
			t.Errorf("kiln_api_request_duration_seconds%v count = %v, want at least %v", l, got, c.atLeast)
		}
	}
	tc := map[string]string{"operation": "GET /jobs/{jobId}/taskcounts", "status": "200"}
	if before, after := mid.value("kiln_api_requests_total", tc), end.value("kiln_api_requests_total", tc); after <= before {
		t.Errorf("taskcounts requests did not increase: %v then %v", before, after)
	}
	// A request that fails authentication counts under its route.
	resp, err := http.Get(s.URL + "/pools?api-version=2024-07-01.20.0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A path no route knows counts as "other" (no label per path).
	resp2, err := http.Get(s.URL + "/no/such/thing?api-version=2024-07-01.20.0")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	m := metricsMustGet(t, s)
	if got := m.value("kiln_api_requests_total", map[string]string{"operation": "GET /pools", "status": fmt.Sprint(resp.StatusCode)}); got < 1 {
		t.Errorf("the unauthenticated GET /pools (%d) was not counted", resp.StatusCode)
	}
	if got := m.value("kiln_api_requests_total", map[string]string{"operation": "other", "status": fmt.Sprint(resp2.StatusCode)}); got < 1 {
		t.Errorf("GET /no/such/thing (%d) was not counted as operation other", resp2.StatusCode)
	}
	for _, sm := range m["kiln_api_requests_total"].Metric {
		for _, l := range sm.Label {
			if l.GetName() == "operation" && strings.Contains(l.GetValue(), "no/such") {
				t.Errorf("a raw path became an operation label: %s", l.GetValue())
			}
		}
	}
	for name, f := range m {
		if strings.HasPrefix(name, "kiln_") && f.GetHelp() == "" {
			t.Errorf("%s has no HELP text", name)
		}
	}
}

func merge(l map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range l {
		out[a] = b
	}
	return out
}

// TestMetricsTokenAndOff checks --metrics-token and --metrics=false.
func TestMetricsTokenAndOff(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: []string{"--metrics-token", "scrape-me"}})
	if _, err := metricsGet(t, s, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("no token: %v, want 401", err)
	}
	if _, err := metricsGet(t, s, "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v, want 401", err)
	}
	m, err := metricsGet(t, s, "scrape-me")
	if err != nil {
		t.Fatal(err)
	}
	if m["kiln_server_leader"] == nil {
		t.Error("no kiln_server_leader with the token")
	}

	off := StartServer(t, &ServerOpts{Args: []string{"--metrics=false"}})
	resp, err := http.Get(off.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "kiln_") {
		t.Errorf("--metrics=false: GET /metrics answered %s %.200s", resp.Status, b)
	}
}

// TestMetricsHighAvailability: every server answers /metrics itself, never
// forwarding it. The leader reports the state and the API requests (those
// a follower forwarded included), labelled store="postgres"; a follower
// reports kiln_server_leader 0 and no state.
func TestMetricsHighAvailability(t *testing.T) {
	dsn := postgresURL(t)
	shared := "file://" + t.TempDir()
	addrB := freeAddr(t)
	common := []string{"--store", dsn, "--storage", shared}
	a := StartServer(t, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", "http://"+addrB)})
	b := startServerAt(t, addrB, &ServerOpts{Args: append(append([]string{}, common...), "--peer-urls", a.URL)})
	if info := leaderInfo(t, b.URL); info.Role != "follower" {
		t.Fatalf("second server: %+v, want a follower", info)
	}
	b.CreatePool(t, jobPool, 1, 1, nil) // through the follower

	ml := metricsMustGet(t, a)
	if ml.value("kiln_server_leader", nil) != 1 {
		t.Error("leader: kiln_server_leader is not 1")
	}
	if err := metricsCheckNodes(t, a, ml); err != nil {
		t.Error("leader:", err)
	}
	if got := ml.value("kiln_store_transaction_duration_seconds", map[string]string{"store": "postgres"}); got == 0 {
		t.Error("leader: no store transactions labelled store=postgres")
	}
	if got := ml.value("kiln_api_requests_total", map[string]string{"operation": "POST /pools", "status": "201"}); got != 1 {
		t.Errorf("leader: POST /pools counted %v times, want 1 (forwarded by the follower)", got)
	}

	mf := metricsMustGet(t, b)
	if mf.value("kiln_server_leader", nil) != 0 || mf["kiln_server_leader"] == nil {
		t.Error("follower: kiln_server_leader is not 0")
	}
	for _, name := range []string{"kiln_tasks", "kiln_nodes", "kiln_pools"} {
		if mf[name] != nil {
			t.Errorf("follower reports %s; only the leader reports the state", name)
		}
	}
	if got := mf.value("kiln_api_requests_total", map[string]string{"operation": "POST /pools"}); got != 0 {
		t.Errorf("follower counts POST /pools (%v); the leader served it", got)
	}
	if mf["process_cpu_seconds_total"] == nil {
		t.Error("follower: no process metrics")
	}
}
