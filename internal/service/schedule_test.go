package service

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// schedBundle is a service on a real SQLite store with a fake clock, so
// that minutes of schedule pass in milliseconds. Its provider starts no
// node: these tests look at jobs and pools, not tasks.
type schedBundle struct {
	ctx   context.Context
	clock *fakeClock
	st    *sqlite.Store
	svc   *Service
}

const schedAcct = "acct"

var schedT0 = time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC)

func setupSchedule(t *testing.T) *schedBundle {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &schedBundle{ctx: t.Context(), clock: newFakeClock(schedT0), st: st}
	b.start(t)
	if _, err := b.svc.EnsureAccount(b.ctx, schedAcct, ""); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *schedBundle) start(t *testing.T) {
	t.Helper()
	svc, err := New(b.ctx, Config{Store: b.st, Provider: idleProvider{}, Clock: b.clock,
		AccountURL: func(string) string { return "http://kiln.test" }})
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	b.svc = svc
	t.Cleanup(svc.Close)
}

// restart stops the service and starts another on the same store.
func (b *schedBundle) restart(t *testing.T) {
	t.Helper()
	b.svc.Close()
	b.start(t)
}

// settle waits until the runner has done everything due at the clock's
// time and sleeps.
func (b *schedBundle) settle(t *testing.T) {
	t.Helper()
	eventually(t, "schedule runner idle", func() bool {
		s := b.svc
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.sched.waiting || len(s.sched.wake) > 0 {
			return false
		}
		if s.sched.due.Len() > 0 && !s.sched.due[0].at.After(s.now()) {
			return false
		}
		for _, sc := range s.sched.byKey {
			if sc.creating {
				return false
			}
		}
		return true
	})
}

// advance moves the clock and waits for the runner.
func (b *schedBundle) advance(t *testing.T, d time.Duration) {
	t.Helper()
	b.clock.Advance(d)
	b.settle(t)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (b *schedBundle) addSchedule(t *testing.T, id string, cfg *azbatch.JobScheduleConfiguration, spec *azbatch.JobSpecification) {
	t.Helper()
	if spec == nil {
		spec = &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool1")}}
	}
	if _, err := b.svc.JobScheduleAdd(b.ctx, schedAcct, &azbatch.CreateJobScheduleContent{ID: &id, Schedule: cfg, JobSpecification: spec}); err != nil {
		t.Fatal(err)
	}
	b.settle(t)
}

func (b *schedBundle) schedule(t *testing.T, id string) *azbatch.JobSchedule {
	t.Helper()
	o, err := b.svc.JobScheduleGet(b.ctx, schedAcct, id, Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	doc := &azbatch.JobSchedule{}
	if err := doc.UnmarshalJSON(o.Doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func (b *schedBundle) job(t *testing.T, id string) *azbatch.Job {
	t.Helper()
	o, err := b.svc.JobGet(b.ctx, schedAcct, id, Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	doc := &azbatch.Job{}
	if err := doc.UnmarshalJSON(o.Doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// jobIDs lists the schedule's jobs.
func (b *schedBundle) jobIDs(t *testing.T, scheduleID string) []string {
	t.Helper()
	page, err := b.svc.JobListFromSchedule(b.ctx, schedAcct, scheduleID, ListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range page.Items {
		doc := &azbatch.Job{}
		if err := doc.UnmarshalJSON(o.Doc); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *doc.ID)
	}
	return ids
}

func (b *schedBundle) requireJobs(t *testing.T, scheduleID string, want ...string) {
	t.Helper()
	if got := b.jobIDs(t, scheduleID); !slices.Equal(got, want) {
		t.Fatalf("jobs of %s = %q, want %q", scheduleID, got, want)
	}
}

func (b *schedBundle) terminateJob(t *testing.T, id string) {
	t.Helper()
	if _, err := b.svc.JobTerminate(b.ctx, schedAcct, id, nil, Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.settle(t)
}

func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	var be *batch.Error
	if !errors.As(err, &be) || be.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func requireTime(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if got != nil {
			t.Fatalf("%s = %v, want none", what, *got)
		}
		return
	}
	if got == nil || !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func TestJobSchedule_Recurrence(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "sched", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT1M")}, nil)

	// Without doNotRunUntil the first job comes at once.
	b.requireJobs(t, "sched", "sched:job-1")
	sc := b.schedule(t, "sched")
	if got := deref(sc.ExecutionInfo.RecentJob.ID); got != "sched:job-1" {
		t.Fatalf("recentJob = %q", got)
	}
	if got := deref(sc.ExecutionInfo.RecentJob.URL); got != "http://kiln.test/jobs/sched:job-1" {
		t.Fatalf("recentJob url = %q", got)
	}
	requireTime(t, "nextRunTime", sc.ExecutionInfo.NextRunTime, schedT0.Add(time.Minute))
	j := b.job(t, "sched:job-1")
	if deref(j.PoolInfo.PoolID) != "pool1" || deref(j.State) != azbatch.JobStateActive {
		t.Fatalf("job = %+v", j)
	}

	// One minute on, job-1 is still active: the run waits for it.
	b.advance(t, time.Minute)
	b.requireJobs(t, "sched", "sched:job-1")
	requireTime(t, "nextRunTime", b.schedule(t, "sched").ExecutionInfo.NextRunTime, schedT0.Add(time.Minute))

	// job-1 ends within the interval: the waiting run gets job-2 at once.
	b.clock.Advance(20 * time.Second)
	b.terminateJob(t, "sched:job-1")
	b.requireJobs(t, "sched", "sched:job-1", "sched:job-2")
	requireTime(t, "nextRunTime", b.schedule(t, "sched").ExecutionInfo.NextRunTime, schedT0.Add(2*time.Minute))

	// A finished job and a new interval: job-3, on time.
	b.terminateJob(t, "sched:job-2")
	b.requireJobs(t, "sched", "sched:job-1", "sched:job-2")
	b.advance(t, 40*time.Second)
	b.requireJobs(t, "sched", "sched:job-1", "sched:job-2", "sched:job-3")
	if got := deref(b.job(t, "sched:job-3").CreationTime); !got.Equal(schedT0.Add(2 * time.Minute)) {
		t.Fatalf("job-3 created at %v", got)
	}

	// Intervals missed while a job runs are not made up for: one job for
	// the current interval when it ends.
	b.advance(t, 5*time.Minute+10*time.Second)
	b.requireJobs(t, "sched", "sched:job-1", "sched:job-2", "sched:job-3")
	b.terminateJob(t, "sched:job-3")
	b.requireJobs(t, "sched", "sched:job-1", "sched:job-2", "sched:job-3", "sched:job-4")
	b.terminateJob(t, "sched:job-4")
	b.advance(t, 30*time.Second)
	b.requireJobs(t, "sched", "sched:job-1", "sched:job-2", "sched:job-3", "sched:job-4")
	b.advance(t, 30*time.Second)
	b.requireJobs(t, "sched", "sched:job-1", "sched:job-2", "sched:job-3", "sched:job-4", "sched:job-5")
}

func TestJobSchedule_StartWindow(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "win", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT10M"), StartWindow: ptr("PT1M")}, nil)
	b.requireJobs(t, "win", "win:job-1")

	// The second run is due at 10m while job-1 still runs; job-1 ends
	// after the run's one-minute window: that run is lost.
	b.advance(t, 10*time.Minute)
	requireTime(t, "nextRunTime", b.schedule(t, "win").ExecutionInfo.NextRunTime, schedT0.Add(10*time.Minute))
	b.advance(t, time.Minute+time.Second)
	requireTime(t, "nextRunTime", b.schedule(t, "win").ExecutionInfo.NextRunTime, schedT0.Add(20*time.Minute))
	b.terminateJob(t, "win:job-1")
	b.requireJobs(t, "win", "win:job-1")

	// The third run is on time.
	b.advance(t, 9*time.Minute)
	b.requireJobs(t, "win", "win:job-1", "win:job-2")
}

func TestJobSchedule_DoNotRunUntilAndAfter(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "window", &azbatch.JobScheduleConfiguration{
		DoNotRunUntil:      ptr(schedT0.Add(time.Minute)),
		DoNotRunAfter:      ptr(schedT0.Add(3*time.Minute + 30*time.Second)),
		RecurrenceInterval: ptr("PT1M"),
	}, nil)
	b.requireJobs(t, "window")
	requireTime(t, "nextRunTime", b.schedule(t, "window").ExecutionInfo.NextRunTime, schedT0.Add(time.Minute))

	for i, id := range []string{"window:job-1", "window:job-2", "window:job-3"} {
		b.advance(t, time.Minute)
		if ids := b.jobIDs(t, "window"); len(ids) != i+1 || ids[i] != id {
			t.Fatalf("after %d minutes jobs = %q", i+2, ids)
		}
		b.terminateJob(t, id)
	}
	// The next run would be at 4m, after doNotRunAfter: none shows.
	sc := b.schedule(t, "window")
	requireTime(t, "nextRunTime", sc.ExecutionInfo.NextRunTime, time.Time{})
	if deref(sc.State) != azbatch.JobScheduleStateActive {
		t.Fatalf("state = %s before doNotRunAfter", deref(sc.State))
	}
	// At doNotRunAfter, with no active job, the schedule completes.
	b.advance(t, 30*time.Second)
	sc = b.schedule(t, "window")
	if deref(sc.State) != azbatch.JobScheduleStateCompleted {
		t.Fatalf("state = %s after doNotRunAfter", deref(sc.State))
	}
	requireTime(t, "endTime", sc.ExecutionInfo.EndTime, schedT0.Add(3*time.Minute+30*time.Second))
	b.advance(t, time.Hour)
	b.requireJobs(t, "window", "window:job-1", "window:job-2", "window:job-3")
}

func TestJobSchedule_DoNotRunAfterWaitsForActiveJob(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "late", &azbatch.JobScheduleConfiguration{
		DoNotRunAfter: ptr(schedT0.Add(time.Minute)), RecurrenceInterval: ptr("PT1M"),
	}, nil)
	b.requireJobs(t, "late", "late:job-1")
	b.advance(t, 2*time.Minute)
	if st := deref(b.schedule(t, "late").State); st != azbatch.JobScheduleStateActive {
		t.Fatalf("state = %s with an active job", st)
	}
	b.terminateJob(t, "late:job-1")
	if st := deref(b.schedule(t, "late").State); st != azbatch.JobScheduleStateCompleted {
		t.Fatalf("state = %s once its job ended", st)
	}
	b.requireJobs(t, "late", "late:job-1")
}

func TestJobSchedule_Once(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "once", &azbatch.JobScheduleConfiguration{DoNotRunUntil: ptr(schedT0.Add(2 * time.Second))}, nil)
	b.requireJobs(t, "once")
	b.advance(t, 2*time.Second)
	b.requireJobs(t, "once", "once:job-1")
	sc := b.schedule(t, "once")
	requireTime(t, "nextRunTime", sc.ExecutionInfo.NextRunTime, time.Time{})
	if deref(sc.State) != azbatch.JobScheduleStateActive {
		t.Fatalf("state = %s while its job runs", deref(sc.State))
	}
	// A non-recurring schedule completes when its job does.
	b.advance(t, time.Hour)
	b.terminateJob(t, "once:job-1")
	sc = b.schedule(t, "once")
	if deref(sc.State) != azbatch.JobScheduleStateCompleted || sc.ExecutionInfo.EndTime == nil {
		t.Fatalf("schedule = %+v, want completed with an end time", sc)
	}
	b.advance(t, time.Hour)
	b.requireJobs(t, "once", "once:job-1")
}

func TestJobSchedule_DisableEnable(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "dis", &azbatch.JobScheduleConfiguration{DoNotRunUntil: ptr(schedT0.Add(time.Minute)), RecurrenceInterval: ptr("PT1M")}, nil)
	if _, err := b.svc.JobScheduleDisable(b.ctx, schedAcct, "dis", Conditions{}); err != nil {
		t.Fatal(err)
	}
	// Disabling twice is fine.
	if _, err := b.svc.JobScheduleDisable(b.ctx, schedAcct, "dis", Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.advance(t, 90*time.Second)
	b.requireJobs(t, "dis")
	sc := b.schedule(t, "dis")
	if deref(sc.State) != azbatch.JobScheduleStateDisabled || deref(sc.PreviousState) != azbatch.JobScheduleStateActive {
		t.Fatalf("state %s, previous %s", deref(sc.State), deref(sc.PreviousState))
	}
	// Enabled within the interval (no start window), the run due at 1m
	// gets its job.
	if _, err := b.svc.JobScheduleEnable(b.ctx, schedAcct, "dis", Conditions{}); err != nil {
		t.Fatal(err)
	}
	b.settle(t)
	b.requireJobs(t, "dis", "dis:job-1")
}

func TestJobSchedule_Terminate(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "term", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT1M")}, nil)
	b.requireJobs(t, "term", "term:job-1")
	if _, err := b.svc.JobScheduleTerminate(b.ctx, schedAcct, "term", Conditions{}); err != nil {
		t.Fatal(err)
	}
	j := b.job(t, "term:job-1")
	if deref(j.State) != azbatch.JobStateCompleted || deref(j.ExecutionInfo.TerminationReason) != "TerminateJobSchedule" {
		t.Fatalf("job state %s reason %s", deref(j.State), deref(j.ExecutionInfo.TerminationReason))
	}
	sc := b.schedule(t, "term")
	if deref(sc.State) != azbatch.JobScheduleStateCompleted || deref(sc.PreviousState) != azbatch.JobScheduleStateTerminating {
		t.Fatalf("state %s, previous %s", deref(sc.State), deref(sc.PreviousState))
	}
	_, err := b.svc.JobScheduleTerminate(b.ctx, schedAcct, "term", Conditions{})
	requireCode(t, err, "JobScheduleCompleted")
	_, err = b.svc.JobScheduleEnable(b.ctx, schedAcct, "term", Conditions{})
	requireCode(t, err, "JobScheduleCompleted")
	_, err = b.svc.JobSchedulePatch(b.ctx, schedAcct, "term", &azbatch.UpdateJobScheduleContent{}, Conditions{})
	requireCode(t, err, "JobScheduleCompleted")
	b.advance(t, 10*time.Minute)
	b.requireJobs(t, "term", "term:job-1")
}

func TestJobSchedule_Delete(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "del", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT1M")}, nil)
	b.terminateJob(t, "del:job-1")
	b.advance(t, time.Minute)
	b.requireJobs(t, "del", "del:job-1", "del:job-2")
	if err := b.svc.JobScheduleDelete(b.ctx, schedAcct, "del", Conditions{}); err != nil {
		t.Fatal(err)
	}
	_, err := b.svc.JobScheduleGet(b.ctx, schedAcct, "del", Conditions{})
	requireCode(t, err, "JobScheduleNotFound")
	for _, id := range []string{"del:job-1", "del:job-2"} {
		_, err := b.svc.JobGet(b.ctx, schedAcct, id, Conditions{})
		requireCode(t, err, "JobNotFound")
	}
	_, err = b.svc.JobListFromSchedule(b.ctx, schedAcct, "del", ListParams{})
	requireCode(t, err, "JobScheduleNotFound")
	if _, err := b.st.JobScheduleGet(b.ctx, schedAcct, "del"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("store still has the schedule: %v", err)
	}
	// The id is free again.
	b.addSchedule(t, "del", nil, nil)
	b.requireJobs(t, "del", "del:job-1")
}

func TestJobSchedule_PatchAndReplace(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "upd", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT1M")}, nil)
	before := b.schedule(t, "upd")
	b.terminateJob(t, "upd:job-1")

	// A new specification applies to the next job; the schedule is kept.
	b.clock.Advance(time.Second)
	_, err := b.svc.JobSchedulePatch(b.ctx, schedAcct, "upd", &azbatch.UpdateJobScheduleContent{
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool2")}, Priority: ptr[int32](7)},
		Metadata:         []azbatch.MetadataItem{{Name: ptr("k"), Value: ptr("v")}},
	}, Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	after := b.schedule(t, "upd")
	if deref(after.Schedule.RecurrenceInterval) != "PT1M" || len(after.Metadata) != 1 || deref(after.ETag) == deref(before.ETag) {
		t.Fatalf("patched schedule = %+v", after)
	}
	b.advance(t, time.Minute)
	j := b.job(t, "upd:job-2")
	if deref(j.PoolInfo.PoolID) != "pool2" || deref(j.Priority) != 7 {
		t.Fatalf("job-2 pool %s priority %d", deref(j.PoolInfo.PoolID), deref(j.Priority))
	}

	// An update replaces everything: no metadata, and no schedule means
	// one run (done already): the schedule completes once job-2 ends.
	_, err = b.svc.JobScheduleReplace(b.ctx, schedAcct, "upd", &azbatch.JobSchedule{
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool3")}},
	}, Conditions{IfMatch: deref((*string)(before.ETag))})
	requireCode(t, err, "ConditionNotMet")
	_, err = b.svc.JobScheduleReplace(b.ctx, schedAcct, "upd", &azbatch.JobSchedule{
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: ptr("pool3")}},
	}, Conditions{})
	if err != nil {
		t.Fatal(err)
	}
	sc := b.schedule(t, "upd")
	if len(sc.Metadata) != 0 || sc.Schedule.RecurrenceInterval != nil || deref(sc.JobSpecification.PoolInfo.PoolID) != "pool3" {
		t.Fatalf("replaced schedule = %+v", sc)
	}
	b.terminateJob(t, "upd:job-2")
	if st := deref(b.schedule(t, "upd").State); st != azbatch.JobScheduleStateCompleted {
		t.Fatalf("state = %s", st)
	}
	_, err = b.svc.JobScheduleReplace(b.ctx, schedAcct, "upd", &azbatch.JobSchedule{}, Conditions{})
	requireCode(t, err, "MissingRequiredProperty")
}

func TestJobSchedule_Errors(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	add := func(id string, cfg *azbatch.JobScheduleConfiguration, spec *azbatch.JobSpecification) error {
		if spec == nil {
			spec = &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: ptr("p")}}
		}
		_, err := b.svc.JobScheduleAdd(b.ctx, schedAcct, &azbatch.CreateJobScheduleContent{ID: &id, Schedule: cfg, JobSpecification: spec})
		return err
	}
	requireCode(t, add("s1", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT59S")}, nil), "InvalidPropertyValue")
	requireCode(t, add("s1", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("1 minute")}, nil), "InvalidPropertyValue")
	requireCode(t, add("s1", &azbatch.JobScheduleConfiguration{StartWindow: ptr("PT30S")}, nil), "InvalidPropertyValue")
	requireCode(t, add("s1", &azbatch.JobScheduleConfiguration{DoNotRunAfter: ptr(schedT0.Add(-time.Second))}, nil), "InvalidPropertyValue")
	requireCode(t, add("s1", &azbatch.JobScheduleConfiguration{DoNotRunUntil: ptr(schedT0.Add(time.Hour)), DoNotRunAfter: ptr(schedT0.Add(time.Minute))}, nil), "InvalidPropertyValue")
	requireCode(t, add("s1", nil, &azbatch.JobSpecification{}), "MissingRequiredProperty")
	requireCode(t, add("s1", nil, &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: ptr("p")}, Priority: ptr[int32](5000)}), "InvalidPropertyValue")
	requireCode(t, add("bad:id", nil, nil), "InvalidPropertyValue")
	_, err := b.svc.JobScheduleAdd(b.ctx, schedAcct, &azbatch.CreateJobScheduleContent{ID: ptr("s1")})
	requireCode(t, err, "MissingRequiredProperty")

	// The property named is where the request has it.
	err = add("s1", nil, &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{}})
	var be *batch.Error
	if !errors.As(err, &be) || len(be.Values) == 0 || be.Values[0].Value != "jobSpecification.poolInfo.poolId" {
		t.Fatalf("error = %+v", err)
	}

	if err := add("s1", &azbatch.JobScheduleConfiguration{DoNotRunUntil: ptr(schedT0.Add(time.Hour))}, nil); err != nil {
		t.Fatal(err)
	}
	requireCode(t, add("S1", nil, nil), "JobScheduleExists")
	// Jobs and schedules share their ids.
	_, err = b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("s1"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("p")}})
	requireCode(t, err, "JobScheduleWithSameIdExists")
	if _, err := b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("j1"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("p")}}); err != nil {
		t.Fatal(err)
	}
	requireCode(t, add("J1", nil, nil), "JobWithSameIdExists")
	// Users cannot take a schedule's job ids.
	_, err = b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("s1:job-1"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("p")}})
	requireCode(t, err, "InvalidPropertyValue")

	for _, op := range []func() error{
		func() error { _, err := b.svc.JobScheduleGet(b.ctx, schedAcct, "nope", Conditions{}); return err },
		func() error { return b.svc.JobScheduleDelete(b.ctx, schedAcct, "nope", Conditions{}) },
		func() error { _, err := b.svc.JobScheduleDisable(b.ctx, schedAcct, "nope", Conditions{}); return err },
		func() error { _, err := b.svc.JobScheduleEnable(b.ctx, schedAcct, "nope", Conditions{}); return err },
		func() error { _, err := b.svc.JobScheduleTerminate(b.ctx, schedAcct, "nope", Conditions{}); return err },
		func() error {
			_, err := b.svc.JobSchedulePatch(b.ctx, schedAcct, "nope", &azbatch.UpdateJobScheduleContent{}, Conditions{})
			return err
		},
		func() error { _, err := b.svc.JobListFromSchedule(b.ctx, schedAcct, "nope", ListParams{}); return err },
	} {
		requireCode(t, op(), "JobScheduleNotFound")
	}
}

func TestJobSchedule_List(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	for _, id := range []string{"c", "a", "b"} {
		b.addSchedule(t, id, &azbatch.JobScheduleConfiguration{DoNotRunUntil: ptr(schedT0.Add(time.Hour))}, nil)
	}
	page, err := b.svc.JobScheduleList(b.ctx, schedAcct, ListParams{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Next != "b" {
		t.Fatalf("first page: %d items, next %q", len(page.Items), page.Next)
	}
	page, err = b.svc.JobScheduleList(b.ctx, schedAcct, ListParams{Limit: 2, Cursor: page.Next})
	if err != nil || len(page.Items) != 1 || page.Next != "" {
		t.Fatalf("second page: %v, %d items, next %q", err, len(page.Items), page.Next)
	}
	page, err = b.svc.JobScheduleList(b.ctx, "other", ListParams{})
	if err != nil || len(page.Items) != 0 {
		t.Fatalf("other account: %v, %d items", err, len(page.Items))
	}
}

func TestJobSchedule_Restart(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	b.addSchedule(t, "rs", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT1M")}, nil)
	b.requireJobs(t, "rs", "rs:job-1")

	// A restart while job-1 runs creates nothing new, now or at the next
	// interval (job-1 is still active).
	b.restart(t)
	b.settle(t)
	b.requireJobs(t, "rs", "rs:job-1")
	b.advance(t, time.Minute)
	b.requireJobs(t, "rs", "rs:job-1")
	b.terminateJob(t, "rs:job-1")
	b.requireJobs(t, "rs", "rs:job-1", "rs:job-2")
	b.terminateJob(t, "rs:job-2")

	// A restart that lost the schedule's update after job-3 was created:
	// the store has job-3 but the schedule's record still says 2 jobs.
	// The restarted runner takes job-3 as the run's, never a job-4 for it.
	b.svc.Close()
	rec, err := b.st.JobGet(b.ctx, schedAcct, "rs:job-2")
	if err != nil {
		t.Fatal(err)
	}
	j3 := &azbatch.Job{}
	if err := j3.UnmarshalJSON(rec.Doc); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Minute)
	now := b.clock.Now()
	j3.ID, j3.State, j3.CreationTime = ptr("rs:job-3"), ptr(azbatch.JobStateActive), &now
	j3.ExecutionInfo.EndTime, j3.ExecutionInfo.TerminationReason = nil, nil
	doc, err := j3.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.JobInsert(b.ctx, store.Job{Account: schedAcct, ID: "rs:job-3", PoolID: "pool1", State: "active", Doc: doc}); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	b.settle(t)
	b.requireJobs(t, "rs", "rs:job-1", "rs:job-2", "rs:job-3")
	if got := deref(b.schedule(t, "rs").ExecutionInfo.RecentJob.ID); got != "rs:job-3" {
		t.Fatalf("recentJob = %s", got)
	}
	b.terminateJob(t, "rs:job-3")
	b.requireJobs(t, "rs", "rs:job-1", "rs:job-2", "rs:job-3")
	b.advance(t, time.Minute)
	b.requireJobs(t, "rs", "rs:job-1", "rs:job-2", "rs:job-3", "rs:job-4")

	// A schedule caught deleting by a restart finishes its deletion.
	b.svc.Close()
	recS, err := b.st.JobScheduleGet(b.ctx, schedAcct, "rs")
	if err != nil {
		t.Fatal(err)
	}
	recS.State = string(azbatch.JobScheduleStateDeleting)
	recS.Doc = []byte(strings.Replace(string(recS.Doc), `"state":"active"`, `"state":"deleting"`, 1))
	if err := b.st.Apply(b.ctx, &store.Writes{JobSchedules: []store.JobSchedule{recS}}); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	eventually(t, "schedule deleted", func() bool {
		_, err := b.svc.JobScheduleGet(b.ctx, schedAcct, "rs", Conditions{})
		return err != nil
	})
	eventually(t, "jobs deleted", func() bool {
		_, err := b.svc.JobGet(b.ctx, schedAcct, "rs:job-4", Conditions{})
		return err != nil
	})
}
