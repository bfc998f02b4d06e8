package storetest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

func testTaskInsert(t *testing.T, setup setupFunc) {
	t.Run("InsertGet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		full := task("acct", "job1", "Task1")
		full.State = "running"
		full.NodeID = "node1"
		full.AttemptID = "attempt-1"
		full.Slots = 4
		b.insertTasks(t, full, task("acct", "job1", "task2"))

		requireTask(t, b.taskGet(t, "acct", "job1", "Task1"), full)
		requireTask(t, b.taskGet(t, "ACCT", "JOB1", "TASK1"), full)
		requireTask(t, b.taskGet(t, "acct", "job1", "task2"), task("acct", "job1", "task2"))
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		errs, err := b.s.TaskInsert(b.ctx, nil)
		requireNoError(t, err)
		requireEqual(t, "len(errs)", len(errs), 0)
	})

	t.Run("SeqInInputOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Ids out of lexical order, in two batches.
		b.insertTasks(t, task("acct", "job1", "t9"), task("acct", "job1", "t1"), task("acct", "job1", "t5"))
		b.insertTasks(t, task("acct", "job1", "t0"), task("acct", "job1", "t7"))

		var seqs []int64
		for _, id := range []string{"t9", "t1", "t5", "t0", "t7"} {
			got := b.taskGet(t, "acct", "job1", id)
			if got.Seq <= 0 {
				t.Fatalf("task %q seq = %d, want > 0", id, got.Seq)
			}
			if len(seqs) > 0 && got.Seq <= seqs[len(seqs)-1] {
				t.Fatalf("task %q seq = %d, not after %d", id, got.Seq, seqs[len(seqs)-1])
			}
			seqs = append(seqs, got.Seq)
		}

		got := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireIDs(t, "tasks", got, taskID, "t9", "t1", "t5", "t0", "t7")
		for i, tk := range got {
			requireEqual(t, "seq of "+tk.ID, tk.Seq, seqs[i])
		}
	})

	t.Run("ErrExistsWithinBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := task("acct", "job1", "a")
		dup := task("acct", "job1", "a")
		dup.Doc = []byte(`{"dup":true}`)
		dupCase := task("acct", "job1", "A")
		errs, err := b.s.TaskInsert(b.ctx, []store.Task{first, task("acct", "job1", "b"), dup, dupCase, task("acct", "job1", "c")})
		requireNoError(t, err)
		requireEqual(t, "len(errs)", len(errs), 5)
		for i, wantExists := range []bool{false, false, true, true, false} {
			if wantExists {
				requireErrorIs(t, errs[i], store.ErrExists)
			} else {
				requireNoError(t, errs[i])
			}
		}
		// The first of the duplicates won.
		requireTask(t, b.taskGet(t, "acct", "job1", "a"), first)
		got := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireIDs(t, "tasks", got, taskID, "a", "b", "c")
	})

	t.Run("ErrExistsWithExisting", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		existing := task("acct", "job1", "a")
		b.insertTasks(t, existing)

		dup := task("acct", "job1", "A")
		dup.Doc = []byte(`{"dup":true}`)
		errs, err := b.s.TaskInsert(b.ctx, []store.Task{task("acct", "job1", "b"), dup, task("acct", "job1", "c")})
		requireNoError(t, err)
		requireNoError(t, errs[0])
		requireErrorIs(t, errs[1], store.ErrExists)
		requireNoError(t, errs[2])

		requireTask(t, b.taskGet(t, "acct", "job1", "a"), existing)
		got := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
		requireIDs(t, "tasks", got, taskID, "a", "b", "c")
		requireSeqIncreasing(t, got)
	})

	t.Run("SameIDOtherJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.insertTasks(t, task("acct", "job1", "a"))
		b.insertTasks(t, task("acct", "job2", "a"))
		requireTask(t, b.taskGet(t, "acct", "job1", "a"), task("acct", "job1", "a"))
		requireTask(t, b.taskGet(t, "acct", "job2", "a"), task("acct", "job2", "a"))
	})
}

func testTaskGet(t *testing.T, setup setupFunc) {
	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.insertTasks(t, task("acct", "job1", "a"))
		for _, k := range []store.TaskKey{
			{Account: "acct", JobID: "job1", ID: "missing"},
			{Account: "acct", JobID: "job2", ID: "a"},
			{Account: "other", JobID: "job1", ID: "a"},
		} {
			_, err := b.s.TaskGet(b.ctx, k.Account, k.JobID, k.ID)
			requireErrorIs(t, err, store.ErrNotFound)
		}
	})
}

func testTaskList(t *testing.T, setup setupFunc) {
	// states cycles through these for tasks t00..t11.
	states := []string{"active", "running", "completed", "preparing"}
	seed := func(t *testing.T, b *testBundle) []store.Task {
		t.Helper()
		var tasks []store.Task
		for i := range 12 {
			tk := task("acct", "job1", fmt.Sprintf("t%02d", 11-i)) // ids descend, seqs ascend
			tk.State = states[i%len(states)]
			tasks = append(tasks, tk)
		}
		b.insertTasks(t, tasks...)
		// Noise in another job and another account.
		b.insertTasks(t, task("acct", "job2", "x"), task("other", "job1", "y"))
		return b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1"})
	}
	ids := func(tasks []store.Task) []string {
		out := make([]string, len(tasks))
		for i, tk := range tasks {
			out[i] = tk.ID
		}
		return out
	}

	t.Run("All", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		all := seed(t, b)
		requireEqual(t, "len(tasks)", len(all), 12)
		requireSeqIncreasing(t, all)
		for i, tk := range all {
			requireEqual(t, "id", tk.ID, fmt.Sprintf("t%02d", 11-i))
			requireEqual(t, "state of "+tk.ID, tk.State, states[i%len(states)])
		}
		requireTask(t, all[0], store.Task{Account: "acct", JobID: "job1", ID: "t11", State: "active", Slots: 1, Doc: doc("task", "acct", "job1", "t11")})

		// Case-insensitive account and job.
		got := b.taskList(t, store.TaskListParams{Account: "ACCT", JobID: "JOB1"})
		requireIDs(t, "tasks", got, taskID, ids(all)...)
	})

	t.Run("EmptyJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "nojob"})
		requireEqual(t, "len(tasks)", len(got), 0)
	})

	t.Run("Paging", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		all := seed(t, b)
		var paged []store.Task
		var after int64
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			page := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", AfterSeq: after, Limit: 5})
			if len(page) > 5 {
				t.Fatalf("page of %d tasks, limit 5", len(page))
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			after = page[len(page)-1].Seq
		}
		requireIDs(t, "paged tasks", paged, taskID, ids(all)...)

		// AfterSeq alone.
		got := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", AfterSeq: all[9].Seq})
		requireIDs(t, "tasks after the 10th", got, taskID, ids(all[10:])...)
		// Limit alone.
		got = b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", Limit: 2})
		requireIDs(t, "first 2 tasks", got, taskID, ids(all[:2])...)
		// Past the end.
		got = b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", AfterSeq: all[11].Seq})
		requireEqual(t, "len(tasks past the end)", len(got), 0)
	})

	t.Run("States", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		all := seed(t, b)
		filter := func(states ...string) []string {
			var out []string
			for _, tk := range all {
				for _, s := range states {
					if tk.State == s {
						out = append(out, tk.ID)
					}
				}
			}
			return out
		}

		got := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", States: []string{"running"}})
		requireIDs(t, "running tasks", got, taskID, filter("running")...)
		requireSeqIncreasing(t, got)

		got = b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", States: []string{"completed", "active"}})
		requireIDs(t, "completed or active tasks", got, taskID, filter("active", "completed")...)
		requireSeqIncreasing(t, got)

		got = b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", States: []string{"nosuchstate"}})
		requireEqual(t, "len(tasks)", len(got), 0)

		// States with paging.
		want := filter("active", "preparing")
		var paged []store.Task
		var after int64
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			page := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", AfterSeq: after, Limit: 2,
				States: []string{"active", "preparing"}})
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			after = page[len(page)-1].Seq
		}
		requireIDs(t, "paged active or preparing tasks", paged, taskID, want...)
	})
}

func testTaskListUnfinished(t *testing.T, setup setupFunc) {
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := b.s.TaskListUnfinished(b.ctx)
		requireNoError(t, err)
		requireEqual(t, "len(tasks)", len(got), 0)
	})

	t.Run("OrderedByAccountJobSeq", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		mk := func(account, jobID, id, state string) store.Task {
			tk := task(account, jobID, id)
			tk.State = state
			return tk
		}
		// Inserted out of (account, job) order, with completed tasks mixed in.
		b.insertTasks(t, mk("acct-b", "job-1", "b1-1", "active"), mk("acct-b", "job-1", "b1-2", "completed"))
		b.insertTasks(t, mk("acct-a", "job-2", "a2-1", "running"), mk("acct-a", "job-2", "a2-0", "preparing"))
		b.insertTasks(t, mk("acct-a", "job-1", "a1-2", "active"), mk("acct-a", "job-1", "a1-1", "completed"),
			mk("acct-a", "job-1", "a1-0", "running"))

		// A task completing leaves the list; one un-completing (a rerun) joins it.
		done := b.taskGet(t, "acct-a", "job-2", "a2-1")
		done.State = "completed"
		rerun := b.taskGet(t, "acct-b", "job-1", "b1-2")
		rerun.State = "active"
		b.apply(t, &store.Writes{Tasks: []store.Task{done, rerun}})

		got, err := b.s.TaskListUnfinished(b.ctx)
		requireNoError(t, err)
		requireIDs(t, "unfinished tasks", got, taskID, "a1-2", "a1-0", "a2-0", "b1-1", "b1-2")
		requireTask(t, got[0], mk("acct-a", "job-1", "a1-2", "active"))
		for i := 1; i < len(got); i++ {
			if got[i].Account == got[i-1].Account && got[i].JobID == got[i-1].JobID && got[i].Seq <= got[i-1].Seq {
				t.Fatalf("task %q listed after %q but has a lower seq", got[i].ID, got[i-1].ID)
			}
		}
	})
}

func testTaskCounts(t *testing.T, setup setupFunc) {
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		requireEqual(t, "len(counts)", len(b.counts(t, "acct", "job1")), 0)
	})

	t.Run("Randomized", func(t *testing.T) { testTaskCountsRandomized(t, setup) })

	t.Run("CountsAndSlots", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		mk := func(id, state string, slots int32) store.Task {
			tk := task("acct", "job1", id)
			tk.State = state
			tk.Slots = slots
			return tk
		}
		b.insertTasks(t,
			mk("a", "active", 1), mk("b", "active", 2), mk("c", "running", 4),
			mk("d", "completed", 1), mk("e", "completed", 0), mk("f", "running", 3),
		)
		// Noise in another job and another account.
		b.insertTasks(t, task("acct", "job2", "a"), task("other", "job1", "a"))

		want := map[string]store.StateCount{
			"active":    {State: "active", Count: 2, Slots: 3},
			"running":   {State: "running", Count: 2, Slots: 7},
			"completed": {State: "completed", Count: 2, Slots: 1},
		}
		got := b.counts(t, "acct", "job1")
		requireEqual(t, "len(counts)", len(got), len(want))
		for s, w := range want {
			requireEqual(t, "count of "+s, got[s], w)
		}
		// Case-insensitive account and job.
		requireEqual(t, "len(counts)", len(b.counts(t, "ACCT", "JOB1")), len(want))

		// Counts follow updates and deletes.
		c := b.taskGet(t, "acct", "job1", "c")
		c.State = "completed"
		b.apply(t, &store.Writes{
			Tasks:       []store.Task{c},
			DeleteTasks: []store.TaskKey{{Account: "acct", JobID: "job1", ID: "a"}},
		})
		want = map[string]store.StateCount{
			"active":    {State: "active", Count: 1, Slots: 2},
			"running":   {State: "running", Count: 1, Slots: 3},
			"completed": {State: "completed", Count: 3, Slots: 5},
		}
		got = b.counts(t, "acct", "job1")
		requireEqual(t, "len(counts)", len(got), len(want))
		for s, w := range want {
			requireEqual(t, "count of "+s, got[s], w)
		}
	})
}

// testTaskCountsRandomized runs random inserts, upserts and deletes over a
// few tasks whose keys come in varying case, and after each checks that
// TaskCounts and TaskListUnfinished agree with TaskList. It catches
// bookkeeping that goes astray when a key is written twice in one Apply,
// deleted and upserted together, or named in another case.
func testTaskCountsRandomized(t *testing.T, setup setupFunc) {
	t.Parallel()
	b := setup(t)
	rng := rand.New(rand.NewPCG(1, 2))
	jobs := []string{"job1", "job2"}
	ids := []string{"a", "b", "c", "d", "e", "f"}
	states := []string{"active", "preparing", "running", "completed"}
	randCase := func(s string) string {
		if rng.IntN(3) == 0 {
			return strings.ToUpper(s)
		}
		return s
	}
	randTask := func() store.Task {
		tk := task(randCase("acct"), randCase(jobs[rng.IntN(len(jobs))]), randCase(ids[rng.IntN(len(ids))]))
		tk.State = states[rng.IntN(len(states))]
		tk.Slots = int32(rng.IntN(4))
		return tk
	}

	for step := range 300 {
		switch rng.IntN(4) {
		case 0:
			batch := make([]store.Task, 1+rng.IntN(4))
			for i := range batch {
				batch[i] = randTask()
			}
			_, err := b.s.TaskInsert(b.ctx, batch)
			requireNoError(t, err)
		case 1, 2:
			w := &store.Writes{}
			for range rng.IntN(5) {
				w.Tasks = append(w.Tasks, randTask())
			}
			for range rng.IntN(3) {
				tk := randTask()
				w.DeleteTasks = append(w.DeleteTasks, store.TaskKey{Account: tk.Account, JobID: tk.JobID, ID: tk.ID})
			}
			b.apply(t, w)
		case 3:
			if rng.IntN(4) == 0 {
				w := &store.Writes{DeleteJobs: []store.Job{{Account: "acct", ID: randCase(jobs[rng.IntN(len(jobs))])}}}
				if rng.IntN(2) == 0 {
					w.Tasks = []store.Task{randTask()}
				}
				b.apply(t, w)
			}
		}

		var unfinished []string
		for _, j := range jobs {
			want := map[string]store.StateCount{}
			for _, tk := range b.taskList(t, store.TaskListParams{Account: "acct", JobID: j}) {
				c := want[tk.State]
				c.State = tk.State
				c.Count++
				c.Slots += int64(tk.Slots)
				want[tk.State] = c
				if tk.State != "completed" {
					unfinished = append(unfinished, tk.ID)
				}
			}
			got := b.counts(t, "acct", j)
			if len(got) != len(want) {
				t.Fatalf("step %d: %s counts = %v, want %v", step, j, got, want)
			}
			for s, w := range want {
				if got[s] != w {
					t.Fatalf("step %d: %s counts = %v, want %v", step, j, got, want)
				}
			}
		}
		got, err := b.s.TaskListUnfinished(b.ctx)
		requireNoError(t, err)
		requireIDs(t, fmt.Sprintf("step %d: unfinished", step), got, taskID, unfinished...)
	}
}

// testTaskListResult checks the Result column: stored by insert and upsert,
// and used by TaskList to find a job's tasks with a given result.
func testTaskListResult(t *testing.T, setup setupFunc) {
	b := setup(t)
	var tasks []store.Task
	for i := range 10 {
		tk := task("acct", "job1", fmt.Sprintf("t%02d", i))
		switch i % 3 {
		case 0:
			tk.State = "active"
		case 1:
			tk.State, tk.Result = "completed", "success"
		case 2:
			tk.State, tk.Result = "completed", "failure"
		}
		tasks = append(tasks, tk)
	}
	b.insertTasks(t, tasks...)
	b.insertTasks(t, store.Task{Account: "acct", JobID: "job2", ID: "x", State: "completed", Result: "failure", Slots: 1, Doc: doc("task", "x")})

	failed := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", Result: "failure"})
	requireIDs(t, "failed", failed, func(tk store.Task) string { return tk.ID }, "t02", "t05", "t08")
	for _, tk := range failed {
		requireEqual(t, "result", tk.Result, "failure")
	}
	page := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", Result: "failure", AfterSeq: failed[0].Seq, Limit: 1})
	requireIDs(t, "failed page", page, func(tk store.Task) string { return tk.ID }, "t05")
	both := b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", Result: "success", States: []string{"completed"}})
	requireIDs(t, "succeeded", both, func(tk store.Task) string { return tk.ID }, "t01", "t04", "t07")

	// An upsert changes the result: t00 fails, t02 is reactivated.
	t00, t02 := tasks[0], tasks[2]
	t00.State, t00.Result = "completed", "failure"
	t02.State, t02.Result = "active", ""
	requireNoError(t, b.s.Apply(b.ctx, &store.Writes{Tasks: []store.Task{t00, t02}}))
	failed = b.taskList(t, store.TaskListParams{Account: "acct", JobID: "job1", Result: "failure"})
	requireIDs(t, "failed after upsert", failed, func(tk store.Task) string { return tk.ID }, "t00", "t05", "t08")
	got, err := b.s.TaskGet(b.ctx, "acct", "job1", "t00")
	requireNoError(t, err)
	requireEqual(t, "t00 result", got.Result, "failure")
}

// testTaskListUnfinishedPage checks paging through unfinished tasks in seq
// order across jobs and accounts.
func testTaskListUnfinishedPage(t *testing.T, setup setupFunc) {
	b := setup(t)
	var want []string
	for i := range 10 {
		tk := task([]string{"a", "b"}[i%2], []string{"j1", "j2", "j3"}[i%3], fmt.Sprintf("t%02d", i))
		if i%4 == 3 {
			tk.State = "completed"
		} else {
			want = append(want, tk.ID)
		}
		b.insertTasks(t, tk)
	}
	var got []string
	var after int64
	for {
		page, err := b.s.TaskListUnfinishedPage(b.ctx, after, 3)
		requireNoError(t, err)
		if len(page) > 3 {
			t.Fatalf("page of %d tasks, limit 3", len(page))
		}
		for _, tk := range page {
			if tk.Seq <= after {
				t.Fatalf("task %s seq %d not after %d", tk.ID, tk.Seq, after)
			}
			after = tk.Seq
			got = append(got, tk.ID)
		}
		if len(page) < 3 {
			break
		}
	}
	requireEqual(t, "unfinished ids", fmt.Sprint(got), fmt.Sprint(want))
	all, err := b.s.TaskListUnfinishedPage(b.ctx, 0, 0)
	requireNoError(t, err)
	requireEqual(t, "all unfinished", len(all), len(want))
}
