package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// latency: on an idle local pool (2 nodes x 4 slots), tasks are added one
// at a time, each once the previous one has completed, so that a slot is
// always free. Every figure comes from timestamps, not from polling:
//
//   - add → running: executionInfo.startTime (the agent's "started" event:
//     the process start) minus the client's clock just before Add Task;
//   - exit → completed: the task's stateTransitionTime into completed (the
//     server's clock when it applied the "completed" event) minus the time
//     the process itself recorded as its last action (`date +%s.%N` to
//     stdout, read back through the file API).
//
// All clocks are this machine's. The limits: an unauthenticated request to
// the server (GET /healthz) and, for the same command started by this
// process, the fork/exec and the time from its last action to its exit
// being seen (Wait returning).

const latencyCommand = "/bin/sh -c 'date +%s.%N'"

func runLatency(ctx context.Context, e *env, r *Result) error {
	n := e.p.LatencyTasks
	srv, err := startServer(ctx, e, "latency")
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Client
	const id = "latency"
	if err := createPool(ctx, c, id, 2, 4, "local", time.Minute); err != nil {
		return err
	}
	if err := createJob(ctx, c, id, id); err != nil {
		return err
	}

	var addRun, addDone, exitDone, exitEnd []float64
	stopProfile := srv.profile("run")
	defer stopProfile()
	for i := range n {
		tid := taskID(i)
		t0 := time.Now().Round(0)
		if _, err := c.CreateTask(ctx, id, azbatch.CreateTaskContent{ID: to(tid), CommandLine: to(latencyCommand)}, nil); err != nil {
			return fmt.Errorf("add task %s: %w", tid, err)
		}
		var t azbatch.Task
		err := waitFor(ctx, 30*time.Second, 2*time.Millisecond, "task "+tid+" to complete", func() (bool, error) {
			resp, err := c.GetTask(ctx, id, tid, nil)
			t = resp.Task
			return err == nil && deref(t.State) == azbatch.TaskStateCompleted, err
		})
		if err != nil {
			return err
		}
		ei := t.ExecutionInfo
		if ei == nil || deref(ei.Result) != azbatch.TaskExecutionResultSuccess || ei.StartTime == nil || ei.EndTime == nil || t.StateTransitionTime == nil {
			return fmt.Errorf("task %s did not succeed: %+v", tid, ei)
		}
		exitAt, err := taskRecordedTime(ctx, c, id, tid)
		if err != nil {
			return err
		}
		addRun = append(addRun, durMs(ei.StartTime.Sub(t0)))
		addDone = append(addDone, durMs(t.StateTransitionTime.Sub(t0)))
		exitDone = append(exitDone, durMs(t.StateTransitionTime.Sub(exitAt)))
		exitEnd = append(exitEnd, durMs(ei.EndTime.Sub(exitAt)))
	}
	stopProfile()

	// Limits, while the server idles.
	rtt, err := srv.healthRoundTrip(ctx, 200)
	if err != nil {
		return err
	}
	spawn, detect, err := localProcessLatency(ctx, min(n, 200))
	if err != nil {
		return err
	}
	rttLimit := Limit{Name: "GET /healthz p50", Value: rtt, Unit: "ms"}
	for _, q := range []struct {
		q      float64
		name   string
		target *Target
	}{
		{0.5, "p50", atMost(5, "≤ 5 ms")},
		{0.99, "p99", atMost(50, "≤ 50 ms")},
	} {
		r.add(Figure{
			Key: "latency.add_running." + q.name, Name: "add → running (process start), " + q.name,
			Value: quantile(addRun, q.q), Unit: "ms", Target: q.target,
			Limits: []Limit{rttLimit, {Name: "fork/exec " + q.name, Value: quantile(spawn, q.q), Unit: "ms"}},
		})
	}
	for _, q := range []struct {
		q    float64
		name string
	}{{0.5, "p50"}, {0.99, "p99"}} {
		r.add(Figure{
			Key: "latency.exit_completed." + q.name, Name: "exit → completed (server), " + q.name,
			Value: quantile(exitDone, q.q), Unit: "ms",
			Limits: []Limit{{Name: "exit seen by parent " + q.name, Value: quantile(detect, q.q), Unit: "ms"}},
		})
	}
	r.note("add → completed as the server records it (the whole round trip): p50 %.2f ms, p99 %.2f ms", quantile(addDone, 0.5), quantile(addDone, 0.99))
	r.note("exit → agent's endTime (exit seen by the agent): p50 %.2f ms, p99 %.2f ms", quantile(exitEnd, 0.5), quantile(exitEnd, 0.99))
	r.note("%d tasks `%s`, one at a time; limits from %d local runs of the same command", n, latencyCommand, len(spawn))
	e.logf("latency: add→running p50 %.2f ms p99 %.2f ms; exit→completed p50 %.2f ms p99 %.2f ms",
		quantile(addRun, 0.5), quantile(addRun, 0.99), quantile(exitDone, 0.5), quantile(exitDone, 0.99))
	return nil
}

// taskRecordedTime reads the time a task wrote to its stdout.
func taskRecordedTime(ctx context.Context, c *azbatch.Client, jobID, taskID string) (time.Time, error) {
	f, err := c.GetTaskFile(ctx, jobID, taskID, "stdout.txt", nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("read stdout of %s: %w", taskID, err)
	}
	b, err := io.ReadAll(f.Body)
	f.Body.Close()
	if err != nil {
		return time.Time{}, err
	}
	return parseDate(b)
}

// parseDate parses the output of `date +%s.%N`.
func parseDate(b []byte) (time.Time, error) {
	s := strings.TrimSpace(string(b))
	sec, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 9 {
		return time.Time{}, fmt.Errorf("not a `date +%%s.%%N` output: %q", s)
	}
	secs, err1 := strconv.ParseInt(sec, 10, 64)
	nanos, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, fmt.Errorf("not a `date +%%s.%%N` output: %q", s)
	}
	return time.Unix(secs, nanos), nil
}

// localProcessLatency runs the latency command n times from this process:
// how long starting it takes (fork/exec, cmd.Start), and how long from its
// last action to Wait returning.
func localProcessLatency(ctx context.Context, n int) (spawn, detect []float64, err error) {
	for range n {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", "date +%s.%N")
		cmd.Stdout = &out
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		spawn = append(spawn, durMs(time.Since(t0)))
		if err := cmd.Wait(); err != nil {
			return nil, nil, err
		}
		seen := time.Now().Round(0)
		at, err := parseDate(out.Bytes())
		if err != nil {
			return nil, nil, err
		}
		detect = append(detect, durMs(seen.Sub(at)))
	}
	return spawn, detect, nil
}
