package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestJobAddGetUpdate covers Add Job, Get Job, Update Job (PATCH), Replace
// Job (PUT) and their validation errors. The job's pool does not exist yet:
// Azure accepts a job on a future pool.
func TestJobAddGetUpdate(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := s.Client

	before := time.Now().Add(-time.Second)
	// The SDK fails any answer but 201.
	created, err := c.CreateJob(ctx(t), azbatch.CreateJobContent{
		ID:          to("job1"),
		DisplayName: to("Job one"),
		PoolInfo:    &azbatch.PoolInfo{PoolID: to("future-pool")},
		Metadata:    []azbatch.MetadataItem{{Name: to("owner"), Value: to("kiln")}},
	}, nil)
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	// Add Job answers with DataServiceId, ETag and Last-Modified, as Azure.
	if created.DataServiceID == nil || !strings.HasSuffix(*created.DataServiceID, "/jobs/job1") || created.ETag == nil || created.LastModified == nil {
		t.Fatalf("create job headers: dataserviceid %v etag %v lastModified %v", created.DataServiceID, created.ETag, created.LastModified)
	}

	got, err := c.GetJob(ctx(t), "job1", nil)
	if err != nil {
		t.Fatal(err)
	}
	job := got.Job
	switch {
	case *job.ID != "job1" || *job.DisplayName != "Job one" || !strings.HasSuffix(*job.URL, "/jobs/job1"):
		t.Fatalf("id %s displayName %v url %v", *job.ID, job.DisplayName, job.URL)
	case *job.State != azbatch.JobStateActive:
		t.Fatalf("state %s", *job.State)
	case job.PoolInfo == nil || *job.PoolInfo.PoolID != "future-pool":
		t.Fatalf("poolInfo %+v", job.PoolInfo)
	case *job.Priority != 0:
		t.Fatalf("priority %d", *job.Priority)
	case job.Constraints == nil || *job.Constraints.MaxTaskRetryCount != 0 || *job.Constraints.MaxWallClockTime != "P10675199DT2H48M5.4775807S":
		t.Fatalf("constraints %+v", job.Constraints)
	case *job.OnAllTasksComplete != azbatch.OnAllTasksCompleteNoAction || *job.OnTaskFailure != azbatch.OnTaskFailureNoAction:
		t.Fatalf("onAllTasksComplete %s onTaskFailure %s", *job.OnAllTasksComplete, *job.OnTaskFailure)
	case job.ExecutionInfo == nil || job.ExecutionInfo.StartTime == nil || job.ExecutionInfo.StartTime.Before(before) || job.ExecutionInfo.EndTime != nil:
		t.Fatalf("executionInfo %+v", job.ExecutionInfo)
	case job.ETag == nil || *job.ETag == "" || got.ETag == nil || *got.ETag != *job.ETag || got.LastModified == nil:
		t.Fatalf("eTag body %v header %v lastModified %v", job.ETag, got.ETag, got.LastModified)
	case job.CreationTime == nil || job.LastModified == nil || job.StateTransitionTime == nil:
		t.Fatalf("times: creation %v lastModified %v stateTransition %v", job.CreationTime, job.LastModified, job.StateTransitionTime)
	case len(job.Metadata) != 1 || *job.Metadata[0].Name != "owner" || *job.Metadata[0].Value != "kiln":
		t.Fatalf("metadata %+v", job.Metadata)
	case *job.UsesTaskDependencies || *job.MaxParallelTasks != -1:
		t.Fatalf("usesTaskDependencies %v maxParallelTasks %d", *job.UsesTaskDependencies, *job.MaxParallelTasks)
	}

	// Ids are case-insensitive and case-preserving.
	if upper := jobGet(t, s, "JOB1"); *upper.ID != "job1" {
		t.Fatalf("get JOB1 returned id %s", *upper.ID)
	}

	// Errors.
	_, err = c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("job1"), PoolInfo: &azbatch.PoolInfo{PoolID: to("p")}}, nil)
	jobAzureError(t, err, http.StatusConflict, "JobExists")
	_, err = c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("JOB1"), PoolInfo: &azbatch.PoolInfo{PoolID: to("p")}}, nil)
	jobAzureError(t, err, http.StatusConflict, "JobExists") // ids are case-insensitive
	_, err = c.GetJob(ctx(t), "nosuchjob", nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
	_, err = c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("nopool")}, nil)
	if v := jobAzureError(t, err, http.StatusBadRequest, "MissingRequiredProperty"); v["PropertyName"] != "poolInfo" {
		t.Fatalf("missing poolInfo values %v", v)
	}
	_, err = c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("prio"), PoolInfo: &azbatch.PoolInfo{PoolID: to("p")}, Priority: to(int32(2000))}, nil)
	if v := jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue"); v["PropertyName"] != "priority" || v["PropertyValue"] != "2000" {
		t.Fatalf("priority 2000 values %v", v)
	}
	_, err = c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("bad id!"), PoolInfo: &azbatch.PoolInfo{PoolID: to("p")}}, nil)
	if statusOf(err) != http.StatusBadRequest {
		t.Fatalf("invalid id: %v", err)
	}
	_, err = c.UpdateJob(ctx(t), "job1", azbatch.UpdateJobContent{Priority: to(int32(-1001))}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	_, err = c.UpdateJob(ctx(t), "nosuchjob", azbatch.UpdateJobContent{Priority: to(int32(1))}, nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")

	// Patch changes only what it names.
	if _, err := c.UpdateJob(ctx(t), "job1", azbatch.UpdateJobContent{
		Priority:           to(int32(100)),
		Metadata:           []azbatch.MetadataItem{{Name: to("stage"), Value: to("two")}},
		OnAllTasksComplete: to(azbatch.OnAllTasksCompleteTerminateJob),
	}, nil); err != nil {
		t.Fatalf("update job: %v", err)
	}
	patched := jobGet(t, s, "job1")
	switch {
	case *patched.Priority != 100 || *patched.OnAllTasksComplete != azbatch.OnAllTasksCompleteTerminateJob:
		t.Fatalf("patched priority %d onAllTasksComplete %s", *patched.Priority, *patched.OnAllTasksComplete)
	case len(patched.Metadata) != 1 || *patched.Metadata[0].Name != "stage":
		t.Fatalf("patched metadata %+v", patched.Metadata)
	case *patched.DisplayName != "Job one" || *patched.Constraints.MaxTaskRetryCount != 0:
		t.Fatalf("patch changed unnamed properties: %v %+v", *patched.DisplayName, patched.Constraints)
	case *patched.ETag == *job.ETag || !patched.LastModified.After(*job.LastModified):
		t.Fatalf("patch kept eTag %s / lastModified %v", *patched.ETag, patched.LastModified)
	case *patched.State != azbatch.JobStateActive:
		// terminatejob needs at least one task to act.
		t.Fatalf("job without tasks completed on terminatejob: %s", *patched.State)
	}

	// Once terminatejob, always terminatejob: a patch to noaction and a PUT
	// that omits onAllTasksComplete (meaning noaction) are refused.
	_, err = c.UpdateJob(ctx(t), "job1", azbatch.UpdateJobContent{OnAllTasksComplete: to(azbatch.OnAllTasksCompleteNoAction), Priority: to(int32(9))}, nil)
	if v := jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue"); v["PropertyName"] != "onAllTasksComplete" {
		t.Fatalf("terminatejob to noaction: values %v", v)
	}
	_, err = c.ReplaceJob(ctx(t), "job1", azbatch.Job{PoolInfo: &azbatch.PoolInfo{PoolID: to("future-pool")}}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	if j := jobGet(t, s, "job1"); *j.Priority != 100 || *j.OnAllTasksComplete != azbatch.OnAllTasksCompleteTerminateJob || *j.ETag != *patched.ETag {
		t.Fatalf("a refused update changed the job: priority %d onAllTasksComplete %s", *j.Priority, *j.OnAllTasksComplete)
	}

	// Replace sets every updatable property; absent ones get defaults.
	if _, err := c.ReplaceJob(ctx(t), "job1", azbatch.Job{
		PoolInfo:           &azbatch.PoolInfo{PoolID: to("future-pool")},
		Priority:           to(int32(7)),
		Constraints:        &azbatch.JobConstraints{MaxTaskRetryCount: to(int32(3)), MaxWallClockTime: to("PT1H")},
		OnAllTasksComplete: to(azbatch.OnAllTasksCompleteTerminateJob),
	}, nil); err != nil {
		t.Fatalf("replace job: %v", err)
	}
	replaced := jobGet(t, s, "job1")
	switch {
	case *replaced.Priority != 7 || len(replaced.Metadata) != 0 || *replaced.OnAllTasksComplete != azbatch.OnAllTasksCompleteTerminateJob:
		t.Fatalf("replaced priority %d metadata %+v onAllTasksComplete %s", *replaced.Priority, replaced.Metadata, *replaced.OnAllTasksComplete)
	case *replaced.Constraints.MaxTaskRetryCount != 3 || *replaced.Constraints.MaxWallClockTime != "PT1H":
		t.Fatalf("replaced constraints %+v", replaced.Constraints)
	case *replaced.ETag == *patched.ETag:
		t.Fatal("replace kept the eTag")
	}
	// A new task inherits the job's maxTaskRetryCount.
	taskAdd(t, s, "job1", taskCmd("inherits", "true"))
	if tk := taskGet(t, s, "job1", "inherits"); *tk.Constraints.MaxTaskRetryCount != 3 {
		t.Fatalf("task maxTaskRetryCount %d, want the job's 3", *tk.Constraints.MaxTaskRetryCount)
	}
	// The pool of an active job cannot change.
	_, err = c.ReplaceJob(ctx(t), "job1", azbatch.Job{PoolInfo: &azbatch.PoolInfo{PoolID: to("other-pool")}}, nil)
	jobAzureError(t, err, http.StatusConflict, "JobNotDisabled")
	_, err = c.ReplaceJob(ctx(t), "job1", azbatch.Job{Priority: to(int32(1))}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "MissingRequiredProperty")

	// Optimistic concurrency on the eTag.
	_, err = c.UpdateJob(ctx(t), "job1", azbatch.UpdateJobContent{Priority: to(int32(8))}, &azbatch.UpdateJobOptions{IfMatch: patched.ETag})
	jobAzureError(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	if _, err := c.UpdateJob(ctx(t), "job1", azbatch.UpdateJobContent{Priority: to(int32(8))}, &azbatch.UpdateJobOptions{IfMatch: replaced.ETag}); err != nil {
		t.Fatalf("update with the current eTag: %v", err)
	}
}

// TestJobTerminate terminates jobs: the running task is killed and
// completes, the queued one stays active, the job completes with
// UserTerminate or the given reason, and a completed job refuses changes.
func TestJobTerminate(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	c := s.Client
	s.CreateJob(t, "term", jobPool, nil)
	s.AddTasks(t, "term", []azbatch.CreateTaskContent{taskCmd("running", taskGateCmd), taskCmd("queued", "true")})
	running := taskWaitState(t, s, "term", "running", azbatch.TaskStateRunning, 30*time.Second)
	dir := taskDirOf(t, s, "term", running)
	if len(taskProcsUnder(dir)) == 0 {
		t.Fatal("the running task has no process")
	}

	before := time.Now().Add(-time.Second)
	if _, err := c.TerminateJob(ctx(t), "term", nil); err != nil { // 202
		t.Fatalf("terminate job: %v", err)
	}
	job := jobWaitState(t, s, "term", azbatch.JobStateCompleted, 10*time.Second)
	ei := job.ExecutionInfo
	if ei == nil || ei.TerminationReason == nil || *ei.TerminationReason != "UserTerminate" || ei.EndTime == nil || ei.EndTime.Before(before) || ei.EndTime.Before(*ei.StartTime) {
		t.Fatalf("executionInfo %+v", ei)
	}
	// active -> terminating -> completed.
	if *job.PreviousState != azbatch.JobStateTerminating {
		t.Fatalf("previousState %s", *job.PreviousState)
	}
	killed := taskWaitState(t, s, "term", "running", azbatch.TaskStateCompleted, 10*time.Second)
	if kei := killed.ExecutionInfo; *kei.Result != azbatch.TaskExecutionResultFailure || kei.FailureInfo == nil || *kei.FailureInfo.Code != "TaskEnded" || kei.EndTime == nil {
		t.Fatalf("terminated task executionInfo %+v failure %+v", kei, kei.FailureInfo)
	}
	taskWaitNoProcs(t, dir, 10*time.Second)
	if q := taskGet(t, s, "term", "queued"); *q.State != azbatch.TaskStateActive {
		t.Fatalf("queued task of the terminated job is %s", *q.State)
	}

	// A completed job refuses terminate, updates and new tasks.
	_, err := c.TerminateJob(ctx(t), "term", nil)
	jobAzureError(t, err, http.StatusConflict, "JobCompleted")
	_, err = c.CreateTask(ctx(t), "term", taskCmd("late", "true"), nil)
	jobAzureError(t, err, http.StatusConflict, "JobCompleted")
	_, err = c.CreateTaskCollection(ctx(t), "term", azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{taskCmd("late", "true")}}, nil)
	jobAzureError(t, err, http.StatusConflict, "JobCompleted")
	_, err = c.UpdateJob(ctx(t), "term", azbatch.UpdateJobContent{Priority: to(int32(1))}, nil)
	jobAzureError(t, err, http.StatusConflict, "JobCompleted")
	_, err = c.DisableJob(ctx(t), "term", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionRequeue)}, nil)
	jobAzureError(t, err, http.StatusConflict, "JobNotActive")
	_, err = c.TerminateJob(ctx(t), "nosuchjob", nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")

	// A termination reason of one's own.
	s.CreateJob(t, "reason", jobPool, nil)
	if _, err := c.TerminateJob(ctx(t), "reason", &azbatch.TerminateJobOptions{Parameters: &azbatch.TerminateJobContent{TerminationReason: to("ManualStop")}}); err != nil {
		t.Fatal(err)
	}
	if job := jobWaitState(t, s, "reason", azbatch.JobStateCompleted, 10*time.Second); *job.ExecutionInfo.TerminationReason != "ManualStop" {
		t.Fatalf("terminationReason %s", *job.ExecutionInfo.TerminationReason)
	}

	// The slot the killed task held is free again.
	s.CreateJob(t, "after", jobPool, nil)
	taskAdd(t, s, "after", taskCmd("t", "true"))
	taskWaitState(t, s, "after", "t", azbatch.TaskStateCompleted, 30*time.Second)
}

// TestJobDelete deletes a job with a running task: 202, then 404, and the
// task's process is gone.
func TestJobDelete(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	c := s.Client
	s.CreateJob(t, "del", jobPool, nil)
	taskAdd(t, s, "del", taskCmd("done", "/bin/sh -c 'echo old > out.txt'"))
	taskWaitState(t, s, "del", "done", azbatch.TaskStateCompleted, 30*time.Second)
	s.AddTasks(t, "del", []azbatch.CreateTaskContent{taskCmd("running", taskGateCmd), taskCmd("queued", "true")})
	running := taskWaitState(t, s, "del", "running", azbatch.TaskStateRunning, 30*time.Second)
	dir := taskDirOf(t, s, "del", running)
	jobDir := filepath.Dir(filepath.Dir(dir)) // workitems/del

	if _, err := c.DeleteJob(ctx(t), "del", nil); err != nil { // the SDK wants 202
		t.Fatalf("delete job: %v", err)
	}
	eventually(t, 10*time.Second, "job del gone", func() error {
		_, err := c.GetJob(ctx(t), "del", nil)
		if statusOf(err) == http.StatusNotFound {
			return nil
		}
		return fmt.Errorf("get job: %v", err)
	})
	_, err := c.GetJob(ctx(t), "del", nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
	_, err = c.GetTask(ctx(t), "del", "running", nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
	_, err = c.DeleteJob(ctx(t), "del", nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
	_, err = c.NewListTasksPager("del", nil).NextPage(ctx(t))
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
	taskWaitNoProcs(t, dir, 10*time.Second)
	// Deleting a job deletes its task directories from the nodes (Azure
	// keeps them "unless the Compute Node is removed or the Job is deleted").
	eventually(t, 10*time.Second, "job directory removed from the node", func() error {
		if _, err := os.Stat(jobDir); !os.IsNotExist(err) {
			return fmt.Errorf("%s still there: %v", jobDir, err)
		}
		return nil
	})

	// The id is free again, and the slot too; the new job's task of the
	// same id sees none of the old files.
	s.CreateJob(t, "del", jobPool, nil)
	taskAdd(t, s, "del", taskCmd("done", "ls"))
	if tk := taskWaitState(t, s, "del", "done", azbatch.TaskStateCompleted, 30*time.Second); *tk.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("task of the new job: %s", *tk.ExecutionInfo.Result)
	}
	if out := taskMustReadFile(t, s, "del", "done", "stdout.txt"); out != "" {
		t.Fatalf("the new task's working directory holds old files: %q", out)
	}
	if n := len(s.ListTasks(t, "del", nil)); n != 1 {
		t.Fatalf("new job has %d tasks, want 1 (the old job's tasks must be gone)", n)
	}

	// Delete a job with a running task and create it again as soon as it
	// is gone (it is deleting until its task's process is), with a task of
	// the same id: the removal of the old files must not take the new
	// task's files with it.
	taskAdd(t, s, "del", taskCmd("g", taskGateCmd))
	taskWaitState(t, s, "del", "g", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := c.DeleteJob(ctx(t), "del", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "job del gone again", func() error {
		if _, err := c.GetJob(ctx(t), "del", nil); statusOf(err) != http.StatusNotFound {
			return fmt.Errorf("get job: %v", err)
		}
		return nil
	})
	s.CreateJob(t, "del", jobPool, nil)
	taskAdd(t, s, "del", taskCmd("g", "/bin/sh -c 'ls; echo new > out.txt'"))
	taskWaitState(t, s, "del", "g", azbatch.TaskStateCompleted, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	if out := taskMustReadFile(t, s, "del", "g", "stdout.txt"); out != "" {
		t.Fatalf("the re-created task saw old files: %q", out)
	}
	if out := taskMustReadFile(t, s, "del", "g", "wd/out.txt"); out != "new\n" {
		t.Fatalf("the re-created task's output: %q", out)
	}
}

// TestJobDisableEnable covers the three disableTasks options and enabling.
func TestJobDisableEnable(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	c := s.Client

	// requeue: the running task goes back to active, nothing runs while
	// the job is disabled, and everything runs after enable.
	s.CreateJob(t, "rq", jobPool, nil)
	s.AddTasks(t, "rq", []azbatch.CreateTaskContent{taskCmd("once", taskOnceCmd), taskCmd("next", "true")})
	first := taskWaitState(t, s, "rq", "once", azbatch.TaskStateRunning, 30*time.Second)
	dir := taskDirOf(t, s, "rq", first)
	eventually(t, 10*time.Second, "first run printed", func() error {
		if out, _ := taskReadFile(t, s, "rq", "once", "stdout.txt"); out != "first\n" {
			return fmt.Errorf("stdout %q", out)
		}
		return nil
	})
	if _, err := c.DisableJob(ctx(t), "rq", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionRequeue)}, nil); err != nil { // 202
		t.Fatalf("disable job: %v", err)
	}
	// The job is disabling until the agent confirms the process is gone
	// (job_lifecycle_test.go tests the transition), then disabled.
	jobWaitState(t, s, "rq", azbatch.JobStateDisabled, 10*time.Second)
	requeued := taskGet(t, s, "rq", "once")
	if *requeued.State != azbatch.TaskStateActive || *requeued.ExecutionInfo.RequeueCount != 1 || *requeued.ExecutionInfo.RetryCount != 0 || requeued.ExecutionInfo.LastRequeueTime == nil {
		t.Fatalf("requeued task: state %s executionInfo %+v", *requeued.State, requeued.ExecutionInfo)
	}
	taskWaitNoProcs(t, dir, 10*time.Second)
	// Disabling a disabled job is allowed and changes nothing.
	disabled := jobGet(t, s, "rq")
	if _, err := c.DisableJob(ctx(t), "rq", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionTerminate)}, nil); err != nil {
		t.Fatalf("disable a disabled job: %v", err)
	}
	if again := jobGet(t, s, "rq"); *again.State != azbatch.JobStateDisabled || *again.ETag != *disabled.ETag {
		t.Fatalf("disabling again changed the job: %s", *again.State)
	}
	time.Sleep(500 * time.Millisecond) // a few dispatch rounds: nothing may start
	for _, id := range []string{"once", "next"} {
		if tk := taskGet(t, s, "rq", id); *tk.State != azbatch.TaskStateActive {
			t.Fatalf("task %s of the disabled job is %s", id, *tk.State)
		}
	}
	if _, err := c.EnableJob(ctx(t), "rq", nil); err != nil { // 202
		t.Fatalf("enable job: %v", err)
	}
	if job := jobGet(t, s, "rq"); *job.State != azbatch.JobStateActive || *job.PreviousState != azbatch.JobStateDisabled {
		t.Fatalf("job state %s (previous %s) after enable", *job.State, *job.PreviousState)
	}
	counts := s.WaitJobTasks(t, "rq", 30*time.Second)
	if tc := counts.TaskCounts; *tc.Succeeded != 2 || *tc.Failed != 0 {
		t.Fatalf("after enable: succeeded %d failed %d", *tc.Succeeded, *tc.Failed)
	}
	if out := taskMustReadFile(t, s, "rq", "once", "stdout.txt"); out != "second\n" {
		t.Fatalf("second run printed %q", out)
	}
	if tk := taskGet(t, s, "rq", "once"); *tk.ExecutionInfo.RequeueCount != 1 || *tk.ExecutionInfo.RetryCount != 0 {
		t.Fatalf("requeueCount %d retryCount %d", *tk.ExecutionInfo.RequeueCount, *tk.ExecutionInfo.RetryCount)
	}

	// terminate: the running task completes with a failure.
	s.CreateJob(t, "dt", jobPool, nil)
	taskAdd(t, s, "dt", taskCmd("gate", taskGateCmd))
	gate := taskWaitState(t, s, "dt", "gate", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := c.DisableJob(ctx(t), "dt", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionTerminate)}, nil); err != nil {
		t.Fatal(err)
	}
	ended := taskWaitState(t, s, "dt", "gate", azbatch.TaskStateCompleted, 10*time.Second)
	if ei := ended.ExecutionInfo; *ei.Result != azbatch.TaskExecutionResultFailure || *ei.FailureInfo.Code != "TaskEnded" {
		t.Fatalf("terminated task executionInfo %+v", ei)
	}
	taskWaitNoProcs(t, taskDirOf(t, s, "dt", gate), 10*time.Second)
	jobWaitState(t, s, "dt", azbatch.JobStateDisabled, 10*time.Second)
	if _, err := c.EnableJob(ctx(t), "dt", nil); err != nil {
		t.Fatal(err)
	}
	jobWaitState(t, s, "dt", azbatch.JobStateActive, 5*time.Second)

	// wait: the running task finishes normally, the queued one waits.
	s.CreateJob(t, "dw", jobPool, nil)
	s.AddTasks(t, "dw", []azbatch.CreateTaskContent{taskCmd("gate", taskGateCmd), taskCmd("queued", "true")})
	taskWaitState(t, s, "dw", "gate", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := c.DisableJob(ctx(t), "dw", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOptionWait)}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if tk := taskGet(t, s, "dw", "gate"); *tk.State != azbatch.TaskStateRunning {
		t.Fatalf("disable wait changed the running task to %s", *tk.State)
	}
	// Tasks can be added to a disabled job; they wait for enable.
	taskAdd(t, s, "dw", taskCmd("added", "true"))
	taskRelease(t, s, "dw", "gate")
	done := taskWaitState(t, s, "dw", "gate", azbatch.TaskStateCompleted, 10*time.Second)
	if *done.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("gate task result %s", *done.ExecutionInfo.Result)
	}
	time.Sleep(500 * time.Millisecond)
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

	_, err := c.DisableJob(ctx(t), "dw", azbatch.DisableJobContent{DisableTasks: to(azbatch.DisableJobOption("sometimes"))}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	_, err = c.EnableJob(ctx(t), "nosuchjob", nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
}

// TestJobOnAllTasksComplete: terminatejob completes the job with reason
// AllTasksComplete once its tasks are done, whether set at creation or by an
// update after the tasks completed.
func TestJobOnAllTasksComplete(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "auto", jobPool, func(c *azbatch.CreateJobContent) {
		c.OnAllTasksComplete = to(azbatch.OnAllTasksCompleteTerminateJob)
	})
	s.AddTasks(t, "auto", []azbatch.CreateTaskContent{
		taskCmd("a", "/bin/sh -c 'sleep 0.2'"), taskCmd("b", "/bin/sh -c 'sleep 0.3'"), taskCmd("c", "/bin/sh -c 'exit 1'"),
	})
	job := jobWaitState(t, s, "auto", azbatch.JobStateCompleted, 30*time.Second)
	if ei := job.ExecutionInfo; *ei.TerminationReason != "AllTasksComplete" || ei.EndTime == nil {
		t.Fatalf("executionInfo %+v", ei)
	}
	for _, task := range s.ListTasks(t, "auto", nil) {
		if *task.State != azbatch.TaskStateCompleted || task.ExecutionInfo.EndTime.After(*job.ExecutionInfo.EndTime) {
			t.Fatalf("task %s: state %s ended %v after the job (%v)", *task.ID, *task.State, task.ExecutionInfo.EndTime, job.ExecutionInfo.EndTime)
		}
	}

	// noaction leaves the job active; switching to terminatejob afterwards
	// completes it at once.
	s.CreateJob(t, "manual", jobPool, nil)
	taskAdd(t, s, "manual", taskCmd("t", "true"))
	taskWaitState(t, s, "manual", "t", azbatch.TaskStateCompleted, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	if job := jobGet(t, s, "manual"); *job.State != azbatch.JobStateActive {
		t.Fatalf("noaction job is %s", *job.State)
	}
	if _, err := s.Client.UpdateJob(ctx(t), "manual", azbatch.UpdateJobContent{OnAllTasksComplete: to(azbatch.OnAllTasksCompleteTerminateJob)}, nil); err != nil {
		t.Fatal(err)
	}
	job = jobWaitState(t, s, "manual", azbatch.JobStateCompleted, 10*time.Second)
	if *job.ExecutionInfo.TerminationReason != "AllTasksComplete" {
		t.Fatalf("terminationReason %s", *job.ExecutionInfo.TerminationReason)
	}
}

// TestJobPriorityOrdering: on a pool with one slot, the tasks of the
// higher-priority job start before those of the lower-priority one, also
// after a priority update.
func TestJobPriorityOrdering(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	check := func(first, second string) {
		t.Helper()
		s.WaitJobTasks(t, first, 30*time.Second)
		s.WaitJobTasks(t, second, 30*time.Second)
		var lastFirst time.Time
		for _, task := range s.ListTasks(t, first, nil) {
			if st := *task.ExecutionInfo.StartTime; st.After(lastFirst) {
				lastFirst = st
			}
		}
		for _, task := range s.ListTasks(t, second, nil) {
			if st := *task.ExecutionInfo.StartTime; !st.After(lastFirst) {
				t.Fatalf("task %s/%s started at %v, before job %s's last task (%v)", second, *task.ID, st, first, lastFirst)
			}
		}
	}
	tasks := func(prefix string) []azbatch.CreateTaskContent {
		var out []azbatch.CreateTaskContent
		for i := range 3 {
			out = append(out, taskCmd(fmt.Sprintf("%s%d", prefix, i), "true"))
		}
		return out
	}

	// The blocker holds the only slot while both jobs are queued.
	s.CreateJob(t, "blocker", jobPool, func(c *azbatch.CreateJobContent) { c.Priority = to(int32(1000)) })
	taskAdd(t, s, "blocker", taskCmd("b1", taskGateCmd))
	taskWaitState(t, s, "blocker", "b1", azbatch.TaskStateRunning, 30*time.Second)
	s.CreateJob(t, "low", jobPool, func(c *azbatch.CreateJobContent) { c.Priority = to(int32(-5)) })
	s.AddTasks(t, "low", tasks("low"))
	s.CreateJob(t, "high", jobPool, func(c *azbatch.CreateJobContent) { c.Priority = to(int32(500)) })
	s.AddTasks(t, "high", tasks("high"))
	taskRelease(t, s, "blocker", "b1")
	check("high", "low")

	// Raising a job's priority while it waits moves it ahead.
	taskAdd(t, s, "blocker", taskCmd("b2", taskGateCmd))
	taskWaitState(t, s, "blocker", "b2", azbatch.TaskStateRunning, 30*time.Second)
	s.CreateJob(t, "first", jobPool, func(c *azbatch.CreateJobContent) { c.Priority = to(int32(10)) })
	s.AddTasks(t, "first", tasks("first"))
	s.CreateJob(t, "second", jobPool, nil)
	s.AddTasks(t, "second", tasks("second"))
	if _, err := s.Client.UpdateJob(ctx(t), "second", azbatch.UpdateJobContent{Priority: to(int32(900))}, nil); err != nil {
		t.Fatal(err)
	}
	taskRelease(t, s, "blocker", "b2")
	check("second", "first")
}

// TestJobTaskCounts checks Get Task Counts, task slot counts included, with
// tasks of several requiredSlots in every state.
func TestJobTaskCounts(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	s.CreateJob(t, "counts", jobPool, nil)
	empty, err := s.Client.GetJobTaskCounts(ctx(t), "counts", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := empty.TaskCounts; *c.Active+*c.Running+*c.Completed+*c.Succeeded+*c.Failed != 0 {
		t.Fatalf("counts of an empty job: %+v", c)
	}
	// FIFO within the job: ok and fail finish, wide (2 slots) holds the
	// node, huge (3 slots) cannot fit beside it and stays active.
	slots := func(c azbatch.CreateTaskContent, n int32) azbatch.CreateTaskContent {
		c.RequiredSlots = to(n)
		return c
	}
	s.AddTasks(t, "counts", []azbatch.CreateTaskContent{
		taskCmd("ok", "true"),
		slots(taskCmd("fail", "/bin/sh -c 'exit 2'"), 2),
	})
	s.WaitJobTasks(t, "counts", 30*time.Second)
	s.AddTasks(t, "counts", []azbatch.CreateTaskContent{
		slots(taskCmd("wide", taskGateCmd), 2),
		slots(taskCmd("huge", "true"), 3),
	})
	taskWaitState(t, s, "counts", "wide", azbatch.TaskStateRunning, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	r, err := s.Client.GetJobTaskCounts(ctx(t), "counts", nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, sc := r.TaskCounts, r.TaskSlotCounts
	if *tc.Active != 1 || *tc.Running != 1 || *tc.Completed != 2 || *tc.Succeeded != 1 || *tc.Failed != 1 {
		t.Fatalf("taskCounts active %d running %d completed %d succeeded %d failed %d", *tc.Active, *tc.Running, *tc.Completed, *tc.Succeeded, *tc.Failed)
	}
	if *sc.Active != 3 || *sc.Running != 2 || *sc.Completed != 3 || *sc.Succeeded != 1 || *sc.Failed != 2 {
		t.Fatalf("taskSlotCounts active %d running %d completed %d succeeded %d failed %d", *sc.Active, *sc.Running, *sc.Completed, *sc.Succeeded, *sc.Failed)
	}

	taskRelease(t, s, "counts", "wide")
	final := s.WaitJobTasks(t, "counts", 30*time.Second)
	if tc, sc := final.TaskCounts, final.TaskSlotCounts; *tc.Completed != 4 || *tc.Succeeded != 3 || *sc.Completed != 8 || *sc.Succeeded != 6 || *sc.Failed != 2 {
		t.Fatalf("final counts %+v slots %+v", *tc, *sc)
	}
	// Deleting a completed task takes it out of the counts.
	if _, err := s.Client.DeleteTask(ctx(t), "counts", "fail", nil); err != nil {
		t.Fatal(err)
	}
	r, err = s.Client.GetJobTaskCounts(ctx(t), "counts", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *r.TaskCounts.Completed != 3 || *r.TaskCounts.Failed != 0 || *r.TaskSlotCounts.Failed != 0 {
		t.Fatalf("counts after deleting the failed task: %+v", *r.TaskCounts)
	}
	_, err = s.Client.GetJobTaskCounts(ctx(t), "nosuchjob", nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
}

// TestJobMaxWallClockTime: a job that outlives constraints.maxWallClockTime
// is terminated with reason MaxWallClockTimeExpiry, its running task killed.
func TestJobMaxWallClockTime(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	s.CreateJob(t, "wall", jobPool, func(c *azbatch.CreateJobContent) {
		c.Constraints = &azbatch.JobConstraints{MaxWallClockTime: to("PT2S")}
	})
	s.AddTasks(t, "wall", []azbatch.CreateTaskContent{taskCmd("sleeper", "sleep 30"), taskCmd("queued", "true")})
	running := taskWaitState(t, s, "wall", "sleeper", azbatch.TaskStateRunning, 30*time.Second)
	job := jobWaitState(t, s, "wall", azbatch.JobStateCompleted, 15*time.Second)
	ei := job.ExecutionInfo
	if *ei.TerminationReason != "MaxWallClockTimeExpiry" || ei.EndTime.Sub(*job.CreationTime) < 2*time.Second {
		t.Fatalf("executionInfo %+v (created %v)", ei, job.CreationTime)
	}
	killed := taskWaitState(t, s, "wall", "sleeper", azbatch.TaskStateCompleted, 10*time.Second)
	if *killed.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure {
		t.Fatalf("sleeper result %s", *killed.ExecutionInfo.Result)
	}
	taskWaitNoProcs(t, taskDirOf(t, s, "wall", running), 10*time.Second)
	if tk := taskGet(t, s, "wall", "queued"); *tk.State != azbatch.TaskStateActive {
		t.Fatalf("queued task is %s", *tk.State)
	}
}
