package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// depJob creates a job that uses task dependencies on pool poolID.
func depJob(t testing.TB, s *Server, id, poolID string, mutate func(*azbatch.CreateJobContent)) {
	t.Helper()
	s.CreateJob(t, id, poolID, func(c *azbatch.CreateJobContent) {
		c.UsesTaskDependencies = to(true)
		if mutate != nil {
			mutate(c)
		}
	})
}

// depTask is a task with a command line and dependencies (ids, and ranges
// written as {start, end}).
func depTask(id, cmd string, ids []string, ranges ...[2]int32) azbatch.CreateTaskContent {
	c := azbatch.CreateTaskContent{ID: to(id), CommandLine: to(cmd)}
	if len(ids)+len(ranges) > 0 {
		c.DependsOn = &azbatch.TaskDependencies{TaskIDs: ids}
		for _, r := range ranges {
			c.DependsOn.TaskIDRanges = append(c.DependsOn.TaskIDRanges, azbatch.TaskIDRange{Start: to(r[0]), End: to(r[1])})
		}
	}
	return c
}

// depAfter fails unless task child started after every parent ended.
func depAfter(t testing.TB, child azbatch.Task, parents ...azbatch.Task) {
	t.Helper()
	start := *child.ExecutionInfo.StartTime
	for _, p := range parents {
		if end := *p.ExecutionInfo.EndTime; start.Before(end) {
			t.Fatalf("task %s started at %s, before its parent %s ended at %s", *child.ID, start, *p.ID, end)
		}
	}
}

// TestDependencyChainsAndRanges: through the official SDK, tasks wait for
// their parents by id and by range (integer ids, leading zeros ignored),
// a parent that fails blocks its dependents, which stay active, and
// dependsOn comes back on Get Task.
func TestDependencyChainsAndRanges(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	depJob(t, s, "deps", jobPool, nil)
	sleep := `/bin/sh -c 'sleep 0.3'`
	s.AddTasks(t, "deps", []azbatch.CreateTaskContent{
		// Dependents first: a task may name parents that do not exist yet.
		depTask("c", "true", []string{"B"}),
		depTask("b", sleep, []string{"a"}),
		depTask("merge", "true", []string{"c"}, [2]int32{1, 3}),
		depTask("a", sleep, nil),
		depTask("1", sleep, nil),
		depTask("2", sleep, nil),
		depTask("003", sleep, nil),
		depTask("bad", `/bin/sh -c 'exit 7'`, nil),
		depTask("blocked", "true", []string{"bad", "a"}),
	})
	merge := taskWaitState(t, s, "deps", "merge", azbatch.TaskStateCompleted, time.Minute)
	get := func(id string) azbatch.Task { return taskGet(t, s, "deps", id) }
	a, b, c := get("a"), get("b"), get("c")
	depAfter(t, b, a)
	depAfter(t, c, b)
	depAfter(t, merge, c, get("1"), get("2"), get("003"))
	if d := merge.DependsOn; d == nil || len(d.TaskIDs) != 1 || d.TaskIDs[0] != "c" || len(d.TaskIDRanges) != 1 || *d.TaskIDRanges[0].Start != 1 || *d.TaskIDRanges[0].End != 3 {
		t.Fatalf("dependsOn of merge: %+v", merge.DependsOn)
	}
	taskWaitState(t, s, "deps", "bad", azbatch.TaskStateCompleted, time.Minute)
	time.Sleep(time.Second) // time enough to be scheduled, were it not blocked
	if blocked := get("blocked"); *blocked.State != azbatch.TaskStateActive || blocked.NodeInfo != nil {
		t.Fatalf("dependent of a failed task is %s (nodeInfo %+v), want active and never run", *blocked.State, blocked.NodeInfo)
	}
	counts, err := s.Client.GetJobTaskCounts(ctx(t), "deps", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts.TaskCounts; *c.Active != 1 || *c.Succeeded != 7 || *c.Failed != 1 {
		t.Fatalf("task counts: active %d succeeded %d failed %d", *c.Active, *c.Succeeded, *c.Failed)
	}
	job := jobGet(t, s, "deps")
	if !*job.UsesTaskDependencies {
		t.Fatalf("usesTaskDependencies %v", *job.UsesTaskDependencies)
	}
}

// TestDependencyErrors: Azure's errors for dependsOn.
func TestDependencyErrors(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 0, 0, nil)
	s.CreateJob(t, "plain", "nopool", nil)
	depJob(t, s, "deps", "nopool", nil)
	_, err := s.Client.CreateTask(ctx(t), "plain", depTask("t", "true", []string{"a"}), nil)
	jobAzureError(t, err, http.StatusBadRequest, "TaskDependenciesNotSpecifiedOnJob")

	var ids []string
	for i := 0; i < 1001; i++ {
		ids = append(ids, fmt.Sprintf("parent-%057d", i))
	}
	_, err = s.Client.CreateTask(ctx(t), "deps", depTask("t", "true", ids), nil)
	jobAzureError(t, err, http.StatusBadRequest, "TaskDependencyListTooLong")
	if _, err := s.Client.CreateTask(ctx(t), "deps", depTask("fits", "true", ids[:1000]), nil); err != nil {
		t.Fatalf("64,000 characters of parent ids: %v", err)
	}

	_, err = s.Client.CreateTask(ctx(t), "deps", depTask("t", "true", nil, [2]int32{9, 3}), nil)
	values := jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	if values["PropertyName"] != "dependsOn.taskIdRanges[0].start" {
		t.Fatalf("values %v", values)
	}
	// Add Task Collection reports the error of each task.
	resp, err := s.Client.CreateTaskCollection(ctx(t), "plain", azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{
		depTask("ok", "true", nil), depTask("dep", "true", []string{"ok"}),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Value {
		want := azbatch.TaskAddStatusSuccess
		if *r.TaskID == "dep" {
			want = azbatch.TaskAddStatusClientError
		}
		if *r.Status != want || (want == azbatch.TaskAddStatusClientError && *r.Error.Code != "TaskDependenciesNotSpecifiedOnJob") {
			t.Fatalf("task %s: %s %+v", *r.TaskID, *r.Status, r.Error)
		}
	}
}

// TestDependencyRestart: a server restarted while dependents wait rebuilds
// their dependencies from its store: a parent completed before the restart
// counts, one completing after it releases its dependents.
func TestDependencyRestart(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	depJob(t, s, "deps", jobPool, nil)
	s.AddTasks(t, "deps", []azbatch.CreateTaskContent{
		depTask("1", "true", nil),
		depTask("2", taskGateCmd, nil),
		depTask("after", "true", []string{"1", "2"}),
		depTask("range", "true", nil, [2]int32{1, 2}),
	})
	taskWaitState(t, s, "deps", "1", azbatch.TaskStateCompleted, time.Minute)
	taskWaitState(t, s, "deps", "2", azbatch.TaskStateRunning, time.Minute)
	s.Kill()
	s.Start()
	time.Sleep(500 * time.Millisecond)
	for _, id := range []string{"after", "range"} {
		if st := *taskGet(t, s, "deps", id).State; st != azbatch.TaskStateActive {
			t.Fatalf("task %s is %s after the restart, want active", id, st)
		}
	}
	taskRelease(t, s, "deps", "2")
	parent := taskWaitState(t, s, "deps", "2", azbatch.TaskStateCompleted, time.Minute)
	for _, id := range []string{"after", "range"} {
		depAfter(t, taskWaitState(t, s, "deps", id, azbatch.TaskStateCompleted, time.Minute), parent)
	}
}

// TestDependencyFanOutFanIn10k: one root task, 9,998 tasks that depend on
// it, and a final task that depends on all of them through one range; the
// job ends by onAllTasksComplete once the final task ran last. The tasks
// are integers, as range dependencies need, and run on 128 slots.
func TestDependencyFanOutFanIn10k(t *testing.T) {
	const middle = 9998
	start := time.Now()
	s := StartServer(t, nil)
	s.CreatePool(t, "fan", 2, 64, nil)
	ready := time.Now()
	depJob(t, s, "fan", "fan", nil)
	tasks := make([]azbatch.CreateTaskContent, 0, middle+2)
	tasks = append(tasks, depTask("0", "true", nil))
	for i := 1; i <= middle; i++ {
		tasks = append(tasks, depTask(strconv.Itoa(i), "true", []string{"0"}))
	}
	tasks = append(tasks, depTask(strconv.Itoa(middle+1), "true", nil, [2]int32{1, middle}))
	s.AddTasks(t, "fan", tasks)
	// As Azure advises: terminatejob once every task is added, or the job
	// may end between two collections whose tasks all completed.
	if _, err := s.Client.UpdateJob(ctx(t), "fan", azbatch.UpdateJobContent{OnAllTasksComplete: to(azbatch.OnAllTasksCompleteTerminateJob)}, nil); err != nil {
		t.Fatal(err)
	}
	added := time.Now()

	job := jobWaitState(t, s, "fan", azbatch.JobStateCompleted, 3*time.Minute)
	ran := time.Now()
	if r := deref(job.ExecutionInfo.TerminationReason); r != "AllTasksComplete" {
		t.Fatalf("job ended with reason %v", r)
	}
	all := s.ListTasks(t, "fan", &azbatch.ListTasksOptions{SelectParam: []string{"id", "state", "executionInfo"}})
	if len(all) != middle+2 {
		t.Fatalf("%d tasks listed", len(all))
	}
	byID := map[string]azbatch.Task{}
	for _, tk := range all {
		if *tk.State != azbatch.TaskStateCompleted || *tk.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
			t.Fatalf("task %s: %s", *tk.ID, *tk.State)
		}
		byID[*tk.ID] = tk
	}
	root, final := byID["0"], byID[strconv.Itoa(middle+1)]
	var parents []azbatch.Task
	for i := 1; i <= middle; i++ {
		tk := byID[strconv.Itoa(i)]
		depAfter(t, tk, root)
		parents = append(parents, tk)
	}
	depAfter(t, final, parents...)
	t.Logf("fan-out/fan-in of %d tasks: server and pool %.1fs, adding the tasks %.1fs, running them %.1fs, checking them %.1fs",
		middle+2, ready.Sub(start).Seconds(), added.Sub(ready).Seconds(), ran.Sub(added).Seconds(), time.Since(ran).Seconds())
}
