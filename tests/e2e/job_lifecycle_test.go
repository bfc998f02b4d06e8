package e2e

// Job lifecycle beyond add/get/update: the transitional states of disable,
// terminate and delete, maxParallelTasks, maxTaskRetryCount and task
// preemption between jobs of different priorities.

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// lifecycleStates collects the states a job goes through, polled until it
// reaches final.
func lifecycleStates(t *testing.T, s *Server, jobID string, final azbatch.JobState) []azbatch.JobState {
	t.Helper()
	var seen []azbatch.JobState
	eventually(t, 30*time.Second, fmt.Sprintf("job %s %s", jobID, final), func() error {
		r, err := s.Client.GetJob(ctx(t), jobID, nil)
		if err != nil {
			return err
		}
		if st := *r.State; len(seen) == 0 || seen[len(seen)-1] != st {
			seen = append(seen, st)
		}
		if *r.State != final {
			return fmt.Errorf("state %s", *r.State)
		}
		return nil
	})
	return seen
}

// TestJobLifecycleDisableWait: with disableTasks "wait" the job stays
// disabling while its running task runs, refuses nothing a disabling job
// accepts, and becomes disabled when the task finishes; enable resumes it.
func TestJobLifecycleDisableWait(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	c := s.Client
	s.CreateJob(t, "dw", jobPool, func(j *azbatch.CreateJobContent) { j.MaxParallelTasks = to(int32(1)) })
	s.AddTasks(t, "dw", []azbatch.CreateTaskContent{taskCmd("gate", taskGateCmd), taskCmd("queued", "true")})
	taskWaitState(t, s, "dw", "gate", azbatch.TaskStateRunning, 30*time.Second)

	if _, err := c.DisableJob(ctx(t), "dw", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionWait)}, nil); err != nil {
		t.Fatal(err)
	}
	job := jobGet(t, s, "dw")
	if *job.State != azbatch.JobStateDisabling || *job.PreviousState != azbatch.JobStateActive {
		t.Fatalf("after disable wait with a running task: state %s previous %s, want disabling", *job.State, *job.PreviousState)
	}
	// Disabling again changes nothing; tasks may still be added.
	if _, err := c.DisableJob(ctx(t), "dw", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionRequeue)}, nil); err != nil {
		t.Fatalf("disable a disabling job: %v", err)
	}
	if again := jobGet(t, s, "dw"); *again.State != azbatch.JobStateDisabling || *again.ETag != *job.ETag {
		t.Fatalf("disabling again changed the job: %s", *again.State)
	}
	taskAdd(t, s, "dw", taskCmd("added", "true"))
	if tk := taskGet(t, s, "dw", "gate"); *tk.State != azbatch.TaskStateRunning {
		t.Fatalf("the running task is %s while its job is disabling (wait)", *tk.State)
	}

	taskRelease(t, s, "dw", "gate")
	if seen := lifecycleStates(t, s, "dw", azbatch.JobStateDisabled); seen[0] != azbatch.JobStateDisabling {
		t.Fatalf("states %v", seen)
	}
	if job := jobGet(t, s, "dw"); *job.PreviousState != azbatch.JobStateDisabling {
		t.Fatalf("disabled job's previous state %s", *job.PreviousState)
	}
	if tk := taskGet(t, s, "dw", "gate"); *tk.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("the waited-for task: %s", *tk.ExecutionInfo.Result)
	}
	for _, id := range []string{"queued", "added"} {
		if tk := taskGet(t, s, "dw", id); *tk.State != azbatch.TaskStateActive {
			t.Fatalf("task %s of the disabled job is %s", id, *tk.State)
		}
	}
	if _, err := c.EnableJob(ctx(t), "dw", nil); err != nil {
		t.Fatal(err)
	}
	if counts := s.WaitJobTasks(t, "dw", 30*time.Second).TaskCounts; *counts.Succeeded != 3 {
		t.Fatalf("after enable: succeeded %d of 3", *counts.Succeeded)
	}

	// Enabling a disabling job makes it active at once; its running task
	// goes on.
	s.CreateJob(t, "de", jobPool, nil)
	taskAdd(t, s, "de", taskCmd("gate", taskGateCmd))
	taskWaitState(t, s, "de", "gate", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := c.DisableJob(ctx(t), "de", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionWait)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnableJob(ctx(t), "de", nil); err != nil {
		t.Fatalf("enable a disabling job: %v", err)
	}
	if job := jobGet(t, s, "de"); *job.State != azbatch.JobStateActive || *job.PreviousState != azbatch.JobStateDisabling {
		t.Fatalf("enabled while disabling: %s (previous %s)", *job.State, *job.PreviousState)
	}
	taskRelease(t, s, "de", "gate")
	taskWaitState(t, s, "de", "gate", azbatch.TaskStateCompleted, 30*time.Second)
	time.Sleep(300 * time.Millisecond) // a few settle rounds: it must stay active
	if job := jobGet(t, s, "de"); *job.State != azbatch.JobStateActive {
		t.Fatalf("enabled job became %s", *job.State)
	}
}

// TestJobLifecycleDisableRequeueTerminate: requeue and terminate stop the
// running task at once; the job is disabling until the agent confirms the
// process is gone, then disabled.
func TestJobLifecycleDisableRequeueTerminate(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	for _, tc := range []struct {
		opt   azbatch.DisableJobOption
		state azbatch.TaskState
	}{
		{azbatch.DisableJobOptionRequeue, azbatch.TaskStateActive},
		{azbatch.DisableJobOptionTerminate, azbatch.TaskStateCompleted},
	} {
		id := "d" + string(tc.opt)
		s.CreateJob(t, id, jobPool, nil)
		taskAdd(t, s, id, taskCmd("gate", taskGateCmd))
		run := taskWaitState(t, s, id, "gate", azbatch.TaskStateRunning, 30*time.Second)
		if _, err := s.Client.DisableJob(ctx(t), id, azbatch.DisableJobContent{DisableTasks: to(tc.opt)}, nil); err != nil {
			t.Fatal(err)
		}
		// The task changed state with the request; the job waits for its
		// process.
		tk := taskGet(t, s, id, "gate")
		if *tk.State != tc.state {
			t.Fatalf("%s: task %s, want %s", tc.opt, *tk.State, tc.state)
		}
		if st := *jobGet(t, s, id).State; st != azbatch.JobStateDisabling && st != azbatch.JobStateDisabled {
			t.Fatalf("%s: job %s right after disable", tc.opt, st)
		}
		lifecycleStates(t, s, id, azbatch.JobStateDisabled)
		taskWaitNoProcs(t, taskDirOf(t, s, id, run), 10*time.Second)
		switch tc.opt {
		case azbatch.DisableJobOptionRequeue:
			if ei := tk.ExecutionInfo; *ei.RequeueCount != 1 || *ei.RetryCount != 0 {
				t.Fatalf("requeued task: requeueCount %d retryCount %d", *ei.RequeueCount, *ei.RetryCount)
			}
		case azbatch.DisableJobOptionTerminate:
			if ei := tk.ExecutionInfo; *ei.Result != azbatch.TaskExecutionResultFailure || *ei.FailureInfo.Code != "TaskEnded" {
				t.Fatalf("terminated task: %+v", ei)
			}
		}
	}
}

// TestJobLifecycleTerminateAndDelete: terminate goes through terminating to
// completed with the reason given; delete goes through deleting, during
// which the job can be read, and then the job is gone.
func TestJobLifecycleTerminateAndDelete(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	c := s.Client

	s.CreateJob(t, "term", jobPool, nil)
	s.AddTasks(t, "term", []azbatch.CreateTaskContent{taskCmd("gate", taskGateCmd), taskCmd("b", taskGateCmd)})
	taskWaitState(t, s, "term", "gate", azbatch.TaskStateRunning, 30*time.Second)
	taskWaitState(t, s, "term", "b", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := c.TerminateJob(ctx(t), "term", &azbatch.TerminateJobOptions{Parameters: &azbatch.TerminateJobContent{TerminationReason: to("Enough")}}); err != nil {
		t.Fatal(err)
	}
	if st := *jobGet(t, s, "term").State; st != azbatch.JobStateTerminating && st != azbatch.JobStateCompleted {
		t.Fatalf("job %s right after terminate", st)
	}
	lifecycleStates(t, s, "term", azbatch.JobStateCompleted)
	job := jobGet(t, s, "term")
	if *job.ExecutionInfo.TerminationReason != "Enough" || *job.PreviousState != azbatch.JobStateTerminating {
		t.Fatalf("terminated job: reason %s previous %s", *job.ExecutionInfo.TerminationReason, *job.PreviousState)
	}
	for _, id := range []string{"gate", "b"} {
		if tk := taskGet(t, s, "term", id); *tk.State != azbatch.TaskStateCompleted || tk.ExecutionInfo.EndTime.After(*job.ExecutionInfo.EndTime) {
			t.Fatalf("task %s: %s, ended after the job", id, *tk.State)
		}
	}

	// Delete: the job reads as deleting (or is gone already), changes are
	// refused while it is deleting, and then it is gone.
	s.CreateJob(t, "del", jobPool, nil)
	taskAdd(t, s, "del", taskCmd("gate", taskGateCmd))
	run := taskWaitState(t, s, "del", "gate", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := c.DeleteJob(ctx(t), "del", nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.GetJob(ctx(t), "del", nil)
	switch {
	case err == nil && *r.State == azbatch.JobStateDeleting:
		_, err := c.UpdateJob(ctx(t), "del", azbatch.UpdateJobContent{Priority: to(int32(5))}, nil)
		if err != nil && batchCode(err) != "JobBeingDeleted" && statusOf(err) != http.StatusNotFound {
			t.Fatalf("update of a deleting job: %v", err)
		}
	case statusOf(err) == http.StatusNotFound:
	default:
		t.Fatalf("get job right after delete: %v %v", err, r.State)
	}
	eventually(t, 30*time.Second, "job del gone", func() error {
		if _, err := c.GetJob(ctx(t), "del", nil); statusOf(err) != http.StatusNotFound {
			return fmt.Errorf("get job: %v", err)
		}
		return nil
	})
	taskWaitNoProcs(t, taskDirOf(t, s, "del", run), 10*time.Second)
}

// TestJobMaxParallelTasks: at most maxParallelTasks tasks of a job run at
// once, whatever room the pool has; the limit can be raised and lowered by
// an update, and Azure's validation refuses 0 and values below -1.
func TestJobMaxParallelTasks(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	c := s.Client

	for _, v := range []int32{0, -2} {
		_, err := c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("bad"), PoolInfo: &azbatch.PoolInfo{PoolID: to(jobPool)}, MaxParallelTasks: to(v)}, nil)
		jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	}
	s.CreateJob(t, "mp", jobPool, func(j *azbatch.CreateJobContent) { j.MaxParallelTasks = to(int32(2)) })
	if mp := *jobGet(t, s, "mp").MaxParallelTasks; mp != 2 {
		t.Fatalf("maxParallelTasks %d", mp)
	}
	var tasks []azbatch.CreateTaskContent
	for i := range 5 {
		tasks = append(tasks, taskCmd(fmt.Sprintf("t%d", i), taskGateCmd))
	}
	s.AddTasks(t, "mp", tasks)
	running := func(want int32) {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("%d running", want), func() error {
			r, err := c.GetJobTaskCounts(ctx(t), "mp", nil)
			if err != nil {
				return err
			}
			if n := *r.TaskCounts.Running; n != want {
				return fmt.Errorf("%d running", n)
			}
			return nil
		})
		// And it stays so for a few dispatch rounds.
		for range 5 {
			time.Sleep(100 * time.Millisecond)
			r, err := c.GetJobTaskCounts(ctx(t), "mp", nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := *r.TaskCounts.Running; n != want {
				t.Fatalf("%d tasks running, want %d", n, want)
			}
		}
	}
	running(2)

	for _, v := range []int32{0, -5} {
		_, err := c.UpdateJob(ctx(t), "mp", azbatch.UpdateJobContent{MaxParallelTasks: to(v)}, nil)
		jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	}
	if _, err := c.UpdateJob(ctx(t), "mp", azbatch.UpdateJobContent{MaxParallelTasks: to(int32(3))}, nil); err != nil {
		t.Fatal(err)
	}
	running(3)
	// Lowering the limit stops nothing; -1 lifts it (the pool has 4 slots).
	if _, err := c.UpdateJob(ctx(t), "mp", azbatch.UpdateJobContent{MaxParallelTasks: to(int32(1))}, nil); err != nil {
		t.Fatal(err)
	}
	running(3)
	if _, err := c.UpdateJob(ctx(t), "mp", azbatch.UpdateJobContent{MaxParallelTasks: to(int32(-1))}, nil); err != nil {
		t.Fatal(err)
	}
	running(4)
	for _, tk := range s.ListTasks(t, "mp", nil) {
		if *tk.State == azbatch.TaskStateRunning {
			taskRelease(t, s, "mp", *tk.ID)
		}
	}
	running(1)
	taskRelease(t, s, "mp", "t4")
	s.WaitJobTasks(t, "mp", 30*time.Second)
}

// TestJobMaxTaskRetryCount: the job's maxTaskRetryCount applies to its
// tasks: a failing task runs 1 + maxTaskRetryCount times; a task that
// cannot start (a pre-processing error) is not retried, as Azure documents.
func TestJobMaxTaskRetryCount(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "retry", jobPool, func(j *azbatch.CreateJobContent) {
		j.Constraints = &azbatch.JobConstraints{MaxTaskRetryCount: to(int32(2))}
	})
	s.AddTasks(t, "retry", []azbatch.CreateTaskContent{
		taskCmd("fails", "/bin/sh -c 'exit 3'"),
		taskCmd("nostart", "/no/such/program"),
	})
	s.WaitJobTasks(t, "retry", 60*time.Second)
	fails := taskGet(t, s, "retry", "fails")
	if ei := fails.ExecutionInfo; *ei.RetryCount != 2 || *ei.ExitCode != 3 || *ei.Result != azbatch.TaskExecutionResultFailure || ei.LastRetryTime == nil {
		t.Fatalf("failing task: %+v", ei)
	}
	if *fails.Constraints.MaxTaskRetryCount != 2 {
		t.Fatalf("task maxTaskRetryCount %d, want the job's 2", *fails.Constraints.MaxTaskRetryCount)
	}
	nostart := taskGet(t, s, "retry", "nostart")
	if ei := nostart.ExecutionInfo; *ei.RetryCount != 0 || ei.FailureInfo == nil || *ei.FailureInfo.Code != "CommandProgramNotFound" {
		t.Fatalf("task that could not start: retryCount %d failure %+v", *ei.RetryCount, ei.FailureInfo)
	}
}

// TestJobTaskPreemption: when a higher-priority job's task finds no free
// slot, running tasks of lower-priority jobs that allow preemption are
// requeued (requeueCount + 1) to make room; jobs that do not allow it, and
// jobs of equal priority, are left alone.
func TestJobTaskPreemption(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	c := s.Client
	s.CreateJob(t, "locked", jobPool, func(j *azbatch.CreateJobContent) { j.Priority = to(int32(-10)) })
	s.CreateJob(t, "low", jobPool, func(j *azbatch.CreateJobContent) { j.AllowTaskPreemption = to(true) })
	taskAdd(t, s, "locked", taskCmd("keep", taskGateCmd))
	taskWaitState(t, s, "locked", "keep", azbatch.TaskStateRunning, 30*time.Second)
	taskAdd(t, s, "low", taskCmd("victim", taskGateCmd))
	victim := taskWaitState(t, s, "low", "victim", azbatch.TaskStateRunning, 30*time.Second)

	// Equal priority: no preemption.
	s.CreateJob(t, "peer", jobPool, func(j *azbatch.CreateJobContent) { j.AllowTaskPreemption = to(true) })
	taskAdd(t, s, "peer", taskCmd("waits", "true"))
	time.Sleep(500 * time.Millisecond)
	if tk := taskGet(t, s, "peer", "waits"); *tk.State != azbatch.TaskStateActive {
		t.Fatalf("a job of equal priority got a slot: %s", *tk.State)
	}
	if _, err := c.DeleteJob(ctx(t), "peer", nil); err != nil {
		t.Fatal(err)
	}

	// A higher-priority job preempts the task of "low", not "locked"'s
	// (whose priority is lower still, but which does not allow it).
	s.CreateJob(t, "high", jobPool, func(j *azbatch.CreateJobContent) { j.Priority = to(int32(100)) })
	taskAdd(t, s, "high", taskCmd("urgent", taskGateCmd))
	taskWaitState(t, s, "high", "urgent", azbatch.TaskStateRunning, 30*time.Second)
	pre := taskGet(t, s, "low", "victim")
	if *pre.State != azbatch.TaskStateActive || *pre.ExecutionInfo.RequeueCount != 1 || *pre.ExecutionInfo.RetryCount != 0 || pre.ExecutionInfo.LastRequeueTime == nil {
		t.Fatalf("preempted task: state %s executionInfo %+v", *pre.State, pre.ExecutionInfo)
	}
	if tk := taskGet(t, s, "locked", "keep"); *tk.State != azbatch.TaskStateRunning {
		t.Fatalf("the task of a job without allowTaskPreemption was stopped: %s", *tk.State)
	}
	taskWaitNoProcs(t, taskDirOf(t, s, "low", victim), 10*time.Second)

	// When the high task ends, the preempted one runs again.
	taskRelease(t, s, "high", "urgent")
	taskWaitState(t, s, "low", "victim", azbatch.TaskStateRunning, 30*time.Second)
	taskRelease(t, s, "low", "victim")
	done := taskWaitState(t, s, "low", "victim", azbatch.TaskStateCompleted, 30*time.Second)
	if *done.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess || *done.ExecutionInfo.RequeueCount != 1 {
		t.Fatalf("preempted task's second run: %+v", done.ExecutionInfo)
	}

	// allowTaskPreemption can be turned off by an update.
	if _, err := c.UpdateJob(ctx(t), "low", azbatch.UpdateJobContent{AllowTaskPreemption: to(false)}, nil); err != nil {
		t.Fatal(err)
	}
	if *jobGet(t, s, "high").AllowTaskPreemption {
		t.Fatal("allowTaskPreemption is true by default")
	}
	taskAdd(t, s, "low", taskCmd("again", taskGateCmd))
	taskWaitState(t, s, "low", "again", azbatch.TaskStateRunning, 30*time.Second)
	taskAdd(t, s, "high", taskCmd("late", "true"))
	time.Sleep(500 * time.Millisecond)
	if tk := taskGet(t, s, "low", "again"); *tk.State != azbatch.TaskStateRunning || *tk.ExecutionInfo.RequeueCount != 0 {
		t.Fatalf("a task of a job that no longer allows preemption was preempted: %s", *tk.State)
	}
	taskRelease(t, s, "low", "again")
	taskWaitState(t, s, "high", "late", azbatch.TaskStateCompleted, 30*time.Second)
	taskRelease(t, s, "locked", "keep")
}

// TestTaskOperationsByState runs Terminate, Reactivate and Update (Replace)
// Task against a task in each state, as Azure documents them: terminate
// completes an active or running task and refuses a completed one (409
// TaskCompleted); reactivate accepts only a task that completed with a
// failure (409 TaskNotCompleted, 409 TaskSucceeded) in a job that has not
// completed (409 JobCompleted); update changes the constraints of an
// unfinished task and refuses a completed one (409 TaskCompleted).
func TestTaskOperationsByState(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	c := s.Client
	s.CreateJob(t, "ops", jobPool, nil)
	s.CreateJob(t, "idle", "nopool", nil) // its tasks stay active
	s.CreateJob(t, "done", jobPool, nil)  // terminated once its task failed

	type setup struct {
		job   string
		cmd   string
		state azbatch.TaskState
	}
	states := map[string]setup{
		"active":    {"idle", "true", azbatch.TaskStateActive},
		"running":   {"ops", taskGateCmd, azbatch.TaskStateRunning},
		"succeeded": {"ops", "true", azbatch.TaskStateCompleted},
		"failed":    {"ops", "/bin/sh -c 'exit 1'", azbatch.TaskStateCompleted},
		"jobdone":   {"done", "/bin/sh -c 'exit 1'", azbatch.TaskStateCompleted},
	}
	ops := map[string]func(job, task string) error{
		"terminate": func(job, task string) error { _, err := c.TerminateTask(ctx(t), job, task, nil); return err },
		"reactivate": func(job, task string) error {
			_, err := c.ReactivateTask(ctx(t), job, task, nil)
			return err
		},
		"update": func(job, task string) error {
			_, err := c.ReplaceTask(ctx(t), job, task, azbatch.Task{Constraints: &azbatch.TaskConstraints{MaxTaskRetryCount: to(int32(4)), RetentionTime: to("PT3H")}}, nil)
			return err
		},
	}
	// Every (state, operation) pair gets a task of its own.
	for st, su := range states {
		for op := range ops {
			taskAdd(t, s, su.job, taskCmd(st+"-"+op, su.cmd))
		}
	}
	for st, su := range states {
		for op := range ops {
			taskWaitState(t, s, su.job, st+"-"+op, su.state, 30*time.Second)
		}
	}
	if _, err := c.TerminateJob(ctx(t), "done", nil); err != nil {
		t.Fatal(err)
	}
	jobWaitState(t, s, "done", azbatch.JobStateCompleted, 10*time.Second)

	type want struct {
		status int    // 0: success
		code   string // the Azure error code when status != 0
		check  func(t *testing.T, tk azbatch.Task)
	}
	ended := func(t *testing.T, tk azbatch.Task) {
		if *tk.State != azbatch.TaskStateCompleted || *tk.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure || *tk.ExecutionInfo.FailureInfo.Code != "TaskEnded" {
			t.Fatalf("terminated task: %s %+v", *tk.State, tk.ExecutionInfo)
		}
	}
	updated := func(t *testing.T, tk azbatch.Task) {
		if *tk.Constraints.MaxTaskRetryCount != 4 || *tk.Constraints.RetentionTime != "PT3H" {
			t.Fatalf("updated constraints %+v", tk.Constraints)
		}
	}
	reactivated := func(t *testing.T, tk azbatch.Task) {
		// Active again, or already running or done with its next run: the
		// failed run's exit code and retries are gone either way.
		ei := tk.ExecutionInfo
		if *ei.RetryCount != 0 || *tk.State == azbatch.TaskStateCompleted && ei.LastRequeueTime == nil && ei.EndTime == nil {
			t.Fatalf("reactivated task: %s %+v", *tk.State, ei)
		}
		if *tk.State == azbatch.TaskStateActive && (ei.ExitCode != nil || ei.FailureInfo != nil) {
			t.Fatalf("reactivated task keeps its failed run: %+v", ei)
		}
	}
	conflict := func(code string) want { return want{status: http.StatusConflict, code: code} }
	table := map[string]map[string]want{
		"active":    {"terminate": {check: ended}, "reactivate": conflict("TaskNotCompleted"), "update": {check: updated}},
		"running":   {"terminate": {check: ended}, "reactivate": conflict("TaskNotCompleted"), "update": {check: updated}},
		"succeeded": {"terminate": conflict("TaskCompleted"), "reactivate": conflict("TaskSucceeded"), "update": conflict("TaskCompleted")},
		"failed":    {"terminate": conflict("TaskCompleted"), "reactivate": {check: reactivated}, "update": conflict("TaskCompleted")},
		"jobdone":   {"terminate": conflict("TaskCompleted"), "reactivate": conflict("JobCompleted"), "update": conflict("TaskCompleted")},
	}
	for st, row := range table {
		for op, w := range row {
			t.Run(st+"/"+op, func(t *testing.T) {
				job, id := states[st].job, st+"-"+op
				before := taskGet(t, s, job, id)
				err := ops[op](job, id)
				if w.status != 0 {
					jobAzureError(t, err, w.status, w.code)
					if after := taskGet(t, s, job, id); *after.ETag != *before.ETag || *after.State != *before.State {
						t.Fatalf("a refused %s changed the task: %s -> %s", op, *before.State, *after.State)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s of a %s task: %v", op, st, err)
				}
				w.check(t, taskGet(t, s, job, id))
			})
		}
	}

	// Unknown tasks and jobs.
	for _, f := range ops {
		jobAzureError(t, f("ops", "nosuchtask"), http.StatusNotFound, "TaskNotFound")
		jobAzureError(t, f("nosuchjob", "t"), http.StatusNotFound, "JobNotFound")
	}
	// The reactivated task runs again (and fails again, with a fresh retry
	// count); the running ones are released.
	again := taskWaitState(t, s, "ops", "failed-reactivate", azbatch.TaskStateCompleted, 30*time.Second)
	if *again.ExecutionInfo.RetryCount != 0 || *again.ExecutionInfo.ExitCode != 1 {
		t.Fatalf("rerun of the reactivated task: %+v", again.ExecutionInfo)
	}
	taskRelease(t, s, "ops", "running-update")
	taskRelease(t, s, "ops", "running-reactivate")
	s.WaitJobTasks(t, "ops", 30*time.Second)
}
