package sqlite_test

import (
	"fmt"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

// benchDoc is a task document of about 400 bytes, the size of a typical
// task's JSON with a short command line and a couple of resource files.
var benchDoc = []byte(`{"id":"task-000000","url":"https://kiln/jobs/job1/tasks/task-000000",` +
	`"commandLine":"/bin/sh -c 'python3 process.py --input data/part-000000.csv --output out/'",` +
	`"resourceFiles":[{"httpUrl":"https://storage/data/part-000000.csv","filePath":"data/part-000000.csv"},` +
	`{"httpUrl":"https://storage/bin/process.py","filePath":"process.py"}],` +
	`"constraints":{"maxWallClockTime":"PT1H","maxTaskRetryCount":3},"requiredSlots":1}`)

const benchBatch = 100

func benchTasks(jobID string, from, n int) []store.Task {
	tasks := make([]store.Task, n)
	for i := range tasks {
		tasks[i] = store.Task{
			Account: "acct", JobID: jobID, ID: fmt.Sprintf("task-%07d", from+i),
			State: "active", Slots: 1, Doc: benchDoc,
		}
	}
	return tasks
}

func benchInsert(b *testing.B, s store.Store, tasks []store.Task) {
	b.Helper()
	for len(tasks) > 0 {
		n := min(len(tasks), 1000)
		errs, err := s.TaskInsert(b.Context(), tasks[:n])
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		tasks = tasks[n:]
	}
}

// BenchmarkTaskInsert inserts batches of 100 tasks into one job.
func BenchmarkTaskInsert(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	if len(benchDoc) < 350 || len(benchDoc) > 450 {
		b.Fatalf("doc of %d bytes", len(benchDoc))
	}
	next := 0
	for b.Loop() {
		b.StopTimer()
		tasks := benchTasks("job1", next, benchBatch)
		next += benchBatch
		b.StartTimer()
		errs, err := s.TaskInsert(ctx, tasks)
		if err != nil {
			b.Fatal(err)
		}
		if errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
	b.ReportMetric(float64(next)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkApplyTaskUpdates applies batches of 100 task state changes to a
// job of 10,000 tasks.
func BenchmarkApplyTaskUpdates(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	const n = 10_000
	tasks := benchTasks("job1", 0, n)
	benchInsert(b, s, tasks)
	states := []string{"running", "completed", "active"}
	updates := 0
	w := &store.Writes{Tasks: make([]store.Task, benchBatch)}
	for b.Loop() {
		for i := range w.Tasks {
			t := tasks[(updates+i)%n]
			t.State = states[((updates+i)/n)%len(states)]
			t.NodeID = "tvmps_0123456789abcdef"
			t.AttemptID = "attempt-1"
			w.Tasks[i] = t
		}
		if err := s.Apply(ctx, w); err != nil {
			b.Fatal(err)
		}
		updates += benchBatch
	}
	b.ReportMetric(float64(updates)/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkTaskCounts counts a job of 100,000 tasks in four states.
func BenchmarkTaskCounts(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	const n = 100_000
	tasks := benchTasks("job1", 0, n)
	states := []string{"active", "preparing", "running", "completed"}
	for i := range tasks {
		tasks[i].State = states[i%len(states)]
	}
	benchInsert(b, s, tasks)
	benchInsert(b, s, benchTasks("job2", 0, 1000)) // another job alongside
	for b.Loop() {
		cs, err := s.TaskCounts(ctx, "acct", "job1")
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) != len(states) {
			b.Fatalf("%d states", len(cs))
		}
	}
}

// BenchmarkTaskListPage lists pages of 1000 tasks of a job of 100,000.
func BenchmarkTaskListPage(b *testing.B) {
	s := openTest(b)
	ctx := b.Context()
	const n, page = 100_000, 1000
	benchInsert(b, s, benchTasks("job1", 0, n))
	var after int64
	listed := 0
	for b.Loop() {
		got, err := s.TaskList(ctx, store.TaskListParams{Account: "acct", JobID: "job1", AfterSeq: after, Limit: page})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) < page {
			after = 0
		} else {
			after = got[len(got)-1].Seq
		}
		listed += len(got)
	}
	b.ReportMetric(float64(listed)/b.Elapsed().Seconds(), "tasks/s")
}
