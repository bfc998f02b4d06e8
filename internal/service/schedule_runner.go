package service

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// The schedule runner is one goroutine. It never polls: each schedule has
// the time its plan changes next (wakeAt) in a heap, and the runner sleeps
// on a Clock timer until the earliest, or until an operation or a job's end
// kicks a schedule (kickScheduleLocked). It acts only through the service:
// a due run's job is created by addJob, Job Add's own path.

// schedules holds the job schedules and the runner's agenda.
type schedules struct {
	byKey map[string]*scheduleState // by key(account, id)
	due   dueHeap
	wake  chan struct{} // buffered: a new, maybe earlier, wake time
	// waiting is set while the runner sleeps: tests wait for it to know
	// that the runner has done what was due.
	waiting bool
}

func newSchedules() schedules {
	return schedules{byKey: map[string]*scheduleState{}, wake: make(chan struct{}, 1)}
}

type dueItem struct {
	at  time.Time
	key string
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// scheduleWakeLocked sets when the runner looks at sc next (zero: not by
// itself).
func (s *Service) scheduleWakeLocked(sc *scheduleState, at time.Time) {
	if at.Equal(sc.wakeAt) {
		return
	}
	sc.wakeAt = at
	if at.IsZero() {
		return
	}
	heap.Push(&s.sched.due, dueItem{at: at, key: sc.key()})
	select {
	case s.sched.wake <- struct{}{}:
	default:
	}
}

// kickScheduleLocked has the runner look at sc now.
func (s *Service) kickScheduleLocked(sc *scheduleState) {
	s.scheduleWakeLocked(sc, s.now())
}

// evalScheduleLocked brings a schedule up to date at now: its nextRunTime,
// its completion when no run is left and no job is active, its next wake
// time. It returns the due time of a run whose job should be created now
// (zero: none).
func (s *Service) evalScheduleLocked(sc *scheduleState, now time.Time, w *store.Writes) time.Time {
	st := sc.state()
	if st != azbatch.JobScheduleStateActive && st != azbatch.JobScheduleStateDisabled {
		s.scheduleWakeLocked(sc, time.Time{})
		if st == azbatch.JobScheduleStateTerminating && !sc.creating && s.scheduleActiveJobLocked(sc) == nil {
			s.completeScheduleLocked(sc, w)
		}
		return time.Time{}
	}
	t := newScheduleTiming(sc.doc.Schedule, deref(sc.doc.CreationTime))
	p := t.plan(now, sc.jobs > 0, sc.lastDue)
	ei := sc.execInfo()
	var next *time.Time
	if !p.NextRun.IsZero() {
		next = ptr(p.NextRun.UTC())
	}
	if !equalTimes(ei.NextRunTime, next) {
		ei.NextRunTime = next
		s.writeScheduleLocked(sc, w)
	}
	active := s.scheduleActiveJobLocked(sc)
	if p.Done {
		s.scheduleWakeLocked(sc, time.Time{})
		if active == nil && !sc.creating {
			s.completeScheduleLocked(sc, w)
		}
		return time.Time{}
	}
	s.scheduleWakeLocked(sc, p.WakeAt)
	if st != azbatch.JobScheduleStateActive || p.Due.IsZero() || active != nil || sc.creating {
		return time.Time{}
	}
	return p.Due
}

func equalTimes(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// scheduleJobEndedLocked runs when a job completes or is removed: when it is
// a schedule's active job, the schedule may complete (terminating, no run
// left) or create the job of a run that waited for it; a schedule being
// deleted goes with its last job.
func (s *Service) scheduleJobEndedLocked(j *jobState, w *store.Writes) {
	sc := s.scheduleOfJobLocked(j)
	if sc != nil && sc.state() == azbatch.JobScheduleStateDeleting {
		if _, ok := s.jobs[key(j.account, j.id())]; !ok {
			s.removeDeletedScheduleLocked(sc, w)
		}
		return
	}
	if sc == nil || sc.doc.ExecutionInfo == nil || sc.doc.ExecutionInfo.RecentJob == nil ||
		!strings.EqualFold(deref(sc.doc.ExecutionInfo.RecentJob.ID), j.id()) {
		return
	}
	if !s.evalScheduleLocked(sc, s.now(), w).IsZero() {
		s.kickScheduleLocked(sc)
	}
}

// scheduledRun is a run whose job the runner creates outside the lock.
type scheduledRun struct {
	sc      *scheduleState
	account string
	n       int
	jobID   string
	due     time.Time
	content *azbatch.CreateJobContent
}

// runSchedules is the runner's loop.
func (s *Service) runSchedules() {
	defer s.wg.Done()
	// Schedules a restart caught being deleted finish now.
	s.mu.Lock()
	var deleting []*scheduleState
	for _, sc := range s.sched.byKey {
		if sc.state() == azbatch.JobScheduleStateDeleting {
			deleting = append(deleting, sc)
		}
	}
	s.mu.Unlock()
	for _, sc := range deleting {
		if err := s.finishScheduleDelete(context.Background(), sc); err != nil {
			s.log.Error("finish job schedule delete", "schedule", sc.id(), "err", err)
		}
	}
	for {
		runs, next := s.dueSchedules()
		for _, r := range runs {
			s.runScheduledJob(r)
		}
		if len(runs) > 0 {
			continue
		}
		var fire <-chan time.Time
		var timer Timer
		if !next.IsZero() {
			timer = s.cfg.Clock.NewTimer(next.Sub(s.now()))
			fire = timer.C()
		}
		s.setRunnerWaiting(true)
		select {
		case <-s.stop:
			if timer != nil {
				timer.Stop()
			}
			return
		case <-s.sched.wake:
		case <-fire:
		}
		s.setRunnerWaiting(false)
		if timer != nil {
			timer.Stop()
		}
	}
}

func (s *Service) setRunnerWaiting(v bool) {
	s.mu.Lock()
	s.sched.waiting = v
	s.mu.Unlock()
}

// dueSchedules looks at every schedule whose wake time has come and returns
// the runs to create and the next wake time (zero: none).
func (s *Service) dueSchedules() ([]scheduledRun, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var w store.Writes
	var runs []scheduledRun
	for s.sched.due.Len() > 0 && !s.sched.due[0].at.After(now) {
		it := heap.Pop(&s.sched.due).(dueItem)
		sc, ok := s.sched.byKey[it.key]
		if !ok || !sc.wakeAt.Equal(it.at) {
			continue // stale
		}
		sc.wakeAt = time.Time{}
		due := s.evalScheduleLocked(sc, now, &w)
		if due.IsZero() {
			continue
		}
		n := sc.jobs + 1
		r := scheduledRun{sc: sc, account: sc.account, n: n, jobID: fmt.Sprintf("%s:job-%d", sc.id(), n), due: due}
		c, err := scheduleJobContent(r.jobID, sc.doc.JobSpecification)
		if err != nil {
			s.log.Error("job schedule specification", "schedule", sc.id(), "err", err)
			sc.lastDue = due
			s.writeScheduleLocked(sc, &w)
			continue
		}
		r.content = c
		sc.creating = true
		runs = append(runs, r)
	}
	if err := s.commit(context.Background(), &w); err != nil {
		s.log.Error("job schedule write", "err", err)
	}
	var next time.Time
	if s.sched.due.Len() > 0 {
		next = s.sched.due[0].at
	}
	return runs, next
}

// runScheduledJob creates a run's job through Job Add's path and records it
// as the schedule's recent job. A job that exists already is this run's,
// created before a restart that lost the schedule's update: it is taken, not
// created again.
func (s *Service) runScheduledJob(r scheduledRun) {
	ctx := context.Background()
	err := s.addJob(ctx, r.account, r.content)
	var be *batch.Error
	exists := errors.As(err, &be) && be.Code == "JobExists"

	s.mu.Lock()
	sc := r.sc
	sc.creating = false
	gone := s.sched.byKey[sc.key()] != sc || sc.state() == azbatch.JobScheduleStateDeleting
	var w store.Writes
	if !gone {
		if err == nil || exists {
			sc.jobs = max(sc.jobs, r.n)
			sc.lastDue = r.due
			sc.execInfo().RecentJob = &azbatch.RecentJob{ID: ptr(r.jobID), URL: ptr(s.cfg.AccountURL(r.account) + "/jobs/" + r.jobID)}
			if j := s.scheduleActiveJobLocked(sc); j != nil && sc.state() == azbatch.JobScheduleStateTerminating {
				// Terminated while its job was being created.
				s.terminateJobLocked(j, "TerminateJobSchedule", &w)
			}
			s.log.Info("job schedule created a job", "schedule", sc.id(), "job", r.jobID, "due", r.due)
		} else {
			// Refused (a pool or package gone since the schedule was
			// checked): the run is given up, the next one may do better.
			s.log.Error("job schedule could not create its job", "schedule", sc.id(), "job", r.jobID, "err", err)
			sc.lastDue = r.due
		}
		s.writeScheduleLocked(sc, &w)
		s.kickScheduleLocked(sc)
	}
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		s.log.Error("job schedule write", "schedule", sc.id(), "err", err)
	}
	s.mu.Unlock()
	if gone && err == nil {
		// The schedule was deleted meanwhile: so is its job.
		if err := s.JobDelete(ctx, r.account, r.jobID, Conditions{}); err != nil && !errors.Is(err, batch.ErrJobNotFound) {
			s.log.Error("delete job of deleted schedule", "job", r.jobID, "err", err)
		}
	}
}

// loadSchedules rebuilds the schedules at start. A schedule's newest job
// in the store wins over its record: a restart may have come between a
// job's creation and the schedule's update.
func (s *Service) loadSchedules(ctx context.Context, accts []store.Account, w *store.Writes) error {
	newest := map[string]*jobState{} // by schedule key
	newestN := map[string]int{}
	for _, j := range s.jobs {
		sid, rest, ok := strings.Cut(j.id(), ":")
		if !ok || !strings.HasPrefix(rest, "job-") {
			continue
		}
		n, err := strconv.Atoi(rest[len("job-"):])
		if err != nil {
			continue
		}
		k := key(j.account, sid)
		if n > newestN[k] {
			newest[k], newestN[k] = j, n
		}
	}
	for _, a := range accts {
		recs, err := s.cfg.Store.JobScheduleList(ctx, a.Name)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			var r scheduleRecord
			if err := json.Unmarshal(rec.Doc, &r); err != nil {
				return fmt.Errorf("load job schedule %s: %w", rec.ID, err)
			}
			doc := &azbatch.JobSchedule{}
			if err := doc.UnmarshalJSON(r.Schedule); err != nil {
				return fmt.Errorf("load job schedule %s: %w", rec.ID, err)
			}
			sc := &scheduleState{account: a.Name, doc: doc, jobs: r.Jobs, autoPoolID: r.AutoPoolID}
			if r.LastDue != nil {
				sc.lastDue = *r.LastDue
			}
			if j := newest[sc.key()]; j != nil && newestN[sc.key()] > sc.jobs {
				sc.jobs = newestN[sc.key()]
				t := newScheduleTiming(doc.Schedule, deref(doc.CreationTime))
				sc.lastDue = t.dueAt(deref(j.doc.CreationTime))
				sc.execInfo().RecentJob = &azbatch.RecentJob{ID: ptr(j.id()), URL: ptr(s.cfg.AccountURL(a.Name) + "/jobs/" + j.id())}
				if ap := autoPoolSpec(j); ap != nil && deref(ap.PoolLifetimeOption) == azbatch.PoolLifetimeOptionJobSchedule && sc.autoPoolID == "" {
					sc.autoPoolID = j.poolID()
				}
				s.writeScheduleLocked(sc, w)
			}
			s.sched.byKey[sc.key()] = sc
			s.kickScheduleLocked(sc)
		}
	}
	return nil
}
