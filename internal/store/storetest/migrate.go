package storetest

import (
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

func testMigrate(t *testing.T, setup setupFunc) {
	t.Run("DownUp", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		m, ok := b.s.(Migrator)
		if !ok {
			t.Skip("store does not implement storetest.Migrator")
		}

		for round := range 2 {
			// Every table is usable.
			requireNoError(t, b.s.AccountInsert(b.ctx, store.Account{Name: "acct", PrimaryKey: "a", SecondaryKey: "b"}))
			requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")))
			requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
			requireNoError(t, b.s.JobScheduleInsert(b.ctx, schedule("acct", "sched1")))
			b.apply(t, &store.Writes{AccountStats: []store.AccountStats{accountStats("acct", "jobs")}})
			b.apply(t, &store.Writes{Certificates: []store.Certificate{certificate("acct", "ab")}})
			b.apply(t, &store.Writes{Nodes: []store.Node{node("acct", "node1", "pool1")}})
			b.insertTasks(t, task("acct", "job1", "a"), task("acct", "job1", "b"))
			requireEqual(t, "len(tasks)", len(b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})), 2)

			requireNoError(t, m.MigrateDown(b.ctx))
			if _, err := b.s.PoolList(b.ctx, "acct"); err == nil {
				t.Fatalf("round %d: PoolList after MigrateDown succeeded", round)
			}
			requireNoError(t, m.MigrateUp(b.ctx))
			// Idempotent.
			requireNoError(t, m.MigrateUp(b.ctx))

			// Down dropped every record.
			accounts, err := b.s.AccountList(b.ctx)
			requireNoError(t, err)
			requireEqual(t, "len(accounts)", len(accounts), 0)
			pools, err := b.s.PoolList(b.ctx, "acct")
			requireNoError(t, err)
			requireEqual(t, "len(pools)", len(pools), 0)
			jobs, err := b.s.JobList(b.ctx, "acct")
			requireNoError(t, err)
			requireEqual(t, "len(jobs)", len(jobs), 0)
			schedules, err := b.s.JobScheduleList(b.ctx, "acct")
			requireNoError(t, err)
			requireEqual(t, "len(schedules)", len(schedules), 0)
			stats, err := b.s.AccountStatsList(b.ctx)
			requireNoError(t, err)
			requireEqual(t, "len(account stats)", len(stats), 0)
			nodes, err := b.s.NodeListAll(b.ctx)
			requireNoError(t, err)
			requireEqual(t, "len(nodes)", len(nodes), 0)
			unfinished, err := b.s.TaskListUnfinished(b.ctx)
			requireNoError(t, err)
			requireEqual(t, "len(unfinished)", len(unfinished), 0)
		}
	})
}
