package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// asBundle is a service with a fake clock whose provider starts no node;
// pools are sampled only when a test says so (the sampler's own interval is
// an hour), so that each evaluation reads exactly the samples the test took.
type asBundle struct {
	schedBundle
}

const asFollow = "$TargetDedicatedNodes = min(4, $PendingTasks.GetSample(1)); $NodeDeallocationOption = taskcompletion;"

func setupAutoScale(t *testing.T) *asBundle {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &asBundle{schedBundle{ctx: t.Context(), clock: newFakeClock(schedT0), st: st}}
	b.startAS(t)
	if _, err := b.svc.EnsureAccount(b.ctx, schedAcct, ""); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *asBundle) startAS(t *testing.T) {
	t.Helper()
	svc, err := New(b.ctx, Config{Store: b.st, Provider: idleProvider{}, Clock: b.clock,
		AccountURL: func(string) string { return "http://kiln.test" }, MetricsSampleInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	b.svc = svc
	t.Cleanup(svc.Close)
}

func (b *asBundle) sample() {
	b.svc.mu.Lock()
	b.svc.samplePoolsLocked()
	b.svc.mu.Unlock()
}

func (b *asBundle) pool(t *testing.T, id string) *azbatch.Pool {
	t.Helper()
	o, err := b.svc.PoolGet(b.ctx, schedAcct, id, Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	var p azbatch.Pool
	if err := json.Unmarshal(o.Doc, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// advanceTo moves the clock by d and waits for the pool's evaluation at the
// new time.
func (b *asBundle) advanceTo(t *testing.T, id string, d time.Duration) *azbatch.Pool {
	t.Helper()
	b.clock.Advance(d)
	want := b.clock.Now()
	var p *azbatch.Pool
	eventually(t, "autoscale run at "+want.String(), func() bool {
		p = b.pool(t, id)
		return p.AutoScaleRun != nil && !p.AutoScaleRun.Timestamp.Before(want)
	})
	return p
}

func asPool(id, formula string) *azbatch.CreatePoolContent {
	return &azbatch.CreatePoolContent{ID: ptr(id), VMSize: ptr("standard_d2s_v3"), EnableAutoScale: ptr(true),
		AutoScaleFormula: ptr(formula), AutoScaleEvaluationInterval: ptr("PT5M")}
}

func wantCode(t *testing.T, err error, status int, code string) *batch.Error {
	t.Helper()
	var be *batch.Error
	if !errors.As(err, &be) || be.Status != status || be.Code != code {
		t.Fatalf("err = %v, want %d %s", err, status, code)
	}
	return be
}

func TestAutoScale_PoolAddValidation(t *testing.T) {
	t.Parallel()
	b := setupAutoScale(t)
	for _, tc := range []struct {
		name   string
		mutate func(*azbatch.CreatePoolContent)
		status int
		code   string
	}{
		{"TargetsWithAutoScale", func(c *azbatch.CreatePoolContent) { c.TargetDedicatedNodes = ptr(int32(1)) }, 400, "InvalidPropertyValue"},
		{"NoFormula", func(c *azbatch.CreatePoolContent) { c.AutoScaleFormula = nil }, 400, "MissingRequiredProperty"},
		{"SyntaxError", func(c *azbatch.CreatePoolContent) { c.AutoScaleFormula = ptr("$TargetDedicatedNodes = = 1;") }, 400, "AutoScalingFormulaSyntaxError"},
		{"TooLong", func(c *azbatch.CreatePoolContent) { c.AutoScaleFormula = ptr(strings.Repeat("$a=1;", 2000)) }, 400, "AutoScaleFormulaTooLong"},
		{"IntervalTooShort", func(c *azbatch.CreatePoolContent) { c.AutoScaleEvaluationInterval = ptr("PT4M59S") }, 400, "InvalidPropertyValue"},
		{"IntervalTooLong", func(c *azbatch.CreatePoolContent) { c.AutoScaleEvaluationInterval = ptr("PT169H") }, 400, "InvalidPropertyValue"},
		{"FormulaWithoutAutoScale", func(c *azbatch.CreatePoolContent) { c.EnableAutoScale = nil }, 400, "InvalidPropertyValue"},
	} {
		c := asPool("p"+strings.ToLower(tc.name), asFollow)
		tc.mutate(c)
		_, err := b.svc.PoolAdd(b.ctx, schedAcct, c)
		be := wantCode(t, err, tc.status, tc.code)
		if tc.code == "AutoScalingFormulaSyntaxError" && (len(be.Values) == 0 || be.Values[0].Key != "Message") {
			t.Errorf("%s: values %v, want the formula error's Message", tc.name, be.Values)
		}
	}

	// Defaults: a 15-minute interval, evaluated at once.
	c := asPool("pdefault", "$TargetDedicatedNodes = 0;")
	c.AutoScaleEvaluationInterval = nil
	if _, err := b.svc.PoolAdd(b.ctx, schedAcct, c); err != nil {
		t.Fatal(err)
	}
	p := b.pool(t, "pdefault")
	if !deref(p.EnableAutoScale) || deref(p.AutoScaleEvaluationInterval) != "PT15M" || p.AutoScaleRun == nil || !p.AutoScaleRun.Timestamp.Equal(schedT0) {
		t.Fatalf("pool: enable %v interval %v run %+v", deref(p.EnableAutoScale), deref(p.AutoScaleEvaluationInterval), p.AutoScaleRun)
	}
	if got := deref(p.AutoScaleRun.Results); got != "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue" {
		t.Errorf("results %q", got)
	}
}

// TestAutoScale_FollowsPendingTasks: the pool grows with the pending tasks
// of its jobs, once per interval, and shrinks back when they are gone.
func TestAutoScale_FollowsPendingTasks(t *testing.T) {
	t.Parallel()
	b := setupAutoScale(t)
	if _, err := b.svc.PoolAdd(b.ctx, schedAcct, asPool("grow", asFollow)); err != nil {
		t.Fatal(err)
	}
	if p := b.pool(t, "grow"); deref(p.TargetDedicatedNodes) != 0 || p.AutoScaleRun.Error != nil {
		t.Fatalf("first run: target %d error %+v", deref(p.TargetDedicatedNodes), p.AutoScaleRun.Error)
	}
	if _, err := b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("j"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("grow")}}); err != nil {
		t.Fatal(err)
	}
	var tasks []azbatch.CreateTaskContent
	for i := range 10 {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: ptr(fmt.Sprint("t", i)), CommandLine: ptr("true")})
	}
	if _, err := b.svc.TaskAddCollection(b.ctx, schedAcct, "j", tasks); err != nil {
		t.Fatal(err)
	}
	b.sample()
	// Nothing changes before the interval.
	b.clock.Advance(4 * time.Minute)
	if p := b.pool(t, "grow"); deref(p.TargetDedicatedNodes) != 0 {
		t.Fatalf("evaluated before the interval: target %d", deref(p.TargetDedicatedNodes))
	}
	p := b.advanceTo(t, "grow", time.Minute)
	if deref(p.TargetDedicatedNodes) != 4 || deref(p.CurrentDedicatedNodes) != 4 || p.AutoScaleRun.Error != nil {
		t.Fatalf("after 10 tasks: target %d current %d run %+v", deref(p.TargetDedicatedNodes), deref(p.CurrentDedicatedNodes), p.AutoScaleRun)
	}
	if !strings.HasPrefix(deref(p.AutoScaleRun.Results), "$TargetDedicatedNodes=4;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion") {
		t.Errorf("results %q", deref(p.AutoScaleRun.Results))
	}
	b.svc.mu.Lock()
	opt := b.svc.pools[key(schedAcct, "grow")].deallocation
	b.svc.mu.Unlock()
	if opt != azbatch.NodeDeallocationOptionTaskCompletion {
		t.Errorf("deallocation %s, want the formula's taskcompletion", opt)
	}

	// A manual resize is refused while autoscale is on.
	_, err := b.svc.PoolResize(b.ctx, schedAcct, "grow", &azbatch.ResizePoolContent{TargetDedicatedNodes: ptr(int32(1))}, Conditions{})
	wantCode(t, err, http.StatusConflict, "AutoScalingEnabled")

	// The job goes: the next evaluation shrinks the pool to 0.
	if err := b.svc.JobDelete(b.ctx, schedAcct, "j", Conditions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "job deleted", func() bool {
		_, err := b.svc.JobGet(b.ctx, schedAcct, "j", Conditions{})
		return err != nil
	})
	b.sample()
	p = b.advanceTo(t, "grow", 5*time.Minute)
	if deref(p.TargetDedicatedNodes) != 0 {
		t.Fatalf("after the job: target %d", deref(p.TargetDedicatedNodes))
	}
}

func TestAutoScale_EnableEvaluateDisable(t *testing.T) {
	t.Parallel()
	b := setupAutoScale(t)
	if _, err := b.svc.PoolAdd(b.ctx, schedAcct, &azbatch.CreatePoolContent{ID: ptr("fixed"), VMSize: ptr("standard_d2s_v3"), TargetDedicatedNodes: ptr(int32(0))}); err != nil {
		t.Fatal(err)
	}
	// Evaluate needs autoscale enabled.
	_, err := b.svc.PoolEvaluateAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = 1;")})
	wantCode(t, err, http.StatusConflict, "AutoScalingNotEnabled")
	// Enable needs a formula the first time, and a valid one.
	_, err = b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{}, Conditions{})
	wantCode(t, err, http.StatusBadRequest, "MissingRequiredProperty")
	_, err = b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = (1;")}, Conditions{})
	wantCode(t, err, http.StatusBadRequest, "AutoScalingFormulaSyntaxError")
	_, err = b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = 1;"), AutoScaleEvaluationInterval: ptr("PT1M")}, Conditions{})
	wantCode(t, err, http.StatusBadRequest, "InvalidPropertyValue")

	// Enable evaluates at once (the pool grows from 0 to 1).
	if _, err := b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = 1;")}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	p := b.pool(t, "fixed")
	if !deref(p.EnableAutoScale) || deref(p.TargetDedicatedNodes) != 1 || deref(p.AutoScaleEvaluationInterval) != "PT15M" {
		t.Fatalf("enabled: %v target %d interval %s", deref(p.EnableAutoScale), deref(p.TargetDedicatedNodes), deref(p.AutoScaleEvaluationInterval))
	}
	// Again within 30 seconds: 503 TooManyEnableAutoScaleRequests.
	_, err = b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{AutoScaleEvaluationInterval: ptr("PT5M")}, Conditions{})
	wantCode(t, err, http.StatusServiceUnavailable, "TooManyEnableAutoScaleRequests")

	// Evaluate does not apply; an evaluation error is in the run, not a
	// failed call.
	run, err := b.svc.PoolEvaluateAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = 3; $x = 7;")})
	if err != nil || deref(run.Results) != "$TargetDedicatedNodes=3;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;$x=7" || run.Error != nil {
		t.Fatalf("evaluate: %+v %v", run, err)
	}
	if p := b.pool(t, "fixed"); deref(p.TargetDedicatedNodes) != 1 {
		t.Fatalf("evaluate applied: target %d", deref(p.TargetDedicatedNodes))
	}
	run, err = b.svc.PoolEvaluateAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = $CPUPercent.GetSample(1);")})
	if err != nil || run.Error == nil || deref(run.Error.Code) == "" {
		t.Fatalf("evaluate without samples: %+v %v", run, err)
	}

	// An enable that changes nothing is refused.
	b.clock.Advance(30 * time.Second)
	_, err = b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{}, Conditions{})
	wantCode(t, err, http.StatusBadRequest, "MissingRequiredProperty")

	// A new formula alone is evaluated at once and keeps the schedule (the
	// next run is 15 minutes after the first).
	if _, err := b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = 3;")}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	if p := b.pool(t, "fixed"); deref(p.TargetDedicatedNodes) != 3 {
		t.Fatalf("new formula: target %d", deref(p.TargetDedicatedNodes))
	}
	if p := b.advanceTo(t, "fixed", 15*time.Minute-30*time.Second); !p.AutoScaleRun.Timestamp.Equal(schedT0.Add(15 * time.Minute)) {
		t.Fatalf("scheduled run at %v, want 15 minutes after enabling", p.AutoScaleRun.Timestamp)
	}

	// A new interval restarts the schedule from now.
	b.clock.Advance(30 * time.Second)
	if _, err := b.svc.PoolEnableAutoScale(b.ctx, schedAcct, "fixed", &azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: ptr("$TargetDedicatedNodes = 2;"), AutoScaleEvaluationInterval: ptr("PT5M")}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	if p := b.pool(t, "fixed"); deref(p.TargetDedicatedNodes) != 2 || deref(p.AutoScaleEvaluationInterval) != "PT5M" {
		t.Fatalf("re-enabled: target %d interval %s", deref(p.TargetDedicatedNodes), deref(p.AutoScaleEvaluationInterval))
	}
	b.advanceTo(t, "fixed", 5*time.Minute)

	// Disable: the pool keeps its targets and resizes by hand again.
	if _, err := b.svc.PoolDisableAutoScale(b.ctx, schedAcct, "fixed"); err != nil {
		t.Fatal(err)
	}
	p = b.pool(t, "fixed")
	if deref(p.EnableAutoScale) || p.AutoScaleFormula != nil || deref(p.TargetDedicatedNodes) != 2 {
		t.Fatalf("disabled: %v formula %v target %d", deref(p.EnableAutoScale), p.AutoScaleFormula, deref(p.TargetDedicatedNodes))
	}
	if _, err := b.svc.PoolResize(b.ctx, schedAcct, "fixed", &azbatch.ResizePoolContent{TargetDedicatedNodes: ptr(int32(3))}, Conditions{}); err != nil {
		var be *batch.Error
		if !errors.As(err, &be) || be.Code != "PoolBeingResized" {
			t.Fatalf("resize after disable: %v", err)
		}
	}
	// No evaluation comes any more.
	b.clock.Advance(time.Hour)
	time.Sleep(20 * time.Millisecond)
	if p := b.pool(t, "fixed"); p.AutoScaleRun != nil {
		t.Fatalf("evaluated after disable: %+v", p.AutoScaleRun)
	}
}

// TestAutoScale_Restart: a restarted server evaluates again one interval
// after the last run.
func TestAutoScale_Restart(t *testing.T) {
	t.Parallel()
	b := setupAutoScale(t)
	if _, err := b.svc.PoolAdd(b.ctx, schedAcct, asPool("again", "$TargetDedicatedNodes = 2;")); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(2 * time.Minute)
	b.svc.Close()
	b.startAS(t)
	b.clock.Advance(2 * time.Minute)
	if p := b.pool(t, "again"); !p.AutoScaleRun.Timestamp.Equal(schedT0) {
		t.Fatalf("evaluated early: %v", p.AutoScaleRun.Timestamp)
	}
	p := b.advanceTo(t, "again", time.Minute)
	if deref(p.TargetDedicatedNodes) != 2 {
		t.Fatalf("target %d", deref(p.TargetDedicatedNodes))
	}
}

// TestMetrics_PoolSamples: node figures and task counts become Azure's pool
// samples (averages, sums per period, megabytes and gigabytes).
func TestMetrics_PoolSamples(t *testing.T) {
	t.Parallel()
	b := setupAutoScale(t)
	if _, err := b.svc.PoolAdd(b.ctx, schedAcct, &azbatch.CreatePoolContent{ID: ptr("m"), VMSize: ptr("standard_d2s_v3"), TargetDedicatedNodes: ptr(int32(2))}); err != nil {
		t.Fatal(err)
	}
	s := b.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	var nodes []*nodeState
	for _, n := range s.pools[key(schedAcct, "m")].nodes {
		nodes = append(nodes, n)
	}
	report := func(n *nodeState, cpu float64, mem, disk, read, net int64) {
		s.recordMetricsLocked(n, &protocol.NodeMetrics{CPUPercent: cpu, MemoryBytes: mem, DiskBytes: disk, DiskReadBytes: read, DiskReadOps: read / 10, NetworkInBytes: net})
	}
	report(nodes[0], 20, 100<<20, 2<<30, 1000, 5000)
	report(nodes[1], 60, 300<<20, 4<<30, 3000, 7000)
	s.samplePoolsLocked()
	b.clock.Advance(30 * time.Second)
	report(nodes[0], 40, 100<<20, 2<<30, 1500, 6000)
	report(nodes[1], 80, 300<<20, 4<<30, 3100, 7000)
	s.samplePoolsLocked()
	h := s.as.metrics.pools[key(schedAcct, "m")]
	last := func(name string) float64 {
		v := h.samples[name]
		if len(v) != 2 {
			t.Fatalf("%s: %d samples, want 2", name, len(v))
		}
		return v[1].Value
	}
	for name, want := range map[string]float64{
		metricCPUPercent: 60, metricMemoryBytes: 200, metricDiskBytes: 3,
		metricDiskReadBytes: 600, metricDiskReadOps: 60, metricNetworkInBytes: 1000,
		metricSampleNodeCount: 2, metricWallClockSeconds: 60, metricPendingTasks: 0,
	} {
		if got := last(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Samples older than the history are dropped.
	b.clock.Advance(MetricsHistory)
	s.samplePoolsLocked()
	if n := len(h.samples[metricPendingTasks]); n != 2 {
		t.Errorf("%d samples after the history, want 2 (the last before and the new)", n)
	}
}

// TestMetrics_ActiveTasksWaitingForDependencies: $ActiveTasks leaves out
// the tasks whose dependencies are not satisfied, as Azure's does.
func TestMetrics_ActiveTasksWaitingForDependencies(t *testing.T) {
	t.Parallel()
	b := setupAutoScale(t)
	if _, err := b.svc.PoolAdd(b.ctx, schedAcct, &azbatch.CreatePoolContent{ID: ptr("d"), VMSize: ptr("standard_d2s_v3")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("dj"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("d")}, UsesTaskDependencies: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	res, err := b.svc.TaskAddCollection(b.ctx, schedAcct, "dj", []azbatch.CreateTaskContent{
		{ID: ptr("a"), CommandLine: ptr("true")},
		{ID: ptr("b"), CommandLine: ptr("true"), DependsOn: &azbatch.TaskDependencies{TaskIDs: []string{"a"}}},
		{ID: ptr("c"), CommandLine: ptr("true"), DependsOn: &azbatch.TaskDependencies{TaskIDs: []string{"a", "b"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if deref(r.Status) != azbatch.TaskAddStatusSuccess {
			t.Fatalf("add %s: %+v", deref(r.TaskID), r.Error)
		}
	}
	b.sample()
	b.svc.mu.Lock()
	h := b.svc.as.metrics.pools[key(schedAcct, "d")]
	active, pending := h.samples[metricActiveTasks], h.samples[metricPendingTasks]
	b.svc.mu.Unlock()
	if got := active[len(active)-1].Value; got != 1 {
		t.Errorf("$ActiveTasks = %v, want 1 (b and c wait for a)", got)
	}
	if got := pending[len(pending)-1].Value; got != 1 {
		t.Errorf("$PendingTasks = %v, want 1", got)
	}
}
