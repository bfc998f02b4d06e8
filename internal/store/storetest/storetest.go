// Package storetest is the conformance suite every store.Store
// implementation passes. A driver's test calls Exercise once:
//
//	func TestStore(t *testing.T) {
//		storetest.Exercise(t, func(t *testing.T) store.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "kiln.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Where drivers differ, the suite branches on optional capabilities the store
// implements (Migrator) rather than on the driver.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

// Migrator is an optional capability of a store whose schema is managed by
// migrations. When the store implements it, the suite runs migrations down
// and up again (twice) and checks the store works after each round.
type Migrator interface {
	// MigrateDown rolls back every migration, dropping every record.
	MigrateDown(ctx context.Context) error
	// MigrateUp applies every pending migration.
	MigrateUp(ctx context.Context) error
}

// Exercise runs the conformance suite against stores made by newStore, which
// must return a fresh, empty, migrated store on each call and close it when
// its t ends (t.Cleanup). Subtests run in parallel, each with its own store.
func Exercise(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: t.Context(), s: newStore(t)}
	}

	t.Run("Account", func(t *testing.T) { t.Parallel(); testAccount(t, setup) })
	t.Run("Pool", func(t *testing.T) { t.Parallel(); testPool(t, setup) })
	t.Run("Node", func(t *testing.T) { t.Parallel(); testNode(t, setup) })
	t.Run("Job", func(t *testing.T) { t.Parallel(); testJob(t, setup) })
	t.Run("JobSchedule", func(t *testing.T) { t.Parallel(); testJobSchedule(t, setup) })
	t.Run("AccountStats", func(t *testing.T) { t.Parallel(); testAccountStats(t, setup) })
	t.Run("Certificate", func(t *testing.T) { t.Parallel(); testCertificates(t, setup) })
	t.Run("TaskInsert", func(t *testing.T) { t.Parallel(); testTaskInsert(t, setup) })
	t.Run("TaskGet", func(t *testing.T) { t.Parallel(); testTaskGet(t, setup) })
	t.Run("TaskList", func(t *testing.T) { t.Parallel(); testTaskList(t, setup) })
	t.Run("TaskListUnfinished", func(t *testing.T) { t.Parallel(); testTaskListUnfinished(t, setup) })
	t.Run("TaskListUnfinishedPage", func(t *testing.T) { t.Parallel(); testTaskListUnfinishedPage(t, setup) })
	t.Run("TaskListResult", func(t *testing.T) { t.Parallel(); testTaskListResult(t, setup) })
	t.Run("TaskCounts", func(t *testing.T) { t.Parallel(); testTaskCounts(t, setup) })
	t.Run("Apply", func(t *testing.T) { t.Parallel(); testApply(t, setup) })
	t.Run("AccountIsolation", func(t *testing.T) { t.Parallel(); testAccountIsolation(t, setup) })
	t.Run("Concurrent", func(t *testing.T) { t.Parallel(); testConcurrent(t, setup) })
	t.Run("Migrate", func(t *testing.T) { t.Parallel(); testMigrate(t, setup) })
}

// testBundle is what one subtest works with: its own store.
type testBundle struct {
	ctx context.Context
	s   store.Store
}

type setupFunc func(t *testing.T) *testBundle

// Factories. Each returns a complete record whose Doc names it, so that a
// record read back can be told apart from another with the same id.

func pool(account, id string) store.Pool {
	return store.Pool{Account: account, ID: id, Doc: doc("pool", account, id)}
}

func node(account, id, poolID string) store.Node {
	return store.Node{Account: account, ID: id, PoolID: poolID, State: "idle", Doc: doc("node", account, id)}
}

func job(account, id string) store.Job {
	return store.Job{Account: account, ID: id, PoolID: "pool1", State: "active", Priority: 0, Doc: doc("job", account, id)}
}

func task(account, jobID, id string) store.Task {
	return store.Task{Account: account, JobID: jobID, ID: id, State: "active", Slots: 1, Doc: doc("task", account, jobID, id)}
}

func doc(kind string, key ...string) []byte {
	return fmt.Appendf(nil, `{"kind":%q,"key":%q}`, kind, key)
}

// Requirement helpers.

func requireNoError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func requireErrorIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func requireEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func requireDoc(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s doc = %q, want %q", what, got, want)
	}
}

func requirePool(t *testing.T, got, want store.Pool) {
	t.Helper()
	if got.Account != want.Account || got.ID != want.ID || !bytes.Equal(got.Doc, want.Doc) {
		t.Fatalf("pool = %+v, want %+v", got, want)
	}
}

func requireNode(t *testing.T, got, want store.Node) {
	t.Helper()
	if got.Account != want.Account || got.ID != want.ID || got.PoolID != want.PoolID ||
		got.State != want.State || !bytes.Equal(got.Doc, want.Doc) {
		t.Fatalf("node = %+v, want %+v", got, want)
	}
}

func requireJob(t *testing.T, got, want store.Job) {
	t.Helper()
	if got.Account != want.Account || got.ID != want.ID || got.PoolID != want.PoolID ||
		got.State != want.State || got.Priority != want.Priority || !bytes.Equal(got.Doc, want.Doc) {
		t.Fatalf("job = %+v, want %+v", got, want)
	}
}

// requireTask compares every field but Seq, which the store assigns.
func requireTask(t *testing.T, got, want store.Task) {
	t.Helper()
	if got.Account != want.Account || got.JobID != want.JobID || got.ID != want.ID ||
		got.State != want.State || got.NodeID != want.NodeID || got.AttemptID != want.AttemptID ||
		got.Slots != want.Slots || got.Result != want.Result || !bytes.Equal(got.Doc, want.Doc) {
		t.Fatalf("task = %+v, want %+v", got, want)
	}
}

// requireIDs checks the ids of records, in order.
func requireIDs[T any](t *testing.T, what string, recs []T, id func(T) string, want ...string) {
	t.Helper()
	got := make([]string, len(recs))
	for i, r := range recs {
		got[i] = id(r)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s ids = %q, want %q", what, got, want)
	}
}

func poolID(p store.Pool) string         { return p.ID }
func nodeID(n store.Node) string         { return n.ID }
func jobID(j store.Job) string           { return j.ID }
func taskID(t store.Task) string         { return t.ID }
func accountName(a store.Account) string { return a.Name }

// requireSeqIncreasing checks tasks are in strictly increasing Seq order.
func requireSeqIncreasing(t *testing.T, tasks []store.Task) {
	t.Helper()
	for i := 1; i < len(tasks); i++ {
		if tasks[i].Seq <= tasks[i-1].Seq {
			t.Fatalf("task %q seq %d follows task %q seq %d", tasks[i].ID, tasks[i].Seq, tasks[i-1].ID, tasks[i-1].Seq)
		}
	}
}

// insertTasks inserts tasks and requires every one to succeed.
func (b *testBundle) insertTasks(t *testing.T, tasks ...store.Task) {
	t.Helper()
	errs, err := b.s.TaskInsert(b.ctx, tasks)
	requireNoError(t, err)
	requireEqual(t, "len(errs)", len(errs), len(tasks))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("task %q: %v", tasks[i].ID, err)
		}
	}
}

// apply applies w and requires it to succeed.
func (b *testBundle) apply(t *testing.T, w *store.Writes) {
	t.Helper()
	requireNoError(t, b.s.Apply(b.ctx, w))
}

// taskGet returns a task that must exist.
func (b *testBundle) taskGet(t *testing.T, account, jobID, id string) store.Task {
	t.Helper()
	got, err := b.s.TaskGet(b.ctx, account, jobID, id)
	requireNoError(t, err)
	return got
}

// taskList lists tasks and requires success.
func (b *testBundle) taskList(t *testing.T, p store.TaskListParams) []store.Task {
	t.Helper()
	got, err := b.s.TaskList(b.ctx, p)
	requireNoError(t, err)
	return got
}

// counts returns TaskCounts keyed by state.
func (b *testBundle) counts(t *testing.T, account, jobID string) map[string]store.StateCount {
	t.Helper()
	cs, err := b.s.TaskCounts(b.ctx, account, jobID)
	requireNoError(t, err)
	m := make(map[string]store.StateCount, len(cs))
	for _, c := range cs {
		if _, dup := m[c.State]; dup {
			t.Fatalf("state %q counted twice", c.State)
		}
		m[c.State] = c
	}
	return m
}
