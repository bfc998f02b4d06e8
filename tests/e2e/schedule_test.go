package e2e

// Job schedules through the official Go SDK: CRUD and errors, a schedule
// that runs once and whose job runs its tasks on real agents, termination
// and deletion with an active job, and a restart that must not run a
// schedule twice.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// schedGet returns a job schedule or fails the test.
func schedGet(t testing.TB, s *Server, id string) azbatch.JobSchedule {
	t.Helper()
	r, err := s.Client.GetJobSchedule(ctx(t), id, nil)
	if err != nil {
		t.Fatalf("get job schedule %s: %v", id, err)
	}
	return r.JobSchedule
}

// schedJobIDs lists the ids of a schedule's jobs through the SDK's pager.
func schedJobIDs(t testing.TB, s *Server, id string, opts *azbatch.ListJobsFromScheduleOptions) ([]string, error) {
	var ids []string
	pager := s.Client.NewListJobsFromSchedulePager(id, opts)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			return nil, err
		}
		for _, j := range page.Value {
			ids = append(ids, *j.ID)
		}
	}
	return ids, nil
}

func schedRequireJobs(t testing.TB, s *Server, id string, want ...string) {
	t.Helper()
	got, err := schedJobIDs(t, s, id, nil)
	if err != nil {
		t.Fatalf("list jobs of %s: %v", id, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("jobs of %s = %q, want %q", id, got, want)
	}
}

// schedWaitState waits until the schedule is in state want.
func schedWaitState(t testing.TB, s *Server, id string, want azbatch.JobScheduleState) azbatch.JobSchedule {
	t.Helper()
	var sc azbatch.JobSchedule
	eventually(t, 30*time.Second, fmt.Sprintf("job schedule %s %s", id, want), func() error {
		r, err := s.Client.GetJobSchedule(ctx(t), id, nil)
		if err != nil {
			return err
		}
		sc = r.JobSchedule
		if *sc.State != want {
			return fmt.Errorf("state %s", *sc.State)
		}
		return nil
	})
	return sc
}

func schedExpectError(t testing.TB, err error, status int, code string) {
	t.Helper()
	if err == nil || statusOf(err) != status || batchCode(err) != code {
		t.Fatalf("error = %v, want %d %s", err, status, code)
	}
}

func TestJobSchedule_CRUD(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := s.Client
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	_, err := c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{
		ID:          to("nightly"),
		DisplayName: to("Nightly run"),
		Schedule:    &azbatch.JobScheduleConfiguration{DoNotRunUntil: &until, RecurrenceInterval: to("P1D"), StartWindow: to("PT1H")},
		JobSpecification: &azbatch.JobSpecification{
			PoolInfo: &azbatch.PoolInfo{PoolID: to("pool")},
			Priority: to[int32](5),
			Metadata: []azbatch.MetadataItem{{Name: to("kind"), Value: to("nightly")}},
		},
		Metadata: []azbatch.MetadataItem{{Name: to("owner"), Value: to("e2e")}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	sc := schedGet(t, s, "nightly")
	if *sc.State != azbatch.JobScheduleStateActive || *sc.DisplayName != "Nightly run" || *sc.URL != s.URL+"/jobschedules/nightly" ||
		sc.ETag == nil || sc.CreationTime == nil || sc.LastModified == nil || len(sc.Metadata) != 1 {
		t.Fatalf("schedule = %+v", sc)
	}
	if *sc.Schedule.RecurrenceInterval != "P1D" || *sc.Schedule.StartWindow != "PT1H" || !sc.Schedule.DoNotRunUntil.Equal(until) {
		t.Fatalf("schedule timing = %+v", sc.Schedule)
	}
	if sc.ExecutionInfo == nil || sc.ExecutionInfo.NextRunTime == nil || !sc.ExecutionInfo.NextRunTime.Equal(until) || sc.ExecutionInfo.RecentJob != nil {
		t.Fatalf("execution info = %+v", sc.ExecutionInfo)
	}
	// The job specification shows Azure's defaults.
	js := sc.JobSpecification
	if *js.Priority != 5 || *js.Constraints.MaxTaskRetryCount != 0 || *js.Constraints.MaxWallClockTime == "" ||
		*js.OnAllTasksComplete != azbatch.OnAllTasksCompleteNoAction || *js.PoolInfo.PoolID != "pool" {
		t.Fatalf("job specification = %+v", js)
	}

	// Exists: 200 with the ETag, or 404 (no error from the SDK either way).
	ex, err := c.JobScheduleExists(ctx(t), "nightly", nil)
	if err != nil || ex.ETag == nil || *ex.ETag != *sc.ETag {
		t.Fatalf("exists: %v %+v", err, ex)
	}
	ex, err = c.JobScheduleExists(ctx(t), "nope", nil)
	if err != nil || ex.ETag != nil {
		t.Fatalf("exists of a missing schedule: %v %+v", err, ex)
	}

	// Errors.
	_, err = c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to("NIGHTLY"), Schedule: &azbatch.JobScheduleConfiguration{},
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: to("pool")}}}, nil)
	schedExpectError(t, err, http.StatusConflict, "JobScheduleExists")
	_, err = c.GetJobSchedule(ctx(t), "nope", nil)
	schedExpectError(t, err, http.StatusNotFound, "JobScheduleNotFound")
	_, err = c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to("fast"), Schedule: &azbatch.JobScheduleConfiguration{RecurrenceInterval: to("PT30S")},
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: to("pool")}}}, nil)
	schedExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	_, err = c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to("past"), Schedule: &azbatch.JobScheduleConfiguration{DoNotRunAfter: to(time.Now().Add(-time.Hour))},
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: to("pool")}}}, nil)
	schedExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	_, err = c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to("nospec"), Schedule: &azbatch.JobScheduleConfiguration{}}, nil)
	schedExpectError(t, err, http.StatusBadRequest, "MissingRequiredProperty")
	_, err = c.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("nightly"), PoolInfo: &azbatch.PoolInfo{PoolID: to("pool")}}, nil)
	schedExpectError(t, err, http.StatusConflict, "JobScheduleWithSameIdExists")
	for _, op := range []func() error{
		func() error { _, err := c.DisableJobSchedule(ctx(t), "nope", nil); return err },
		func() error { _, err := c.EnableJobSchedule(ctx(t), "nope", nil); return err },
		func() error { _, err := c.TerminateJobSchedule(ctx(t), "nope", nil); return err },
		func() error { _, err := c.DeleteJobSchedule(ctx(t), "nope", nil); return err },
		func() error {
			_, err := c.UpdateJobSchedule(ctx(t), "nope", azbatch.UpdateJobScheduleContent{}, nil)
			return err
		},
	} {
		schedExpectError(t, op(), http.StatusNotFound, "JobScheduleNotFound")
	}
	_, err = schedJobIDs(t, s, "nope", nil)
	schedExpectError(t, err, http.StatusNotFound, "JobScheduleNotFound")

	// Patch: only what is named changes; a stale ETag is refused.
	_, err = c.UpdateJobSchedule(ctx(t), "nightly", azbatch.UpdateJobScheduleContent{Metadata: []azbatch.MetadataItem{{Name: to("owner"), Value: to("ops")}}},
		&azbatch.UpdateJobScheduleOptions{IfMatch: sc.ETag})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateJobSchedule(ctx(t), "nightly", azbatch.UpdateJobScheduleContent{}, &azbatch.UpdateJobScheduleOptions{IfMatch: sc.ETag})
	schedExpectError(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	sc = schedGet(t, s, "nightly")
	if *sc.Metadata[0].Value != "ops" || *sc.Schedule.RecurrenceInterval != "P1D" || *sc.JobSpecification.Priority != 5 {
		t.Fatalf("patched schedule = %+v", sc)
	}
	// Update (PUT): everything is replaced.
	_, err = c.ReplaceJobSchedule(ctx(t), "nightly", azbatch.JobSchedule{
		Schedule:         &azbatch.JobScheduleConfiguration{DoNotRunUntil: &until, RecurrenceInterval: to("PT2H")},
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: to("pool2")}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc = schedGet(t, s, "nightly")
	if *sc.Schedule.RecurrenceInterval != "PT2H" || sc.Schedule.StartWindow != nil || len(sc.Metadata) != 0 || *sc.JobSpecification.Priority != 0 || *sc.JobSpecification.PoolInfo.PoolID != "pool2" {
		t.Fatalf("replaced schedule = %+v", sc)
	}

	// List, with OData.
	for _, id := range []string{"alpha", "omega"} {
		if _, err := c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to(id), Schedule: &azbatch.JobScheduleConfiguration{DoNotRunUntil: &until},
			JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: to("pool")}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DisableJobSchedule(ctx(t), "omega", nil); err != nil {
		t.Fatal(err)
	}
	list := func(opts *azbatch.ListJobSchedulesOptions) []azbatch.JobSchedule {
		var out []azbatch.JobSchedule
		pager := c.NewListJobSchedulesPager(opts)
		for pager.More() {
			page, err := pager.NextPage(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page.Value...)
		}
		return out
	}
	all := list(&azbatch.ListJobSchedulesOptions{MaxResults: to[int32](1)})
	if len(all) != 3 || *all[0].ID != "alpha" || *all[1].ID != "nightly" || *all[2].ID != "omega" {
		t.Fatalf("list = %d schedules", len(all))
	}
	disabled := list(&azbatch.ListJobSchedulesOptions{Filter: to("state eq 'disabled'"), SelectParam: []string{"id", "state"}})
	if len(disabled) != 1 || *disabled[0].ID != "omega" || disabled[0].JobSpecification != nil {
		t.Fatalf("filtered list = %+v", disabled)
	}

	// Disable, enable, terminate, delete.
	if _, err := c.DisableJobSchedule(ctx(t), "nightly", nil); err != nil {
		t.Fatal(err)
	}
	if sc := schedGet(t, s, "nightly"); *sc.State != azbatch.JobScheduleStateDisabled || *sc.PreviousState != azbatch.JobScheduleStateActive {
		t.Fatalf("disabled schedule: %s (was %s)", *sc.State, *sc.PreviousState)
	}
	if _, err := c.EnableJobSchedule(ctx(t), "nightly", nil); err != nil {
		t.Fatal(err)
	}
	if sc := schedGet(t, s, "nightly"); *sc.State != azbatch.JobScheduleStateActive {
		t.Fatalf("enabled schedule: %s", *sc.State)
	}
	if _, err := c.TerminateJobSchedule(ctx(t), "nightly", nil); err != nil {
		t.Fatal(err)
	}
	sc = schedWaitState(t, s, "nightly", azbatch.JobScheduleStateCompleted)
	if sc.ExecutionInfo.EndTime == nil || sc.ExecutionInfo.NextRunTime != nil {
		t.Fatalf("completed schedule execution info = %+v", sc.ExecutionInfo)
	}
	_, err = c.EnableJobSchedule(ctx(t), "nightly", nil)
	schedExpectError(t, err, http.StatusConflict, "JobScheduleCompleted")
	if _, err := c.DeleteJobSchedule(ctx(t), "nightly", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetJobSchedule(ctx(t), "nightly", nil)
	schedExpectError(t, err, http.StatusNotFound, "JobScheduleNotFound")
}

// TestJobSchedule_RunsOnce: a schedule due in two seconds, without a
// recurrence, creates exactly one job, <id>:job-1, whose tasks run; the
// schedule completes with that job.
func TestJobSchedule_RunsOnce(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	c := s.Client
	start := time.Now()
	_, err := c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{
		ID:       to("once"),
		Schedule: &azbatch.JobScheduleConfiguration{DoNotRunUntil: to(start.Add(2 * time.Second))},
		JobSpecification: &azbatch.JobSpecification{
			PoolInfo:                  &azbatch.PoolInfo{PoolID: to(jobPool)},
			CommonEnvironmentSettings: []azbatch.EnvironmentSetting{{Name: to("GREETING"), Value: to("hello")}},
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	schedRequireJobs(t, s, "once")

	var job azbatch.Job
	eventually(t, 15*time.Second, "the schedule's job", func() error {
		r, err := c.GetJob(ctx(t), "once:job-1", nil)
		if err != nil {
			return err
		}
		job = r.Job
		return nil
	})
	if created := job.CreationTime.Sub(start); created < 1900*time.Millisecond {
		t.Fatalf("job created %v after the schedule, before doNotRunUntil", created)
	}
	if *job.State != azbatch.JobStateActive || *job.PoolInfo.PoolID != jobPool {
		t.Fatalf("job = %+v", job)
	}
	sc := schedGet(t, s, "once")
	if sc.ExecutionInfo.RecentJob == nil || *sc.ExecutionInfo.RecentJob.ID != "once:job-1" || *sc.ExecutionInfo.RecentJob.URL != s.URL+"/jobs/once:job-1" {
		t.Fatalf("recentJob = %+v", sc.ExecutionInfo.RecentJob)
	}
	if sc.ExecutionInfo.NextRunTime != nil {
		t.Fatalf("nextRunTime = %v after the only run", *sc.ExecutionInfo.NextRunTime)
	}

	// The job runs tasks like any other.
	s.AddTasks(t, "once:job-1", []azbatch.CreateTaskContent{
		taskCmd("t1", `/bin/sh -c 'echo $GREETING from $AZ_BATCH_JOB_ID'`),
		taskCmd("t2", `/bin/sh -c 'exit 0'`),
	})
	s.WaitJobTasks(t, "once:job-1", 60*time.Second)
	if out := taskMustReadFile(t, s, "once:job-1", "t1", "stdout.txt"); strings.TrimSpace(out) != "hello from once:job-1" {
		t.Fatalf("stdout = %q", out)
	}
	for _, task := range s.ListTasks(t, "once:job-1", nil) {
		if *task.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
			t.Fatalf("task %s: %s", *task.ID, *task.ExecutionInfo.Result)
		}
	}
	if *schedGet(t, s, "once").State != azbatch.JobScheduleStateActive {
		t.Fatal("schedule completed while its job is active")
	}

	// The job ends: so does the schedule, and no other job ever comes.
	if _, err := c.TerminateJob(ctx(t), "once:job-1", nil); err != nil {
		t.Fatal(err)
	}
	sc = schedWaitState(t, s, "once", azbatch.JobScheduleStateCompleted)
	if sc.ExecutionInfo.EndTime == nil {
		t.Fatal("completed schedule without endTime")
	}
	time.Sleep(2 * time.Second)
	schedRequireJobs(t, s, "once", "once:job-1")
	ids, err := schedJobIDs(t, s, "once", &azbatch.ListJobsFromScheduleOptions{Filter: to("state eq 'completed'"), SelectParam: []string{"id"}})
	if err != nil || len(ids) != 1 {
		t.Fatalf("filtered jobs of the schedule: %q %v", ids, err)
	}
}

// TestJobSchedule_TerminateDeleteActiveJob: terminating a schedule
// terminates its active job (TerminateJobSchedule) and running task;
// deleting it deletes its jobs, their running tasks included.
func TestJobSchedule_TerminateDeleteActiveJob(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 3, nil)
	c := s.Client
	spec := &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: to(jobPool)}}
	for _, id := range []string{"term", "del", "both"} {
		if _, err := c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to(id),
			Schedule: &azbatch.JobScheduleConfiguration{RecurrenceInterval: to("PT1M")}, JobSpecification: spec}, nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 15*time.Second, "first jobs", func() error {
		for _, id := range []string{"term:job-1", "del:job-1", "both:job-1"} {
			if _, err := c.GetJob(ctx(t), id, nil); err != nil {
				return err
			}
		}
		return nil
	})
	for _, j := range []string{"term:job-1", "del:job-1", "both:job-1"} {
		taskAdd(t, s, j, taskCmd("gate", taskGateCmd))
		taskWaitState(t, s, j, "gate", azbatch.TaskStateRunning, 30*time.Second)
	}

	if _, err := c.TerminateJobSchedule(ctx(t), "term", nil); err != nil {
		t.Fatal(err)
	}
	schedWaitState(t, s, "term", azbatch.JobScheduleStateCompleted)
	job := jobWaitState(t, s, "term:job-1", azbatch.JobStateCompleted, 30*time.Second)
	if *job.ExecutionInfo.TerminationReason != "TerminateJobSchedule" {
		t.Fatalf("termination reason %q", *job.ExecutionInfo.TerminationReason)
	}
	taskWaitState(t, s, "term:job-1", "gate", azbatch.TaskStateCompleted, 30*time.Second)

	if _, err := c.DeleteJobSchedule(ctx(t), "del", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "schedule and job deleted", func() error {
		if _, err := c.GetJobSchedule(ctx(t), "del", nil); batchCode(err) != "JobScheduleNotFound" {
			return fmt.Errorf("schedule: %v", err)
		}
		if _, err := c.GetJob(ctx(t), "del:job-1", nil); batchCode(err) != "JobNotFound" {
			return fmt.Errorf("job: %v", err)
		}
		return nil
	})
	// Deleted while still terminating (its task being stopped), as Azure's
	// own SDK test does right after terminating.
	if _, err := c.TerminateJobSchedule(ctx(t), "both", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteJobSchedule(ctx(t), "both", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "terminated-then-deleted schedule gone", func() error {
		if _, err := c.GetJobSchedule(ctx(t), "both", nil); batchCode(err) != "JobScheduleNotFound" {
			return fmt.Errorf("schedule: %v", err)
		}
		if _, err := c.GetJob(ctx(t), "both:job-1", nil); batchCode(err) != "JobNotFound" {
			return fmt.Errorf("job: %v", err)
		}
		return nil
	})
	// A terminated schedule can be deleted with its completed job.
	if _, err := c.DeleteJobSchedule(ctx(t), "term", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "terminated schedule's job deleted", func() error {
		if _, err := c.GetJob(ctx(t), "term:job-1", nil); batchCode(err) != "JobNotFound" {
			return fmt.Errorf("job: %v", err)
		}
		return nil
	})
}

// TestJobSchedule_Restart: a server killed and restarted neither loses a
// schedule nor runs its due run again.
func TestJobSchedule_Restart(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := s.Client
	if _, err := c.CreateJobSchedule(ctx(t), azbatch.CreateJobScheduleContent{ID: to("rs"),
		Schedule:         &azbatch.JobScheduleConfiguration{RecurrenceInterval: to("PT1H")},
		JobSpecification: &azbatch.JobSpecification{PoolInfo: &azbatch.PoolInfo{PoolID: to("pool")}}}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "rs:job-1", func() error { _, err := c.GetJob(ctx(t), "rs:job-1", nil); return err })
	// The run is done: its job completes, and the next run is an hour away.
	if _, err := c.TerminateJob(ctx(t), "rs:job-1", nil); err != nil {
		t.Fatal(err)
	}
	jobWaitState(t, s, "rs:job-1", azbatch.JobStateCompleted, 30*time.Second)
	before := schedGet(t, s, "rs")

	s.Kill()
	s.Start()
	time.Sleep(2 * time.Second)
	schedRequireJobs(t, s, "rs", "rs:job-1")
	after := schedGet(t, s, "rs")
	if *after.State != azbatch.JobScheduleStateActive || *after.ETag != *before.ETag ||
		!after.ExecutionInfo.NextRunTime.Equal(*before.ExecutionInfo.NextRunTime) || *after.ExecutionInfo.RecentJob.ID != "rs:job-1" {
		t.Fatalf("schedule after restart = %+v, before %+v", after.ExecutionInfo, before.ExecutionInfo)
	}
}
