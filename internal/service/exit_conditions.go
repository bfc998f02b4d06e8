package service

// Exit conditions: what a task's completion does to the tasks that depend
// on it (dependencyAction) and to its job (jobAction), as Azure's
// ExitConditions and ExitOptions describe:
//
//   - a pre-processing error (resource files, application packages, a
//     command that could not start) uses preProcessingError, else default;
//   - an exit code listed in exitCodes, or within exitCodeRanges, uses that
//     entry, even when an output file upload failed afterwards;
//   - a file upload error otherwise uses fileUploadError, else default;
//   - any other failure (a nonzero exit code, a timeout, a task ended by a
//     terminate) uses default;
//   - success (exit code 0, no failure) uses nothing unless exit code 0 is
//     listed explicitly.
//
// A property the chosen ExitOptions leaves out, or a completion no
// ExitOptions covers, gets Azure's defaults: jobAction none and
// dependencyAction satisfy for success, terminate and block for a failure.
// The job action is taken only when the job's onTaskFailure is
// performexitoptionsjobaction: terminate completes the job with
// terminateReason "TaskFailed", disable disables it as Disable Job with
// disableTasks requeue does. Azure refuses a task naming a jobAction in a
// job whose onTaskFailure is noaction, and a dependencyAction in a job that
// does not use task dependencies.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Failure phases of a completed task, read from its executionInfo.
const (
	phaseNone          = ""
	phasePreProcessing = "preprocessing"
	phaseFileUpload    = "fileupload"
)

// failurePhase tells when a completed task failed. It reads the document
// rather than the agent's event so that a restarted server, which has only
// the document, decides as the live one did: the agent's output file
// failures all have FileUpload* codes, and its pre-processing failures are
// the failures without an exit code other than TaskEnded (which the server
// sets when it ends a task itself).
func failurePhase(ei *azbatch.TaskExecutionInfo) string {
	if ei == nil || ei.FailureInfo == nil {
		return phaseNone
	}
	code := deref(ei.FailureInfo.Code)
	switch {
	case strings.HasPrefix(code, "FileUpload"):
		return phaseFileUpload
	case ei.ExitCode == nil && code != "TaskEnded":
		return phasePreProcessing
	}
	return phaseNone
}

// exitOutcome is what a completion does to dependents and to the job.
type exitOutcome struct {
	jobAction        azbatch.JobAction
	dependencyAction azbatch.DependencyAction
}

// exitOutcomeOf decides the outcome of a completed task from its exit
// conditions and execution info.
func exitOutcomeOf(ec *azbatch.ExitConditions, ei *azbatch.TaskExecutionInfo) exitOutcome {
	out := exitOutcome{jobAction: azbatch.JobActionNone, dependencyAction: azbatch.DependencyActionSatisfy}
	if ei != nil && ei.FailureInfo != nil {
		out = exitOutcome{jobAction: azbatch.JobActionTerminate, dependencyAction: azbatch.DependencyActionBlock}
	}
	if opts := matchExitOptions(ec, ei); opts != nil {
		if opts.JobAction != nil {
			out.jobAction = azbatch.JobAction(strings.ToLower(string(*opts.JobAction)))
		}
		if opts.DependencyAction != nil {
			out.dependencyAction = azbatch.DependencyAction(strings.ToLower(string(*opts.DependencyAction)))
		}
	}
	return out
}

// matchExitOptions picks the ExitOptions that cover a completion, in
// Azure's order of precedence, or nil.
func matchExitOptions(ec *azbatch.ExitConditions, ei *azbatch.TaskExecutionInfo) *azbatch.ExitOptions {
	if ec == nil || ei == nil {
		return nil
	}
	phase := failurePhase(ei)
	failed := ei.FailureInfo != nil
	switch {
	case phase == phasePreProcessing:
		return firstOptions(ec.PreProcessingError, ec.Default)
	case ei.ExitCode != nil:
		code := *ei.ExitCode
		for _, m := range ec.ExitCodes {
			if m.Code != nil && *m.Code == code {
				return m.ExitOptions
			}
		}
		for _, m := range ec.ExitCodeRanges {
			if m.Start != nil && m.End != nil && *m.Start <= code && code <= *m.End {
				return m.ExitOptions
			}
		}
		if phase == phaseFileUpload {
			return firstOptions(ec.FileUploadError, ec.Default)
		}
		if code != 0 || failed {
			return ec.Default
		}
	case failed:
		return ec.Default
	}
	return nil
}

func firstOptions(opts ...*azbatch.ExitOptions) *azbatch.ExitOptions {
	for _, o := range opts {
		if o != nil {
			return o
		}
	}
	return nil
}

// exitConditionsLocked applies a completed task's exit conditions: the
// dependency action to the tasks that depend on it and, for completions its
// node reported (byNode), the job action. Tasks the service ends itself (a
// terminate, a job ending or being disabled) take no job action: they did
// not end by an exit condition of their own.
func (s *Service) exitConditionsLocked(t *taskState, byNode bool, w *store.Writes) {
	j := t.job
	out := exitOutcomeOf(t.doc.ExitConditions, t.doc.ExecutionInfo)
	if out.dependencyAction == azbatch.DependencyActionSatisfy {
		s.parentSatisfiedLocked(j, t.id())
	}
	if !byNode || deref(j.doc.OnTaskFailure) != azbatch.OnTaskFailurePerformExitOptionsJobAction {
		return
	}
	switch st := j.state(); {
	case out.jobAction == azbatch.JobActionTerminate && (st == azbatch.JobStateActive || st == azbatch.JobStateDisabling || st == azbatch.JobStateDisabled):
		s.terminateJobLocked(j, "TaskFailed", w)
	case out.jobAction == azbatch.JobActionDisable && st == azbatch.JobStateActive:
		// As Disable Job with disableTasks requeue: running tasks go back
		// to the queue, to run again once the job is enabled.
		s.disableJobLocked(j, azbatch.DisableJobOptionRequeue, w)
	}
}

// loadCompletedParentLocked records, at start, a completed task of a job
// that uses task dependencies as satisfied if its exit conditions say so.
// It decodes only what the decision needs.
func (s *Service) loadCompletedParentLocked(j *jobState, rec store.Task) {
	if s.jobDepsLocked(j) == nil {
		return
	}
	// Most tasks succeed without exit conditions: satisfied, no decoding.
	if rec.Result == string(azbatch.TaskExecutionResultSuccess) && !bytes.Contains(rec.Doc, []byte(`"exitConditions"`)) {
		s.parentSatisfiedLocked(j, rec.ID)
		return
	}
	var m struct {
		ExitConditions *azbatch.ExitConditions `json:"exitConditions"`
		ExecutionInfo  *struct {
			ExitCode    *int32                   `json:"exitCode"`
			FailureInfo *azbatch.TaskFailureInfo `json:"failureInfo"`
		} `json:"executionInfo"`
	}
	if err := json.Unmarshal(rec.Doc, &m); err != nil {
		s.log.Error("load completed task", "job", j.id(), "task", rec.ID, "err", err)
		return
	}
	ei := &azbatch.TaskExecutionInfo{}
	if m.ExecutionInfo != nil {
		ei.ExitCode, ei.FailureInfo = m.ExecutionInfo.ExitCode, m.ExecutionInfo.FailureInfo
	}
	if exitOutcomeOf(m.ExitConditions, ei).dependencyAction == azbatch.DependencyActionSatisfy {
		s.parentSatisfiedLocked(j, rec.ID)
	}
}

// taskRules are the properties of a job that decide which dependsOn and
// exitConditions its tasks may have, copied under s.mu so that
// TaskAddCollection validates its tasks without holding the lock.
type taskRules struct {
	usesDependencies bool
	exitJobActions   bool // onTaskFailure is performexitoptionsjobaction
}

func rulesOf(j *jobState) taskRules {
	return taskRules{
		usesDependencies: deref(j.doc.UsesTaskDependencies),
		exitJobActions:   deref(j.doc.OnTaskFailure) == azbatch.OnTaskFailurePerformExitOptionsJobAction,
	}
}

// check validates a task's dependsOn and exitConditions against its job,
// writing the enums of exitConditions in lower case as Azure returns them.
func (r taskRules) check(c *azbatch.CreateTaskContent) error {
	if err := validateDependsOn(deref(c.ID), c.DependsOn, r.usesDependencies); err != nil {
		return err
	}
	return r.checkExitConditions(c.ExitConditions)
}

func (r taskRules) checkExitConditions(ec *azbatch.ExitConditions) error {
	if ec == nil {
		return nil
	}
	for i, m := range ec.ExitCodes {
		prop := fmt.Sprintf("exitConditions.exitCodes[%d]", i)
		if m.Code == nil {
			return batch.MissingProperty(prop + ".code")
		}
		if err := r.checkExitOptions(prop+".exitOptions", m.ExitOptions, true); err != nil {
			return err
		}
	}
	for i, m := range ec.ExitCodeRanges {
		prop := fmt.Sprintf("exitConditions.exitCodeRanges[%d]", i)
		switch {
		case m.Start == nil:
			return batch.MissingProperty(prop + ".start")
		case m.End == nil:
			return batch.MissingProperty(prop + ".end")
		case *m.Start > *m.End:
			return batch.InvalidProperty(prop+".start", itoa(*m.Start), fmt.Sprintf("The start of an exit code range must not be greater than its end (%d).", *m.End))
		}
		if err := r.checkExitOptions(prop+".exitOptions", m.ExitOptions, true); err != nil {
			return err
		}
	}
	for _, o := range []struct {
		prop string
		opts *azbatch.ExitOptions
	}{
		{"exitConditions.preProcessingError", ec.PreProcessingError},
		{"exitConditions.fileUploadError", ec.FileUploadError},
		{"exitConditions.default", ec.Default},
	} {
		if err := r.checkExitOptions(o.prop, o.opts, false); err != nil {
			return err
		}
	}
	return nil
}

func (r taskRules) checkExitOptions(prop string, o *azbatch.ExitOptions, required bool) error {
	if o == nil {
		if required {
			return batch.MissingProperty(prop)
		}
		return nil
	}
	if o.JobAction != nil {
		v := azbatch.JobAction(strings.ToLower(string(*o.JobAction)))
		switch {
		case v != azbatch.JobActionNone && v != azbatch.JobActionDisable && v != azbatch.JobActionTerminate:
			return batch.InvalidProperty(prop+".jobAction", string(*o.JobAction), "Allowed values are none, disable and terminate.")
		case !r.exitJobActions:
			return batch.InvalidProperty(prop+".jobAction", string(*o.JobAction), "A jobAction can be specified only when the job's onTaskFailure is performexitoptionsjobaction.")
		}
		o.JobAction = &v
	}
	if o.DependencyAction != nil {
		v := azbatch.DependencyAction(strings.ToLower(string(*o.DependencyAction)))
		switch {
		case v != azbatch.DependencyActionSatisfy && v != azbatch.DependencyActionBlock:
			return batch.InvalidProperty(prop+".dependencyAction", string(*o.DependencyAction), "Allowed values are satisfy and block.")
		case !r.usesDependencies:
			return batch.InvalidProperty(prop+".dependencyAction", string(*o.DependencyAction), "A dependencyAction can be specified only when the job uses task dependencies.")
		}
		o.DependencyAction = &v
	}
	return nil
}
