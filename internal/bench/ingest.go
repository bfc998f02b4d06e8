package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// ingest: tasks added per second through add task collection (100 tasks
// per call) from 1, 8 and 32 concurrent clients, all into one job whose pool
// has no node (so nothing runs), next to the rate at which the store alone
// takes the same rows (TaskInsert batches of 100 rows of the same document
// size, in another database, from this process). Then the server's memory
// holding every task.

// ingestTask is a typical task: a short command line, two resource files,
// constraints (the shape of the store benchmark's document).
func ingestTask(i int) azbatch.CreateTaskContent {
	part := fmt.Sprintf("part-%07d.csv", i)
	return azbatch.CreateTaskContent{
		ID:          to(taskID(i)),
		CommandLine: to("/bin/sh -c 'python3 process.py --input data/" + part + " --output out/'"),
		ResourceFiles: []azbatch.ResourceFile{
			{HTTPURL: to("https://storage.example/data/" + part), FilePath: to("data/" + part)},
			{HTTPURL: to("https://storage.example/bin/process.py"), FilePath: to("process.py")},
		},
		Constraints: &azbatch.TaskConstraints{MaxWallClockTime: to("PT1H"), MaxTaskRetryCount: to[int32](3)},
	}
}

func taskID(i int) string { return fmt.Sprintf("task-%07d", i) }

func runIngest(ctx context.Context, e *env, r *Result) (err error) {
	p := e.p
	srv, err := startServer(ctx, e, "ingest")
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Client
	const jobID = "ingest"
	if _, err := c.CreatePool(ctx, poolContent("ingest", 0, 1, "local"), nil); err != nil {
		return fmt.Errorf("create pool: %w", err)
	}
	if err := createJob(ctx, c, jobID, "ingest"); err != nil {
		return err
	}

	total := 0
	var rateFigs []int // indexes in r.Figures of the rates, to add the limit
	for i, clients := range p.IngestClients {
		n := p.IngestTasks[i]
		from := total
		stopProfile := srv.profile(fmt.Sprintf("%dclients", clients))
		m := srv.meterCPU()
		start := time.Now()
		err := addTasks(ctx, c, jobID, n, clients, func(j int) azbatch.CreateTaskContent { return ingestTask(from + j) })
		elapsed := time.Since(start)
		use, merr := m.stop()
		stopProfile()
		if err != nil {
			return fmt.Errorf("%d clients: %w", clients, err)
		}
		if merr != nil {
			return merr
		}
		total += n
		rate := float64(n) / elapsed.Seconds()
		f := Figure{
			Key:   fmt.Sprintf("ingest.rate.%dclients", clients),
			Name:  fmt.Sprintf("add task collection, %d client%s", clients, plural(clients)),
			Value: rate, Unit: "tasks/s",
		}
		if clients == 8 {
			f.Target = atLeast(50_000, "≥ 50,000 tasks/s with 8 clients")
		}
		r.add(f)
		rateFigs = append(rateFigs, len(r.Figures)-1)
		r.note("%d client%s: %d tasks (job now %d) in %.2fs; server %.2f cores (%.0f µs CPU/task), load generator %.2f cores",
			clients, plural(clients), n, total, elapsed.Seconds(), use.Server, use.ServerSeconds/float64(n)*1e6, use.Bench)
		e.logf("ingest: %d clients: %.0f tasks/s (server %.2f cores, bench %.2f cores)", clients, rate, use.Server, use.Bench)
	}

	tc, err := taskCounts(ctx, c, jobID)
	if err != nil {
		return err
	}
	if got := int(deref(tc.Active)); got != total {
		return fmt.Errorf("job has %d active tasks, want %d", got, total)
	}
	rss, err := srv.RSS()
	if err != nil {
		return err
	}
	peak, _ := srv.PeakRSS()
	r.add(Figure{
		Key: "ingest.rss", Name: fmt.Sprintf("server RSS holding %s tasks", groupThousands(int64(total))),
		Value: float64(rss), Unit: "bytes",
		Target: atMost(1<<30, "< 1 GiB at 1,000,000 tasks"),
	})
	r.note("server peak RSS (VmHWM) %s", formatBytes(float64(peak)))

	// The limit: the same rows, straight into a store of their own.
	doc, err := storedDoc(ctx, c, jobID, taskID(0))
	if err != nil {
		return err
	}
	dir := filepath.Join(e.tmp, "ingest-store")
	st, elapsed, err := storeInsert(ctx, dir, total, doc, "active")
	if err != nil {
		return err
	}
	st.Close()
	os.RemoveAll(dir)
	limit := Limit{Name: "store TaskInsert", Value: float64(total) / elapsed.Seconds(), Unit: "tasks/s"}
	for _, i := range rateFigs {
		r.Figures[i].Limits = append(r.Figures[i].Limits, limit)
	}
	r.note("limit: %d rows of %d-byte documents inserted with TaskInsert, 100 per transaction, one writer, in %.2fs", total, len(doc), elapsed.Seconds())
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// storedDoc is the JSON document of a task as the server returns it: the
// size of what it stores.
func storedDoc(ctx context.Context, c *azbatch.Client, jobID, id string) ([]byte, error) {
	t, err := c.GetTask(ctx, jobID, id, nil)
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, err)
	}
	return json.Marshal(t.Task)
}

// storeInsert opens a new SQLite store in dir and inserts n tasks of one
// job with doc as their document, 100 per TaskInsert, and returns the store
// and the time the inserts took.
func storeInsert(ctx context.Context, dir string, n int, doc []byte, state string) (*sqlite.Store, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "kiln.db"))
	if err != nil {
		return nil, 0, err
	}
	const per = 100
	batch := make([]store.Task, 0, per)
	start := time.Now()
	for from := 0; from < n; from += per {
		batch = batch[:0]
		for i := from; i < min(from+per, n); i++ {
			batch = append(batch, store.Task{Account: benchAccount, JobID: "job", ID: taskID(i), State: state, Slots: 1, Doc: doc})
		}
		errs, err := st.TaskInsert(ctx, batch)
		if err != nil {
			st.Close()
			return nil, 0, err
		}
		for _, err := range errs {
			if err != nil {
				st.Close()
				return nil, 0, err
			}
		}
	}
	return st, time.Since(start), nil
}
