package service

import (
	"regexp"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/store"
)

func autoPoolInfo(life azbatch.PoolLifetimeOption, prefix string, keepAlive bool) *azbatch.PoolInfo {
	return &azbatch.PoolInfo{AutoPoolSpecification: &azbatch.AutoPoolSpecification{
		PoolLifetimeOption: &life, AutoPoolIDPrefix: &prefix, KeepAlive: &keepAlive,
		Pool: &azbatch.PoolSpecification{VMSize: ptr("standard_d2s_v3"), TargetDedicatedNodes: ptr[int32](1), TaskSlotsPerNode: ptr[int32](2)},
	}}
}

func (b *schedBundle) poolExists(id string) bool {
	_, err := b.svc.PoolGet(b.ctx, schedAcct, id, Conditions{})
	return err == nil
}

var autoPoolIDRE = regexp.MustCompile(`^ap_[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)

func TestAutoPool_JobLifetime(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	for _, keep := range []bool{false, true} {
		id := "job-drop"
		if keep {
			id = "job-keep"
		}
		if _, err := b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: &id, PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJob, "ap", keep)}); err != nil {
			t.Fatal(err)
		}
		j := b.job(t, id)
		poolID := deref(j.ExecutionInfo.PoolID)
		if !autoPoolIDRE.MatchString(poolID) || j.PoolInfo.PoolID != nil || j.PoolInfo.AutoPoolSpecification == nil {
			t.Fatalf("job pool info %+v, execution pool %q", j.PoolInfo, poolID)
		}
		o, err := b.svc.PoolGet(b.ctx, schedAcct, poolID, Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		p := &azbatch.Pool{}
		if err := p.UnmarshalJSON(o.Doc); err != nil {
			t.Fatal(err)
		}
		if deref(p.TaskSlotsPerNode) != 2 || deref(p.TargetDedicatedNodes) != 1 || deref(p.VMSize) != "standard_d2s_v3" {
			t.Fatalf("auto pool = %+v", p)
		}
		// The job runs its tasks there.
		b.svc.mu.Lock()
		got := b.svc.jobs[key(schedAcct, id)].poolID()
		b.svc.mu.Unlock()
		if got != poolID {
			t.Fatalf("job dispatches to %q, want %q", got, poolID)
		}

		b.terminateJob(t, id)
		if b.poolExists(poolID) != keep {
			t.Fatalf("keepAlive %v: pool exists = %v after the job completed", keep, !keep)
		}
	}

	// Deleting the job ends the pool's lifetime too.
	if _, err := b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("job-del"), PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJob, "", false)}); err != nil {
		t.Fatal(err)
	}
	poolID := deref(b.job(t, "job-del").ExecutionInfo.PoolID)
	if len(poolID) != 36 || !b.poolExists(poolID) {
		t.Fatalf("auto pool without prefix %q", poolID)
	}
	if err := b.svc.JobDelete(b.ctx, schedAcct, "job-del", Conditions{}); err != nil {
		t.Fatal(err)
	}
	if b.poolExists(poolID) {
		t.Fatal("auto pool of a deleted job still exists")
	}
}

func TestAutoPool_Errors(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	add := func(pi *azbatch.PoolInfo) error {
		_, err := b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("j"), PoolInfo: pi})
		return err
	}
	// The jobschedule lifetime is for schedules only.
	requireCode(t, add(autoPoolInfo(azbatch.PoolLifetimeOptionJobSchedule, "", false)), "InvalidPropertyValue")
	pi := autoPoolInfo(azbatch.PoolLifetimeOptionJob, "", false)
	pi.AutoPoolSpecification.PoolLifetimeOption = nil
	requireCode(t, add(pi), "MissingRequiredProperty")
	pi = autoPoolInfo(azbatch.PoolLifetimeOptionJob, "a-prefix-that-is-too-long", false)
	requireCode(t, add(pi), "InvalidPropertyValue")
	pi = autoPoolInfo(azbatch.PoolLifetimeOptionJob, "", false)
	pi.PoolID = ptr("p")
	requireCode(t, add(pi), "InvalidPropertyValue")
	pi = autoPoolInfo(azbatch.PoolLifetimeOptionJob, "", false)
	pi.AutoPoolSpecification.Pool.VMSize = nil
	err := add(pi)
	requireCode(t, err, "MissingRequiredProperty")
	if got := err.Error(); got == "" {
		t.Fatal("empty error")
	}
	pi = autoPoolInfo(azbatch.PoolLifetimeOptionJob, "", false)
	pi.AutoPoolSpecification.Pool = nil
	requireCode(t, add(pi), "MissingRequiredProperty")
	b.svc.mu.Lock()
	n := len(b.svc.pools)
	b.svc.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d pools after refused jobs", n)
	}
}

func TestAutoPool_ScheduleLifetime(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	spec := &azbatch.JobSpecification{PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJobSchedule, "ap", false)}
	b.addSchedule(t, "sp", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT1M")}, spec)
	pool1 := deref(b.job(t, "sp:job-1").ExecutionInfo.PoolID)
	if !autoPoolIDRE.MatchString(pool1) || !b.poolExists(pool1) {
		t.Fatalf("schedule auto pool %q", pool1)
	}
	// The pool outlives the job and serves the next one.
	b.terminateJob(t, "sp:job-1")
	if !b.poolExists(pool1) {
		t.Fatal("jobschedule pool deleted with the first job")
	}
	b.advance(t, time.Minute)
	if got := deref(b.job(t, "sp:job-2").ExecutionInfo.PoolID); got != pool1 {
		t.Fatalf("job-2 runs on %q, want %q", got, pool1)
	}
	// It survives a restart, and goes when the schedule completes.
	b.restart(t)
	b.settle(t)
	if !b.poolExists(pool1) {
		t.Fatal("pool lost in restart")
	}
	if _, err := b.svc.JobScheduleTerminate(b.ctx, schedAcct, "sp", Conditions{}); err != nil {
		t.Fatal(err)
	}
	if b.poolExists(pool1) {
		t.Fatal("jobschedule pool still exists after the schedule completed")
	}

	// The job lifetime on a schedule: a pool per job, gone with each job.
	spec = &azbatch.JobSpecification{PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJob, "per", false)}
	b.addSchedule(t, "pj", &azbatch.JobScheduleConfiguration{RecurrenceInterval: ptr("PT1M")}, spec)
	p1 := deref(b.job(t, "pj:job-1").ExecutionInfo.PoolID)
	b.terminateJob(t, "pj:job-1")
	if b.poolExists(p1) {
		t.Fatal("per-job pool kept after its job")
	}
	b.advance(t, time.Minute)
	p2 := deref(b.job(t, "pj:job-2").ExecutionInfo.PoolID)
	if p2 == p1 || !b.poolExists(p2) {
		t.Fatalf("job-2 pool %q (job-1 had %q)", p2, p1)
	}
	// Deleting the schedule deletes its job and so the job's pool.
	if err := b.svc.JobScheduleDelete(b.ctx, schedAcct, "pj", Conditions{}); err != nil {
		t.Fatal(err)
	}
	if b.poolExists(p2) {
		t.Fatal("pool of a deleted schedule's job still exists")
	}

	// keepAlive keeps the schedule's pool.
	spec = &azbatch.JobSpecification{PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJobSchedule, "keep", true)}
	b.addSchedule(t, "kp", nil, spec)
	kp := deref(b.job(t, "kp:job-1").ExecutionInfo.PoolID)
	b.terminateJob(t, "kp:job-1")
	if st := deref(b.schedule(t, "kp").State); st != azbatch.JobScheduleStateCompleted {
		t.Fatalf("state = %s", st)
	}
	if !b.poolExists(kp) {
		t.Fatal("keepAlive pool deleted")
	}
}

func TestAutoPool_RecreatedAfterRestart(t *testing.T) {
	t.Parallel()
	b := setupSchedule(t)
	if _, err := b.svc.JobAdd(b.ctx, schedAcct, &azbatch.CreateJobContent{ID: ptr("rj"), PoolInfo: autoPoolInfo(azbatch.PoolLifetimeOptionJob, "ap", false)}); err != nil {
		t.Fatal(err)
	}
	poolID := deref(b.job(t, "rj").ExecutionInfo.PoolID)
	// A restart between the job's commit and its pool's loses the pool.
	b.svc.Close()
	if err := b.st.Apply(b.ctx, &store.Writes{DeletePools: []store.Pool{{Account: schedAcct, ID: poolID}}}); err != nil {
		t.Fatal(err)
	}
	b.start(t)
	if !b.poolExists(poolID) {
		t.Fatal("auto pool not recreated at load")
	}
}
