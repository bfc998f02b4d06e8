package service

import (
	"container/heap"
	"path"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/scheduler"
	"github.com/kilnbatch/kiln/internal/store"
)

// Job preparation and release tasks (Azure's "Job preparation and release
// tasks on Batch compute nodes"). The preparation task runs on a node before
// the first task of its job that is placed there: the task is assigned in
// state preparing, its attempt held back, until the preparation succeeds
// (waitForSuccess, the default); if it fails for good, the held tasks go
// back to the queue and the node runs no task of the job any more. With
// waitForSuccess false the tasks start at once. When the job ends, the
// release task runs on every node that ran the preparation task, and a
// terminated job completes only after them (jobprep_release.go). Each
// node keeps what it ran in its record (jobprep_store.go), so a restarted
// server neither runs a preparation again nor forgets a release.

// Defaults of Azure's JobPreparationTask and JobReleaseTask.
const (
	JobPrepIDDefault           = "jobpreparation"
	JobReleaseIDDefault        = "jobrelease"
	JobReleaseMaxWallDefault   = "PT15M"
	JobReleaseMaxWallMax       = 15 * time.Minute
	jobPrepRetentionDefault    = "P7D"
	jobPrepMaxTaskRetryDefault = 0
)

// nodePrep is what one node ran of one job's preparation and release
// tasks. prep nil means the preparation has not run (or must run again).
type nodePrep struct {
	account, jobID string
	prep           *azbatch.JobPreparationTaskExecutionInfo
	release        *azbatch.JobReleaseTaskExecutionInfo
	prepRun        *attempt // while the preparation runs
	releaseRun     *attempt // while the release runs
}

func (np *nodePrep) completed() bool {
	return np.prep != nil && deref(np.prep.State) == azbatch.JobPreparationTaskStateCompleted
}

func (np *nodePrep) succeeded() bool {
	return np.completed() && deref(np.prep.Result) == azbatch.TaskExecutionResultSuccess
}

func (np *nodePrep) failed() bool {
	return np.completed() && deref(np.prep.Result) == azbatch.TaskExecutionResultFailure
}

// waitsForPrep reports whether the job's tasks wait on a node for its
// preparation task to succeed there (waitForSuccess, true by default).
func waitsForPrep(j *jobState) bool {
	jp := j.doc.JobPreparationTask
	return jp != nil && (jp.WaitForSuccess == nil || *jp.WaitForSuccess)
}

// jobDirOf is the job's directory on a node: the parent of its tasks'.
func jobDirOf(j *jobState) string { return path.Dir((&taskState{job: j, tid: "_"}).dir()) }

// jobPrepDir is the directory of the job's preparation task relative to the
// node root ("workitems/<job>/job-1/jobpreparation"), "" without one.
func jobPrepDir(j *jobState) string {
	if j.doc.JobPreparationTask == nil {
		return ""
	}
	return jobDirOf(j) + "/" + deref(j.doc.JobPreparationTask.ID)
}

// jobPrepReleaseDoc validates a new job's preparation and release tasks and
// returns them with Azure's defaults filled in.
func (s *Service) jobPrepReleaseDoc(jp *azbatch.JobPreparationTask, jr *azbatch.JobReleaseTask) (*azbatch.JobPreparationTask, *azbatch.JobReleaseTask, error) {
	if jp == nil {
		if jr != nil {
			return nil, nil, batch.InvalidProperty("jobReleaseTask", "", "A job release task cannot be specified without a job preparation task.")
		}
		return nil, nil, nil
	}
	p := *jp
	if err := validateCommandLine("jobPreparationTask.commandLine", deref(p.CommandLine)); err != nil {
		return nil, nil, err
	}
	if p.ID == nil {
		p.ID = ptr(JobPrepIDDefault)
	} else if err := batch.ValidateID("jobPreparationTask.id", *p.ID, 64); err != nil {
		return nil, nil, err
	}
	if err := s.validateResourceFiles("jobPreparationTask.resourceFiles", p.ResourceFiles); err != nil {
		return nil, nil, err
	}
	cons := azbatch.TaskConstraints{}
	if p.Constraints != nil {
		cons = *p.Constraints
	}
	for name, v := range map[string]*string{"maxWallClockTime": cons.MaxWallClockTime, "retentionTime": cons.RetentionTime} {
		if v == nil {
			continue
		}
		if _, err := batch.ParseDuration(*v); err != nil {
			return nil, nil, batch.InvalidProperty("jobPreparationTask.constraints."+name, *v, err.Error())
		}
	}
	if r := deref(cons.MaxTaskRetryCount); r < -1 {
		return nil, nil, batch.InvalidProperty("jobPreparationTask.constraints.maxTaskRetryCount", itoa(r), "The value must be -1 or more.")
	}
	if cons.MaxWallClockTime == nil {
		cons.MaxWallClockTime = ptr(batch.MaxDurationISO)
	}
	if cons.RetentionTime == nil {
		cons.RetentionTime = ptr(jobPrepRetentionDefault)
	}
	if cons.MaxTaskRetryCount == nil {
		cons.MaxTaskRetryCount = ptr(int32(jobPrepMaxTaskRetryDefault))
	}
	p.Constraints = &cons
	if p.WaitForSuccess == nil {
		p.WaitForSuccess = ptr(true)
	}
	if p.RerunOnNodeRebootAfterSuccess == nil {
		p.RerunOnNodeRebootAfterSuccess = ptr(true)
	}
	if jr == nil {
		return &p, nil, nil
	}
	r := *jr
	if err := validateCommandLine("jobReleaseTask.commandLine", deref(r.CommandLine)); err != nil {
		return nil, nil, err
	}
	if r.ID == nil {
		r.ID = ptr(JobReleaseIDDefault)
	} else if err := batch.ValidateID("jobReleaseTask.id", *r.ID, 64); err != nil {
		return nil, nil, err
	}
	if strings.EqualFold(*r.ID, *p.ID) {
		return nil, nil, batch.InvalidProperty("jobReleaseTask.id", *r.ID, "The job release task's id must differ from the job preparation task's.")
	}
	if err := s.validateResourceFiles("jobReleaseTask.resourceFiles", r.ResourceFiles); err != nil {
		return nil, nil, err
	}
	if r.MaxWallClockTime == nil {
		r.MaxWallClockTime = ptr(JobReleaseMaxWallDefault)
	} else if d, err := batch.ParseDuration(*r.MaxWallClockTime); err != nil {
		return nil, nil, batch.InvalidProperty("jobReleaseTask.maxWallClockTime", *r.MaxWallClockTime, err.Error())
	} else if d > JobReleaseMaxWallMax {
		return nil, nil, batch.InvalidProperty("jobReleaseTask.maxWallClockTime", *r.MaxWallClockTime, "The job release task may not run longer than 15 minutes.")
	}
	if r.RetentionTime == nil {
		r.RetentionTime = ptr(jobPrepRetentionDefault)
	} else if _, err := batch.ParseDuration(*r.RetentionTime); err != nil {
		return nil, nil, batch.InvalidProperty("jobReleaseTask.retentionTime", *r.RetentionTime, err.Error())
	}
	return &p, &r, nil
}

// taskIDFree refuses a task id taken by the job's preparation or release
// task, with Azure's codes.
func taskIDFree(j *jobState, id string) error {
	if jp := j.doc.JobPreparationTask; jp != nil && strings.EqualFold(deref(jp.ID), id) {
		return batch.Conflict("TaskIdSameAsJobPreparationTask", "The specified task id is the same as the job preparation task's id.").With("taskId", id)
	}
	if jr := j.doc.JobReleaseTask; jr != nil && strings.EqualFold(deref(jr.ID), id) {
		return batch.Conflict("TaskIdSameAsJobReleaseTask", "The specified task id is the same as the job release task's id.").With("taskId", id)
	}
	return nil
}

// nodePrepLocked returns the node's record of the job, creating it.
func nodePrepLocked(n *nodeState, j *jobState) *nodePrep {
	k := key(j.account, j.id())
	np := n.preps[k]
	if np == nil {
		if n.preps == nil {
			n.preps = map[string]*nodePrep{}
		}
		np = &nodePrep{account: j.account, jobID: j.id()}
		n.preps[k] = np
	}
	return np
}

// gateOnJobPrepLocked is called for each new attempt of a task (not of a
// multi-instance task, whose subtasks are gated one by one).
func (s *Service) gateOnJobPrepLocked(t *taskState, n *nodeState, a *attempt, w *store.Writes) {
	if t.doc != nil && t.doc.MultiInstanceSettings != nil {
		return
	}
	s.prepGateLocked(t.job, n, a, w)
}

// prepGateLocked runs the job's preparation task on n if it has not run
// there, and holds a back until it succeeded when the job waits for it.
func (s *Service) prepGateLocked(j *jobState, n *nodeState, a *attempt, w *store.Writes) {
	if j.doc.JobPreparationTask == nil {
		return
	}
	np := nodePrepLocked(n, j)
	if np.prepRun == nil && !np.completed() {
		s.runJobPrepLocked(n, j, np, 0, w)
	}
	if waitsForPrep(j) && !np.completed() {
		a.held = true
	}
}

// excludeNodesLocked takes out of a dispatch pass, for one job, the nodes
// where its preparation task failed: "Batch will not run Tasks of this Job
// on the Node". The returned function puts them back for the next job.
func (s *Service) excludeNodesLocked(j *jobState, nodes []*nodeState, cands []scheduler.Candidate) func() {
	if !waitsForPrep(j) {
		return noRestore
	}
	var saved []int
	for i, n := range nodes {
		if cands[i].Free > 0 && prepFailedOn(n, j) {
			saved = append(saved, i, cands[i].Free)
			cands[i].Free = 0
		}
	}
	if saved == nil {
		return noRestore
	}
	return func() {
		for x := 0; x < len(saved); x += 2 {
			cands[saved[x]].Free = saved[x+1]
		}
	}
}

func noRestore() {}

// prepFailedOn reports whether n may not run tasks of j: its preparation
// task failed there and the job waits for success.
func prepFailedOn(n *nodeState, j *jobState) bool {
	if !waitsForPrep(j) {
		return false
	}
	np := n.preps[key(j.account, j.id())]
	return np != nil && np.failed()
}

// runJobPrepLocked starts an attempt of the job's preparation task on n.
func (s *Service) runJobPrepLocked(n *nodeState, j *jobState, np *nodePrep, retry int32, w *store.Writes) {
	dir := jobPrepDir(j)
	a := &attempt{id: randomHex(12), owner: &prepRun{np: np}}
	a.assignment = s.jobPrepAssignment(n, j, a.id)
	n.attempts[a.id] = a
	np.prepRun = a
	now := s.now()
	info := &azbatch.JobPreparationTaskExecutionInfo{
		State:                ptr(azbatch.JobPreparationTaskStateRunning),
		StartTime:            &now,
		RetryCount:           ptr(retry),
		TaskRootDirectory:    ptr(dir),
		TaskRootDirectoryURL: ptr(deref(n.doc.URL) + "/files/" + dir),
	}
	if retry > 0 {
		info.LastRetryTime = &now
	}
	np.prep = info
	delete(n.retainUntil, dir)
	s.writeNode(n, w)
	n.wakeLocked()
}

// jobTaskEnv is a job-level task's environment: the job's common settings,
// then the task's own.
func jobTaskEnv(j *jobState, own []azbatch.EnvironmentSetting) map[string]string {
	env := map[string]string{}
	for _, e := range j.doc.CommonEnvironmentSettings {
		env[deref(e.Name)] = deref(e.Value)
	}
	for _, e := range own {
		env[deref(e.Name)] = deref(e.Value)
	}
	return env
}

func wallClockOf(c *azbatch.TaskConstraints) time.Duration {
	if c == nil || c.MaxWallClockTime == nil {
		return 0
	}
	if d, err := batch.ParseDuration(*c.MaxWallClockTime); err == nil && d < batch.MaxDuration {
		return d
	}
	return 0
}

// prepRun owns an attempt of a job preparation task.
type prepRun struct{ np *nodePrep }

func (*prepRun) busy() bool { return false }

func (r *prepRun) event(s *Service, n *nodeState, a *attempt, ev protocol.Event, w *store.Writes) {
	np := r.np
	switch ev.Kind {
	case protocol.EventStarted:
		if np.prep != nil {
			start := ev.Time.UTC()
			np.prep.StartTime = &start
			s.writeNode(n, w)
		}
	case protocol.EventCompleted:
		s.jobPrepCompletedLocked(n, np, a, ev, w)
	}
}

// evicted: the node's work goes; the preparation runs again before the
// job's next task there ("always rerun ... if the Job Preparation Task did
// not complete").
func (r *prepRun) evicted(s *Service, n *nodeState, a *attempt, _ bool, w *store.Writes) {
	s.resetJobPrepLocked(n, r.np, w)
}

func (r *prepRun) lost(s *Service, n *nodeState, a *attempt, w *store.Writes) {
	s.resetJobPrepLocked(n, r.np, w)
	// Tasks held for it on the node wait for a new run.
	if j := s.jobs[key(r.np.account, r.np.jobID)]; j != nil {
		for _, x := range n.attempts {
			if x.held && x.owner == nil && jobOfAttempt(s, x) == j {
				s.runJobPrepLocked(n, j, nodePrepLocked(n, j), 0, w)
				break
			}
		}
	}
}

// resetJobPrepLocked stops the preparation on n and forgets that it ran, so
// that it runs again.
func (s *Service) resetJobPrepLocked(n *nodeState, np *nodePrep, w *store.Writes) {
	if np.prepRun != nil {
		s.dropAttemptLocked(n, np.prepRun)
		np.prepRun = nil
	}
	np.prep = nil
	if np.release == nil && np.releaseRun == nil {
		delete(n.preps, key(np.account, np.jobID))
	}
	s.writeNode(n, w)
}

// jobPrepCompletedLocked applies the end of a preparation attempt: a retry
// for an application failure within maxTaskRetryCount (failures to start
// it are not retried), else its final state, and then the tasks held for
// it run (success) or go back to the queue (failure, waitForSuccess).
func (s *Service) jobPrepCompletedLocked(n *nodeState, np *nodePrep, a *attempt, ev protocol.Event, w *store.Writes) {
	s.detachAttemptLocked(n, a)
	np.prepRun = nil
	j := s.jobs[key(np.account, np.jobID)]
	info := np.prep
	if info == nil {
		info = &azbatch.JobPreparationTaskExecutionInfo{RetryCount: ptr(int32(0))}
		np.prep = info
	}
	exit, failure := failureOf(ev)
	if failure != nil && retryable(ev) && j != nil && j.state() == azbatch.JobStateActive {
		maxRetry := deref(j.doc.JobPreparationTask.Constraints.MaxTaskRetryCount)
		if retries := deref(info.RetryCount); maxRetry == -1 || retries < maxRetry {
			s.runJobPrepLocked(n, j, np, retries+1, w)
			return
		}
	}
	end := ev.Time.UTC()
	info.State = ptr(azbatch.JobPreparationTaskStateCompleted)
	info.EndTime = &end
	if !ev.StartTime.IsZero() {
		start := ev.StartTime.UTC()
		info.StartTime = &start
	}
	info.ExitCode, info.FailureInfo = exit, failure
	info.Result = ptr(azbatch.TaskExecutionResultSuccess)
	if failure != nil {
		info.Result = ptr(azbatch.TaskExecutionResultFailure)
	}
	if j != nil {
		s.retainDirLocked(n, deref(info.TaskRootDirectory), j.doc.JobPreparationTask.Constraints.RetentionTime)
		if failure == nil {
			s.releaseHeldLocked(n, j)
		} else if waitsForPrep(j) {
			s.requeueHeldLocked(n, j, w)
		}
	}
	s.writeNode(n, w)
	s.afterNodeFreedLocked(n, w)
}

// releaseHeldLocked delivers the attempts of j that waited on n for its
// preparation task.
func (s *Service) releaseHeldLocked(n *nodeState, j *jobState) {
	for _, a := range n.attempts {
		if !a.held || jobOfAttempt(s, a) != j {
			continue
		}
		switch o := a.owner.(type) {
		case nil:
			if a.task != nil && s.multi[a.task] == nil {
				a.held = false
			}
		case *subtask:
			a.held = false
			o.setState(s, azbatch.SubtaskStateRunning)
		}
	}
	n.wakeLocked()
}

// requeueHeldLocked sends the tasks of j that waited on n back to the queue:
// the preparation task failed there.
func (s *Service) requeueHeldLocked(n *nodeState, j *jobState, w *store.Writes) {
	var ts []*taskState
	for _, a := range n.attempts {
		if !a.held || jobOfAttempt(s, a) != j {
			continue
		}
		switch o := a.owner.(type) {
		case nil:
			if a.task != nil {
				ts = append(ts, a.task)
			}
		case *subtask:
			ts = append(ts, o.run.task)
		}
	}
	for _, t := range ts {
		if t.attempt != nil {
			s.requeueTaskLocked(t, w)
		}
	}
}

// jobPrepAfterRebootLocked applies a reboot to the node's preparation
// tasks: one that did not complete runs again, and so does one that
// succeeded unless rerunOnNodeRebootAfterSuccess is false. A failed one
// stays failed (Azure: until the node is reimaged).
func (s *Service) jobPrepAfterRebootLocked(n *nodeState, w *store.Writes) {
	for _, np := range n.preps {
		j := s.jobs[key(np.account, np.jobID)]
		if np.prep == nil || np.failed() {
			continue
		}
		if np.succeeded() && j != nil && !deref(j.doc.JobPreparationTask.RerunOnNodeRebootAfterSuccess) {
			continue
		}
		s.resetJobPrepLocked(n, np, w)
	}
}

// retainDirLocked deletes a directory of the node once its retention time
// (an ISO 8601 duration; nil or unlimited: never) has passed.
func (s *Service) retainDirLocked(n *nodeState, dir string, retention *string) {
	if retention == nil || dir == "" {
		return
	}
	d, err := batch.ParseDuration(*retention)
	if err != nil || d >= batch.MaxDuration {
		return
	}
	at := s.now().Add(d)
	if n.retainUntil == nil {
		n.retainUntil = map[string]time.Time{}
	}
	n.retainUntil[dir] = at
	heap.Push(&s.retention, retentionItem{at: at, nodeID: n.id, dir: dir})
}
