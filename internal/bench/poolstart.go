package bench

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// poolstart: a pool of real local agents resized from 0 to N nodes; the
// time from the resize call to the last node's transition to idle as the
// server recorded it (the nodes' stateTransitionTime, so polling adds no
// error), p50 over PoolStartRuns resizes (the pool goes back to 0 between
// them). The limit: starting N kiln processes at once (`kiln --version`)
// and waiting for all of them, the process start every agent pays.

func runPoolStart(ctx context.Context, e *env, r *Result) error {
	p := e.p
	n := p.PoolStartNodes
	srv, err := startServer(ctx, e, "poolstart")
	if err != nil {
		return err
	}
	defer srv.Close()
	c := srv.Client
	const id = "poolstart"
	if _, err := c.CreatePool(ctx, poolContent(id, 0, 1, "local"), nil); err != nil {
		return fmt.Errorf("create pool: %w", err)
	}
	var xs []float64
	for run := range p.PoolStartRuns {
		stopProfile := srv.profile(fmt.Sprintf("run%d", run))
		t0 := time.Now().Round(0)
		_, err := c.ResizePool(ctx, id, azbatch.ResizePoolContent{TargetDedicatedNodes: to(int32(n))}, nil)
		if err != nil {
			stopProfile()
			return fmt.Errorf("resize to %d: %w", n, err)
		}
		nodes, err := waitNodes(ctx, c, id, n, azbatch.NodeStateIdle, time.Minute)
		stopProfile()
		if err != nil {
			return err
		}
		var last time.Time
		for _, nd := range nodes {
			if nd.StateTransitionTime != nil && nd.StateTransitionTime.After(last) {
				last = *nd.StateTransitionTime
			}
		}
		xs = append(xs, durMs(last.Sub(t0)))
		e.logf("poolstart: run %d: %d nodes idle after %.0f ms", run+1, n, xs[len(xs)-1])
		if run == p.PoolStartRuns-1 {
			break
		}
		if _, err := c.ResizePool(ctx, id, azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](0)}, nil); err != nil {
			return fmt.Errorf("resize to 0: %w", err)
		}
		if _, err := waitNodes(ctx, c, id, 0, azbatch.NodeStateIdle, time.Minute); err != nil {
			return err
		}
		// Let the pool leave its resizing state before the next resize.
		err = waitFor(ctx, time.Minute, 20*time.Millisecond, "pool steady", func() (bool, error) {
			pl, err := c.GetPool(ctx, id, nil)
			return err == nil && deref(pl.AllocationState) == azbatch.AllocationStateSteady, err
		})
		if err != nil {
			return err
		}
	}
	srv.Close()

	var lim []float64
	for range max(p.PoolStartRuns, 3) {
		d, err := startProcesses(ctx, e.cfg.Exe, n)
		if err != nil {
			return err
		}
		lim = append(lim, durMs(d))
	}
	r.add(Figure{
		Key: "poolstart.p50", Name: fmt.Sprintf("resize 0 → %d local nodes → all idle, p50 of %d", n, len(xs)),
		Value: quantile(xs, 0.5), Unit: "ms", Target: atMost(1000, "16 nodes idle within 1 s"),
		Limits: []Limit{{Name: fmt.Sprintf("%d × `kiln --version` at once", n), Value: quantile(lim, 0.5), Unit: "ms"}},
	})
	r.note("each run: %v ms", roundAll(xs))
	return nil
}

// startProcesses starts n `kiln --version` at once and waits for all.
func startProcesses(ctx context.Context, exe string, n int) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.CommandContext(ctx, exe, "--version").CombinedOutput(); err != nil {
				errs <- fmt.Errorf("kiln --version: %v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

func roundAll(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x + 0.5)
	}
	return out
}
