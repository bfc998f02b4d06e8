package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// dispatch: the makespan of N trivial tasks (/bin/true) on a local pool of
// 2 nodes with 4 slots each, from the first add (8 concurrent clients, 100
// tasks per call) to the last task's completion as the server recorded it
// (its stateTransitionTime, so polling adds no error), next to the same N
// commands run 8 at a time by xargs, and to the file system work alone that
// every task costs an agent: its directory in Azure's layout
// (workitems/<job>/job-1/<task>/wd) and its stdout.txt and stderr.txt,
// created 8 at a time.

const (
	dispatchNodes = 2
	dispatchSlots = 4
)

func runDispatch(ctx context.Context, e *env, r *Result) error {
	n := e.p.DispatchTasks
	srv, err := startServer(ctx, e, "dispatch")
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Client
	const id = "dispatch"
	if err := createPool(ctx, c, id, dispatchNodes, dispatchSlots, "local", time.Minute); err != nil {
		return err
	}
	if err := createJob(ctx, c, id, id); err != nil {
		return err
	}

	stopProfile := srv.profile("run")
	m := srv.meterCPU()
	start := time.Now().Round(0) // wall clock: compared with the server's times
	err = addTasks(ctx, c, id, n, 8, func(i int) azbatch.CreateTaskContent {
		return azbatch.CreateTaskContent{ID: to(taskID(i)), CommandLine: to("/bin/true")}
	})
	added := time.Since(start)
	if err == nil {
		_, err = waitCompleted(ctx, c, id, n, 10*time.Millisecond, time.Minute+time.Duration(n)*50*time.Millisecond)
	}
	use, merr := m.stop()
	stopProfile()
	if err != nil {
		return err
	}
	if merr != nil {
		return merr
	}

	tasks, err := listTasks(ctx, c, id, []string{"id", "state", "stateTransitionTime", "executionInfo"})
	if err != nil {
		return err
	}
	if len(tasks) != n {
		return fmt.Errorf("listed %d tasks, want %d", len(tasks), n)
	}
	var end time.Time
	failed := 0
	for _, t := range tasks {
		if deref(t.State) != azbatch.TaskStateCompleted || t.StateTransitionTime == nil {
			return fmt.Errorf("task %s is %s", deref(t.ID), deref(t.State))
		}
		if t.ExecutionInfo == nil || deref(t.ExecutionInfo.Result) != azbatch.TaskExecutionResultSuccess {
			failed++
		}
		if t.StateTransitionTime.After(end) {
			end = *t.StateTransitionTime
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d tasks failed", failed, n)
	}
	makespan := end.Sub(start)
	srv.Close() // the limit runs on a quiet machine

	limit, err := xargsMakespan(ctx, n, dispatchNodes*dispatchSlots)
	if err != nil {
		return err
	}
	dirs, err := taskDirsMakespan(ctx, filepath.Join(e.tmp, "dispatch-dirs"), n, dispatchNodes*dispatchSlots)
	if err != nil {
		return err
	}
	lim := Limit{Name: fmt.Sprintf("xargs -P %d", dispatchNodes*dispatchSlots), Value: limit.Seconds(), Unit: "s"}
	dirLim := Limit{Name: "task directories alone", Value: dirs.Seconds(), Unit: "s"}
	r.add(Figure{
		Key: "dispatch.makespan", Name: fmt.Sprintf("makespan, %s × /bin/true on %d×%d slots", groupThousands(int64(n)), dispatchNodes, dispatchSlots),
		Value: makespan.Seconds(), Unit: "s", Limits: []Limit{lim, dirLim},
	})
	r.add(Figure{
		Key: "dispatch.ratio", Name: "makespan / xargs makespan",
		Value: makespan.Seconds() / limit.Seconds(), Unit: "x",
		Target: atMost(1.5, "≤ 1.5× xargs"),
	})
	r.add(Figure{
		Key: "dispatch.rate", Name: "tasks completed per second",
		Value: float64(n) / makespan.Seconds(), Unit: "tasks/s",
		Limits: []Limit{{Name: "xargs", Value: float64(n) / limit.Seconds(), Unit: "tasks/s"}},
	})
	r.note("all %d tasks added after %.2fs; over the run the server used %.2f cores, the 2 agents %.2f, their tasks %.2f, the load generator %.2f",
		n, added.Seconds(), use.Server, use.Agents, use.Tasks, use.Bench)
	e.logf("dispatch: makespan %.2fs, xargs %.2fs", makespan.Seconds(), limit.Seconds())
	return nil
}

// xargsMakespan runs `seq n | xargs -P par -I{} /bin/true`: the same
// processes, started as fast as this machine starts them.
func xargsMakespan(ctx context.Context, n, par int) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", fmt.Sprintf("seq %d | xargs -P %d -I{} /bin/true", n, par))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("xargs: %v: %s", err, out)
	}
	return time.Since(start), nil
}

// taskDirsMakespan creates, par at a time, the directory and output files
// an agent creates for each of n tasks, under root (removed afterwards).
func taskDirsMakespan(ctx context.Context, root string, n, par int) (time.Duration, error) {
	defer os.RemoveAll(root)
	next := make(chan int)
	errc := make(chan error, par)
	var wg sync.WaitGroup
	start := time.Now()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				dir := filepath.Join(root, "workitems", "dispatch", "job-1", taskID(i))
				if err := os.MkdirAll(filepath.Join(dir, "wd"), 0o755); err != nil {
					errc <- err
					return
				}
				for _, name := range []string{"stdout.txt", "stderr.txt"} {
					f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
					if err != nil {
						errc <- err
						return
					}
					f.Close()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case err := <-errc:
			close(next)
			wg.Wait()
			return 0, err
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errc)
	if err := errors.Join(<-errc, ctx.Err()); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
