package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// Helpers the scenarios share, all through the official SDK.

func to[T any](v T) *T { return &v }

// poolContent is a pool of n dedicated nodes with slots task slots each, on
// the image of a provider ("local" or "sim").
func poolContent(id string, n, slots int32, image string) azbatch.CreatePoolContent {
	sku := "host"
	if image == "sim" {
		sku = "sim"
	}
	return azbatch.CreatePoolContent{
		ID:                   to(id),
		VMSize:               to("standard_d2s_v3"),
		TargetDedicatedNodes: to(n),
		TaskSlotsPerNode:     to(slots),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: &azbatch.ImageReference{Publisher: to("kiln"), Offer: to(image), SKU: to(sku), Version: to("latest")},
			NodeAgentSKUID: to("batch.node.kiln." + image),
		},
	}
}

// waitFor calls cond every interval until it returns true or an error, or
// timeout passes.
func waitFor(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// listNodes returns every node of a pool.
func listNodes(ctx context.Context, c *azbatch.Client, poolID string) ([]azbatch.Node, error) {
	var out []azbatch.Node
	pager := c.NewListNodesPager(poolID, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
	}
	return out, nil
}

// nodesIn reports whether the pool has exactly n nodes, all in state want.
func nodesIn(ctx context.Context, c *azbatch.Client, poolID string, n int, want azbatch.NodeState) (bool, []azbatch.Node, error) {
	nodes, err := listNodes(ctx, c, poolID)
	if err != nil {
		return false, nil, err
	}
	if len(nodes) != n {
		return false, nodes, nil
	}
	for _, nd := range nodes {
		if nd.State == nil || *nd.State != want {
			return false, nodes, nil
		}
	}
	return true, nodes, nil
}

// waitNodes waits until the pool has exactly n nodes, all in state want.
func waitNodes(ctx context.Context, c *azbatch.Client, poolID string, n int, want azbatch.NodeState, timeout time.Duration) ([]azbatch.Node, error) {
	var nodes []azbatch.Node
	err := waitFor(ctx, timeout, 20*time.Millisecond, fmt.Sprintf("%d %s nodes in pool %s", n, want, poolID), func() (bool, error) {
		ok, ns, err := nodesIn(ctx, c, poolID, n, want)
		nodes = ns
		return ok, err
	})
	return nodes, err
}

// createPool creates a pool and waits until its nodes are idle.
func createPool(ctx context.Context, c *azbatch.Client, id string, n, slots int32, image string, timeout time.Duration) error {
	if _, err := c.CreatePool(ctx, poolContent(id, n, slots, image), nil); err != nil {
		return fmt.Errorf("create pool %s: %w", id, err)
	}
	_, err := waitNodes(ctx, c, id, int(n), azbatch.NodeStateIdle, timeout)
	return err
}

func createJob(ctx context.Context, c *azbatch.Client, id, poolID string) error {
	if _, err := c.CreateJob(ctx, azbatch.CreateJobContent{ID: to(id), PoolInfo: &azbatch.PoolInfo{PoolID: to(poolID)}}, nil); err != nil {
		return fmt.Errorf("create job %s: %w", id, err)
	}
	return nil
}

// addTasks adds n tasks to a job through add task collection, 100 per
// call, from clients concurrent callers; mk builds task i. It fails if any
// task is not added.
func addTasks(ctx context.Context, c *azbatch.Client, jobID string, n, clients int, mk func(i int) azbatch.CreateTaskContent) error {
	const per = 100
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tasks := make([]azbatch.CreateTaskContent, 0, per)
			for {
				from := int(next.Add(per)) - per
				if from >= n || ctx.Err() != nil {
					return
				}
				tasks = tasks[:0]
				for i := from; i < min(from+per, n); i++ {
					tasks = append(tasks, mk(i))
				}
				resp, err := c.CreateTaskCollection(ctx, jobID, azbatch.TaskGroup{Value: tasks}, nil)
				if err == nil {
					for _, r := range resp.Value {
						if r.Status == nil || *r.Status != azbatch.TaskAddStatusSuccess {
							err = fmt.Errorf("task %s not added: %v", deref(r.TaskID), r.Error)
							break
						}
					}
					if err == nil && len(resp.Value) != len(tasks) {
						err = fmt.Errorf("add task collection answered %d results for %d tasks", len(resp.Value), len(tasks))
					}
				}
				if err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// taskCounts returns a job's task counts.
func taskCounts(ctx context.Context, c *azbatch.Client, jobID string) (azbatch.TaskCounts, error) {
	r, err := c.GetJobTaskCounts(ctx, jobID, nil)
	if err != nil {
		return azbatch.TaskCounts{}, err
	}
	if r.TaskCounts == nil {
		return azbatch.TaskCounts{}, errors.New("task counts: empty answer")
	}
	return *r.TaskCounts, nil
}

// waitCompleted waits until n tasks of the job are completed.
func waitCompleted(ctx context.Context, c *azbatch.Client, jobID string, n int, interval, timeout time.Duration) (azbatch.TaskCounts, error) {
	var tc azbatch.TaskCounts
	err := waitFor(ctx, timeout, interval, fmt.Sprintf("%d completed tasks in job %s", n, jobID), func() (bool, error) {
		var err error
		tc, err = taskCounts(ctx, c, jobID)
		return err == nil && int(deref(tc.Completed)) >= n, err
	})
	return tc, err
}

// listTasks returns every task of a job (with select, if given).
func listTasks(ctx context.Context, c *azbatch.Client, jobID string, sel []string) ([]azbatch.Task, error) {
	var out []azbatch.Task
	pager := c.NewListTasksPager(jobID, &azbatch.ListTasksOptions{SelectParam: sel, MaxResults: to[int32](1000)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
