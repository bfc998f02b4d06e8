package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

func testConcurrent(t *testing.T, setup setupFunc) {
	t.Run("ReadersAndWriters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const (
			writers   = 4
			readers   = 4
			batches   = 20
			batchSize = 25
		)
		jobName := func(w int) string { return fmt.Sprintf("job%d", w) }

		var writersDone atomic.Bool
		var wwg, rwg sync.WaitGroup
		for w := range writers {
			wwg.Go(func() {
				j := jobName(w)
				if err := b.s.JobInsert(b.ctx, job("acct", j)); err != nil {
					t.Errorf("job insert: %v", err)
					return
				}
				for n := range batches {
					tasks := make([]store.Task, batchSize)
					for i := range tasks {
						tasks[i] = task("acct", j, fmt.Sprintf("b%02d-t%02d", n, i))
					}
					errs, err := b.s.TaskInsert(b.ctx, tasks)
					if err != nil {
						t.Errorf("task insert: %v", err)
						return
					}
					for _, err := range errs {
						if err != nil {
							t.Errorf("task insert: %v", err)
							return
						}
					}
					// Start the first few tasks of the batch.
					up := make([]store.Task, 5)
					for i := range up {
						up[i] = tasks[i]
						up[i].State = "running"
						up[i].NodeID = "node1"
					}
					if err := b.s.Apply(b.ctx, &store.Writes{Tasks: up}); err != nil {
						t.Errorf("apply: %v", err)
						return
					}
				}
			})
		}
		for r := range readers {
			rwg.Go(func() {
				for i := 0; !writersDone.Load(); i++ {
					j := jobName((r + i) % writers)
					var after int64
					for {
						page, err := b.s.TaskList(b.ctx, store.TaskListParams{Account: "acct", JobID: j, AfterSeq: after, Limit: 100})
						if err != nil {
							t.Errorf("task list: %v", err)
							return
						}
						if len(page) == 0 {
							break
						}
						for k, tk := range page {
							if tk.Seq <= after || (k > 0 && tk.Seq <= page[k-1].Seq) {
								t.Errorf("task list out of seq order")
								return
							}
						}
						after = page[len(page)-1].Seq
					}
					if _, err := b.s.TaskCounts(b.ctx, "acct", j); err != nil {
						t.Errorf("task counts: %v", err)
						return
					}
					if _, err := b.s.TaskListUnfinished(b.ctx); err != nil {
						t.Errorf("task list unfinished: %v", err)
						return
					}
					if _, err := b.s.JobList(b.ctx, "acct"); err != nil {
						t.Errorf("job list: %v", err)
						return
					}
				}
			})
		}
		wwg.Wait()
		writersDone.Store(true)
		rwg.Wait()
		if t.Failed() {
			return
		}

		for w := range writers {
			j := jobName(w)
			tasks := b.taskList(t, store.TaskListParams{Account: "acct", JobID: j})
			requireEqual(t, "len(tasks of "+j+")", len(tasks), batches*batchSize)
			requireSeqIncreasing(t, tasks)
			for n := range batches {
				for i := range batchSize {
					requireEqual(t, "task id", tasks[n*batchSize+i].ID, fmt.Sprintf("b%02d-t%02d", n, i))
				}
			}
			counts := b.counts(t, "acct", j)
			requireEqual(t, "running count", counts["running"].Count, int64(batches*5))
			requireEqual(t, "active count", counts["active"].Count, int64(batches*(batchSize-5)))
		}
	})

	t.Run("InsertRace", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n = 8
		var wg sync.WaitGroup
		var poolOK, jobOK, taskOK atomic.Int32
		for i := range n {
			wg.Go(func() {
				// Same ids in different case: exactly one insert of each wins.
				id := "Race"
				if i%2 == 1 {
					id = "RACE"
				}
				switch err := b.s.PoolInsert(b.ctx, pool("acct", id)); {
				case err == nil:
					poolOK.Add(1)
				case !errors.Is(err, store.ErrExists):
					t.Errorf("pool insert: %v", err)
				}
				switch err := b.s.JobInsert(b.ctx, job("acct", id)); {
				case err == nil:
					jobOK.Add(1)
				case !errors.Is(err, store.ErrExists):
					t.Errorf("job insert: %v", err)
				}
				errs, err := b.s.TaskInsert(b.ctx, []store.Task{task("acct", "job1", id)})
				switch {
				case err != nil:
					t.Errorf("task insert: %v", err)
				case errs[0] == nil:
					taskOK.Add(1)
				case !errors.Is(errs[0], store.ErrExists):
					t.Errorf("task insert: %v", errs[0])
				}
			})
		}
		wg.Wait()
		requireEqual(t, "pool inserts won", poolOK.Load(), 1)
		requireEqual(t, "job inserts won", jobOK.Load(), 1)
		requireEqual(t, "task inserts won", taskOK.Load(), 1)
	})
}
