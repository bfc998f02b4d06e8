package e2e

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestTaskLifecycle follows one task from add to completion: defaults,
// active → running → completed, nodeInfo, executionInfo, and stdout read
// while the task still runs.
func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	c := s.Client
	nodes, err := s.ListNodes(t, jobPool)
	if err != nil {
		t.Fatal(err)
	}
	s.CreateJob(t, "life", jobPool, nil)

	before := time.Now().Add(-time.Second)
	created, err := c.CreateTask(ctx(t), "life", azbatch.CreateTaskContent{ID: to("t1"), DisplayName: to("gate"), CommandLine: to(taskGateCmd)}, nil) // 201
	if err != nil {
		t.Fatalf("add task: %v", err)
	}
	if created.ETag == nil || created.DataServiceID == nil || !strings.HasSuffix(*created.DataServiceID, "/jobs/life/tasks/t1") {
		t.Fatalf("add task headers: etag %v dataServiceId %v", created.ETag, created.DataServiceID)
	}
	first := taskGet(t, s, "life", "t1")
	switch {
	case *first.CommandLine != taskGateCmd || *first.DisplayName != "gate" || !strings.HasSuffix(*first.URL, "/jobs/life/tasks/t1"):
		t.Fatalf("commandLine %q displayName %v url %v", *first.CommandLine, first.DisplayName, first.URL)
	case first.Constraints == nil || *first.Constraints.MaxTaskRetryCount != 0 || *first.Constraints.RetentionTime != "P7D" || *first.Constraints.MaxWallClockTime != "P10675199DT2H48M5.4775807S":
		t.Fatalf("constraints %+v", first.Constraints)
	case *first.RequiredSlots != 1:
		t.Fatalf("requiredSlots %d", *first.RequiredSlots)
	case first.ExecutionInfo == nil || *first.ExecutionInfo.RetryCount != 0 || *first.ExecutionInfo.RequeueCount != 0:
		t.Fatalf("executionInfo %+v", first.ExecutionInfo)
	case first.CreationTime == nil || first.CreationTime.Before(before) || first.ETag == nil || *first.ETag == "":
		t.Fatalf("creationTime %v eTag %v", first.CreationTime, first.ETag)
	}
	if st := *first.State; st != azbatch.TaskStateActive && st != azbatch.TaskStatePreparing && st != azbatch.TaskStateRunning {
		t.Fatalf("new task is %s", st)
	}

	running := taskWaitState(t, s, "life", "t1", azbatch.TaskStateRunning, 30*time.Second)
	switch ni := running.NodeInfo; {
	case ni == nil || *ni.NodeID != *nodes[0].ID || *ni.PoolID != jobPool:
		t.Fatalf("nodeInfo %+v", ni)
	case *ni.TaskRootDirectory != "workitems/life/job-1/t1" || !strings.HasSuffix(*ni.TaskRootDirectoryURL, "/jobs/life/tasks/t1/files"):
		t.Fatalf("taskRootDirectory %v url %v", *ni.TaskRootDirectory, *ni.TaskRootDirectoryURL)
	}
	if ei := running.ExecutionInfo; ei.StartTime == nil || ei.StartTime.Before(before) || ei.EndTime != nil || ei.ExitCode != nil || ei.Result != nil {
		t.Fatalf("running executionInfo %+v", ei)
	}
	// stdout is readable while the task runs.
	eventually(t, 10*time.Second, "stdout of the running task", func() error {
		out, err := taskReadFile(t, s, "life", "t1", "stdout.txt")
		if err != nil || out != "started\n" {
			return fmt.Errorf("stdout %q, %v", out, err)
		}
		return nil
	})
	if st := *taskGet(t, s, "life", "t1").State; st != azbatch.TaskStateRunning {
		t.Fatalf("state %s while reading stdout", st)
	}

	taskRelease(t, s, "life", "t1")
	done := taskWaitState(t, s, "life", "t1", azbatch.TaskStateCompleted, 10*time.Second)
	ei := done.ExecutionInfo
	switch {
	case ei.EndTime == nil || ei.EndTime.Before(*ei.StartTime) || !ei.StartTime.Equal(*running.ExecutionInfo.StartTime):
		t.Fatalf("times start %v end %v", ei.StartTime, ei.EndTime)
	case *ei.ExitCode != 0 || *ei.Result != azbatch.TaskExecutionResultSuccess || ei.FailureInfo != nil:
		t.Fatalf("exitCode %d result %s failureInfo %+v", *ei.ExitCode, *ei.Result, ei.FailureInfo)
	case *done.PreviousState != azbatch.TaskStateRunning || *done.NodeInfo.NodeID != *nodes[0].ID:
		t.Fatalf("previousState %s nodeInfo %+v", *done.PreviousState, done.NodeInfo)
	}
	if out := taskMustReadFile(t, s, "life", "t1", "stdout.txt"); out != "started\nreleased\n" {
		t.Fatalf("stdout %q", out)
	}

	// Errors.
	_, err = c.CreateTask(ctx(t), "life", taskCmd("t1", "true"), nil)
	jobAzureError(t, err, http.StatusConflict, "TaskExists")
	_, err = c.CreateTask(ctx(t), "life", taskCmd("T1", "true"), nil)
	jobAzureError(t, err, http.StatusConflict, "TaskExists") // ids are case-insensitive
	_, err = c.CreateTask(ctx(t), "nosuchjob", taskCmd("t", "true"), nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
	_, err = c.GetTask(ctx(t), "life", "nosuchtask", nil)
	jobAzureError(t, err, http.StatusNotFound, "TaskNotFound")
	_, err = c.CreateTask(ctx(t), "life", azbatch.CreateTaskContent{ID: to("nocmd")}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "MissingRequiredProperty")
	_, err = c.CreateTask(ctx(t), "life", azbatch.CreateTaskContent{ID: to("zero"), CommandLine: to("true"), RequiredSlots: to(int32(0))}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
}

// TestTaskAddCollection: 100 tasks per request, 101 refused as a whole, and
// per-task results when some tasks of a request fail.
func TestTaskAddCollection(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := s.Client
	s.CreateJob(t, "coll", "nopool", nil) // no pool: tasks stay active

	var hundred []azbatch.CreateTaskContent
	for i := range 101 {
		hundred = append(hundred, taskCmd(fmt.Sprintf("task%03d", i), "true"))
	}
	_, err := c.CreateTaskCollection(ctx(t), "coll", azbatch.TaskGroup{Value: hundred}, nil)
	jobAzureError(t, err, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")
	if n := len(s.ListTasks(t, "coll", nil)); n != 0 {
		t.Fatalf("a refused collection added %d tasks", n)
	}
	resp, err := c.CreateTaskCollection(ctx(t), "coll", azbatch.TaskGroup{Value: hundred[:100]}, nil)
	if err != nil {
		t.Fatalf("add 100 tasks: %v", err)
	}
	if len(resp.Value) != 100 {
		t.Fatalf("%d results for 100 tasks", len(resp.Value))
	}
	for _, r := range resp.Value {
		if *r.Status != azbatch.TaskAddStatusSuccess || r.ETag == nil || r.Location == nil || !strings.HasSuffix(*r.Location, "/tasks/"+*r.TaskID) {
			t.Fatalf("result %s: %s etag %v location %v", *r.TaskID, *r.Status, r.ETag, r.Location)
		}
	}
	if n := len(s.ListTasks(t, "coll", nil)); n != 100 {
		t.Fatalf("listed %d tasks", n)
	}

	// One request: two new tasks, a duplicate inside the request, a task
	// that exists already and an invalid one.
	existing := taskGet(t, s, "coll", "task007")
	resp, err = c.CreateTaskCollection(ctx(t), "coll", azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{
		taskCmd("new1", "true"),
		taskCmd("dup", "true"),
		taskCmd("DUP", "true"),
		taskCmd("task007", "false"),
		taskCmd("new2", "true"),
		{ID: to("nocmd")},
	}}, nil)
	if err != nil {
		t.Fatalf("add mixed collection: %v", err)
	}
	want := []struct {
		id, code string
	}{{"new1", ""}, {"dup", ""}, {"DUP", "TaskExists"}, {"task007", "TaskExists"}, {"new2", ""}, {"nocmd", "MissingRequiredProperty"}}
	if len(resp.Value) != len(want) {
		t.Fatalf("%d results, want %d", len(resp.Value), len(want))
	}
	for i, w := range want {
		r := resp.Value[i]
		if *r.TaskID != w.id {
			t.Fatalf("result %d is for %s, want %s", i, *r.TaskID, w.id)
		}
		if w.code == "" {
			if *r.Status != azbatch.TaskAddStatusSuccess || r.Error != nil {
				t.Fatalf("result %s: %s %+v", w.id, *r.Status, r.Error)
			}
			continue
		}
		if *r.Status != azbatch.TaskAddStatusClientError || r.Error == nil || *r.Error.Code != w.code || r.Error.Message == nil || *r.Error.Message.Value == "" {
			t.Fatalf("result %s: status %s error %+v, want clientError %s", w.id, *r.Status, r.Error, w.code)
		}
	}
	if n := len(s.ListTasks(t, "coll", nil)); n != 103 {
		t.Fatalf("listed %d tasks, want 103", n)
	}
	// The existing task was left alone.
	if tk := taskGet(t, s, "coll", "task007"); *tk.ETag != *existing.ETag || *tk.CommandLine != "true" {
		t.Fatalf("task007 changed: eTag %s commandLine %s", *tk.ETag, *tk.CommandLine)
	}
	_, err = c.CreateTaskCollection(ctx(t), "coll", azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{}}, nil)
	if statusOf(err) != http.StatusBadRequest {
		t.Fatalf("empty collection: %v", err)
	}
	_, err = c.CreateTaskCollection(ctx(t), "nosuchjob", azbatch.TaskGroup{Value: hundred[:1]}, nil)
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")
}

// TestTaskUpdateDeleteTerminate covers Replace Task, Delete Task and
// Terminate Task on active and running tasks.
func TestTaskUpdateDeleteTerminate(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	c := s.Client

	// Active tasks: a job on a pool that does not exist keeps them so.
	s.CreateJob(t, "idle", "nopool", nil)
	s.AddTasks(t, "idle", []azbatch.CreateTaskContent{taskCmd("upd", "true"), taskCmd("del", "true"), taskCmd("term", "true")})
	upd := taskGet(t, s, "idle", "upd")
	if _, err := c.ReplaceTask(ctx(t), "idle", "upd", azbatch.Task{Constraints: &azbatch.TaskConstraints{
		MaxWallClockTime: to("PT1H"), RetentionTime: to("PT2H"), MaxTaskRetryCount: to(int32(5)),
	}}, nil); err != nil {
		t.Fatalf("replace task: %v", err)
	}
	updated := taskGet(t, s, "idle", "upd")
	if cs := updated.Constraints; *cs.MaxWallClockTime != "PT1H" || *cs.RetentionTime != "PT2H" || *cs.MaxTaskRetryCount != 5 {
		t.Fatalf("constraints after replace %+v", cs)
	}
	if *updated.ETag == *upd.ETag || *updated.CommandLine != "true" || *updated.State != azbatch.TaskStateActive {
		t.Fatalf("after replace: eTag %s state %s", *updated.ETag, *updated.State)
	}
	_, err := c.ReplaceTask(ctx(t), "idle", "upd", azbatch.Task{Constraints: &azbatch.TaskConstraints{MaxWallClockTime: to("one hour")}}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	_, err = c.ReplaceTask(ctx(t), "idle", "nosuchtask", azbatch.Task{Constraints: &azbatch.TaskConstraints{}}, nil)
	jobAzureError(t, err, http.StatusNotFound, "TaskNotFound")

	if _, err := c.DeleteTask(ctx(t), "idle", "del", nil); err != nil {
		t.Fatalf("delete task: %v", err)
	}
	_, err = c.GetTask(ctx(t), "idle", "del", nil)
	jobAzureError(t, err, http.StatusNotFound, "TaskNotFound")
	_, err = c.DeleteTask(ctx(t), "idle", "del", nil)
	jobAzureError(t, err, http.StatusNotFound, "TaskNotFound")

	if _, err := c.TerminateTask(ctx(t), "idle", "term", nil); err != nil { // 204
		t.Fatalf("terminate active task: %v", err)
	}
	term := taskGet(t, s, "idle", "term")
	ei := term.ExecutionInfo
	switch {
	case *term.State != azbatch.TaskStateCompleted || *term.PreviousState != azbatch.TaskStateActive:
		t.Fatalf("terminated active task: state %s previous %s", *term.State, *term.PreviousState)
	case *ei.Result != azbatch.TaskExecutionResultFailure || ei.FailureInfo == nil || *ei.FailureInfo.Code != "TaskEnded" || *ei.FailureInfo.Category != azbatch.ErrorCategoryUserError || ei.ExitCode != nil:
		t.Fatalf("terminated active task executionInfo %+v failure %+v", ei, ei.FailureInfo)
	case term.NodeInfo != nil:
		t.Fatalf("a task that never ran has nodeInfo %+v", term.NodeInfo)
	}
	// Azure refuses to terminate a completed task (409 TaskCompleted).
	_, err = c.TerminateTask(ctx(t), "idle", "term", nil)
	jobAzureError(t, err, http.StatusConflict, "TaskCompleted")
	_, err = c.ReplaceTask(ctx(t), "idle", "term", azbatch.Task{Constraints: &azbatch.TaskConstraints{}}, nil)
	jobAzureError(t, err, http.StatusConflict, "TaskCompleted")
	counts, err := c.GetJobTaskCounts(ctx(t), "idle", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tc := counts.TaskCounts; *tc.Active != 1 || *tc.Failed != 1 || *tc.Completed != 1 {
		t.Fatalf("counts active %d completed %d failed %d", *tc.Active, *tc.Completed, *tc.Failed)
	}

	// Running tasks: terminate kills at once; delete kills too.
	s.CreateJob(t, "run", jobPool, nil)
	s.AddTasks(t, "run", []azbatch.CreateTaskContent{taskCmd("kill", "sleep 30"), taskCmd("gone", "sleep 30")})
	kill := taskWaitState(t, s, "run", "kill", azbatch.TaskStateRunning, 30*time.Second)
	gone := taskWaitState(t, s, "run", "gone", azbatch.TaskStateRunning, 30*time.Second)
	killDir, goneDir := taskDirOf(t, s, "run", kill), taskDirOf(t, s, "run", gone)
	if len(taskProcsUnder(killDir)) == 0 || len(taskProcsUnder(goneDir)) == 0 {
		t.Fatal("running tasks have no process")
	}
	if _, err := c.TerminateTask(ctx(t), "run", "kill", nil); err != nil {
		t.Fatalf("terminate running task: %v", err)
	}
	// Deadlines here are generous on purpose: how fast a kill is belongs in
	// benchmarks, not in a test that a loaded machine can slow down.
	killed := taskWaitState(t, s, "run", "kill", azbatch.TaskStateCompleted, time.Minute)
	if ei := killed.ExecutionInfo; *ei.Result != azbatch.TaskExecutionResultFailure || *ei.FailureInfo.Code != "TaskEnded" || ei.StartTime == nil || ei.EndTime == nil {
		t.Fatalf("terminated running task executionInfo %+v", ei)
	}
	taskWaitNoProcs(t, killDir, 30*time.Second)
	if _, err := c.DeleteTask(ctx(t), "run", "gone", nil); err != nil {
		t.Fatalf("delete running task: %v", err)
	}
	_, err = c.GetTask(ctx(t), "run", "gone", nil)
	jobAzureError(t, err, http.StatusNotFound, "TaskNotFound")
	taskWaitNoProcs(t, goneDir, 30*time.Second)
	// Azure: "When a Task is deleted, all of the files in its directory on
	// the Compute Node where it ran are also deleted (regardless of the
	// retention time)" - for the running task and for a completed one.
	if _, err := c.DeleteTask(ctx(t), "run", "kill", nil); err != nil {
		t.Fatalf("delete completed task: %v", err)
	}
	for _, dir := range []string{goneDir, killDir} {
		eventually(t, 30*time.Second, "task directory removed", func() error {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				return fmt.Errorf("%s still there: %v", dir, err)
			}
			return nil
		})
	}
	taskAdd(t, s, "run", taskCmd("kill", "true"))
	if ids := taskIDs(s.ListTasks(t, "run", nil)); !slices.Equal(ids, []string{"kill"}) {
		t.Fatalf("tasks left %v", ids)
	}
	// Both slots are free again.
	s.AddTasks(t, "run", []azbatch.CreateTaskContent{taskCmd("n1", taskGateCmd), taskCmd("n2", taskGateCmd)})
	taskWaitState(t, s, "run", "n1", azbatch.TaskStateRunning, 30*time.Second)
	taskWaitState(t, s, "run", "n2", azbatch.TaskStateRunning, 30*time.Second)
	taskRelease(t, s, "run", "n1")
	taskRelease(t, s, "run", "n2")
	s.WaitJobTasks(t, "run", 30*time.Second)
}

// TestTaskReactivate: a failed task becomes active again and runs; a
// successful or unfinished task cannot be reactivated.
func TestTaskReactivate(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	c := s.Client
	s.CreateJob(t, "re", jobPool, nil)
	// Fails on its first run, succeeds on the next.
	flaky := `/bin/sh -c 'f="$AZ_BATCH_NODE_SHARED_DIR/flaky"; if [ -e "$f" ]; then exit 0; fi; touch "$f"; exit 3'`
	s.AddTasks(t, "re", []azbatch.CreateTaskContent{taskCmd("flaky", flaky), taskCmd("ok", "true")})
	failed := taskWaitState(t, s, "re", "flaky", azbatch.TaskStateCompleted, 30*time.Second)
	if ei := failed.ExecutionInfo; *ei.ExitCode != 3 || *ei.Result != azbatch.TaskExecutionResultFailure {
		t.Fatalf("first run: %+v", ei)
	}
	if _, err := c.ReactivateTask(ctx(t), "re", "flaky", nil); err != nil { // 204
		t.Fatalf("reactivate: %v", err)
	}
	re := taskGet(t, s, "re", "flaky")
	if *re.State == azbatch.TaskStateCompleted && *re.ExecutionInfo.ExitCode == 3 {
		t.Fatal("reactivated task still shows the failed run")
	}
	done := taskWaitState(t, s, "re", "flaky", azbatch.TaskStateCompleted, 30*time.Second)
	if ei := done.ExecutionInfo; *ei.ExitCode != 0 || *ei.Result != azbatch.TaskExecutionResultSuccess || *ei.RetryCount != 0 || ei.FailureInfo != nil {
		t.Fatalf("after reactivation: %+v", ei)
	}
	if counts := s.WaitJobTasks(t, "re", 30*time.Second).TaskCounts; *counts.Succeeded != 2 || *counts.Failed != 0 {
		t.Fatalf("counts succeeded %d failed %d", *counts.Succeeded, *counts.Failed)
	}

	_, err := c.ReactivateTask(ctx(t), "re", "ok", nil)
	jobAzureError(t, err, http.StatusConflict, "TaskSucceeded")
	taskAdd(t, s, "re", taskCmd("gate", taskGateCmd))
	taskWaitState(t, s, "re", "gate", azbatch.TaskStateRunning, 30*time.Second)
	_, err = c.ReactivateTask(ctx(t), "re", "gate", nil)
	jobAzureError(t, err, http.StatusConflict, "TaskNotCompleted")
	taskRelease(t, s, "re", "gate")
	_, err = c.ReactivateTask(ctx(t), "re", "nosuchtask", nil)
	jobAzureError(t, err, http.StatusNotFound, "TaskNotFound")

	// Not in a completed job either.
	s.CreateJob(t, "over", jobPool, nil)
	taskAdd(t, s, "over", taskCmd("f", "/bin/sh -c 'exit 1'"))
	taskWaitState(t, s, "over", "f", azbatch.TaskStateCompleted, 30*time.Second)
	if _, err := c.TerminateJob(ctx(t), "over", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.ReactivateTask(ctx(t), "over", "f", nil)
	jobAzureError(t, err, http.StatusConflict, "JobCompleted")
}

// TestTaskExecutionEnvironment: the command line runs without a shell, in
// the task's working directory, with environmentSettings, the job's
// commonEnvironmentSettings and every AZ_BATCH_* variable Azure documents.
func TestTaskExecutionEnvironment(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "envjob", jobPool, func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("COMMON"), Value: to("from job")}, {Name: to("OVERRIDE"), Value: to("job")}}
	})
	envTask := taskCmd("env", "/usr/bin/env")
	envTask.EnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("TASKVAR"), Value: to("a b $c")}, {Name: to("OVERRIDE"), Value: to("task")}}
	s.AddTasks(t, "envjob", []azbatch.CreateTaskContent{
		envTask,
		taskCmd("literal", `echo $HOME "two  words" 'single'`),
		taskCmd("shell", `/bin/sh -c 'echo $AZ_BATCH_TASK_ID'`),
		taskCmd("pwd", "/bin/pwd -P"),
	})
	counts := s.WaitJobTasks(t, "envjob", 30*time.Second)
	if *counts.TaskCounts.Succeeded != 4 {
		t.Fatalf("succeeded %d of 4", *counts.TaskCounts.Succeeded)
	}

	if out := taskMustReadFile(t, s, "envjob", "literal", "stdout.txt"); out != "$HOME two  words single\n" {
		t.Fatalf("echo without a shell printed %q", out)
	}
	if out := taskMustReadFile(t, s, "envjob", "shell", "stdout.txt"); out != "shell\n" {
		t.Fatalf("/bin/sh -c printed %q", out)
	}

	task := taskGet(t, s, "envjob", "env")
	nodeID := *task.NodeInfo.NodeID
	root := taskNodeRoot(s, nodeID)
	taskDir := filepath.Join(root, "workitems", "envjob", "job-1", "env")
	env := taskEnvOf(taskMustReadFile(t, s, "envjob", "env", "stdout.txt"))
	want := map[string]string{
		"COMMON":                     "from job",
		"OVERRIDE":                   "task",
		"TASKVAR":                    "a b $c",
		"AZ_BATCH_ACCOUNT_NAME":      testAccount,
		"AZ_BATCH_POOL_ID":           jobPool,
		"AZ_BATCH_NODE_ID":           nodeID,
		"AZ_BATCH_JOB_ID":            "envjob",
		"AZ_BATCH_TASK_ID":           "env",
		"AZ_BATCH_TASK_DIR":          taskDir,
		"AZ_BATCH_TASK_WORKING_DIR":  filepath.Join(taskDir, "wd"),
		"AZ_BATCH_NODE_SHARED_DIR":   filepath.Join(root, "shared"),
		"AZ_BATCH_NODE_STARTUP_DIR":  filepath.Join(root, "startup"),
		"AZ_BATCH_NODE_ROOT_DIR":     root,
		"AZ_BATCH_NODE_IS_DEDICATED": "true",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	if u := env["AZ_BATCH_ACCOUNT_URL"]; u == "" {
		t.Errorf("AZ_BATCH_ACCOUNT_URL is not set")
	}
	for _, dir := range []string{"AZ_BATCH_NODE_SHARED_DIR", "AZ_BATCH_NODE_STARTUP_DIR", "AZ_BATCH_TASK_WORKING_DIR"} {
		if fi, err := os.Stat(env[dir]); err != nil || !fi.IsDir() {
			t.Errorf("%s %q is not a directory: %v", dir, env[dir], err)
		}
	}

	pwdTask := taskGet(t, s, "envjob", "pwd")
	wantWD, err := filepath.EvalSymlinks(filepath.Join(taskNodeRoot(s, *pwdTask.NodeInfo.NodeID), "workitems", "envjob", "job-1", "pwd", "wd"))
	if err != nil {
		t.Fatal(err)
	}
	if out := strings.TrimSpace(taskMustReadFile(t, s, "envjob", "pwd", "stdout.txt")); out != wantWD {
		t.Fatalf("working directory %q, want %q", out, wantWD)
	}
}

// TestTaskFailures: exit codes, retries, the wall clock limit and a missing
// program.
func TestTaskFailures(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	nodes, err := s.ListNodes(t, jobPool)
	if err != nil {
		t.Fatal(err)
	}
	s.CreateJob(t, "fail", jobPool, nil)
	retry := taskCmd("retry", `/bin/sh -c 'echo run >> "$AZ_BATCH_NODE_SHARED_DIR/retry-runs"; exit 1'`)
	retry.Constraints = &azbatch.TaskConstraints{MaxTaskRetryCount: to(int32(2))}
	wall := taskCmd("wall", "sleep 30")
	wall.Constraints = &azbatch.TaskConstraints{MaxWallClockTime: to("PT1S")}
	s.AddTasks(t, "fail", []azbatch.CreateTaskContent{
		taskCmd("exit3", "/bin/sh -c 'echo oops >&2; exit 3'"),
		retry,
		wall,
		taskCmd("missing", "/no/such/program --flag"),
	})
	wallRunning := taskWaitState(t, s, "fail", "wall", azbatch.TaskStateRunning, 30*time.Second)
	wallDir := taskDirOf(t, s, "fail", wallRunning)
	s.WaitJobTasks(t, "fail", 30*time.Second)

	exit3 := taskGet(t, s, "fail", "exit3").ExecutionInfo
	if *exit3.ExitCode != 3 || *exit3.Result != azbatch.TaskExecutionResultFailure || exit3.FailureInfo == nil ||
		*exit3.FailureInfo.Code != "FailureExitCode" || *exit3.FailureInfo.Category != azbatch.ErrorCategoryUserError || *exit3.RetryCount != 0 {
		t.Fatalf("exit 3: %+v failure %+v", exit3, exit3.FailureInfo)
	}
	if out := taskMustReadFile(t, s, "fail", "exit3", "stderr.txt"); out != "oops\n" {
		t.Fatalf("stderr %q", out)
	}

	re := taskGet(t, s, "fail", "retry").ExecutionInfo
	if *re.RetryCount != 2 || *re.ExitCode != 1 || *re.Result != azbatch.TaskExecutionResultFailure || re.LastRetryTime == nil || *re.RequeueCount != 0 {
		t.Fatalf("retried task: %+v", re)
	}
	runs, err := s.Client.GetNodeFile(ctx(t), jobPool, *nodes[0].ID, "shared/retry-runs", nil)
	if err != nil {
		t.Fatalf("read the run count: %v", err)
	}
	b, _ := io.ReadAll(runs.Body)
	runs.Body.Close()
	if n := strings.Count(string(b), "run\n"); n != 3 {
		t.Fatalf("the task ran %d times, want 3 (1 + 2 retries)", n)
	}

	wt := taskGet(t, s, "fail", "wall").ExecutionInfo
	if *wt.Result != azbatch.TaskExecutionResultFailure || wt.FailureInfo == nil || *wt.FailureInfo.Category != azbatch.ErrorCategoryUserError || *wt.FailureInfo.Code != "TaskEnded" {
		t.Fatalf("wall clock task: %+v failure %+v", wt, wt.FailureInfo)
	}
	if d := wt.EndTime.Sub(*wt.StartTime); d < time.Second || d > 10*time.Second {
		t.Fatalf("wall clock task ran %v with maxWallClockTime PT1S", d)
	}
	taskWaitNoProcs(t, wallDir, 5*time.Second)

	mi := taskGet(t, s, "fail", "missing").ExecutionInfo
	if *mi.Result != azbatch.TaskExecutionResultFailure || mi.FailureInfo == nil || *mi.FailureInfo.Category != azbatch.ErrorCategoryUserError ||
		*mi.FailureInfo.Code != "CommandProgramNotFound" || !strings.Contains(*mi.FailureInfo.Message, "/no/such/program") || mi.ExitCode != nil {
		t.Fatalf("missing program: %+v failure %+v", mi, mi.FailureInfo)
	}

	counts, err := s.Client.GetJobTaskCounts(ctx(t), "fail", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tc := counts.TaskCounts; *tc.Failed != 4 || *tc.Succeeded != 0 {
		t.Fatalf("counts failed %d succeeded %d", *tc.Failed, *tc.Succeeded)
	}
}

// TestTaskRequiredSlots: tasks needing 2 slots run one at a time on a node
// with 2 slots; a task needing more slots than a node has stays active.
func TestTaskRequiredSlots(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "huge", jobPool, nil)
	huge := taskCmd("huge", "true")
	huge.RequiredSlots = to(int32(3))
	taskAdd(t, s, "huge", huge)

	s.CreateJob(t, "wide", jobPool, nil)
	var tasks []azbatch.CreateTaskContent
	for i := range 3 {
		tc := taskCmd(fmt.Sprintf("w%d", i), "sleep 0.3")
		tc.RequiredSlots = to(int32(2))
		tasks = append(tasks, tc)
	}
	s.AddTasks(t, "wide", tasks)
	s.WaitJobTasks(t, "wide", 30*time.Second)
	listed := s.ListTasks(t, "wide", nil)
	sort.Slice(listed, func(a, b int) bool {
		return listed[a].ExecutionInfo.StartTime.Before(*listed[b].ExecutionInfo.StartTime)
	})
	for i := 1; i < len(listed); i++ {
		prev, cur := listed[i-1].ExecutionInfo, listed[i].ExecutionInfo
		if cur.StartTime.Before(*prev.EndTime) {
			t.Fatalf("2-slot tasks overlapped on a 2-slot node: %s started %v before %s ended %v", *listed[i].ID, cur.StartTime, *listed[i-1].ID, prev.EndTime)
		}
	}
	for _, tk := range listed {
		if *tk.RequiredSlots != 2 || *tk.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
			t.Fatalf("task %s: requiredSlots %d result %s", *tk.ID, *tk.RequiredSlots, *tk.ExecutionInfo.Result)
		}
	}

	time.Sleep(300 * time.Millisecond)
	h := taskGet(t, s, "huge", "huge")
	if *h.State != azbatch.TaskStateActive || h.NodeInfo != nil {
		t.Fatalf("a 3-slot task on 2-slot nodes is %s on %+v", *h.State, h.NodeInfo)
	}
	r, err := s.Client.GetJobTaskCounts(ctx(t), "huge", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *r.TaskCounts.Active != 1 || *r.TaskSlotCounts.Active != 3 {
		t.Fatalf("counts active %d slots %d", *r.TaskCounts.Active, *r.TaskSlotCounts.Active)
	}
}

// TestTaskSchedulingPolicy: with 2 nodes × 2 slots and 2 tasks, pack puts
// both tasks on one node, spread on two.
func TestTaskSchedulingPolicy(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	for _, fill := range []azbatch.NodeFillType{azbatch.NodeFillTypePack, azbatch.NodeFillTypeSpread} {
		pool := string(fill)
		s.CreatePool(t, pool, 2, 2, func(c *azbatch.CreatePoolContent) {
			c.TaskSchedulingPolicy = &azbatch.TaskSchedulingPolicy{NodeFillType: to(fill)}
		})
		s.CreateJob(t, pool, pool, nil)
		s.AddTasks(t, pool, []azbatch.CreateTaskContent{taskCmd("a", "sleep 0.2"), taskCmd("b", "sleep 0.2")})
	}
	for _, fill := range []azbatch.NodeFillType{azbatch.NodeFillTypePack, azbatch.NodeFillTypeSpread} {
		job := string(fill)
		s.WaitJobTasks(t, job, 30*time.Second)
		nodes := map[string]bool{}
		for _, tk := range s.ListTasks(t, job, nil) {
			nodes[*tk.NodeInfo.NodeID] = true
		}
		want := 1
		if fill == azbatch.NodeFillTypeSpread {
			want = 2
		}
		if len(nodes) != want {
			t.Errorf("%s: tasks ran on %d nodes, want %d", fill, len(nodes), want)
		}
	}
}

// TestTaskRetention: after retentionTime the task directory is deleted from
// the node; the task record stays.
func TestTaskRetention(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "ret", jobPool, nil)
	short := taskCmd("short", "/bin/sh -c 'echo kept; echo data > out.txt'")
	short.Constraints = &azbatch.TaskConstraints{RetentionTime: to("PT2S")}
	s.AddTasks(t, "ret", []azbatch.CreateTaskContent{short, taskCmd("long", "/bin/sh -c 'echo kept'")})
	s.WaitJobTasks(t, "ret", 30*time.Second)
	task := taskGet(t, s, "ret", "short")
	dir := taskDirOf(t, s, "ret", task)
	if out := taskMustReadFile(t, s, "ret", "short", "stdout.txt"); out != "kept\n" {
		t.Fatalf("stdout before retention expiry %q", out)
	}
	if *task.Constraints.RetentionTime != "PT2S" {
		t.Fatalf("retentionTime %s", *task.Constraints.RetentionTime)
	}
	eventually(t, 15*time.Second, "task directory deleted", func() error {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			return fmt.Errorf("%s still there: %v", dir, err)
		}
		return nil
	})
	_, err := taskReadFile(t, s, "ret", "short", "stdout.txt")
	jobAzureError(t, err, http.StatusNotFound, "FileNotFound")
	files, err := taskFileNames(t, s, "ret", "short", true)
	if err != nil || len(files) != 0 {
		t.Fatalf("files after retention: %v %v", files, err)
	}
	if tk := taskGet(t, s, "ret", "short"); *tk.State != azbatch.TaskStateCompleted {
		t.Fatalf("task state %s after retention", *tk.State)
	}
	// The task with the default retention (7 days) keeps its files.
	if out := taskMustReadFile(t, s, "ret", "long", "stdout.txt"); out != "kept\n" {
		t.Fatalf("stdout of the retained task %q", out)
	}
}

// TestTaskFiles covers List, Get (with ocp-range), Get Properties and
// Delete of task files, paths with spaces, and the errors.
func TestTaskFiles(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	c := s.Client
	s.CreateJob(t, "files", jobPool, nil)
	taskAdd(t, s, "files", taskCmd("t", `/bin/sh -c 'printf "hello world" > out.txt; mkdir -p "sub dir"; printf spaced > "sub dir/out file.txt"; echo to-stderr >&2; echo to-stdout'`))
	task := taskWaitState(t, s, "files", "t", azbatch.TaskStateCompleted, 30*time.Second)
	if *task.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("exit code %d", *task.ExecutionInfo.ExitCode)
	}

	all, err := taskFileNames(t, s, "files", "t", true)
	if err != nil {
		t.Fatalf("list files: %v", err)
	}
	for name, dir := range map[string]bool{"stdout.txt": false, "stderr.txt": false, "wd": true, "wd/out.txt": false, "wd/sub dir": true, "wd/sub dir/out file.txt": false} {
		f, ok := all[name]
		if !ok {
			t.Fatalf("recursive list lacks %q: %v", name, slices.Sorted(maps.Keys(all)))
		}
		if *f.IsDirectory != dir || f.URL == nil || !strings.Contains(*f.URL, "/jobs/files/tasks/t/files/") || f.Properties == nil || f.Properties.LastModified == nil {
			t.Fatalf("%s: isDirectory %v url %v properties %+v", name, *f.IsDirectory, f.URL, f.Properties)
		}
	}
	if n := *all["wd/out.txt"].Properties.ContentLength; n != 11 {
		t.Fatalf("contentLength of wd/out.txt %d", n)
	}
	top, err := taskFileNames(t, s, "files", "t", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := top["wd/out.txt"]; ok || len(top) != 3 {
		t.Fatalf("non-recursive list %v", slices.Sorted(maps.Keys(top)))
	}

	// Paging and $filter on the file list.
	var paged []string
	pager := c.NewListTaskFilesPager("files", "t", &azbatch.ListTaskFilesOptions{Recursive: to(true), MaxResults: to(int32(4))})
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list files by 4: %v", err)
		}
		if len(page.Value) > 4 {
			t.Fatalf("a page of %d files with maxresults 4", len(page.Value))
		}
		for _, f := range page.Value {
			paged = append(paged, *f.Name)
		}
	}
	if slices.Sort(paged); !slices.Equal(paged, slices.Sorted(maps.Keys(all))) {
		t.Fatalf("paged file list %v", paged)
	}
	filtered := map[string]bool{}
	pager = c.NewListTaskFilesPager("files", "t", &azbatch.ListTaskFilesOptions{Recursive: to(true), Filter: to("startswith(name,'wd/')")})
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list files with $filter: %v", err)
		}
		for _, f := range page.Value {
			filtered[*f.Name] = true
		}
	}
	if !filtered["wd/out.txt"] || !filtered["wd/sub dir/out file.txt"] || filtered["stdout.txt"] || filtered["wd"] || len(filtered) != 3 {
		t.Fatalf("$filter=startswith(name,'wd/'): %v", filtered)
	}

	// ocp-range: the SDK accepts only 200 and reads the range.
	rng, err := c.GetTaskFile(ctx(t), "files", "t", "wd/out.txt", &azbatch.GetTaskFileOptions{OCPRange: to("bytes=0-4")})
	if err != nil {
		t.Fatalf("get with ocp-range: %v", err)
	}
	b, _ := io.ReadAll(rng.Body)
	rng.Body.Close()
	if string(b) != "hello" || rng.ContentLength == nil || *rng.ContentLength != 5 {
		t.Fatalf("ocp-range bytes=0-4: %q (Content-Length %v)", b, rng.ContentLength)
	}
	_, err = c.GetTaskFile(ctx(t), "files", "t", "wd/out.txt", &azbatch.GetTaskFileOptions{OCPRange: to("bytes=100-200")})
	jobAzureError(t, err, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
	full, err := c.GetTaskFile(ctx(t), "files", "t", "wd/out.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(full.Body)
	full.Body.Close()
	if string(b) != "hello world" || *full.OCPBatchFileIsDirectory || full.LastModified == nil || full.OCPCreationTime == nil || !strings.HasSuffix(*full.OCPBatchFileURL, "/files/wd%2Fout.txt") && !strings.HasSuffix(*full.OCPBatchFileURL, "/files/wd/out.txt") {
		t.Fatalf("get: %q isDirectory %v url %v", b, *full.OCPBatchFileIsDirectory, *full.OCPBatchFileURL)
	}
	if out := taskMustReadFile(t, s, "files", "t", "wd/sub dir/out file.txt"); out != "spaced" {
		t.Fatalf("file with spaces %q", out)
	}
	if out := taskMustReadFile(t, s, "files", "t", "stderr.txt"); out != "to-stderr\n" {
		t.Fatalf("stderr %q", out)
	}
	if out := taskMustReadFile(t, s, "files", "t", "stdout.txt"); out != "to-stdout\n" {
		t.Fatalf("stdout %q", out)
	}

	props, err := c.GetTaskFileProperties(ctx(t), "files", "t", "wd/out.txt", nil)
	if err != nil {
		t.Fatalf("file properties: %v", err)
	}
	if *props.ContentLength != 11 || *props.OCPBatchFileIsDirectory || props.LastModified == nil || props.OCPCreationTime == nil {
		t.Fatalf("properties: length %d isDirectory %v lastModified %v", *props.ContentLength, *props.OCPBatchFileIsDirectory, props.LastModified)
	}
	props, err = c.GetTaskFileProperties(ctx(t), "files", "t", "wd/sub dir", nil)
	if err != nil {
		t.Fatalf("directory properties: %v", err)
	}
	if !*props.OCPBatchFileIsDirectory {
		t.Fatal("wd/sub dir is not reported as a directory")
	}

	// Delete.
	if _, err := c.DeleteTaskFile(ctx(t), "files", "t", "wd/out.txt", nil); err != nil {
		t.Fatalf("delete file: %v", err)
	}
	_, err = taskReadFile(t, s, "files", "t", "wd/out.txt")
	jobAzureError(t, err, http.StatusNotFound, "FileNotFound")
	_, err = c.DeleteTaskFile(ctx(t), "files", "t", "wd/out.txt", nil)
	jobAzureError(t, err, http.StatusNotFound, "FileNotFound")
	_, err = c.DeleteTaskFile(ctx(t), "files", "t", "wd/sub dir", nil)
	if statusOf(err) != http.StatusConflict {
		t.Fatalf("delete a non-empty directory without recursive: %v", err)
	}
	if _, err := c.DeleteTaskFile(ctx(t), "files", "t", "wd/sub dir", &azbatch.DeleteTaskFileOptions{Recursive: to(true)}); err != nil {
		t.Fatalf("delete a directory recursively: %v", err)
	}
	after, err := taskFileNames(t, s, "files", "t", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := after["wd/sub dir/out file.txt"]; ok || len(after) != 3 {
		t.Fatalf("files after delete %v", slices.Sorted(maps.Keys(after)))
	}

	// Errors.
	_, err = taskReadFile(t, s, "files", "t", "nosuchfile.txt")
	jobAzureError(t, err, http.StatusNotFound, "FileNotFound")
	_, err = c.GetTaskFileProperties(ctx(t), "files", "t", "nosuchfile.txt", nil)
	if statusOf(err) != http.StatusNotFound {
		t.Fatalf("properties of a missing file: %v", err)
	}
	_, err = taskReadFile(t, s, "files", "nosuchtask", "stdout.txt")
	jobAzureError(t, err, http.StatusNotFound, "TaskNotFound")
	if out := taskMustReadFile(t, s, "FILES", "T", "stdout.txt"); out != "to-stdout\n" {
		t.Fatalf("stdout through upper-case ids: %q", out)
	}
	_, err = taskReadFile(t, s, "nosuchjob", "t", "stdout.txt")
	jobAzureError(t, err, http.StatusNotFound, "JobNotFound")

	// A task that never ran has no files.
	s.CreateJob(t, "never", "nopool", nil)
	taskAdd(t, s, "never", taskCmd("t", "true"))
	_, err = taskReadFile(t, s, "never", "t", "stdout.txt")
	jobAzureError(t, err, http.StatusConflict, "TaskNotRunOnNode")
	_, err = taskFileNames(t, s, "never", "t", true)
	jobAzureError(t, err, http.StatusConflict, "TaskNotRunOnNode")
}
