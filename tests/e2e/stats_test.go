package e2e

// Statistics: task and job statistics ($expand=stats), the account's
// lifetime job and pool statistics, measured by real agents from the tasks'
// processes.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

// statsDur parses an ISO 8601 duration of a statistics document.
func statsDur(t testing.TB, what string, p *string) time.Duration {
	t.Helper()
	if p == nil {
		t.Fatalf("%s is missing", what)
	}
	d, err := batch.ParseDuration(*p)
	if err != nil {
		t.Fatalf("%s %q: %v", what, *p, err)
	}
	return d
}

// statsGetJob gets a job with $expand=stats.
func statsGetJob(t testing.TB, s *Server, jobID string) azbatch.Job {
	t.Helper()
	r, err := s.Client.GetJob(ctx(t), jobID, &azbatch.GetJobOptions{Expand: []string{"stats"}})
	if err != nil {
		t.Fatalf("get job %s with stats: %v", jobID, err)
	}
	return r.Job
}

// statsLifetime reads GET /lifetimejobstats or /lifetimepoolstats (the
// operations of api-versions before 2024-07-01, which the Go SDK lacks).
func statsLifetime(t testing.TB, s *Server, path string, v any) {
	t.Helper()
	req := s.poolRawRequest(t, http.MethodGet, path+"?api-version=2023-05-01.17.0", nil)
	poolSign(t, req, "")
	resp := poolDo(t, req)
	if resp.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.Status, resp.Body)
	}
	var meta struct {
		Metadata string `json:"odata.metadata"`
	}
	if err := json.Unmarshal(resp.Body, &meta); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	want := map[string]string{"/lifetimejobstats": "$metadata#jobstats/@Element", "/lifetimepoolstats": "$metadata#poolstats/@Element"}[path]
	if meta.Metadata != s.URL+"/"+want {
		t.Fatalf("GET %s: odata.metadata %q", path, meta.Metadata)
	}
	if err := json.Unmarshal(resp.Body, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// statsListJobs lists every job.
func statsListJobs(t *testing.T, s *Server, opts *azbatch.ListJobsOptions) []azbatch.Job {
	t.Helper()
	jobs, _ := jobListPages(t, s, opts)
	return jobs
}

// burnCmd spends CPU in a child process and writes 4 MiB to the disk in
// 64 writes of 64 KiB, synced: what the statistics must show.
const burnCmd = `/bin/sh -c "/bin/sh -c 'i=0; while [ \$i -lt 300000 ]; do i=\$((i+1)); done'; dd if=/dev/zero of=out.bin bs=64k count=64 conv=fsync 2>/dev/null"`

// TestStatsJobAndTask: a job's statistics sum its tasks' attempts (CPU,
// wall clock, I/O of the process and its children, retries included) and
// count succeeded and failed tasks and retries; a task's statistics sum
// its own attempts. They are shown only with $expand=stats.
func TestStatsJobAndTask(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	c := s.Client
	before := time.Now().Add(-time.Second)
	s.CreateJob(t, "st", jobPool, nil)
	fresh := statsGetJob(t, s, "st")
	if st := fresh.Stats; st == nil || *st.NumSucceededTasks != 0 || *st.ReadIOps != 0 || *st.UserCPUTime != "PT0S" || st.StartTime.Before(before) || *st.URL == "" {
		t.Fatalf("a new job's statistics: %+v", fresh.Stats)
	}
	s.AddTasks(t, "st", []azbatch.CreateTaskContent{
		taskCmd("burn", burnCmd),
		// Fails twice: 1 run + 1 retry, then it is failed.
		{ID: to("flaky"), CommandLine: to("/bin/sh -c 'sleep 0.2; exit 1'"), Constraints: &azbatch.TaskConstraints{MaxTaskRetryCount: to(int32(1))}},
	})
	s.WaitJobTasks(t, "st", 60*time.Second)

	// Without $expand, no statistics: the job, the job list, the task, the
	// task list.
	if j := jobGet(t, s, "st"); j.Stats != nil {
		t.Fatalf("job without $expand has stats %+v", j.Stats)
	}
	for _, j := range statsListJobs(t, s, nil) {
		if j.Stats != nil {
			t.Fatalf("job list without $expand has stats")
		}
	}
	if tk := taskGet(t, s, "st", "burn"); tk.Stats != nil {
		t.Fatalf("task without $expand has stats %+v", tk.Stats)
	}
	for _, tk := range s.ListTasks(t, "st", nil) {
		if tk.Stats != nil {
			t.Fatalf("task list without $expand has stats")
		}
	}

	job := statsGetJob(t, s, "st")
	js := job.Stats
	if js == nil {
		t.Fatal("job with $expand=stats has none")
	}
	if *js.NumSucceededTasks != 1 || *js.NumFailedTasks != 1 || *js.NumTaskRetries != 1 {
		t.Fatalf("job statistics: succeeded %d failed %d retries %d", *js.NumSucceededTasks, *js.NumFailedTasks, *js.NumTaskRetries)
	}
	cpu := statsDur(t, "userCPUTime", js.UserCPUTime) + statsDur(t, "kernelCPUTime", js.KernelCPUTime)
	wall := statsDur(t, "wallClockTime", js.WallClockTime)
	if cpu < 20*time.Millisecond {
		t.Fatalf("job CPU time %v: the busy loop's child is missing", cpu)
	}
	// flaky ran twice for at least 0.2 s each.
	if wall < 400*time.Millisecond || wall > time.Minute {
		t.Fatalf("job wall clock time %v", wall)
	}
	if *js.WriteIOGiB < float32(4<<20)/float32(1<<30) || *js.WriteIOps < 64 {
		t.Fatalf("job writes: %v GiB in %d operations, want the 4 MiB dd wrote", *js.WriteIOGiB, *js.WriteIOps)
	}
	// Azure reports waitTime only in the lifetime statistics.
	if *js.WaitTime != "PT0S" {
		t.Fatalf("job waitTime %s", *js.WaitTime)
	}
	if js.LastUpdateTime.Before(*js.StartTime) || js.StartTime.Sub(*job.CreationTime).Abs() > time.Second {
		t.Fatalf("job statistics from %v to %v (job created %v)", js.StartTime, js.LastUpdateTime, job.CreationTime)
	}
	// Statistics do not change the job's ETag.
	if plain := jobGet(t, s, "st"); *plain.ETag != *job.ETag {
		t.Fatal("ETags differ with and without $expand")
	}

	r, err := c.GetTask(ctx(t), "st", "burn", &azbatch.GetTaskOptions{Expand: []string{"stats"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := r.Task.Stats
	if ts == nil {
		t.Fatal("task with $expand=stats has none")
	}
	if *ts.WriteIOGiB < float32(4<<20)/float32(1<<30) || *ts.WriteIOPS < 64 || statsDur(t, "task userCPUTime", ts.UserCPUTime)+statsDur(t, "task kernelCPUTime", ts.KernelCPUTime) < 20*time.Millisecond {
		t.Fatalf("burn task statistics: %+v", ts)
	}
	if w := statsDur(t, "task waitTime", ts.WaitTime); w > r.Task.ExecutionInfo.StartTime.Sub(*r.Task.CreationTime)+time.Millisecond {
		t.Fatalf("task waitTime %v, but it started %v after its creation", w, r.Task.ExecutionInfo.StartTime.Sub(*r.Task.CreationTime))
	}
	tasks := s.ListTasks(t, "st", &azbatch.ListTasksOptions{Expand: []string{"stats"}})
	var taskWall time.Duration
	for _, tk := range tasks {
		if tk.Stats == nil {
			t.Fatalf("task %s listed with $expand=stats has none", *tk.ID)
		}
		taskWall += statsDur(t, "task wallClockTime", tk.Stats.WallClockTime)
	}
	if taskWall != wall {
		t.Fatalf("tasks' wall clock %v, job's %v", taskWall, wall)
	}
	listed := statsListJobs(t, s, &azbatch.ListJobsOptions{Expand: []string{"stats"}})
	if len(listed) != 1 || listed[0].Stats == nil || *listed[0].Stats.NumFailedTasks != 1 {
		t.Fatalf("job list with $expand=stats: %+v", listed)
	}

	// A terminated running task still counts what its process consumed,
	// once its agent reports it.
	taskAdd(t, s, "st", taskCmd("killed", `/bin/sh -c 'dd if=/dev/zero of=k.bin bs=64k count=16 conv=fsync 2>/dev/null; touch written; exec sleep 30'`))
	run := taskWaitState(t, s, "st", "killed", azbatch.TaskStateRunning, 30*time.Second)
	eventually(t, 10*time.Second, "killed task wrote", func() error {
		_, err := taskReadFile(t, s, "st", "killed", "wd/written")
		return err
	})
	if _, err := c.TerminateTask(ctx(t), "st", "killed", nil); err != nil {
		t.Fatal(err)
	}
	taskWaitNoProcs(t, taskDirOf(t, s, "st", run), 10*time.Second)
	eventually(t, 10*time.Second, "the killed attempt counted", func() error {
		js := statsGetJob(t, s, "st").Stats
		if *js.NumFailedTasks != 2 || *js.WriteIOGiB < float32(5<<20)/float32(1<<30) {
			return fmt.Errorf("failed %d, written %v GiB", *js.NumFailedTasks, *js.WriteIOGiB)
		}
		r, err := c.GetTask(ctx(t), "st", "killed", &azbatch.GetTaskOptions{Expand: []string{"stats"}})
		if err != nil {
			return err
		}
		if r.Task.Stats == nil || *r.Task.Stats.WriteIOGiB < float32(1<<20)/float32(1<<30) {
			return fmt.Errorf("killed task stats %+v", r.Task.Stats)
		}
		return nil
	})
}

// TestStatsLifetime: the account's lifetime job statistics sum every job,
// deleted ones included, with the wait times; they and the job statistics
// survive a server restart. The lifetime pool statistics count the nodes'
// time and the tasks' CPU and I/O.
func TestStatsLifetime(t *testing.T) {
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	var empty azbatch.JobStatistics
	statsLifetime(t, s, "/lifetimejobstats", &empty)
	if *empty.NumSucceededTasks != 0 || *empty.URL != s.URL+"/lifetimejobstats" || *empty.UserCPUTime != "PT0S" {
		t.Fatalf("lifetime statistics of a new account: %+v", empty)
	}

	for _, id := range []string{"a", "b"} {
		s.CreateJob(t, id, jobPool, nil)
		s.AddTasks(t, id, []azbatch.CreateTaskContent{taskCmd("burn", burnCmd), taskCmd("fail", "/bin/sh -c 'exit 2'")})
		s.WaitJobTasks(t, id, 60*time.Second)
	}
	ja, jb := statsGetJob(t, s, "a").Stats, statsGetJob(t, s, "b").Stats
	if _, err := s.Client.DeleteJob(ctx(t), "a", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "job a gone", func() error {
		if _, err := s.Client.GetJob(ctx(t), "a", nil); statusOf(err) != http.StatusNotFound {
			return fmt.Errorf("get job a: %v", err)
		}
		return nil
	})

	check := func(when string) {
		t.Helper()
		var life azbatch.JobStatistics
		statsLifetime(t, s, "/lifetimejobstats", &life)
		if *life.NumSucceededTasks != 2 || *life.NumFailedTasks != 2 || *life.NumTaskRetries != 0 {
			t.Fatalf("%s: lifetime succeeded %d failed %d retries %d", when, *life.NumSucceededTasks, *life.NumFailedTasks, *life.NumTaskRetries)
		}
		sum := func(f func(*azbatch.JobStatistics) *string) time.Duration {
			return statsDur(t, "a", f(ja)) + statsDur(t, "b", f(jb))
		}
		if got, want := statsDur(t, "lifetime wall", life.WallClockTime), sum(func(s *azbatch.JobStatistics) *string { return s.WallClockTime }); got != want {
			t.Fatalf("%s: lifetime wall clock %v, jobs' %v", when, got, want)
		}
		if got, want := statsDur(t, "lifetime user CPU", life.UserCPUTime), sum(func(s *azbatch.JobStatistics) *string { return s.UserCPUTime }); got != want {
			t.Fatalf("%s: lifetime user CPU %v, jobs' %v", when, got, want)
		}
		if *life.WriteIOps != *ja.WriteIOps+*jb.WriteIOps || *life.WriteIOGiB < float32(8<<20)/float32(1<<30) {
			t.Fatalf("%s: lifetime writes %d ops %v GiB", when, *life.WriteIOps, *life.WriteIOGiB)
		}
		if statsDur(t, "lifetime wait", life.WaitTime) <= 0 {
			t.Fatalf("%s: lifetime waitTime %s", when, *life.WaitTime)
		}
		if !life.LastUpdateTime.After(*life.StartTime) {
			t.Fatalf("%s: lifetime statistics from %v to %v", when, life.StartTime, life.LastUpdateTime)
		}
		if b := statsGetJob(t, s, "b").Stats; *b.WallClockTime != *jb.WallClockTime || *b.NumFailedTasks != 1 || *b.WriteIOps != *jb.WriteIOps {
			t.Fatalf("%s: job b statistics %+v, were %+v", when, b, jb)
		}

		var pools azbatch.PoolStatistics
		statsLifetime(t, s, "/lifetimepoolstats", &pools)
		u, r := pools.UsageStats, pools.ResourceStats
		if u == nil || r == nil || statsDur(t, "dedicatedCoreTime", u.DedicatedCoreTime) <= 0 || *pools.URL != s.URL+"/lifetimepoolstats" {
			t.Fatalf("%s: lifetime pool statistics %+v", when, pools)
		}
		if *r.DiskWriteIOPS != *life.WriteIOps || *r.AvgCPUPercentage <= 0 {
			t.Fatalf("%s: lifetime pool resource statistics %+v", when, r)
		}
	}
	check("before restart")
	s.Stop()
	s.Start()
	check("after restart")

	// The pool's nodes still count once the pool is gone.
	if _, err := s.Client.DeletePool(ctx(t), jobPool, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "pool gone", func() error {
		if _, err := s.Client.GetPool(ctx(t), jobPool, nil); statusOf(err) != http.StatusNotFound {
			return fmt.Errorf("get pool: %v", err)
		}
		return nil
	})
	var pools azbatch.PoolStatistics
	statsLifetime(t, s, "/lifetimepoolstats", &pools)
	if statsDur(t, "dedicatedCoreTime", pools.UsageStats.DedicatedCoreTime) <= 0 {
		t.Fatalf("dedicatedCoreTime after the pool left: %s", *pools.UsageStats.DedicatedCoreTime)
	}
}
