package service

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/store"
)

// TestResizeTimeout: a shrink whose node waits for its task (taskcompletion)
// past the pool's resizeTimeout stops where it is: the node stays, the
// targets follow the node count, the pool is steady with AllocationTimedOut.
func TestResizeTimeout(t *testing.T) {
	t.Parallel()
	b := newDepsBundle(t, 1)
	ctx := context.Background()
	b.addJob("j", nil)
	b.mustAddTask("j", azbatch.CreateTaskContent{ID: ptr("long")})
	b.wantAssigned("long")
	if _, err := b.s.PoolResize(ctx, depsAccount, "pool", &azbatch.ResizePoolContent{
		TargetDedicatedNodes: ptr(int32(0)), NodeDeallocationOption: ptr(azbatch.NodeDeallocationOptionTaskCompletion),
		ResizeTimeout: ptr("PT5M"),
	}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	pool := func() azbatch.Pool {
		t.Helper()
		o, err := b.s.PoolGet(ctx, depsAccount, "pool", Conditions{})
		if err != nil {
			t.Fatal(err)
		}
		var p azbatch.Pool
		if err := json.Unmarshal(o.Doc, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Before the timeout nothing changes.
	b.s.mu.Lock()
	p := b.s.pools[key(depsAccount, "pool")]
	p.resizeStart = time.Now().Add(-4 * time.Minute)
	var w0 store.Writes
	b.s.checkResizeTimeoutsLocked(&w0)
	b.s.mu.Unlock()
	if got := pool(); *got.AllocationState != azbatch.AllocationStateResizing || len(got.ResizeErrors) != 0 {
		t.Fatalf("before the timeout: %s %+v", *got.AllocationState, got.ResizeErrors)
	}

	b.s.mu.Lock()
	p.resizeStart = time.Now().Add(-6 * time.Minute)
	var w store.Writes
	b.s.checkResizeTimeoutsLocked(&w)
	if err := b.s.commit(ctx, &w); err != nil {
		t.Fatal(err)
	}
	b.s.mu.Unlock()
	got := pool()
	if *got.AllocationState != azbatch.AllocationStateSteady || *got.TargetDedicatedNodes != 1 || *got.CurrentDedicatedNodes != 1 ||
		len(got.ResizeErrors) != 1 || *got.ResizeErrors[0].Code != "AllocationTimedOut" {
		t.Fatalf("after the timeout: %s target %d current %d errors %+v", *got.AllocationState, *got.TargetDedicatedNodes, *got.CurrentDedicatedNodes, got.ResizeErrors)
	}
	n, err := b.s.NodeGet(ctx, depsAccount, "pool", b.node.id)
	if err != nil {
		t.Fatal(err)
	}
	var node azbatch.Node
	_ = json.Unmarshal(n.Doc, &node)
	if *node.State != azbatch.NodeStateRunning {
		t.Fatalf("node after the timeout: %s", *node.State)
	}
	b.complete(exited(0), "long")
	if st := *b.task("j", "long").State; st != azbatch.TaskStateCompleted {
		t.Fatalf("task: %s", st)
	}
}
