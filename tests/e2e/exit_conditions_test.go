package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// exitOpts is an ExitOptions with the given actions ("" leaves one out).
func exitOpts(job azbatch.JobAction, dep azbatch.DependencyAction) *azbatch.ExitOptions {
	o := &azbatch.ExitOptions{}
	if job != "" {
		o.JobAction = to(job)
	}
	if dep != "" {
		o.DependencyAction = to(dep)
	}
	return o
}

// exitMissingBlob is a resource file whose blob does not exist in the
// server's storage: the task fails with a pre-processing error.
func exitMissingBlob(t testing.TB, s *Server) []azbatch.ResourceFile {
	t.Helper()
	sc := s.storageClient(t)
	if _, err := sc.CreateContainer(ctx(t), "exits", nil); err != nil && storageCode(err) != "ContainerAlreadyExists" {
		t.Fatal(err)
	}
	url := storageSAS(t, s.storageBase(), testAccount, testKey, "exits", "missing.txt", "r", time.Now().Add(time.Hour))
	return []azbatch.ResourceFile{{HTTPURL: to(url), FilePath: to("in.txt")}}
}

// exitReadOnlyOutput is an output file whose container SAS grants no
// write: the task fails with a file upload error after its process exits.
func exitReadOnlyOutput(t testing.TB, s *Server) []azbatch.OutputFile {
	t.Helper()
	exitMissingBlob(t, s) // creates the container
	url := storageSAS(t, s.storageBase(), testAccount, testKey, "exits", "", "rl", time.Now().Add(time.Hour))
	return []azbatch.OutputFile{{FilePattern: to("out.txt"),
		Destination:   &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: to(url)}},
		UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to(azbatch.OutputFileUploadConditionTaskCompletion)}}}
}

// TestExitConditionsDependencyActions: each kind of exit condition decides
// whether a failed parent satisfies or blocks its dependent, with Azure's
// precedence (a listed exit code beats fileUploadError) and defaults
// (block for any failure the conditions do not cover).
func TestExitConditionsDependencyActions(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 8, nil)
	depJob(t, s, "exits", jobPool, nil)
	satisfy, block := exitOpts("", azbatch.DependencyActionSatisfy), exitOpts("", azbatch.DependencyActionBlock)
	missing, readOnly := exitMissingBlob(t, s), exitReadOnlyOutput(t, s)
	write := `/bin/sh -c 'echo result > out.txt'`
	parents := []struct {
		task azbatch.CreateTaskContent
		code string // the parent's failureInfo code
		runs bool   // whether its dependent runs
	}{
		{azbatch.CreateTaskContent{ID: to("code"), CommandLine: to(`/bin/sh -c 'exit 3'`),
			ExitConditions: &azbatch.ExitConditions{ExitCodes: []azbatch.ExitCodeMapping{{Code: to[int32](3), ExitOptions: satisfy}}}}, "FailureExitCode", true},
		{azbatch.CreateTaskContent{ID: to("range"), CommandLine: to(`/bin/sh -c 'exit 12'`),
			ExitConditions: &azbatch.ExitConditions{ExitCodeRanges: []azbatch.ExitCodeRangeMapping{{Start: to[int32](10), End: to[int32](20), ExitOptions: satisfy}}}}, "FailureExitCode", true},
		{azbatch.CreateTaskContent{ID: to("preproc"), CommandLine: to("true"), ResourceFiles: missing,
			ExitConditions: &azbatch.ExitConditions{PreProcessingError: satisfy, Default: block}}, "BlobNotFound", true},
		{azbatch.CreateTaskContent{ID: to("preblock"), CommandLine: to("true"), ResourceFiles: missing,
			ExitConditions: &azbatch.ExitConditions{PreProcessingError: block, Default: satisfy}}, "BlobNotFound", false},
		{azbatch.CreateTaskContent{ID: to("upload"), CommandLine: to(write), OutputFiles: readOnly,
			ExitConditions: &azbatch.ExitConditions{FileUploadError: satisfy}}, "FileUploadAccessDenied", true},
		{azbatch.CreateTaskContent{ID: to("uploadcode"), CommandLine: to(write), OutputFiles: readOnly,
			ExitConditions: &azbatch.ExitConditions{FileUploadError: satisfy, ExitCodes: []azbatch.ExitCodeMapping{{Code: to[int32](0), ExitOptions: block}}}}, "FileUploadAccessDenied", false},
		{azbatch.CreateTaskContent{ID: to("default"), CommandLine: to(`/bin/sh -c 'exit 1'`),
			ExitConditions: &azbatch.ExitConditions{Default: satisfy}}, "FailureExitCode", true},
		{azbatch.CreateTaskContent{ID: to("plain"), CommandLine: to(`/bin/sh -c 'exit 1'`)}, "FailureExitCode", false},
	}
	var tasks []azbatch.CreateTaskContent
	for _, p := range parents {
		tasks = append(tasks, p.task, depTask("after-"+*p.task.ID, "true", []string{*p.task.ID}))
	}
	s.AddTasks(t, "exits", tasks)
	for _, p := range parents {
		id := *p.task.ID
		parent := taskWaitState(t, s, "exits", id, azbatch.TaskStateCompleted, time.Minute)
		if fi := parent.ExecutionInfo.FailureInfo; fi == nil || *fi.Code != p.code {
			t.Fatalf("parent %s: %s, want failure %s", id, describeTask(parent), p.code)
		}
		if p.runs {
			child := taskWaitState(t, s, "exits", "after-"+id, azbatch.TaskStateCompleted, time.Minute)
			depAfter(t, child, parent)
		}
	}
	time.Sleep(time.Second) // time enough to be scheduled, were they not blocked
	for _, p := range parents {
		if child := taskGet(t, s, "exits", "after-"+*p.task.ID); !p.runs && (*child.State != azbatch.TaskStateActive || child.NodeInfo != nil) {
			t.Errorf("dependent of %s is %s, want active and never run", *p.task.ID, *child.State)
		}
	}
	// Exit conditions come back on Get Task.
	if ec := taskGet(t, s, "exits", "uploadcode").ExitConditions; ec == nil || ec.FileUploadError == nil ||
		*ec.FileUploadError.DependencyAction != azbatch.DependencyActionSatisfy || *ec.ExitCodes[0].Code != 0 {
		t.Fatalf("exitConditions %+v", ec)
	}
}

// TestExitConditionsJobActions: with onTaskFailure
// performexitoptionsjobaction, a failure's jobAction applies to the job:
// none leaves it active, terminate (also the default for failures) ends it
// with terminateReason TaskFailed, terminating its running tasks, and
// disable disables it with its running tasks requeued.
func TestExitConditionsJobActions(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 4, nil)
	performs := func(c *azbatch.CreateJobContent) {
		c.OnTaskFailure = to(azbatch.OnTaskFailurePerformExitOptionsJobAction)
	}

	// terminate, after a tolerated failure.
	s.CreateJob(t, "term", jobPool, performs)
	taskAdd(t, s, "term", azbatch.CreateTaskContent{ID: to("tolerated"), CommandLine: to(`/bin/sh -c 'exit 2'`),
		ExitConditions: &azbatch.ExitConditions{ExitCodes: []azbatch.ExitCodeMapping{{Code: to[int32](2), ExitOptions: exitOpts(azbatch.JobActionNone, "")}}}})
	taskWaitState(t, s, "term", "tolerated", azbatch.TaskStateCompleted, time.Minute)
	taskAdd(t, s, "term", taskCmd("gate", taskGateCmd))
	taskWaitState(t, s, "term", "gate", azbatch.TaskStateRunning, time.Minute)
	if st := *jobGet(t, s, "term").State; st != azbatch.JobStateActive {
		t.Fatalf("job %s after a failure with jobAction none", st)
	}
	taskAdd(t, s, "term", azbatch.CreateTaskContent{ID: to("fatal"), CommandLine: to(`/bin/sh -c 'exit 5'`),
		ExitConditions: &azbatch.ExitConditions{ExitCodeRanges: []azbatch.ExitCodeRangeMapping{{Start: to[int32](4), End: to[int32](6), ExitOptions: exitOpts(azbatch.JobActionTerminate, "")}}}})
	job := jobWaitState(t, s, "term", azbatch.JobStateCompleted, time.Minute)
	if r := deref(job.ExecutionInfo.TerminationReason); r != "TaskFailed" {
		t.Fatalf("terminateReason %v, want TaskFailed", r)
	}
	if g := taskGet(t, s, "term", "gate"); *g.State != azbatch.TaskStateCompleted || *g.ExecutionInfo.FailureInfo.Code != "TaskEnded" {
		t.Fatalf("running task when its job was terminated: %s", describeTask(g))
	}

	// terminate by default: a failure without exit conditions.
	s.CreateJob(t, "dflt", jobPool, performs)
	taskAdd(t, s, "dflt", taskCmd("fails", `/bin/sh -c 'exit 1'`))
	if r := deref(jobWaitState(t, s, "dflt", azbatch.JobStateCompleted, time.Minute).ExecutionInfo.TerminationReason); r != "TaskFailed" {
		t.Fatalf("terminateReason %v, want TaskFailed", r)
	}

	// disable, on a pre-processing error.
	s.CreateJob(t, "dis", jobPool, performs)
	taskAdd(t, s, "dis", taskCmd("once", taskOnceCmd))
	taskWaitState(t, s, "dis", "once", azbatch.TaskStateRunning, time.Minute)
	taskAdd(t, s, "dis", azbatch.CreateTaskContent{ID: to("pre"), CommandLine: to("true"), ResourceFiles: exitMissingBlob(t, s),
		ExitConditions: &azbatch.ExitConditions{PreProcessingError: exitOpts(azbatch.JobActionDisable, "")}})
	jobWaitState(t, s, "dis", azbatch.JobStateDisabled, time.Minute)
	if once := taskGet(t, s, "dis", "once"); *once.State != azbatch.TaskStateActive || *once.ExecutionInfo.RequeueCount != 1 {
		t.Fatalf("running task when its job was disabled: %s requeued %d times", *once.State, *once.ExecutionInfo.RequeueCount)
	}
	if _, err := s.Client.EnableJob(ctx(t), "dis", nil); err != nil {
		t.Fatal(err)
	}
	if once := taskWaitState(t, s, "dis", "once", azbatch.TaskStateCompleted, time.Minute); *once.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("requeued task after enable: %s", describeTask(once))
	}
}

// TestExitConditionsErrors: Azure refuses a jobAction in a job whose
// onTaskFailure is noaction, a dependencyAction in a job without task
// dependencies, and malformed exit conditions.
func TestExitConditionsErrors(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 0, 0, nil)
	s.CreateJob(t, "noaction", "nopool", nil)
	for _, c := range []struct {
		ec   *azbatch.ExitConditions
		prop string
	}{
		{&azbatch.ExitConditions{ExitCodes: []azbatch.ExitCodeMapping{{Code: to[int32](1), ExitOptions: exitOpts(azbatch.JobActionTerminate, "")}}}, "exitConditions.exitCodes[0].exitOptions.jobAction"},
		{&azbatch.ExitConditions{Default: exitOpts("", azbatch.DependencyActionSatisfy)}, "exitConditions.default.dependencyAction"},
		{&azbatch.ExitConditions{ExitCodeRanges: []azbatch.ExitCodeRangeMapping{{Start: to[int32](9), End: to[int32](1), ExitOptions: exitOpts("", "")}}}, "exitConditions.exitCodeRanges[0].start"},
	} {
		_, err := s.Client.CreateTask(ctx(t), "noaction", azbatch.CreateTaskContent{ID: to("t"), CommandLine: to("true"), ExitConditions: c.ec}, nil)
		if values := jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue"); values["PropertyName"] != c.prop {
			t.Errorf("values %v, want PropertyName %s", values, c.prop)
		}
	}
	_, err := s.Client.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("bad"), PoolInfo: &azbatch.PoolInfo{PoolID: to("p")}, OnTaskFailure: to(azbatch.OnTaskFailure("retry"))}, nil)
	jobAzureError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
}
