package storetest

import (
	"context"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

func testApply(t *testing.T, setup setupFunc) {
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.apply(t, &store.Writes{})
	})

	t.Run("UpsertInsertsAndReplaces", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := pool("acct", "pool1")
		j := job("acct", "job1")
		n := node("acct", "node1", "pool1")
		tk := task("acct", "job1", "task1")
		b.apply(t, &store.Writes{Pools: []store.Pool{p}, Jobs: []store.Job{j}, Nodes: []store.Node{n}, Tasks: []store.Task{tk}})

		gotP, err := b.s.PoolGet(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requirePool(t, gotP, p)
		gotJ, err := b.s.JobGet(b.ctx, "acct", "job1")
		requireNoError(t, err)
		requireJob(t, gotJ, j)
		gotN, err := b.s.NodeGet(b.ctx, "acct", "node1")
		requireNoError(t, err)
		requireNode(t, gotN, n)
		gotT := b.taskGet(t, "acct", "job1", "task1")
		requireTask(t, gotT, tk)
		if gotT.Seq <= 0 {
			t.Fatalf("seq of upserted task = %d, want > 0", gotT.Seq)
		}

		p.Doc = []byte(`{"v":2}`)
		j.State, j.Priority, j.PoolID, j.Doc = "terminating", 100, "pool2", []byte(`{"v":2}`)
		n.State, n.Doc = "running", []byte(`{"v":2}`)
		tk.State, tk.NodeID, tk.AttemptID, tk.Slots, tk.Doc = "running", "node1", "att1", 2, []byte(`{"v":2}`)
		b.apply(t, &store.Writes{Pools: []store.Pool{p}, Jobs: []store.Job{j}, Nodes: []store.Node{n}, Tasks: []store.Task{tk}})

		gotP, err = b.s.PoolGet(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requirePool(t, gotP, p)
		gotJ, err = b.s.JobGet(b.ctx, "acct", "job1")
		requireNoError(t, err)
		requireJob(t, gotJ, j)
		gotN, err = b.s.NodeGet(b.ctx, "acct", "node1")
		requireNoError(t, err)
		requireNode(t, gotN, n)
		requireTask(t, b.taskGet(t, "acct", "job1", "task1"), tk)

		// Upserts never duplicate.
		pools, err := b.s.PoolList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(pools)", len(pools), 1)
		jobs, err := b.s.JobList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(jobs)", len(jobs), 1)
	})

	t.Run("UpsertCaseInsensitive", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")))
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
		b.insertTasks(t, task("acct", "job1", "task1"))

		b.apply(t, &store.Writes{
			Pools: []store.Pool{pool("acct", "POOL1")},
			Jobs:  []store.Job{job("acct", "JOB1")},
			Tasks: []store.Task{task("acct", "JOB1", "TASK1")},
		})
		pools, err := b.s.PoolList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(pools)", len(pools), 1)
		jobs, err := b.s.JobList(b.ctx, "acct")
		requireNoError(t, err)
		requireEqual(t, "len(jobs)", len(jobs), 1)
		tasks := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireEqual(t, "len(tasks)", len(tasks), 1)
	})

	t.Run("TaskUpsertKeepsSeq", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.insertTasks(t, task("acct", "job1", "a"), task("acct", "job1", "b"), task("acct", "job1", "c"))
		before := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})

		a := before[0]
		a.State = "completed"
		a.Seq = 0 // ignored by Apply
		b.apply(t, &store.Writes{Tasks: []store.Task{a}})

		after := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireIDs(t, "tasks", after, taskID, "a", "b", "c")
		for i := range before {
			requireEqual(t, "seq of "+before[i].ID, after[i].Seq, before[i].Seq)
		}
		requireEqual(t, "state", after[0].State, "completed")
	})

	t.Run("TaskUpsertNewGetsSeq", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.insertTasks(t, task("acct", "job1", "a"), task("acct", "job1", "b"))
		b.apply(t, &store.Writes{Tasks: []store.Task{task("acct", "job1", "c"), task("acct", "job1", "d")}})
		b.insertTasks(t, task("acct", "job1", "e"))

		got := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireIDs(t, "tasks", got, taskID, "a", "b", "c", "d", "e")
		requireSeqIncreasing(t, got)
	})

	t.Run("DeleteJobDeletesTasks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job2")))
		b.insertTasks(t, task("acct", "job1", "a"), task("acct", "job1", "b"))
		b.insertTasks(t, task("acct", "job2", "a"))

		b.apply(t, &store.Writes{DeleteJobs: []store.Job{{Account: "acct", ID: "JOB1"}}})

		_, err := b.s.JobGet(b.ctx, "acct", "job1")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.TaskGet(b.ctx, "acct", "job1", "a")
		requireErrorIs(t, err, store.ErrNotFound)
		requireEqual(t, "len(job1 tasks)", len(b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})), 0)
		requireEqual(t, "len(job1 counts)", len(b.counts(t, "acct", "job1")), 0)
		unfinished, err := b.s.TaskListUnfinished(b.ctx)
		requireNoError(t, err)
		requireIDs(t, "unfinished", unfinished, taskID, "a")
		requireEqual(t, "job of unfinished", unfinished[0].JobID, "job2")

		// The other job and its task are untouched.
		_, err = b.s.JobGet(b.ctx, "acct", "job2")
		requireNoError(t, err)
		requireTask(t, b.taskGet(t, "acct", "job2", "a"), task("acct", "job2", "a"))

		// A job of the same id can be created again, and starts empty.
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
		requireEqual(t, "len(job1 tasks)", len(b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})), 0)
	})

	t.Run("Deletes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")))
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool2")))
		b.apply(t, &store.Writes{Nodes: []store.Node{node("acct", "node1", "pool1"), node("acct", "node2", "pool1")}})
		b.insertTasks(t, task("acct", "job1", "a"), task("acct", "job1", "b"))

		b.apply(t, &store.Writes{
			DeletePools: []store.Pool{{Account: "acct", ID: "POOL1"}},
			DeleteNodes: []store.Node{{Account: "acct", ID: "NODE1"}},
			DeleteTasks: []store.TaskKey{{Account: "acct", JobID: "JOB1", ID: "A"}},
		})

		_, err := b.s.PoolGet(b.ctx, "acct", "pool1")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.NodeGet(b.ctx, "acct", "node1")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.TaskGet(b.ctx, "acct", "job1", "a")
		requireErrorIs(t, err, store.ErrNotFound)

		pools, err := b.s.PoolList(b.ctx, "acct")
		requireNoError(t, err)
		requireIDs(t, "pools", pools, poolID, "pool2")
		nodes, err := b.s.NodeListByPool(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requireIDs(t, "nodes", nodes, nodeID, "node2")
		tasks := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireIDs(t, "tasks", tasks, taskID, "b")
	})

	t.Run("DeleteMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.apply(t, &store.Writes{
			DeletePools: []store.Pool{{Account: "acct", ID: "nopool"}},
			DeleteNodes: []store.Node{{Account: "acct", ID: "nonode"}},
			DeleteJobs:  []store.Job{{Account: "acct", ID: "nojob"}},
			DeleteTasks: []store.TaskKey{{Account: "acct", JobID: "nojob", ID: "notask"}},
		})
	})

	t.Run("DeletesBeforeUpserts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct", "pool1")))
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct", "job1")))
		b.insertTasks(t, task("acct", "job1", "a"), task("acct", "job1", "b"))
		oldA := b.taskGet(t, "acct", "job1", "a")

		p := pool("acct", "pool1")
		p.Doc = []byte(`{"recreated":true}`)
		j := job("acct", "job1")
		j.Doc = []byte(`{"recreated":true}`)
		a := task("acct", "job1", "a")
		a.Doc = []byte(`{"recreated":true}`)
		b.apply(t, &store.Writes{
			DeletePools: []store.Pool{{Account: "acct", ID: "pool1"}},
			Pools:       []store.Pool{p},
			DeleteJobs:  []store.Job{{Account: "acct", ID: "job1"}},
			Jobs:        []store.Job{j},
			DeleteTasks: []store.TaskKey{{Account: "acct", JobID: "job1", ID: "a"}},
			Tasks:       []store.Task{a},
		})

		gotP, err := b.s.PoolGet(b.ctx, "acct", "pool1")
		requireNoError(t, err)
		requirePool(t, gotP, p)
		gotJ, err := b.s.JobGet(b.ctx, "acct", "job1")
		requireNoError(t, err)
		requireJob(t, gotJ, j)
		// The job's delete took task b with it; a was deleted and inserted
		// again, so it has a new Seq.
		tasks := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireIDs(t, "tasks", tasks, taskID, "a")
		requireTask(t, tasks[0], a)
		if tasks[0].Seq <= oldA.Seq {
			t.Fatalf("recreated task seq = %d, want > %d", tasks[0].Seq, oldA.Seq)
		}
	})

	t.Run("Atomic", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx, cancel := context.WithCancel(b.ctx)
		cancel()
		err := b.s.Apply(ctx, &store.Writes{
			Pools: []store.Pool{pool("acct", "pool1")},
			Tasks: []store.Task{task("acct", "job1", "a")},
		})
		if err == nil {
			t.Fatal("Apply with a canceled context succeeded")
		}
		_, err = b.s.PoolGet(b.ctx, "acct", "pool1")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.TaskGet(b.ctx, "acct", "job1", "a")
		requireErrorIs(t, err, store.ErrNotFound)
	})
}

func testAccountIsolation(t *testing.T, setup setupFunc) {
	t.Run("SameIDs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, acct := range []string{"acct1", "acct2"} {
			requireNoError(t, b.s.PoolInsert(b.ctx, pool(acct, "pool1")))
			requireNoError(t, b.s.JobInsert(b.ctx, job(acct, "job1")))
			b.apply(t, &store.Writes{Nodes: []store.Node{node(acct, "node1", "pool1")}})
			b.insertTasks(t, task(acct, "job1", "task1"))
		}
		// acct1 has one more of each.
		requireNoError(t, b.s.PoolInsert(b.ctx, pool("acct1", "pool2")))
		requireNoError(t, b.s.JobInsert(b.ctx, job("acct1", "job2")))
		b.apply(t, &store.Writes{Nodes: []store.Node{node("acct1", "node2", "pool1")}})
		b.insertTasks(t, task("acct1", "job1", "task2"))

		for _, acct := range []string{"acct1", "acct2"} {
			p, err := b.s.PoolGet(b.ctx, acct, "pool1")
			requireNoError(t, err)
			requirePool(t, p, pool(acct, "pool1"))
			j, err := b.s.JobGet(b.ctx, acct, "job1")
			requireNoError(t, err)
			requireJob(t, j, job(acct, "job1"))
			n, err := b.s.NodeGet(b.ctx, acct, "node1")
			requireNoError(t, err)
			requireNode(t, n, node(acct, "node1", "pool1"))
			requireTask(t, b.taskGet(t, acct, "job1", "task1"), task(acct, "job1", "task1"))
		}

		pools, err := b.s.PoolList(b.ctx, "acct2")
		requireNoError(t, err)
		requireIDs(t, "acct2 pools", pools, poolID, "pool1")
		jobs, err := b.s.JobList(b.ctx, "acct2")
		requireNoError(t, err)
		requireIDs(t, "acct2 jobs", jobs, jobID, "job1")
		nodes, err := b.s.NodeListByPool(b.ctx, "acct2", "pool1")
		requireNoError(t, err)
		requireIDs(t, "acct2 nodes", nodes, nodeID, "node1")
		tasks := b.taskList(t, store.TaskListParams{Account: "acct2", JobID: "job1"})
		requireIDs(t, "acct2 tasks", tasks, taskID, "task1")
		requireEqual(t, "acct2 active count", b.counts(t, "acct2", "job1")["active"].Count, 1)
		requireEqual(t, "acct1 active count", b.counts(t, "acct1", "job1")["active"].Count, 2)

		_, err = b.s.PoolGet(b.ctx, "acct2", "pool2")
		requireErrorIs(t, err, store.ErrNotFound)
		_, err = b.s.TaskGet(b.ctx, "acct2", "job1", "task2")
		requireErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("Deletes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, acct := range []string{"acct1", "acct2"} {
			requireNoError(t, b.s.PoolInsert(b.ctx, pool(acct, "pool1")))
			requireNoError(t, b.s.JobInsert(b.ctx, job(acct, "job1")))
			b.apply(t, &store.Writes{Nodes: []store.Node{node(acct, "node1", "pool1")}})
			b.insertTasks(t, task(acct, "job1", "task1"), task(acct, "job1", "task2"))
		}
		b.apply(t, &store.Writes{
			DeletePools: []store.Pool{{Account: "acct1", ID: "pool1"}},
			DeleteNodes: []store.Node{{Account: "acct1", ID: "node1"}},
			DeleteJobs:  []store.Job{{Account: "acct1", ID: "job1"}},
		})
		b.apply(t, &store.Writes{DeleteTasks: []store.TaskKey{{Account: "acct2", JobID: "job1", ID: "task1"}}})

		_, err := b.s.PoolGet(b.ctx, "acct2", "pool1")
		requireNoError(t, err)
		_, err = b.s.NodeGet(b.ctx, "acct2", "node1")
		requireNoError(t, err)
		_, err = b.s.JobGet(b.ctx, "acct2", "job1")
		requireNoError(t, err)
		tasks := b.taskList(t, store.TaskListParams{Account: "acct2", JobID: "job1"})
		requireIDs(t, "acct2 tasks", tasks, taskID, "task2")
		requireEqual(t, "len(acct1 tasks)", len(b.taskList(t, store.TaskListParams{Account: "acct1", JobID: "job1"})), 0)
	})
}
