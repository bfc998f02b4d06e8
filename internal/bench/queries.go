package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/store"
)

// queries: one job holding F failed tasks (/bin/false, run first on one
// local node, which is then removed) followed by M active tasks (added
// through add task collection by 8 clients, to a pool without nodes). Then
// each query is repeated (QueryReps times at most, within QueryBudget, at
// least 3) and its p50 reported:
//
//   - get task counts;
//   - the first page of 1000 tasks with $filter=state eq 'active';
//   - the job's failed tasks: $filter=executionInfo/result eq 'failure',
//     maxresults=1000 (a page holding all F of them).
//
// Each is a raw signed GET whose answer is read to its end: the time on the
// wire and in the server, without the SDK's decoding. The limits: the same
// questions asked of a store alone (a SQLite store of its own holding M rows
// with the same documents: TaskCounts, TaskList of the active state), and
// an unauthenticated GET /healthz.

func runQueries(ctx context.Context, e *env, r *Result) error {
	p := e.p
	srv, err := startServer(ctx, e, "queries")
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Client
	const id = "queries"

	// Failed tasks first, on one node.
	if err := createPool(ctx, c, id, 1, 8, "local", time.Minute); err != nil {
		return err
	}
	if err := createJob(ctx, c, id, id); err != nil {
		return err
	}
	err = addTasks(ctx, c, id, p.QueryFailed, 1, func(i int) azbatch.CreateTaskContent {
		return azbatch.CreateTaskContent{ID: to(fmt.Sprintf("failed-%05d", i)), CommandLine: to("/bin/false")}
	})
	if err != nil {
		return err
	}
	tc, err := waitCompleted(ctx, c, id, p.QueryFailed, 20*time.Millisecond, time.Minute+time.Duration(p.QueryFailed)*50*time.Millisecond)
	if err != nil {
		return err
	}
	if int(deref(tc.Failed)) != p.QueryFailed {
		return fmt.Errorf("%d failed tasks, want %d", deref(tc.Failed), p.QueryFailed)
	}
	if _, err := c.ResizePool(ctx, id, azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](0)}, nil); err != nil {
		return fmt.Errorf("resize pool to 0: %w", err)
	}
	if _, err := waitNodes(ctx, c, id, 0, azbatch.NodeStateIdle, time.Minute); err != nil {
		return err
	}
	e.logf("queries: %d failed tasks seeded; adding %d active tasks", p.QueryFailed, p.QueryTasks)

	start := time.Now()
	if err := addTasks(ctx, c, id, p.QueryTasks, 8, ingestTask); err != nil {
		return err
	}
	e.logf("queries: %d tasks added in %.1fs", p.QueryTasks, time.Since(start).Seconds())
	tc, err = taskCounts(ctx, c, id)
	if err != nil {
		return err
	}
	if int(deref(tc.Active)) != p.QueryTasks {
		return fmt.Errorf("%d active tasks, want %d", deref(tc.Active), p.QueryTasks)
	}

	// Check once, through the SDK, that the queries answer what they should.
	activeFilter, failedFilter := "state eq 'active'", "executionInfo/result eq 'failure'"
	for _, q := range []struct {
		filter string
		want   int
	}{{activeFilter, min(1000, p.QueryTasks)}, {failedFilter, min(1000, p.QueryFailed)}} {
		page, err := c.NewListTasksPager(id, &azbatch.ListTasksOptions{Filter: to(q.filter), MaxResults: to[int32](1000)}).NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", q.filter, err)
		}
		if len(page.Value) != q.want {
			return fmt.Errorf("list %s: %d tasks on the first page, want %d", q.filter, len(page.Value), q.want)
		}
	}

	tasksPath := "/jobs/" + id + "/tasks"
	queries := []struct {
		key, name string
		path      string
		query     url.Values
	}{
		{"counts", "get task counts", "/jobs/" + id + "/taskcounts", nil},
		{"active_page", "list, first 1000 of state eq 'active'", tasksPath, url.Values{"maxresults": {"1000"}, "$filter": {activeFilter}}},
		{"failed", fmt.Sprintf("list failed (%d of them, executionInfo/result eq 'failure')", p.QueryFailed), tasksPath, url.Values{"maxresults": {"1000"}, "$filter": {failedFilter}}},
	}
	p50 := map[string]float64{}
	for _, q := range queries {
		stopProfile := srv.profile(q.key)
		xs, size, err := repeat(ctx, p.QueryReps, p.QueryBudget, func() (time.Duration, int, error) { return srv.rawGet(ctx, q.path, q.query) })
		stopProfile()
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		p50[q.key] = quantile(xs, 0.5)
		r.note("%s: %d calls, p50 %.3f ms, p99 %.3f ms, answer %s", q.name, len(xs), p50[q.key], quantile(xs, 0.99), formatBytes(float64(size)))
	}
	rss, err := srv.RSS()
	if err != nil {
		return err
	}
	doc, err := storedDoc(ctx, c, id, taskID(0))
	if err != nil {
		return err
	}
	rtt, err := srv.healthRoundTrip(ctx, 200)
	if err != nil {
		return err
	}
	srv.Close()

	// The limits: the store alone.
	dir := filepath.Join(e.tmp, "queries-store")
	st, _, err := storeInsert(ctx, dir, p.QueryTasks, doc, "active")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer st.Close()
	countsStore, _, err := repeat(ctx, p.QueryReps, p.QueryBudget, func() (time.Duration, int, error) {
		t0 := time.Now()
		cs, err := st.TaskCounts(ctx, benchAccount, "job")
		return time.Since(t0), len(cs), err
	})
	if err != nil {
		return err
	}
	pageStore, _, err := repeat(ctx, p.QueryReps, p.QueryBudget, func() (time.Duration, int, error) {
		t0 := time.Now()
		ts, err := st.TaskList(ctx, store.TaskListParams{Account: benchAccount, JobID: "job", Limit: 1001, States: []string{"active"}})
		return time.Since(t0), len(ts), err
	})
	if err != nil {
		return err
	}

	m := groupThousands(int64(p.QueryTasks))
	rttLimit := Limit{Name: "GET /healthz p50", Value: rtt, Unit: "ms"}
	r.add(Figure{
		Key: "queries.counts.p50", Name: fmt.Sprintf("get task counts, %s tasks, p50", m),
		Value: p50["counts"], Unit: "ms", Target: atMost(1, "≤ 1 ms at 1,000,000 tasks"),
		Limits: []Limit{{Name: "store TaskCounts p50", Value: quantile(countsStore, 0.5), Unit: "ms"}, rttLimit},
	})
	r.add(Figure{
		Key: "queries.active_page.p50", Name: fmt.Sprintf("1000-task page of state eq 'active', %s tasks, p50", m),
		Value: p50["active_page"], Unit: "ms", Target: atMost(50, "≤ 50 ms at 1,000,000 tasks"),
		Limits: []Limit{{Name: "store TaskList 1000 active p50", Value: quantile(pageStore, 0.5), Unit: "ms"}, rttLimit},
	})
	r.add(Figure{
		Key: "queries.failed.p50", Name: fmt.Sprintf("failed tasks (%d) among %s, p50", p.QueryFailed, m),
		Value: p50["failed"], Unit: "ms",
		Limits: []Limit{rttLimit},
	})
	r.add(Figure{
		Key: "queries.rss", Name: fmt.Sprintf("server RSS holding %s tasks", m),
		Value: float64(rss), Unit: "bytes", Target: atMost(1<<30, "< 1 GiB at 1,000,000 tasks"),
	})
	e.logf("queries: counts %.3f ms, active page %.2f ms, failed %.2f ms", p50["counts"], p50["active_page"], p50["failed"])
	return nil
}

// repeat calls f reps times, or until budget has passed after at least 3
// calls, and returns the durations in milliseconds and the last size.
func repeat(ctx context.Context, reps int, budget time.Duration, f func() (time.Duration, int, error)) ([]float64, int, error) {
	var xs []float64
	size := 0
	deadline := time.Now().Add(budget)
	for i := 0; i < reps && (i < 3 || time.Now().Before(deadline)); i++ {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		d, n, err := f()
		if err != nil {
			return nil, 0, err
		}
		xs = append(xs, durMs(d))
		size = n
	}
	return xs, size, nil
}
