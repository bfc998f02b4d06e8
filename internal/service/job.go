package service

import (
	"context"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// jobState is a job in memory with its scheduling queue and task counters.
type jobState struct {
	account string
	doc     *azbatch.Job
	// queue holds the job's active tasks in the order they become eligible;
	// entries whose task left the queue are skipped when popped.
	queue []*taskState
	head  int
	// running counts tasks assigned to nodes (preparing or running).
	running int
	counts  jobCounts
	// deps indexes waiting dependents by parent when the job uses task
	// dependencies (dependencies.go); nil otherwise.
	deps *jobDeps
}

// jobCounts are the job's task counts by state, as Get Task Counts reports.
type jobCounts struct {
	Active, Running, Succeeded, Failed                     int32
	ActiveSlots, RunningSlots, SucceededSlots, FailedSlots int32
}

func (c *jobCounts) total() int32 { return c.Active + c.Running + c.Succeeded + c.Failed }

func (c *jobCounts) unfinished() int32 { return c.Active + c.Running }

func (j *jobState) id() string { return deref(j.doc.ID) }

// poolID is the pool the job runs on: poolInfo.poolId, or for an auto pool
// (which poolInfo does not name) executionInfo.poolId.
func (j *jobState) poolID() string {
	if j.doc.PoolInfo != nil && deref(j.doc.PoolInfo.PoolID) != "" {
		return *j.doc.PoolInfo.PoolID
	}
	if j.doc.ExecutionInfo == nil {
		return ""
	}
	return deref(j.doc.ExecutionInfo.PoolID)
}

func (j *jobState) etag() string { return string(deref(j.doc.ETag)) }

func (j *jobState) state() azbatch.JobState { return deref(j.doc.State) }

func (j *jobState) object() (Object, error) {
	return object(j.doc, (*string)(j.doc.ETag), j.doc.LastModified, j.doc.CreationTime)
}

func (j *jobState) push(t *taskState) {
	t.queued = true
	markReady(t) // metrics_prom.go
	j.queue = append(j.queue, t)
}

// peek returns the first queued task, dropping stale entries.
func (j *jobState) peek() *taskState {
	for j.head < len(j.queue) {
		t := j.queue[j.head]
		if t.queued {
			return t
		}
		j.queue[j.head] = nil
		j.head++
	}
	if j.head > 0 {
		j.queue = j.queue[:0]
		j.head = 0
	}
	return nil
}

func (j *jobState) pop() {
	t := j.queue[j.head]
	t.queued = false
	j.queue[j.head] = nil
	j.head++
	if j.head > 1024 && j.head*2 > len(j.queue) {
		j.queue = append([]*taskState(nil), j.queue[j.head:]...)
		j.head = 0
	}
}

func (s *Service) touchJob(j *jobState, w *store.Writes) {
	now := s.now()
	j.doc.ETag = ptr(azcore.ETag(s.newETag()))
	j.doc.LastModified = &now
	s.writeJob(j, w)
}

func (s *Service) writeJob(j *jobState, w *store.Writes) {
	s.ensureJobStats(j)
	b, err := j.doc.MarshalJSON()
	if err != nil {
		s.log.Error("encode job", "err", err)
		return
	}
	b = s.jobRecordDoc(j, b)
	rec := store.Job{Account: j.account, ID: j.id(), PoolID: j.poolID(), State: string(j.state()), Priority: deref(j.doc.Priority), Doc: b}
	for i := range w.Jobs {
		if w.Jobs[i].Account == rec.Account && strings.EqualFold(w.Jobs[i].ID, rec.ID) {
			w.Jobs[i] = rec
			return
		}
	}
	w.Jobs = append(w.Jobs, rec)
}

func (s *Service) setJobState(j *jobState, st azbatch.JobState) {
	now := s.now()
	j.doc.PreviousState = j.doc.State
	j.doc.PreviousStateTransitionTime = j.doc.StateTransitionTime
	j.doc.State = &st
	j.doc.StateTransitionTime = &now
}

func (s *Service) jobLocked(account, id string) (*jobState, error) {
	j, ok := s.jobs[key(account, id)]
	if !ok {
		return nil, batch.NotFound("JobNotFound", "job", id)
	}
	return j, nil
}

func validatePriority(p *int32) error {
	if p != nil && (*p < -1000 || *p > 1000) {
		return batch.InvalidProperty("priority", itoa(*p), "The priority must be between -1000 and 1000.")
	}
	return nil
}

func validateJobConstraints(c *azbatch.JobConstraints) error {
	if c == nil {
		return nil
	}
	if c.MaxWallClockTime != nil {
		if _, err := batch.ParseDuration(*c.MaxWallClockTime); err != nil {
			return batch.InvalidProperty("constraints.maxWallClockTime", *c.MaxWallClockTime, err.Error())
		}
	}
	if r := deref(c.MaxTaskRetryCount); r < -1 {
		return batch.InvalidProperty("constraints.maxTaskRetryCount", itoa(r), "The value must be -1 or more.")
	}
	return nil
}

func validateOnAllTasksComplete(v *azbatch.OnAllTasksComplete) (*azbatch.OnAllTasksComplete, error) {
	if v == nil {
		return nil, nil
	}
	o := azbatch.OnAllTasksComplete(strings.ToLower(string(*v)))
	if o != azbatch.OnAllTasksCompleteNoAction && o != azbatch.OnAllTasksCompleteTerminateJob {
		return nil, batch.InvalidProperty("onAllTasksComplete", string(*v), "Allowed values are noaction and terminatejob.")
	}
	return &o, nil
}

// checkOnAllTasksCompleteChange refuses to turn terminatejob back into
// noaction: once engaged, automatic job termination cannot be turned off.
func checkOnAllTasksCompleteChange(j *jobState, to *azbatch.OnAllTasksComplete) error {
	if to != nil && *to == azbatch.OnAllTasksCompleteNoAction && deref(j.doc.OnAllTasksComplete) == azbatch.OnAllTasksCompleteTerminateJob {
		return batch.InvalidProperty("onAllTasksComplete", string(*to), "A job's onAllTasksComplete cannot be changed from terminatejob to noaction.")
	}
	return nil
}

// JobAdd creates a job on an existing or future pool.
func (s *Service) JobAdd(ctx context.Context, account string, c *azbatch.CreateJobContent) (Object, error) {
	// Only jobs of job schedules have other ids (<schedule>:job-<n>).
	if err := batch.ValidateID("id", deref(c.ID), 64); err != nil {
		return Object{}, err
	}
	if err := s.addJob(ctx, account, c); err != nil {
		return Object{}, err
	}
	o, _ := s.JobGet(ctx, account, deref(c.ID), Conditions{}) // gone already: no headers
	return o, nil
}

// addJob creates a job: JobAdd's, and a job schedule's for each run (the
// schedule's jobs skip JobAdd's id check: their ids hold a colon).
func (s *Service) addJob(ctx context.Context, account string, c *azbatch.CreateJobContent) error {
	doc, err := s.newJobDoc(account, c)
	if err != nil {
		return err
	}
	id, now := deref(doc.ID), deref(doc.CreationTime)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[key(account, id)]; ok {
		return batch.Conflict("JobExists", "The specified job already exists.").With("id", id)
	}
	if _, ok := s.sched.byKey[key(account, id)]; ok {
		return batch.Conflict("JobScheduleWithSameIdExists", "A job schedule with the specified job id exists. Job and job schedule cannot have the same id.").With("id", id)
	}
	j := &jobState{account: account, doc: doc}
	j.doc.ETag = ptr(azcore.ETag(s.newETag()))
	j.doc.LastModified = &now
	var w store.Writes
	s.writeJob(j, &w)
	if err := s.cfg.Store.JobInsert(context.WithoutCancel(ctx), w.Jobs[0]); err != nil {
		if err == store.ErrExists {
			return batch.Conflict("JobExists", "The specified job already exists.").With("id", id)
		}
		return err
	}
	s.jobs[key(account, id)] = j
	if err := s.createAutoPoolLocked(ctx, j); err != nil {
		return err
	}
	return s.startJobManagerLocked(ctx, j)
}

// newJobDoc validates a job to create and returns its document (without
// ETag and Last-Modified). Job add and job schedules (which check their job
// specification with it) share it; it needs no lock.
func (s *Service) newJobDoc(account string, c *azbatch.CreateJobContent) (*azbatch.Job, error) {
	id := deref(c.ID)
	if id == "" {
		return nil, batch.MissingProperty("id")
	}
	poolInfo, err := s.newJobPoolInfo(account, id, c.PoolInfo)
	if err != nil {
		return nil, err
	}
	if err := validatePriority(c.Priority); err != nil {
		return nil, err
	}
	if err := validateJobConstraints(c.Constraints); err != nil {
		return nil, err
	}
	onAll, err := validateOnAllTasksComplete(c.OnAllTasksComplete)
	if err != nil {
		return nil, err
	}
	if onAll == nil {
		onAll = ptr(azbatch.OnAllTasksCompleteNoAction)
	}
	onFail := ptr(azbatch.OnTaskFailureNoAction)
	if c.OnTaskFailure != nil {
		onFail = ptr(azbatch.OnTaskFailure(strings.ToLower(string(*c.OnTaskFailure))))
	}
	if f := *onFail; f != azbatch.OnTaskFailureNoAction && f != azbatch.OnTaskFailurePerformExitOptionsJobAction {
		return nil, batch.InvalidProperty("onTaskFailure", string(*c.OnTaskFailure), "Allowed values are noaction and performexitoptionsjobaction.")
	}
	prep, release, err := s.jobPrepReleaseDoc(c.JobPreparationTask, c.JobReleaseTask)
	if err != nil {
		return nil, err
	}
	manager, err := s.jobManagerDoc(account, id, c.JobManagerTask, prep, release)
	if err != nil {
		return nil, err
	}
	now := s.now()
	constraints := c.Constraints
	if constraints == nil {
		constraints = &azbatch.JobConstraints{}
	}
	if constraints.MaxWallClockTime == nil {
		constraints.MaxWallClockTime = ptr(batch.MaxDurationISO)
	}
	if constraints.MaxTaskRetryCount == nil {
		constraints.MaxTaskRetryCount = ptr(int32(0))
	}
	doc := &azbatch.Job{
		ID:                        ptr(id),
		DisplayName:               c.DisplayName,
		URL:                       ptr(s.cfg.AccountURL(account) + "/jobs/" + id),
		UsesTaskDependencies:      ptr(deref(c.UsesTaskDependencies)),
		Priority:                  ptr(deref(c.Priority)),
		AllowTaskPreemption:       ptr(deref(c.AllowTaskPreemption)),
		MaxParallelTasks:          ptr(int32(-1)),
		Constraints:               constraints,
		CommonEnvironmentSettings: c.CommonEnvironmentSettings,
		PoolInfo:                  poolInfo,
		OnAllTasksComplete:        onAll,
		OnTaskFailure:             onFail,
		Metadata:                  c.Metadata,
		NetworkConfiguration:      c.NetworkConfiguration,
		JobManagerTask:            manager,
		JobPreparationTask:        prep,
		JobReleaseTask:            release,
		State:                     ptr(azbatch.JobStateActive),
		StateTransitionTime:       &now,
		CreationTime:              &now,
		ExecutionInfo:             &azbatch.JobExecutionInfo{StartTime: &now, PoolID: poolInfo.PoolID},
	}
	if c.MaxParallelTasks != nil {
		if *c.MaxParallelTasks == 0 || *c.MaxParallelTasks < -1 {
			return nil, batch.InvalidProperty("maxParallelTasks", itoa(*c.MaxParallelTasks), "The value must be -1 or greater than 0.")
		}
		doc.MaxParallelTasks = c.MaxParallelTasks
	}
	return doc, nil
}

// JobGet returns a job.
func (s *Service) JobGet(ctx context.Context, account, jobID string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.jobLocked(account, jobID)
	if err != nil {
		return Object{}, err
	}
	if err := checkConditions(cond, j.etag(), deref(j.doc.LastModified), true); err != nil {
		return Object{}, err
	}
	return j.object()
}

// JobList lists an account's jobs in id order.
func (s *Service) JobList(ctx context.Context, account string, lp ListParams) (ListPage, error) {
	s.mu.Lock()
	objs, ids, err := objectsByID(s.jobs, func(x *jobState) string { return x.account }, account)
	s.mu.Unlock()
	if err != nil {
		return ListPage{}, err
	}
	return pageByID(objs, ids, lp)
}

func (s *Service) writableJobLocked(account, jobID string, cond Conditions) (*jobState, error) {
	j, err := s.jobLocked(account, jobID)
	if err != nil {
		return nil, err
	}
	if err := checkConditions(cond, j.etag(), deref(j.doc.LastModified), false); err != nil {
		return nil, err
	}
	switch j.state() {
	case azbatch.JobStateDeleting:
		return nil, batch.Conflict("JobBeingDeleted", "The specified job has been marked for deletion and is being garbage collected.").With("id", jobID)
	}
	return j, nil
}

// JobDelete deletes a job: it goes to deleting, its running tasks are
// killed, and the job and its tasks are removed once they are gone
// (job_lifecycle.go).
func (s *Service) JobDelete(ctx context.Context, account, jobID string, cond Conditions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.writableJobLocked(account, jobID, cond)
	if err != nil {
		return err
	}
	var w store.Writes
	s.beginDeleteLocked(j, &w)
	s.dispatchLocked(&w) // removes the job at once when nothing runs
	return s.commit(ctx, &w)
}

// JobPatch updates the properties the patch names.
func (s *Service) JobPatch(ctx context.Context, account, jobID string, c *azbatch.UpdateJobContent, cond Conditions) (Object, error) {
	if err := validatePriority(c.Priority); err != nil {
		return Object{}, err
	}
	if err := validateJobConstraints(c.Constraints); err != nil {
		return Object{}, err
	}
	if err := validateMaxParallelTasks(c.MaxParallelTasks); err != nil {
		return Object{}, err
	}
	onAll, err := validateOnAllTasksComplete(c.OnAllTasksComplete)
	if err != nil {
		return Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.writableJobLocked(account, jobID, cond)
	if err != nil {
		return Object{}, err
	}
	if j.state() == azbatch.JobStateCompleted {
		return Object{}, batch.Conflict("JobCompleted", "The specified job is already in a completed state.").With("id", jobID)
	}
	if err := checkOnAllTasksCompleteChange(j, onAll); err != nil {
		return Object{}, err
	}
	if c.Priority != nil {
		j.doc.Priority = c.Priority
	}
	if c.Constraints != nil {
		j.doc.Constraints = c.Constraints
	}
	if c.Metadata != nil {
		j.doc.Metadata = c.Metadata
	}
	if c.MaxParallelTasks != nil {
		j.doc.MaxParallelTasks = c.MaxParallelTasks
	}
	if c.AllowTaskPreemption != nil {
		j.doc.AllowTaskPreemption = c.AllowTaskPreemption
	}
	if c.PoolInfo != nil && deref(c.PoolInfo.PoolID) != "" {
		if j.state() != azbatch.JobStateDisabled {
			return Object{}, batch.Conflict("JobNotDisabled", "The pool of a job can only be changed while the job is disabled.").With("id", jobID)
		}
		j.doc.PoolInfo = &azbatch.PoolInfo{PoolID: c.PoolInfo.PoolID}
	}
	if onAll != nil {
		j.doc.OnAllTasksComplete = onAll
	}
	var w store.Writes
	s.touchJob(j, &w)
	s.maybeCompleteJobLocked(j, &w)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return j.object()
}

// JobReplace replaces the updatable properties; absent ones get defaults.
func (s *Service) JobReplace(ctx context.Context, account, jobID string, c *azbatch.Job, cond Conditions) (Object, error) {
	if c.PoolInfo == nil || deref(c.PoolInfo.PoolID) == "" {
		return Object{}, batch.MissingProperty("poolInfo")
	}
	if err := validatePriority(c.Priority); err != nil {
		return Object{}, err
	}
	if err := validateJobConstraints(c.Constraints); err != nil {
		return Object{}, err
	}
	if err := validateMaxParallelTasks(c.MaxParallelTasks); err != nil {
		return Object{}, err
	}
	onAll, err := validateOnAllTasksComplete(c.OnAllTasksComplete)
	if err != nil {
		return Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.writableJobLocked(account, jobID, cond)
	if err != nil {
		return Object{}, err
	}
	if j.state() == azbatch.JobStateCompleted {
		return Object{}, batch.Conflict("JobCompleted", "The specified job is already in a completed state.").With("id", jobID)
	}
	if !strings.EqualFold(deref(c.PoolInfo.PoolID), j.poolID()) && j.state() != azbatch.JobStateDisabled {
		return Object{}, batch.Conflict("JobNotDisabled", "The pool of a job can only be changed while the job is disabled.").With("id", jobID)
	}
	if onAll == nil {
		onAll = ptr(azbatch.OnAllTasksCompleteNoAction) // omitted in a PUT means noaction
	}
	if err := checkOnAllTasksCompleteChange(j, onAll); err != nil {
		return Object{}, err
	}
	j.doc.PoolInfo = &azbatch.PoolInfo{PoolID: c.PoolInfo.PoolID}
	j.doc.Priority = ptr(deref(c.Priority))
	constraints := c.Constraints
	if constraints == nil {
		constraints = &azbatch.JobConstraints{}
	}
	if constraints.MaxWallClockTime == nil {
		constraints.MaxWallClockTime = ptr(batch.MaxDurationISO)
	}
	if constraints.MaxTaskRetryCount == nil {
		constraints.MaxTaskRetryCount = ptr(int32(0))
	}
	j.doc.Constraints = constraints
	j.doc.Metadata = c.Metadata
	j.doc.AllowTaskPreemption = ptr(deref(c.AllowTaskPreemption))
	if c.MaxParallelTasks != nil {
		j.doc.MaxParallelTasks = c.MaxParallelTasks
	} else {
		j.doc.MaxParallelTasks = ptr(int32(-1))
	}
	if onAll == nil {
		onAll = ptr(azbatch.OnAllTasksCompleteNoAction)
	}
	j.doc.OnAllTasksComplete = onAll
	var w store.Writes
	s.touchJob(j, &w)
	s.maybeCompleteJobLocked(j, &w)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return j.object()
}

// JobDisable stops scheduling a job's tasks; running tasks are requeued,
// terminated or left to finish.
func (s *Service) JobDisable(ctx context.Context, account, jobID string, c *azbatch.DisableJobContent, cond Conditions) (Object, error) {
	if c == nil || c.DisableTasks == nil {
		return Object{}, batch.MissingProperty("disableTasks")
	}
	opt := azbatch.DisableJobOption(strings.ToLower(string(*c.DisableTasks)))
	switch opt {
	case azbatch.DisableJobOptionRequeue, azbatch.DisableJobOptionTerminate, azbatch.DisableJobOptionWait:
	default:
		return Object{}, batch.InvalidProperty("disableTasks", string(*c.DisableTasks), "Allowed values are requeue, terminate and wait.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.writableJobLocked(account, jobID, cond)
	if err != nil {
		return Object{}, err
	}
	switch j.state() {
	case azbatch.JobStateActive:
	case azbatch.JobStateDisabled, azbatch.JobStateDisabling:
		// Azure refuses only jobs that are not active, disabling or
		// disabled: disabling a disabled job changes nothing.
		return j.object()
	default:
		return Object{}, batch.Conflict("JobNotActive", "The specified job is not in the active state.").With("id", jobID)
	}
	var w store.Writes
	s.disableJobLocked(j, opt, &w)
	s.dispatchLocked(&w) // disabled at once when nothing runs
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return j.object()
}

// JobEnable resumes scheduling a disabled job.
func (s *Service) JobEnable(ctx context.Context, account, jobID string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.writableJobLocked(account, jobID, cond)
	if err != nil {
		return Object{}, err
	}
	switch j.state() {
	case azbatch.JobStateActive:
		return j.object()
	case azbatch.JobStateDisabled, azbatch.JobStateDisabling:
	default:
		return Object{}, batch.Conflict("JobNotDisabled", "The specified job is not disabled.").With("id", jobID)
	}
	var w store.Writes
	s.setJobState(j, azbatch.JobStateActive)
	s.touchJob(j, &w)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return j.object()
}

// JobTerminate ends a job: running tasks are terminated and the job
// completes with the given reason (default UserTerminate).
func (s *Service) JobTerminate(ctx context.Context, account, jobID string, c *azbatch.TerminateJobContent, cond Conditions) (Object, error) {
	reason := "UserTerminate"
	if c != nil && deref(c.TerminationReason) != "" {
		reason = *c.TerminationReason
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.writableJobLocked(account, jobID, cond)
	if err != nil {
		return Object{}, err
	}
	switch j.state() {
	case azbatch.JobStateCompleted:
		return Object{}, batch.Conflict("JobCompleted", "The specified job is already in a completed state.").With("id", jobID)
	case azbatch.JobStateTerminating:
		return Object{}, batch.Conflict("JobBeingTerminated", "The specified job is already being terminated.").With("id", jobID)
	}
	var w store.Writes
	s.terminateJobLocked(j, reason, &w)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return j.object()
}

// terminateJobLocked terminates a job: it goes to terminating and completes
// with reason once its terminated tasks are gone (job_lifecycle.go).
func (s *Service) terminateJobLocked(j *jobState, reason string, w *store.Writes) {
	s.beginTerminateLocked(j, reason, w)
}

// maybeCompleteJobLocked applies onAllTasksComplete: terminatejob ends the
// job once it has tasks and all of them completed.
func (s *Service) maybeCompleteJobLocked(j *jobState, w *store.Writes) {
	if j.state() != azbatch.JobStateActive || deref(j.doc.OnAllTasksComplete) != azbatch.OnAllTasksCompleteTerminateJob {
		return
	}
	if j.counts.total() == 0 || j.counts.unfinished() > 0 {
		return
	}
	s.terminateJobLocked(j, "AllTasksComplete", w)
}

// JobTaskCounts reports a job's task counts and task slot counts.
func (s *Service) JobTaskCounts(ctx context.Context, account, jobID string) (TaskCounts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.jobLocked(account, jobID)
	if err != nil {
		return TaskCounts{}, err
	}
	c := j.counts
	return TaskCounts{
		TaskCounts: &azbatch.TaskCounts{
			Active: ptr(c.Active), Running: ptr(c.Running), Completed: ptr(c.Succeeded + c.Failed),
			Succeeded: ptr(c.Succeeded), Failed: ptr(c.Failed),
		},
		TaskSlotCounts: &azbatch.TaskSlotCounts{
			Active: ptr(c.ActiveSlots), Running: ptr(c.RunningSlots), Completed: ptr(c.SucceededSlots + c.FailedSlots),
			Succeeded: ptr(c.SucceededSlots), Failed: ptr(c.FailedSlots),
		},
	}, nil
}
