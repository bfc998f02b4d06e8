package e2e

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// Job manager tasks (Azure's JobManagerTask), through the official Go SDK.

// TestJobManager: the job manager task starts with its job, before the
// tasks added after it, alone on its node (runExclusive); when it ends the
// job terminates with reason JMComplete (killJobOnCompletion), a task
// still waiting never running.
func TestJobManager(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "jm", jobPool, func(c *azbatch.CreateJobContent) {
		c.JobManagerTask = &azbatch.JobManagerTask{ID: to("manager"), CommandLine: to(taskGateCmd)}
	})
	job := jobGet(t, s, "jm")
	if m := job.JobManagerTask; m == nil || !*m.KillJobOnCompletion || !*m.RunExclusive || !*m.AllowLowPriorityNode {
		t.Fatalf("job manager task defaults %+v", m)
	}
	taskWaitState(t, s, "jm", "manager", azbatch.TaskStateRunning, 30*time.Second)
	taskAdd(t, s, "jm", taskCmd("worker", "true"))
	time.Sleep(500 * time.Millisecond)
	if tk := taskGet(t, s, "jm", "worker"); *tk.State != azbatch.TaskStateActive {
		t.Fatalf("a task ran on the job manager's node: %s", *tk.State)
	}
	taskRelease(t, s, "jm", "manager")
	done := jobWaitState(t, s, "jm", azbatch.JobStateCompleted, 30*time.Second)
	if *done.ExecutionInfo.TerminationReason != "JMComplete" {
		t.Fatalf("termination reason %s", *done.ExecutionInfo.TerminationReason)
	}
	if m := taskGet(t, s, "jm", "manager"); *m.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("job manager %+v", m.ExecutionInfo)
	}
	if tk := taskGet(t, s, "jm", "worker"); *tk.State != azbatch.TaskStateActive {
		t.Fatalf("worker %s after the job ended", *tk.State)
	}
	_, err := s.Client.CreateTask(ctx(t), "jm", taskCmd("late", "true"), nil)
	jobAzureError(t, err, 409, "JobCompleted")
}

// TestJobManagerShared: without runExclusive other tasks share the job
// manager's node, and without killJobOnCompletion the job outlives it.
func TestJobManagerShared(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "jm", jobPool, func(c *azbatch.CreateJobContent) {
		c.JobManagerTask = &azbatch.JobManagerTask{ID: to("manager"), CommandLine: to(taskGateCmd),
			RunExclusive: to(false), KillJobOnCompletion: to(false)}
	})
	taskWaitState(t, s, "jm", "manager", azbatch.TaskStateRunning, 30*time.Second)
	taskAdd(t, s, "jm", taskCmd("worker", "true"))
	taskWaitState(t, s, "jm", "worker", azbatch.TaskStateCompleted, 30*time.Second)
	taskRelease(t, s, "jm", "manager")
	taskWaitState(t, s, "jm", "manager", azbatch.TaskStateCompleted, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	if j := jobGet(t, s, "jm"); *j.State != azbatch.JobStateActive {
		t.Fatalf("job %s after its manager ended", *j.State)
	}

	// Its id is taken, and it needs one.
	_, err := s.Client.CreateTask(ctx(t), "jm", taskCmd("manager", "true"), nil)
	jobAzureError(t, err, 409, "TaskExists")
	_, err = s.Client.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("noid"), PoolInfo: &azbatch.PoolInfo{PoolID: to(jobPool)},
		JobManagerTask: &azbatch.JobManagerTask{CommandLine: to("true")}}, nil)
	jobAzureError(t, err, 400, "MissingRequiredProperty")
	_, err = s.Client.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("nocmd"), PoolInfo: &azbatch.PoolInfo{PoolID: to(jobPool)},
		JobManagerTask: &azbatch.JobManagerTask{ID: to("m")}}, nil)
	if v := jobAzureError(t, err, 400, "MissingRequiredProperty"); v["PropertyName"] != "jobManagerTask.commandLine" {
		t.Fatalf("error values %v", v)
	}
}
