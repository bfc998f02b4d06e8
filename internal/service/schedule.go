package service

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Job schedules create jobs from a job specification on a timetable. The
// operations live here; the timetable (schedule_plan.go) and the runner that
// creates the jobs (schedule_runner.go) in their own files.
//
// A schedule's n-th job is "<schedule id>:job-<n>", as in Azure. The id is
// what makes a run happen once: the runner creates the job through the same
// path as Job Add, and a job that already exists (a restart between the
// job's commit and the schedule's) is taken as the run, never created twice.

// MinScheduleInterval is the shortest recurrenceInterval and startWindow
// Azure accepts.
const MinScheduleInterval = time.Minute

// scheduleState is a job schedule in memory.
type scheduleState struct {
	account string
	doc     *azbatch.JobSchedule
	// jobs is how many jobs the schedule created: the next one is
	// <id>:job-<jobs+1>.
	jobs int
	// lastDue is the due time the most recent job was created for (or, when
	// a run could not create its job, the run given up).
	lastDue time.Time
	// autoPoolID is the schedule's auto pool (poolLifetimeOption
	// jobschedule), "" until its first job.
	autoPoolID string
	// creating is set while the runner creates a job outside the lock.
	creating bool
	// wakeAt is when the runner looks at the schedule next (zero: only when
	// something happens to it); entries of the due heap with another time
	// are stale.
	wakeAt time.Time
}

// scheduleRecord is a schedule's document in the store: the wire document
// and the runner's bookkeeping.
type scheduleRecord struct {
	Schedule   json.RawMessage `json:"schedule"`
	Jobs       int             `json:"jobs,omitempty"`
	LastDue    *time.Time      `json:"lastDue,omitempty"`
	AutoPoolID string          `json:"autoPoolId,omitempty"`
}

func (sc *scheduleState) id() string { return deref(sc.doc.ID) }

func (sc *scheduleState) key() string { return key(sc.account, sc.id()) }

func (sc *scheduleState) etag() string { return string(deref(sc.doc.ETag)) }

func (sc *scheduleState) state() azbatch.JobScheduleState { return deref(sc.doc.State) }

func (sc *scheduleState) object() (Object, error) {
	return object(sc.doc, (*string)(sc.doc.ETag), sc.doc.LastModified, sc.doc.CreationTime)
}

// jobPrefix is the lower-case id prefix of the schedule's jobs.
func (sc *scheduleState) jobPrefix() string { return strings.ToLower(sc.id()) + ":job-" }

func (sc *scheduleState) execInfo() *azbatch.JobScheduleExecutionInfo {
	if sc.doc.ExecutionInfo == nil {
		sc.doc.ExecutionInfo = &azbatch.JobScheduleExecutionInfo{}
	}
	return sc.doc.ExecutionInfo
}

func (sc *scheduleState) record() (store.JobSchedule, error) {
	doc, err := sc.doc.MarshalJSON()
	if err != nil {
		return store.JobSchedule{}, err
	}
	r := scheduleRecord{Schedule: doc, Jobs: sc.jobs, AutoPoolID: sc.autoPoolID}
	if !sc.lastDue.IsZero() {
		r.LastDue = &sc.lastDue
	}
	b, err := json.Marshal(r)
	return store.JobSchedule{Account: sc.account, ID: sc.id(), State: string(sc.state()), Doc: b}, err
}

// writeScheduleLocked queues the schedule's record, replacing an earlier
// copy in w.
func (s *Service) writeScheduleLocked(sc *scheduleState, w *store.Writes) {
	rec, err := sc.record()
	if err != nil {
		s.log.Error("encode job schedule", "err", err)
		return
	}
	for i := range w.JobSchedules {
		if w.JobSchedules[i].Account == rec.Account && strings.EqualFold(w.JobSchedules[i].ID, rec.ID) {
			w.JobSchedules[i] = rec
			return
		}
	}
	w.JobSchedules = append(w.JobSchedules, rec)
}

// touchScheduleLocked records a change of the schedule itself (not of its
// jobs, which Azure's lastModified leaves out): new ETag and Last-Modified.
func (s *Service) touchScheduleLocked(sc *scheduleState, w *store.Writes) {
	now := s.now()
	sc.doc.ETag = ptr(azcore.ETag(s.newETag()))
	sc.doc.LastModified = &now
	s.writeScheduleLocked(sc, w)
}

func (s *Service) setScheduleState(sc *scheduleState, st azbatch.JobScheduleState) {
	now := s.now()
	sc.doc.PreviousState = sc.doc.State
	sc.doc.PreviousStateTransitionTime = sc.doc.StateTransitionTime
	sc.doc.State = &st
	sc.doc.StateTransitionTime = &now
}

func (s *Service) scheduleLocked(account, id string) (*scheduleState, error) {
	sc, ok := s.sched.byKey[key(account, id)]
	if !ok {
		return nil, batch.NotFound("JobScheduleNotFound", "job schedule", id)
	}
	return sc, nil
}

// writableScheduleLocked returns a schedule a write may change: the If-*
// conditions hold and it is not being deleted, nor (unless endedOK, for a
// delete) being terminated or completed.
func (s *Service) writableScheduleLocked(account, id string, cond Conditions, endedOK bool) (*scheduleState, error) {
	sc, err := s.scheduleLocked(account, id)
	if err != nil {
		return nil, err
	}
	if err := checkConditions(cond, sc.etag(), deref(sc.doc.LastModified), false); err != nil {
		return nil, err
	}
	switch sc.state() {
	case azbatch.JobScheduleStateDeleting:
		return nil, batch.Conflict("JobScheduleBeingDeleted", "The specified job schedule has been marked for deletion and is being reclaimed.").With("id", id)
	case azbatch.JobScheduleStateTerminating:
		if !endedOK {
			return nil, batch.Conflict("JobScheduleBeingTerminated", "The specified job schedule is being terminated.").With("id", id)
		}
	case azbatch.JobScheduleStateCompleted:
		if !endedOK {
			return nil, batch.Conflict("JobScheduleCompleted", "The specified job schedule is already in completed state.").With("id", id)
		}
	}
	return sc, nil
}

// scheduleOfJobLocked returns the schedule that created j, nil for a job
// added by a user or whose schedule is gone.
func (s *Service) scheduleOfJobLocked(j *jobState) *scheduleState {
	sid, _, ok := strings.Cut(j.id(), ":")
	if !ok {
		return nil
	}
	return s.sched.byKey[key(j.account, sid)]
}

// scheduleActiveJobLocked returns the schedule's job that has not completed
// yet, if any: Azure runs at most one job of a schedule at a time.
func (s *Service) scheduleActiveJobLocked(sc *scheduleState) *jobState {
	ei := sc.doc.ExecutionInfo
	if ei == nil || ei.RecentJob == nil {
		return nil
	}
	j, ok := s.jobs[key(sc.account, deref(ei.RecentJob.ID))]
	if !ok {
		return nil
	}
	if st := j.state(); st == azbatch.JobStateCompleted || st == azbatch.JobStateDeleting {
		return nil
	}
	return j
}

// validateScheduleConfig checks a schedule's timing. A new schedule must
// not end before it starts (doNotRunAfter in the past).
func validateScheduleConfig(c *azbatch.JobScheduleConfiguration, now time.Time, adding bool) error {
	if c == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"schedule.recurrenceInterval", c.RecurrenceInterval}, {"schedule.startWindow", c.StartWindow}} {
		if f.v == nil {
			continue
		}
		d, err := batch.ParseDuration(*f.v)
		if err != nil {
			return batch.InvalidProperty(f.name, *f.v, err.Error())
		}
		if d < MinScheduleInterval {
			return batch.InvalidProperty(f.name, *f.v, "The minimum value is 1 minute.")
		}
	}
	if c.DoNotRunAfter != nil {
		after := c.DoNotRunAfter.UTC().Format(time.RFC3339Nano)
		if adding && !c.DoNotRunAfter.After(now) {
			return batch.InvalidProperty("schedule.doNotRunAfter", after, "The doNotRunAfter time is in the past: no job could ever be created.")
		}
		if c.DoNotRunUntil != nil && !c.DoNotRunAfter.After(*c.DoNotRunUntil) {
			return batch.InvalidProperty("schedule.doNotRunAfter", after, "The doNotRunAfter time must be later than the doNotRunUntil time.")
		}
	}
	return nil
}

// cloneJobSpec deep-copies a job specification, so that the jobs a schedule
// creates never share structures with it.
func cloneJobSpec(spec *azbatch.JobSpecification) (*azbatch.JobSpecification, error) {
	b, err := spec.MarshalJSON()
	if err != nil {
		return nil, err
	}
	c := &azbatch.JobSpecification{}
	return c, c.UnmarshalJSON(b)
}

// scheduleJobContent is the Job Add request of a schedule's job.
func scheduleJobContent(jobID string, spec *azbatch.JobSpecification) (*azbatch.CreateJobContent, error) {
	c, err := cloneJobSpec(spec)
	if err != nil {
		return nil, err
	}
	return &azbatch.CreateJobContent{
		ID:                        &jobID,
		PoolInfo:                  c.PoolInfo,
		AllowTaskPreemption:       c.AllowTaskPreemption,
		CommonEnvironmentSettings: c.CommonEnvironmentSettings,
		Constraints:               c.Constraints,
		DisplayName:               c.DisplayName,
		JobManagerTask:            c.JobManagerTask,
		JobPreparationTask:        c.JobPreparationTask,
		JobReleaseTask:            c.JobReleaseTask,
		MaxParallelTasks:          c.MaxParallelTasks,
		Metadata:                  c.Metadata,
		NetworkConfiguration:      c.NetworkConfiguration,
		OnAllTasksComplete:        c.OnAllTasksComplete,
		OnTaskFailure:             c.OnTaskFailure,
		Priority:                  c.Priority,
		UsesTaskDependencies:      c.UsesTaskDependencies,
	}, nil
}

// validateJobSpec checks a schedule's job specification with Job Add's own
// checks (on the job it would create first) and returns it as the job would
// show it, Azure's defaults filled in.
func (s *Service) validateJobSpec(account, scheduleID string, spec *azbatch.JobSpecification) (*azbatch.JobSpecification, error) {
	if spec == nil {
		return nil, batch.MissingProperty("jobSpecification")
	}
	c, err := scheduleJobContent(scheduleID+":job-1", spec)
	if err != nil {
		return nil, batch.InvalidBody(err.Error())
	}
	doc, err := s.newJobDoc(account, c)
	if err != nil {
		return nil, prefixProperty(err, "jobSpecification.")
	}
	return &azbatch.JobSpecification{
		PoolInfo:                  doc.PoolInfo,
		AllowTaskPreemption:       doc.AllowTaskPreemption,
		CommonEnvironmentSettings: doc.CommonEnvironmentSettings,
		Constraints:               doc.Constraints,
		DisplayName:               doc.DisplayName,
		JobManagerTask:            doc.JobManagerTask,
		JobPreparationTask:        doc.JobPreparationTask,
		JobReleaseTask:            doc.JobReleaseTask,
		MaxParallelTasks:          doc.MaxParallelTasks,
		Metadata:                  doc.Metadata,
		NetworkConfiguration:      doc.NetworkConfiguration,
		OnAllTasksComplete:        doc.OnAllTasksComplete,
		OnTaskFailure:             doc.OnTaskFailure,
		Priority:                  doc.Priority,
		UsesTaskDependencies:      doc.UsesTaskDependencies,
	}, nil
}

// JobScheduleAdd creates a job schedule; its first job is due at
// doNotRunUntil, or at once.
func (s *Service) JobScheduleAdd(ctx context.Context, account string, c *azbatch.CreateJobScheduleContent) (Object, error) {
	id := deref(c.ID)
	if err := batch.ValidateID("id", id, 64); err != nil {
		return Object{}, err
	}
	now := s.now()
	cfg := c.Schedule
	if cfg == nil {
		cfg = &azbatch.JobScheduleConfiguration{}
	}
	if err := validateScheduleConfig(cfg, now, true); err != nil {
		return Object{}, err
	}
	spec, err := s.validateJobSpec(account, id, c.JobSpecification)
	if err != nil {
		return Object{}, err
	}
	sc := &scheduleState{account: account, doc: &azbatch.JobSchedule{
		ID:                  &id,
		DisplayName:         c.DisplayName,
		URL:                 ptr(s.cfg.AccountURL(account) + "/jobschedules/" + id),
		Schedule:            cfg,
		JobSpecification:    spec,
		Metadata:            c.Metadata,
		State:               ptr(azbatch.JobScheduleStateActive),
		StateTransitionTime: &now,
		CreationTime:        &now,
		ExecutionInfo:       &azbatch.JobScheduleExecutionInfo{},
		ETag:                ptr(azcore.ETag(s.newETag())),
		LastModified:        &now,
	}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sched.byKey[key(account, id)]; ok {
		return Object{}, batch.Conflict("JobScheduleExists", "The specified job schedule already exists.").With("id", id)
	}
	if _, ok := s.jobs[key(account, id)]; ok {
		return Object{}, batch.Conflict("JobWithSameIdExists", "A job with the specified job schedule id exists. Job and job schedule cannot have the same id.").With("id", id)
	}
	// The timetable as of now: nextRunTime shows in the 201's resource.
	var w store.Writes
	s.evalScheduleLocked(sc, now, &w)
	rec, err := sc.record()
	if err != nil {
		return Object{}, err
	}
	if err := s.cfg.Store.JobScheduleInsert(context.WithoutCancel(ctx), rec); err != nil {
		if errors.Is(err, store.ErrExists) {
			return Object{}, batch.Conflict("JobScheduleExists", "The specified job schedule already exists.").With("id", id)
		}
		return Object{}, err
	}
	s.sched.byKey[sc.key()] = sc
	s.kickScheduleLocked(sc)
	return sc.object()
}

// JobScheduleGet returns a job schedule.
func (s *Service) JobScheduleGet(ctx context.Context, account, id string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.scheduleLocked(account, id)
	if err != nil {
		return Object{}, err
	}
	if err := checkConditions(cond, sc.etag(), deref(sc.doc.LastModified), true); err != nil {
		return Object{}, err
	}
	return sc.object()
}

// JobScheduleList lists an account's job schedules in id order.
func (s *Service) JobScheduleList(ctx context.Context, account string, lp ListParams) (ListPage, error) {
	s.mu.Lock()
	objs, ids, err := objectsByID(s.sched.byKey, func(x *scheduleState) string { return x.account }, account)
	s.mu.Unlock()
	if err != nil {
		return ListPage{}, err
	}
	return pageByID(objs, ids, lp)
}

// JobListFromSchedule lists the jobs a schedule created (and that were not
// deleted) in id order.
func (s *Service) JobListFromSchedule(ctx context.Context, account, id string, lp ListParams) (ListPage, error) {
	s.mu.Lock()
	sc, err := s.scheduleLocked(account, id)
	if err != nil {
		s.mu.Unlock()
		return ListPage{}, err
	}
	prefix := sc.jobPrefix()
	var jobs []*jobState
	for _, j := range s.jobs {
		if strings.EqualFold(j.account, account) && strings.HasPrefix(strings.ToLower(j.id()), prefix) {
			jobs = append(jobs, j)
		}
	}
	sort.Slice(jobs, func(a, b int) bool { return strings.ToLower(jobs[a].id()) < strings.ToLower(jobs[b].id()) })
	objs := make([]Object, 0, len(jobs))
	ids := make([]string, 0, len(jobs))
	for _, j := range jobs {
		o, err := j.object()
		if err != nil {
			s.mu.Unlock()
			return ListPage{}, err
		}
		objs = append(objs, o)
		ids = append(ids, strings.ToLower(j.id()))
	}
	s.mu.Unlock()
	return pageByID(objs, ids, lp)
}

// JobSchedulePatch replaces the parts of a schedule the patch names. A new
// job specification applies to the jobs created after it.
func (s *Service) JobSchedulePatch(ctx context.Context, account, id string, c *azbatch.UpdateJobScheduleContent, cond Conditions) (Object, error) {
	if err := validateScheduleConfig(c.Schedule, s.now(), false); err != nil {
		return Object{}, err
	}
	var spec *azbatch.JobSpecification
	if c.JobSpecification != nil {
		var err error
		if spec, err = s.validateJobSpec(account, id, c.JobSpecification); err != nil {
			return Object{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.writableScheduleLocked(account, id, cond, false)
	if err != nil {
		return Object{}, err
	}
	if c.Schedule != nil {
		sc.doc.Schedule = c.Schedule
	}
	if spec != nil {
		sc.doc.JobSpecification = spec
	}
	if c.Metadata != nil {
		sc.doc.Metadata = c.Metadata
	}
	return s.scheduleChangedLocked(ctx, sc)
}

// JobScheduleReplace replaces every updatable property: an absent schedule
// becomes the empty one (one job, at once) and absent metadata is cleared.
func (s *Service) JobScheduleReplace(ctx context.Context, account, id string, c *azbatch.JobSchedule, cond Conditions) (Object, error) {
	cfg := c.Schedule
	if cfg == nil {
		cfg = &azbatch.JobScheduleConfiguration{}
	}
	if err := validateScheduleConfig(cfg, s.now(), false); err != nil {
		return Object{}, err
	}
	spec, err := s.validateJobSpec(account, id, c.JobSpecification)
	if err != nil {
		return Object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.writableScheduleLocked(account, id, cond, false)
	if err != nil {
		return Object{}, err
	}
	sc.doc.Schedule = cfg
	sc.doc.JobSpecification = spec
	sc.doc.Metadata = c.Metadata
	return s.scheduleChangedLocked(ctx, sc)
}

// scheduleChangedLocked commits a change of a schedule's properties and
// has its timetable looked at again.
func (s *Service) scheduleChangedLocked(ctx context.Context, sc *scheduleState) (Object, error) {
	var w store.Writes
	s.touchScheduleLocked(sc, &w)
	s.evalScheduleLocked(sc, s.now(), &w)
	s.kickScheduleLocked(sc)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return sc.object()
}

// JobScheduleDisable stops a schedule from creating jobs; its active job
// keeps running.
func (s *Service) JobScheduleDisable(ctx context.Context, account, id string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.writableScheduleLocked(account, id, cond, false)
	if err != nil {
		return Object{}, err
	}
	if sc.state() == azbatch.JobScheduleStateDisabled {
		return sc.object()
	}
	s.setScheduleState(sc, azbatch.JobScheduleStateDisabled)
	return s.scheduleChangedLocked(ctx, sc)
}

// JobScheduleEnable lets a disabled schedule create jobs again.
func (s *Service) JobScheduleEnable(ctx context.Context, account, id string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.writableScheduleLocked(account, id, cond, false)
	if err != nil {
		return Object{}, err
	}
	if sc.state() == azbatch.JobScheduleStateActive {
		return sc.object()
	}
	s.setScheduleState(sc, azbatch.JobScheduleStateActive)
	return s.scheduleChangedLocked(ctx, sc)
}

// JobScheduleTerminate ends a schedule: its active job is terminated (reason
// TerminateJobSchedule, as Azure gives it) and the schedule completes once
// that job has.
func (s *Service) JobScheduleTerminate(ctx context.Context, account, id string, cond Conditions) (Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.writableScheduleLocked(account, id, cond, false)
	if err != nil {
		return Object{}, err
	}
	var w store.Writes
	s.setScheduleState(sc, azbatch.JobScheduleStateTerminating)
	s.touchScheduleLocked(sc, &w)
	if j := s.scheduleActiveJobLocked(sc); j != nil {
		// Its end completes the schedule (scheduleJobEndedLocked).
		s.terminateJobLocked(j, "TerminateJobSchedule", &w)
	}
	s.evalScheduleLocked(sc, s.now(), &w)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return Object{}, err
	}
	return sc.object()
}

// completeScheduleLocked moves a schedule to completed: no job will come,
// and its auto pool (jobschedule lifetime) goes unless kept alive.
func (s *Service) completeScheduleLocked(sc *scheduleState, w *store.Writes) {
	now := s.now()
	s.setScheduleState(sc, azbatch.JobScheduleStateCompleted)
	ei := sc.execInfo()
	ei.EndTime = &now
	ei.NextRunTime = nil
	sc.wakeAt = time.Time{}
	s.touchScheduleLocked(sc, w)
	s.releaseScheduleAutoPoolLocked(sc, w)
}

func (s *Service) releaseScheduleAutoPoolLocked(sc *scheduleState, w *store.Writes) {
	var spec *azbatch.AutoPoolSpecification
	if js := sc.doc.JobSpecification; js != nil && js.PoolInfo != nil {
		spec = js.PoolInfo.AutoPoolSpecification
	}
	if sc.autoPoolID == "" || spec != nil && deref(spec.KeepAlive) {
		return
	}
	s.deleteAutoPoolLocked(sc.account, sc.autoPoolID, w)
}

// JobScheduleDelete deletes a schedule with its jobs and their tasks. As in
// Azure, the schedule shows deleting until its jobs are gone (a job goes
// once its tasks' processes are); a restart in between finishes the
// deletion.
func (s *Service) JobScheduleDelete(ctx context.Context, account, id string, cond Conditions) error {
	s.mu.Lock()
	sc, err := s.writableScheduleLocked(account, id, cond, true)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	var w store.Writes
	s.setScheduleState(sc, azbatch.JobScheduleStateDeleting)
	sc.execInfo().NextRunTime = nil
	sc.wakeAt = time.Time{}
	s.touchScheduleLocked(sc, &w)
	err = s.commit(ctx, &w)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.finishScheduleDelete(context.WithoutCancel(ctx), sc)
}

// finishScheduleDelete deletes the jobs of a schedule in state deleting;
// the schedule goes with the last of them.
func (s *Service) finishScheduleDelete(ctx context.Context, sc *scheduleState) error {
	s.mu.Lock()
	prefix := sc.jobPrefix()
	var ids []string
	for _, j := range s.jobs {
		if strings.EqualFold(j.account, sc.account) && strings.HasPrefix(strings.ToLower(j.id()), prefix) {
			ids = append(ids, j.id())
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		if err := s.JobDelete(ctx, sc.account, id, Conditions{}); err != nil && !errors.Is(err, batch.ErrJobNotFound) {
			var be *batch.Error
			if !errors.As(err, &be) || be.Code != "JobBeingDeleted" {
				return err
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var w store.Writes
	s.removeDeletedScheduleLocked(sc, &w)
	return s.commit(ctx, &w)
}

// removeDeletedScheduleLocked removes a schedule in state deleting once
// none of its jobs is left.
func (s *Service) removeDeletedScheduleLocked(sc *scheduleState, w *store.Writes) {
	if s.sched.byKey[sc.key()] != sc || sc.state() != azbatch.JobScheduleStateDeleting {
		return
	}
	prefix := sc.jobPrefix()
	for _, j := range s.jobs {
		if strings.EqualFold(j.account, sc.account) && strings.HasPrefix(strings.ToLower(j.id()), prefix) {
			return
		}
	}
	delete(s.sched.byKey, sc.key())
	w.DeleteJobSchedules = append(w.DeleteJobSchedules, store.JobSchedule{Account: sc.account, ID: sc.id()})
	s.releaseScheduleAutoPoolLocked(sc, w)
}
