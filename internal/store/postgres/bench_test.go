package postgres_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/postgres"
	pgtest "github.com/kilnbatch/kiln/internal/testutil/postgres"
)

// The same workloads as the SQLite store's benchmarks, against a local
// server with fsync off (see testutil/postgres): they measure the store's
// round trips and statements, not the disk.

// benchDoc is a task document of about 400 bytes, as in the SQLite
// store's benchmarks.
var benchDoc = []byte(`{"id":"task-000000","url":"https://kiln/jobs/job1/tasks/task-000000",` +
	`"commandLine":"/bin/sh -c 'python3 process.py --input data/part-000000.csv --output out/'",` +
	`"resourceFiles":[{"httpUrl":"https://storage/data/part-000000.csv","filePath":"data/part-000000.csv"},` +
	`{"httpUrl":"https://storage/bin/process.py","filePath":"process.py"}],` +
	`"constraints":{"maxWallClockTime":"PT1H","maxTaskRetryCount":3},"requiredSlots":1}`)

const benchBatch = 100

func openBench(b *testing.B) (*postgres.Store, string) {
	b.Helper()
	dsn := pgtest.Start(b)
	s, err := postgres.Open(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, dsn
}

// analyze does what autovacuum does within a minute of a big load. Until
// then the planner has no statistics of tasks and may look tasks up by key
// through tasks_state, reading the whole job: 600 updates/s here instead of
// about 22,000.
func analyze(b *testing.B, dsn string) {
	b.Helper()
	conn, err := pgx.Connect(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(b.Context())
	if _, err := conn.Exec(b.Context(), "ANALYZE"); err != nil {
		b.Fatal(err)
	}
}

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

// BenchmarkTaskInsert inserts tasks in batches of 100, as Azure's add
// task collection sends them.
func BenchmarkTaskInsert(b *testing.B) {
	s, _ := openBench(b)
	next := 0
	for b.Loop() {
		b.StopTimer()
		tasks := benchTasks("job1", next, benchBatch)
		next += benchBatch
		b.StartTimer()
		errs, err := s.TaskInsert(b.Context(), tasks)
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
	s, dsn := openBench(b)
	const n = 10_000
	tasks := benchTasks("job1", 0, n)
	for i := 0; i < n; i += 1000 {
		if _, err := s.TaskInsert(b.Context(), tasks[i:i+1000]); err != nil {
			b.Fatal(err)
		}
	}
	analyze(b, dsn)
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
		if err := s.Apply(b.Context(), w); err != nil {
			b.Fatal(err)
		}
		updates += benchBatch
	}
	b.ReportMetric(float64(updates)/b.Elapsed().Seconds(), "updates/s")
}
