package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// autoScaleArgs shorten autoscale for the tests: evaluation intervals down
// to 2 seconds, pools sampled every second.
var autoScaleArgs = []string{"--autoscale-min-interval", "2s", "--metrics-sample-interval", "1s"}

func autoScalePool(id, formula string) azbatch.CreatePoolContent {
	c := poolContent(id, 0, 2)
	c.TargetDedicatedNodes = nil
	c.EnableAutoScale = to(true)
	c.AutoScaleFormula = to(formula)
	c.AutoScaleEvaluationInterval = to("PT2S")
	return c
}

// TestAutoScaleOperations: enable (at pool add and later), evaluate and
// disable through the Go SDK, with Azure's errors, and node metrics reaching
// formulas.
func TestAutoScaleOperations(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: autoScaleArgs})

	// Pool add: the formula is checked first.
	bad := autoScalePool("bad", "$TargetDedicatedNodes = = 1;")
	_, err := s.Client.CreatePool(ctx(t), bad, nil)
	if statusOf(err) != http.StatusBadRequest || batchCode(err) != "AutoScalingFormulaSyntaxError" {
		t.Fatalf("bad formula: %v", err)
	}
	both := autoScalePool("both", "$TargetDedicatedNodes = 1;")
	both.TargetDedicatedNodes = to[int32](1)
	if _, err := s.Client.CreatePool(ctx(t), both, nil); statusOf(err) != http.StatusBadRequest || batchCode(err) != "InvalidPropertyValue" {
		t.Fatalf("targets with autoscale: %v", err)
	}
	short := autoScalePool("short", "$TargetDedicatedNodes = 1;")
	short.AutoScaleEvaluationInterval = to("PT1S")
	if _, err := s.Client.CreatePool(ctx(t), short, nil); statusOf(err) != http.StatusBadRequest || batchCode(err) != "InvalidPropertyValue" {
		t.Fatalf("interval below the minimum: %v", err)
	}

	// An autoscale pool is evaluated at once.
	if _, err := s.Client.CreatePool(ctx(t), autoScalePool("auto", "$TargetDedicatedNodes = 1;"), nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitSteady(t, "auto", 1)
	p := s.poolGet(t, "auto")
	if !*p.EnableAutoScale || *p.AutoScaleEvaluationInterval != "PT2S" || p.AutoScaleRun == nil || p.AutoScaleRun.Error != nil ||
		*p.AutoScaleRun.Results != "$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue" {
		t.Fatalf("autoscale pool: %+v", p)
	}

	// Resizing by hand is refused.
	_, err = s.Client.ResizePool(ctx(t), "auto", azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](2)}, nil)
	if statusOf(err) != http.StatusConflict || batchCode(err) != "AutoScalingEnabled" {
		t.Fatalf("resize of an autoscale pool: %v", err)
	}

	// Evaluate: results without applying; the node's metrics are there.
	var run azbatch.AutoScaleRun
	eventually(t, 20*time.Second, "node metrics in an evaluation", func() error {
		r, err := s.Client.EvaluatePoolAutoScale(ctx(t), "auto", azbatch.EvaluatePoolAutoScaleContent{
			AutoScaleFormula: to("$cpu = avg($CPUPercent.GetSample(1)); $mem = avg($MemoryBytes.GetSample(1)); $n = max($SampleNodeCount.GetSample(1)); $TargetDedicatedNodes = 3;"),
		}, nil)
		if err != nil {
			return err
		}
		run = r.AutoScaleRun
		if run.Error != nil {
			return fmt.Errorf("run error %s: %s %v", *run.Error.Code, *run.Error.Message, run.Error.Values)
		}
		if !strings.Contains(*run.Results, "$n=1") {
			return fmt.Errorf("results %s", *run.Results)
		}
		return nil
	})
	if !strings.HasPrefix(*run.Results, "$TargetDedicatedNodes=3;") || run.Timestamp == nil {
		t.Fatalf("evaluate: %+v", run)
	}
	if strings.Contains(*run.Results, "$mem=0;") {
		t.Errorf("no memory measured: %s", *run.Results)
	}
	if p := s.poolGet(t, "auto"); *p.TargetDedicatedNodes != 1 {
		t.Fatalf("evaluate applied the formula: target %d", *p.TargetDedicatedNodes)
	}
	// A formula that fails to evaluate answers 200 with the run's error.
	r, err := s.Client.EvaluatePoolAutoScale(ctx(t), "auto", azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: to("$TargetDedicatedNodes = $DiskBytes.GetSample(1000);")}, nil)
	if err != nil || r.Error == nil || *r.Error.Code == "" {
		t.Fatalf("failing evaluation: %+v %v", r.AutoScaleRun, err)
	}
	if _, err := s.Client.EvaluatePoolAutoScale(ctx(t), "auto", azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: to("$TargetDedicatedNodes = (;")}, nil); statusOf(err) != http.StatusBadRequest || batchCode(err) != "AutoScalingFormulaSyntaxError" {
		t.Fatalf("evaluate, syntax error: %v", err)
	}

	// Enable with a new formula: applied at once.
	if _, err := s.Client.EnablePoolAutoScale(ctx(t), "auto", azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: to("$TargetDedicatedNodes = 2;")}, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitSteady(t, "auto", 2)

	// Disable: the pool keeps its size and can be resized again.
	if _, err := s.Client.DisablePoolAutoScale(ctx(t), "auto", nil); err != nil {
		t.Fatal(err)
	}
	p = s.poolGet(t, "auto")
	if *p.EnableAutoScale || p.AutoScaleFormula != nil || *p.TargetDedicatedNodes != 2 {
		t.Fatalf("disabled: %+v", p)
	}
	if _, err := s.Client.EvaluatePoolAutoScale(ctx(t), "auto", azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: to("$TargetDedicatedNodes = 1;")}, nil); statusOf(err) != http.StatusConflict {
		t.Fatalf("evaluate without autoscale: %v", err)
	}
	if _, err := s.Client.ResizePool(ctx(t), "auto", azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](1)}, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitSteady(t, "auto", 1)

	// Enable on a fixed pool needs a formula.
	if _, err := s.Client.EnablePoolAutoScale(ctx(t), "auto", azbatch.EnablePoolAutoScaleContent{}, nil); statusOf(err) != http.StatusBadRequest || batchCode(err) != "MissingRequiredProperty" {
		t.Fatalf("enable without formula: %v", err)
	}
	if _, err := s.Client.EnablePoolAutoScale(ctx(t), "auto", azbatch.EnablePoolAutoScaleContent{AutoScaleFormula: to("$TargetDedicatedNodes = 0;"), AutoScaleEvaluationInterval: to("PT3S")}, nil); err != nil {
		t.Fatal(err)
	}
	s.WaitNodes(t, "auto", 0, azbatch.NodeStateIdle)
	if p := s.poolGet(t, "auto"); !*p.EnableAutoScale || *p.AutoScaleEvaluationInterval != "PT3S" {
		t.Fatalf("enabled again: %+v", p)
	}
}

// readmeFormula is the README's example: Azure's task-based formula,
// scaled to pending tasks per two slots, at most 8 nodes.
const readmeFormula = `$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 2);
$tasks = $samples < 70 ? max(0, $PendingTasks.GetSample(1)) : max($PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 2)));
$TargetDedicatedNodes = min(8, $tasks / 2);
$NodeDeallocationOption = taskcompletion;`

// TestAutoScaleCLI runs the README's autoscale example: a pool created
// from JSON with the formula, then kiln pool autoscale evaluate, enable
// and disable.
func TestAutoScaleCLI(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: autoScaleArgs})
	pool := map[string]any{
		"id": "autopool", "vmSize": "standard_d2s_v3", "taskSlotsPerNode": 2,
		"enableAutoScale": true, "autoScaleEvaluationInterval": "PT5M", "autoScaleFormula": readmeFormula,
	}
	b, _ := json.Marshal(pool)
	file := filepath.Join(t.TempDir(), "autopool.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := spotCLI(s, "pool", "create", "--json-file", file); err != nil {
		t.Fatalf("pool create: %v\n%s", err, out)
	}
	p := s.poolGet(t, "autopool")
	if !*p.EnableAutoScale || p.AutoScaleRun == nil || p.AutoScaleRun.Error != nil || *p.TargetDedicatedNodes != 0 {
		t.Fatalf("pool from JSON: %+v run %+v", p, p.AutoScaleRun)
	}
	out, err := spotCLI(s, "pool", "autoscale", "evaluate", "--pool-id", "autopool", "--auto-scale-formula", "$TargetDedicatedNodes = 3; $x = $PendingTasks.GetSample(1);")
	if err != nil || !strings.Contains(out, "$TargetDedicatedNodes") || !strings.Contains(out, "$x") {
		t.Fatalf("evaluate: %v\n%s", err, out)
	}
	out, err = spotCLI(s, "pool", "autoscale", "evaluate", "autopool", "--auto-scale-formula", "$TargetDedicatedNodes = $CPUPercent.GetSample(100);")
	if err == nil || !strings.Contains(out, "Error") {
		t.Fatalf("failing evaluate: %v\n%s", err, out)
	}
	out, err = spotCLI(s, "pool", "autoscale", "enable", "--pool-id", "autopool", "--auto-scale-evaluation-interval", "10m")
	if err != nil || !strings.Contains(out, "PT10M") {
		t.Fatalf("enable: %v\n%s", err, out)
	}
	out, err = spotCLI(s, "pool", "autoscale", "disable", "--pool-id", "autopool", "--output", "json")
	if err != nil || !strings.Contains(out, `"enableAutoScale": false`) {
		t.Fatalf("disable: %v\n%s", err, out)
	}
}

// TestAutoScaleScenario: a pool whose formula follows $PendingTasks grows
// from 0 nodes when 200 tasks arrive and shrinks back to 0 when they are
// done; every task completes, and runs exactly once (each appends its id to
// a ledger outside the nodes).
func TestAutoScaleScenario(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: autoScaleArgs})
	const formula = `// Azure's task-based example, made fast.
$tasks = max(0, $PendingTasks.GetSample(1));
$TargetDedicatedNodes = min(4, $tasks);
$NodeDeallocationOption = taskcompletion;`
	if _, err := s.Client.CreatePool(ctx(t), autoScalePool("scale", formula), nil); err != nil {
		t.Fatal(err)
	}
	if p := s.poolGet(t, "scale"); *p.TargetDedicatedNodes != 0 || p.AutoScaleRun == nil || p.AutoScaleRun.Error != nil {
		t.Fatalf("empty pool: target %d run %+v", *p.TargetDedicatedNodes, p.AutoScaleRun)
	}
	ledger := filepath.Join(taskTempDir(t), "ledger.txt")
	s.CreateJob(t, "scalejob", "scale", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
	})
	start := time.Now()
	const n = 200
	var tasks []azbatch.CreateTaskContent
	for i := range n {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:          to(fmt.Sprintf("t%03d", i)),
			CommandLine: to(`/bin/sh -c 'sleep 0.2; echo "$AZ_BATCH_TASK_ID" >> "$LEDGER"'`),
		})
	}
	s.AddTasks(t, "scalejob", tasks)

	// Grow: to 4 nodes within a few intervals.
	peak := int32(0)
	eventually(t, 30*time.Second, "pool grown to 4 nodes", func() error {
		p := s.poolGet(t, "scale")
		peak = max(peak, *p.CurrentDedicatedNodes)
		if peak < 4 {
			return fmt.Errorf("current %d target %d run %v", *p.CurrentDedicatedNodes, *p.TargetDedicatedNodes, p.AutoScaleRun.Results)
		}
		return nil
	})
	grown := time.Since(start)

	counts := s.WaitJobTasks(t, "scalejob", 60*time.Second)
	if c := counts.TaskCounts; *c.Succeeded != n || *c.Failed != 0 {
		t.Fatalf("counts: succeeded %d failed %d", *c.Succeeded, *c.Failed)
	}
	done := time.Since(start)

	// Shrink: back to 0 nodes.
	eventually(t, 30*time.Second, "pool shrunk to 0", func() error {
		p := s.poolGet(t, "scale")
		if *p.TargetDedicatedNodes != 0 || *p.CurrentDedicatedNodes != 0 || *p.AllocationState != azbatch.AllocationStateSteady {
			return fmt.Errorf("current %d target %d %s", *p.CurrentDedicatedNodes, *p.TargetDedicatedNodes, *p.AllocationState)
		}
		return nil
	})
	t.Logf("grown to 4 nodes after %s, %d tasks done after %s, back to 0 nodes after %s", grown.Round(time.Millisecond), n, done.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	for _, line := range strings.Fields(string(b)) {
		runs[line]++
	}
	for i := range n {
		if id := fmt.Sprintf("t%03d", i); runs[id] != 1 {
			t.Errorf("task %s ran %d times", id, runs[id])
		}
	}
	if len(runs) != n {
		t.Errorf("ledger has %d ids, want %d", len(runs), n)
	}
	if nodes, err := s.ListNodes(t, "scale"); err != nil || len(nodes) != 0 {
		t.Fatalf("nodes left: %d %v", len(nodes), err)
	}
}

// TestAutoScaleScenarioSpot is the scenario with low-priority nodes that
// the server preempts while the tasks run (its preemption schedule, and a
// replacement a second later): the formula asks for 2 dedicated and 2
// low-priority nodes while tasks are pending, and 0 after. Every task
// completes once; a task whose node was preempted runs again (as on
// Azure: requeueCount), so it may be in the ledger once more than its
// requeues allow, never more.
func TestAutoScaleScenarioSpot(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: append([]string{"--spot-preemption-schedule", "2s,3s,4s", "--spot-replace-delay", "1s"}, autoScaleArgs...)})
	const formula = `$tasks = max(0, $PendingTasks.GetSample(1));
$TargetDedicatedNodes = min(2, $tasks);
$TargetLowPriorityNodes = min(2, max(0, $tasks - 2));
$NodeDeallocationOption = taskcompletion;`
	if _, err := s.Client.CreatePool(ctx(t), autoScalePool("spotscale", formula), nil); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(taskTempDir(t), "ledger.txt")
	s.CreateJob(t, "spotjob", "spotscale", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
	})
	start := time.Now()
	const n = 200
	var tasks []azbatch.CreateTaskContent
	for i := range n {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:          to(fmt.Sprintf("t%03d", i)),
			CommandLine: to(`/bin/sh -c 'sleep 0.3; echo "$AZ_BATCH_TASK_ID" >> "$LEDGER"'`),
		})
	}
	s.AddTasks(t, "spotjob", tasks)

	var peakDed, peakLow int32
	preempted := false
	eventually(t, 60*time.Second, "tasks done", func() error {
		p := s.poolGet(t, "spotscale")
		peakDed, peakLow = max(peakDed, *p.CurrentDedicatedNodes), max(peakLow, *p.CurrentLowPriorityNodes)
		if c := spotNodeCounts(t, s, "spotscale"); *c.LowPriority.Preempted > 0 {
			preempted = true
		}
		r, err := s.Client.GetJobTaskCounts(ctx(t), "spotjob", nil)
		if err != nil {
			return err
		}
		if c := r.TaskCounts; *c.Active+*c.Running > 0 {
			return fmt.Errorf("active %d running %d", *c.Active, *c.Running)
		}
		return nil
	})
	done := time.Since(start)
	if peakDed != 2 || peakLow != 2 {
		t.Errorf("peak nodes: %d dedicated, %d low-priority; want 2 and 2", peakDed, peakLow)
	}
	eventually(t, 30*time.Second, "pool shrunk to 0", func() error {
		p := s.poolGet(t, "spotscale")
		if *p.CurrentDedicatedNodes+*p.CurrentLowPriorityNodes != 0 || *p.AllocationState != azbatch.AllocationStateSteady {
			return fmt.Errorf("current %d+%d target %d+%d %s", *p.CurrentDedicatedNodes, *p.CurrentLowPriorityNodes,
				*p.TargetDedicatedNodes, *p.TargetLowPriorityNodes, *p.AllocationState)
		}
		return nil
	})
	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string]int{}
	for _, line := range strings.Fields(string(b)) {
		runs[line]++
	}
	requeues := 0
	for _, task := range s.ListTasks(t, "spotjob", nil) {
		id, ei := *task.ID, task.ExecutionInfo
		if *task.State != azbatch.TaskStateCompleted || ei == nil || ei.ExitCode == nil || *ei.ExitCode != 0 {
			t.Errorf("task %s: state %s", id, *task.State)
			continue
		}
		rq := int(*ei.RequeueCount)
		requeues += rq
		if runs[id] < 1 || runs[id] > rq+1 {
			t.Errorf("task %s ran %d times with %d requeues", id, runs[id], rq)
		}
	}
	if len(runs) != n {
		t.Errorf("ledger has %d ids, want %d", len(runs), n)
	}
	t.Logf("%d tasks done after %s (preempted nodes seen: %v, %d requeues), back to 0 nodes after %s",
		n, done.Round(time.Millisecond), preempted, requeues, time.Since(start).Round(time.Millisecond))
	if !preempted && requeues == 0 {
		t.Errorf("no node was preempted during the run")
	}
}

// TestAutoScaleRestart: a restarted server (SIGKILL) keeps evaluating its
// autoscale pools on their interval, and their formulas see the pending
// tasks again.
func TestAutoScaleRestart(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: autoScaleArgs})
	if _, err := s.Client.CreatePool(ctx(t), autoScalePool("again", "$TargetDedicatedNodes = min(2, max(0, $PendingTasks.GetSample(1)));"), nil); err != nil {
		t.Fatal(err)
	}
	before := *s.poolGet(t, "again").AutoScaleRun.Timestamp
	s.Kill()
	s.Start()
	s.CreateJob(t, "againjob", "again", nil)
	s.AddTasks(t, "againjob", []azbatch.CreateTaskContent{
		{ID: to("a"), CommandLine: to("sleep 1")}, {ID: to("b"), CommandLine: to("sleep 1")}, {ID: to("c"), CommandLine: to("sleep 1")},
	})
	eventually(t, 20*time.Second, "an evaluation after the restart growing the pool", func() error {
		p := s.poolGet(t, "again")
		if !p.AutoScaleRun.Timestamp.After(before) || *p.TargetDedicatedNodes != 2 {
			return fmt.Errorf("run at %v (before %v), target %d", p.AutoScaleRun.Timestamp, before, *p.TargetDedicatedNodes)
		}
		return nil
	})
	if c := s.WaitJobTasks(t, "againjob", 30*time.Second).TaskCounts; *c.Succeeded != 3 {
		t.Fatalf("succeeded %d", *c.Succeeded)
	}
	eventually(t, 20*time.Second, "pool back to 0", func() error {
		if p := s.poolGet(t, "again"); *p.CurrentDedicatedNodes != 0 {
			return fmt.Errorf("current %d", *p.CurrentDedicatedNodes)
		}
		return nil
	})
}
