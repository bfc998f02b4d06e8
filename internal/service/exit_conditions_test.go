package service

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestExitOutcomeOf: which ExitOptions a completion uses, in Azure's order
// of precedence, and the defaults of what they leave out.
func TestExitOutcomeOf(t *testing.T) {
	t.Parallel()
	opts := func(j azbatch.JobAction, d azbatch.DependencyAction) *azbatch.ExitOptions {
		o := &azbatch.ExitOptions{}
		if j != "" {
			o.JobAction = ptr(j)
		}
		if d != "" {
			o.DependencyAction = ptr(d)
		}
		return o
	}
	full := &azbatch.ExitConditions{
		ExitCodes:          []azbatch.ExitCodeMapping{{Code: ptr(int32(0)), ExitOptions: opts(azbatch.JobActionDisable, "")}, {Code: ptr(int32(4)), ExitOptions: opts(azbatch.JobActionNone, azbatch.DependencyActionSatisfy)}},
		ExitCodeRanges:     []azbatch.ExitCodeRangeMapping{{Start: ptr(int32(4)), End: ptr(int32(9)), ExitOptions: opts(azbatch.JobActionDisable, azbatch.DependencyActionBlock)}},
		PreProcessingError: opts("", azbatch.DependencyActionSatisfy),
		FileUploadError:    opts(azbatch.JobActionNone, ""),
		Default:            opts(azbatch.JobActionNone, azbatch.DependencyActionSatisfy),
	}
	exit := func(code int32) *azbatch.TaskExecutionInfo {
		ei := &azbatch.TaskExecutionInfo{ExitCode: ptr(code)}
		if code != 0 {
			ei.FailureInfo = &azbatch.TaskFailureInfo{Code: ptr("FailureExitCode")}
		}
		return ei
	}
	failed := func(code string, exitCode *int32) *azbatch.TaskExecutionInfo {
		return &azbatch.TaskExecutionInfo{ExitCode: exitCode, FailureInfo: &azbatch.TaskFailureInfo{Code: ptr(code)}}
	}
	for _, c := range []struct {
		name string
		ec   *azbatch.ExitConditions
		ei   *azbatch.TaskExecutionInfo
		want exitOutcome
	}{
		{"success, no conditions", nil, exit(0), exitOutcome{"none", "satisfy"}},
		{"failure, no conditions", nil, exit(1), exitOutcome{"terminate", "block"}},
		{"success listed: its options, defaults for the rest", full, exit(0), exitOutcome{"disable", "satisfy"}},
		{"exit code beats a range", full, exit(4), exitOutcome{"none", "satisfy"}},
		{"range", full, exit(7), exitOutcome{"disable", "block"}},
		{"not listed: default", full, exit(12), exitOutcome{"none", "satisfy"}},
		{"negative code: default", full, exit(-1), exitOutcome{"none", "satisfy"}},
		{"pre-processing error", full, failed("BlobNotFound", nil), exitOutcome{"terminate", "satisfy"}},
		{"pre-processing error without its own options: default", &azbatch.ExitConditions{Default: opts("", azbatch.DependencyActionSatisfy)}, failed("CommandProgramNotFound", nil), exitOutcome{"terminate", "satisfy"}},
		{"file upload error", full, failed("FileUploadAccessDenied", ptr(int32(1))), exitOutcome{"none", "block"}},
		{"file upload error after a listed exit code", full, failed("FileUploadMiscError", ptr(int32(4))), exitOutcome{"none", "satisfy"}},
		{"file upload error without its own options: default", &azbatch.ExitConditions{Default: opts(azbatch.JobActionDisable, "")}, failed("FileUploadContainerNotFound", ptr(int32(0))), exitOutcome{"disable", "block"}},
		{"terminated task: default", full, failed("TaskEnded", nil), exitOutcome{"none", "satisfy"}},
		{"terminated task, no default", &azbatch.ExitConditions{PreProcessingError: opts("", azbatch.DependencyActionSatisfy)}, failed("TaskEnded", nil), exitOutcome{"terminate", "block"}},
		{"timed out with a listed exit code: its options, failure defaults", full, failed("TaskEnded", ptr(int32(0))), exitOutcome{"disable", "block"}},
		{"timed out with another exit code: default", full, failed("TaskEnded", ptr(int32(137))), exitOutcome{"none", "satisfy"}},
	} {
		if got := exitOutcomeOf(c.ec, c.ei); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestExitConditions_JobActionTerminate: with onTaskFailure
// performexitoptionsjobaction, a failure whose exit options say terminate
// (the default for failures) completes the job with reason TaskFailed and
// ends its running tasks; a failure whose options say none does nothing.
func TestExitConditions_JobActionTerminate(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 8)
	b.addJob("job", func(c *azbatch.CreateJobContent) {
		c.UsesTaskDependencies = nil
		c.OnTaskFailure = ptr(azbatch.OnTaskFailurePerformExitOptionsJobAction)
	})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("tolerated"), ExitConditions: &azbatch.ExitConditions{
		ExitCodes: []azbatch.ExitCodeMapping{{Code: ptr(int32(2)), ExitOptions: &azbatch.ExitOptions{JobAction: ptr(azbatch.JobAction("NONE"))}}}}})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("fatal")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("bystander")})
	b.wantAssigned("bystander", "fatal", "tolerated")
	b.complete(exited(2), "tolerated")
	if st := *b.job("job").State; st != azbatch.JobStateActive {
		t.Fatalf("job %s after a tolerated failure", st)
	}
	b.complete(exited(1), "fatal")
	b.wantAssigned() // the agent stops the bystander: the job can complete
	j := b.job("job")
	if *j.State != azbatch.JobStateCompleted || deref(j.ExecutionInfo.TerminationReason) != "TaskFailed" {
		t.Fatalf("job %s reason %v, want completed TaskFailed", *j.State, j.ExecutionInfo.TerminationReason)
	}
	if bt := b.task("job", "bystander"); *bt.State != azbatch.TaskStateCompleted || *bt.ExecutionInfo.FailureInfo.Code != "TaskEnded" {
		t.Fatalf("running task %s when its job ended", *bt.State)
	}
	if ec := b.task("job", "tolerated").ExitConditions; *ec.ExitCodes[0].ExitOptions.JobAction != azbatch.JobActionNone {
		t.Fatalf("jobAction stored as %s", *ec.ExitCodes[0].ExitOptions.JobAction)
	}
}

// TestExitConditions_JobActionDisable: jobAction disable disables the job
// as Disable Job with requeue does: running tasks go back to the queue and
// run again once the job is enabled.
func TestExitConditions_JobActionDisable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newDepsBundle(t, 8)
	b.addJob("job", func(c *azbatch.CreateJobContent) {
		c.OnTaskFailure = ptr(azbatch.OnTaskFailurePerformExitOptionsJobAction)
	})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("pre"), ResourceFiles: nil, ExitConditions: &azbatch.ExitConditions{
		PreProcessingError: &azbatch.ExitOptions{JobAction: ptr(azbatch.JobActionDisable), DependencyAction: ptr(azbatch.DependencyActionSatisfy)}}})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("other")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("child"), DependsOn: dependsOn([]string{"pre"})})
	b.wantAssigned("other", "pre")
	b.complete(preprocessingFailed("BlobNotFound"), "pre")
	if st := *b.job("job").State; st != azbatch.JobStateDisabling {
		t.Fatalf("job %s, want disabling while a requeued task still runs", st)
	}
	b.wantAssigned() // the agent stops the requeued task
	if st := *b.job("job").State; st != azbatch.JobStateDisabled {
		t.Fatalf("job %s, want disabled", st)
	}
	if ot := b.task("job", "other"); *ot.State != azbatch.TaskStateActive || *ot.ExecutionInfo.RequeueCount != 1 {
		t.Fatalf("running task %s requeued %d times, want active and requeued", *ot.State, *ot.ExecutionInfo.RequeueCount)
	}
	if _, err := b.s.JobEnable(ctx, depsAccount, "job", Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.wantAssigned("child", "other") // the failed parent satisfied its child
}

// TestExitConditions_NoJobActionWithoutOptIn: a job whose onTaskFailure is
// noaction ignores exit conditions' job actions and refuses tasks that name
// one; failures leave it active.
func TestExitConditions_NoJobActionWithoutOptIn(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 4)
	b.addJob("job", func(c *azbatch.CreateJobContent) { c.UsesTaskDependencies = nil })
	err := b.addTask("job", azbatch.CreateTaskContent{ID: ptr("t"), ExitConditions: &azbatch.ExitConditions{
		ExitCodes: []azbatch.ExitCodeMapping{{Code: ptr(int32(1)), ExitOptions: &azbatch.ExitOptions{JobAction: ptr(azbatch.JobActionTerminate)}}}}})
	wantError(t, err, "InvalidPropertyValue", "exitConditions.exitCodes[0].exitOptions.jobAction")
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("fails")})
	b.assigned()
	b.complete(exited(1), "fails")
	if st := *b.job("job").State; st != azbatch.JobStateActive {
		t.Fatalf("job %s after a failure with onTaskFailure noaction", st)
	}
}

// TestExitConditions_Validation: Azure's errors for exitConditions and
// onTaskFailure.
func TestExitConditions_Validation(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 1)
	b.addJob("job", func(c *azbatch.CreateJobContent) {
		c.UsesTaskDependencies = nil // a dependencyAction is refused
		c.OnTaskFailure = ptr(azbatch.OnTaskFailurePerformExitOptionsJobAction)
	})
	for _, c := range []struct {
		ec   *azbatch.ExitConditions
		code string
		prop string
	}{
		{&azbatch.ExitConditions{ExitCodes: []azbatch.ExitCodeMapping{{ExitOptions: &azbatch.ExitOptions{}}}}, "MissingRequiredProperty", "exitConditions.exitCodes[0].code"},
		{&azbatch.ExitConditions{ExitCodes: []azbatch.ExitCodeMapping{{Code: ptr(int32(1))}}}, "MissingRequiredProperty", "exitConditions.exitCodes[0].exitOptions"},
		{&azbatch.ExitConditions{ExitCodeRanges: []azbatch.ExitCodeRangeMapping{{Start: ptr(int32(5)), End: ptr(int32(1)), ExitOptions: &azbatch.ExitOptions{}}}}, "InvalidPropertyValue", "exitConditions.exitCodeRanges[0].start"},
		{&azbatch.ExitConditions{ExitCodeRanges: []azbatch.ExitCodeRangeMapping{{Start: ptr(int32(5)), ExitOptions: &azbatch.ExitOptions{}}}}, "MissingRequiredProperty", "exitConditions.exitCodeRanges[0].end"},
		{&azbatch.ExitConditions{Default: &azbatch.ExitOptions{JobAction: ptr(azbatch.JobAction("explode"))}}, "InvalidPropertyValue", "exitConditions.default.jobAction"},
		{&azbatch.ExitConditions{FileUploadError: &azbatch.ExitOptions{DependencyAction: ptr(azbatch.DependencyAction("maybe"))}}, "InvalidPropertyValue", "exitConditions.fileUploadError.dependencyAction"},
		{&azbatch.ExitConditions{PreProcessingError: &azbatch.ExitOptions{DependencyAction: ptr(azbatch.DependencyActionBlock)}}, "InvalidPropertyValue", "exitConditions.preProcessingError.dependencyAction"},
	} {
		wantError(t, b.addTask("job", azbatch.CreateTaskContent{ID: ptr("t"), ExitConditions: c.ec}), c.code, c.prop)
	}
	_, err := b.s.JobAdd(context.Background(), depsAccount, &azbatch.CreateJobContent{ID: ptr("bad"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool")}, OnTaskFailure: ptr(azbatch.OnTaskFailure("retry"))})
	wantError(t, err, "InvalidPropertyValue", "onTaskFailure")
}
