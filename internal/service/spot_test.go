package service

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider"
)

// TestSpotPreemption preempts a low-priority node running a task, through
// the agent protocol played by the test: the node turns preempted (still
// listed and counted), the task is requeued (requeueCount 1, retryCount
// 0), the old agent is locked out, a restart keeps the state, and the
// node is replaced under its id with a new token, then runs the task.
func TestSpotPreemption(t *testing.T) {
	b := newDepsBundle(t, 1)
	ctx := context.Background()
	ded := b.node
	if _, err := b.s.PoolResize(ctx, depsAccount, "pool", &azbatch.ResizePoolContent{TargetLowPriorityNodes: ptr(int32(1))}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	spec := b.nextSpec()
	if spec.Dedicated {
		t.Fatal("the new node is dedicated")
	}
	spot := &depsAgent{id: spec.NodeID, token: spec.Token, running: map[string]string{}}
	b.node = spot
	b.register()

	// Two one-slot nodes, two tasks: one on each.
	b.addJob("job", nil)
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("a")})
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("b")})
	onSpot := b.assigned()
	b.node = ded
	onDed := b.assigned()
	if len(onSpot) != 1 || len(onDed) != 1 {
		t.Fatalf("tasks on the spot node %v, on the dedicated node %v", onSpot, onDed)
	}
	victim := onSpot[0]

	wantError(t, func() error {
		_, err := b.s.PreemptNodes(ctx, depsAccount, "pool", []string{ded.id}, 0)
		return err
	}(), "NodeIsDedicated", "")
	got, err := b.s.PreemptNodes(ctx, depsAccount, "pool", nil, 5) // picks the one low-priority node
	if err != nil || len(got) != 1 || got[0] != spot.id {
		t.Fatalf("preempted %v, %v; want [%s]", got, err, spot.id)
	}
	wantError(t, func() error {
		_, err := b.s.PreemptNodes(ctx, depsAccount, "pool", []string{spot.id}, 0)
		return err
	}(), "NodePreempted", "")

	check := func(when string) {
		t.Helper()
		task := b.task("job", victim)
		ei := task.ExecutionInfo
		if *task.State != azbatch.TaskStateActive || deref(ei.RequeueCount) != 1 || deref(ei.RetryCount) != 0 {
			t.Fatalf("%s: task %s is %s, requeueCount %d, retryCount %d", when, victim, *task.State, deref(ei.RequeueCount), deref(ei.RetryCount))
		}
		if st := b.nodeDoc(spot.id).State; *st != azbatch.NodeStatePreempted {
			t.Fatalf("%s: node state %s", when, *st)
		}
		var pool azbatch.Pool
		o, _ := b.s.PoolGet(ctx, depsAccount, "pool", Conditions{})
		_ = json.Unmarshal(o.Doc, &pool)
		// Azure: preempted nodes are included in currentLowPriorityNodes.
		if *pool.CurrentLowPriorityNodes != 1 || *pool.CurrentDedicatedNodes != 1 || *pool.AllocationState != azbatch.AllocationStateSteady {
			t.Fatalf("%s: pool current %d/%d, %s", when, *pool.CurrentDedicatedNodes, *pool.CurrentLowPriorityNodes, *pool.AllocationState)
		}
		counts, _ := b.s.PoolNodeCounts(ctx, depsAccount, ListParams{})
		if lp := counts[0].LowPriority; *lp.Preempted != 1 || *lp.Total != 1 || *counts[0].Dedicated.Preempted != 0 {
			t.Fatalf("%s: low-priority counts preempted %d total %d", when, *lp.Preempted, *lp.Total)
		}
		if n, err := b.s.PoolPreemptedNodeCount(depsAccount, "pool"); n != 1 || err != nil {
			t.Fatalf("%s: PoolPreemptedNodeCount = %d, %v", when, n, err)
		}
	}
	check("after preemption")
	if n, _ := b.s.PoolPreemptionsSince(depsAccount, "pool", time.Now().Add(-time.Minute)); n != 1 {
		t.Fatalf("PoolPreemptionsSince = %d", n)
	}
	// The evicted VM's agent can no longer report.
	if _, status, err := b.s.agentSync(ctx, spot.token, &protocol.SyncRequest{NodeID: spot.id, Seq: 99}); status != http.StatusUnauthorized {
		t.Fatalf("old agent sync: %d %v", status, err)
	}

	b.restart() // the dedicated node's agent registers again
	check("after a restart")

	// Replacement capacity: same node id, a new token, creating/starting,
	// and the requeued task runs there.
	b.s.cfg.Spot.ReplaceDelay = time.Nanosecond
	var again provider.NodeSpec
	for deadline := time.Now().Add(10 * time.Second); ; {
		b.s.spotTick()
		select {
		case again = <-b.prov.specs:
		case <-time.After(20 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("the preempted node was not replaced")
		}
		break
	}
	if again.NodeID != spot.id || again.Token == spot.token || again.Token == "" {
		t.Fatalf("replacement %s (token changed: %v), want node %s with a new token", again.NodeID, again.Token != spot.token, spot.id)
	}
	if st := *b.nodeDoc(spot.id).State; st != azbatch.NodeStateCreating && st != azbatch.NodeStateStarting {
		t.Fatalf("replaced node is %s", st)
	}
	spot.token, spot.running, spot.seq, spot.evSeq = again.Token, map[string]string{}, 0, 0
	b.node = spot
	b.register()
	b.wantAssigned(victim)
	b.complete(exited(0), victim)
	task := b.task("job", victim)
	if *task.State != azbatch.TaskStateCompleted || *task.ExecutionInfo.RequeueCount != 1 || *task.ExecutionInfo.RetryCount != 0 {
		t.Fatalf("task %s: %s requeue %d retry %d", victim, *task.State, *task.ExecutionInfo.RequeueCount, *task.ExecutionInfo.RetryCount)
	}
	if n, _ := b.s.PoolPreemptedNodeCount(depsAccount, "pool"); n != 0 {
		t.Fatalf("PoolPreemptedNodeCount after replacement = %d", n)
	}
	if d := b.nodeDoc(spot.id); *d.IsDedicated || *d.State != azbatch.NodeStateIdle {
		t.Fatalf("replaced node: dedicated %v state %s", *d.IsDedicated, *d.State)
	}

	// A shrink takes preempted nodes first; they leave at once.
	if _, err := b.s.PreemptNodes(ctx, depsAccount, "pool", []string{spot.id}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.PoolResize(ctx, depsAccount, "pool", &azbatch.ResizePoolContent{TargetDedicatedNodes: ptr(int32(1)), TargetLowPriorityNodes: ptr(int32(0))}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.NodeGet(ctx, depsAccount, "pool", spot.id); err == nil {
		t.Fatal("the preempted node is still in the pool after the shrink")
	}
}

func (b *depsBundle) nextSpec() provider.NodeSpec {
	b.tb.Helper()
	select {
	case spec := <-b.prov.specs:
		return spec
	case <-time.After(10 * time.Second):
		b.tb.Fatal("no node was started")
	}
	return provider.NodeSpec{}
}

func (b *depsBundle) nodeDoc(id string) azbatch.Node {
	b.tb.Helper()
	o, err := b.s.NodeGet(context.Background(), depsAccount, "pool", id)
	if err != nil {
		b.tb.Fatal(err)
	}
	var n azbatch.Node
	if err := json.Unmarshal(o.Doc, &n); err != nil {
		b.tb.Fatal(err)
	}
	return n
}

// TestSpotJobManagerDedicatedOnly: a job manager task with
// allowLowPriorityNode false waits for a dedicated node even when a
// low-priority one is free.
func TestSpotJobManagerDedicatedOnly(t *testing.T) {
	b := newDepsBundle(t, 1)
	ctx := context.Background()
	ded := b.node
	if _, err := b.s.PoolResize(ctx, depsAccount, "pool", &azbatch.ResizePoolContent{TargetLowPriorityNodes: ptr(int32(1))}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	spec := b.nextSpec()
	spot := &depsAgent{id: spec.NodeID, token: spec.Token, running: map[string]string{}}
	b.node = spot
	b.register()
	// The dedicated node takes no task for now.
	if err := b.s.NodeDisableScheduling(ctx, depsAccount, "pool", ded.id, nil); err != nil {
		t.Fatal(err)
	}
	b.addJob("jm", func(c *azbatch.CreateJobContent) {
		c.JobManagerTask = &azbatch.JobManagerTask{ID: ptr("manager"), CommandLine: ptr("true"), AllowLowPriorityNode: ptr(false), KillJobOnCompletion: ptr(false)}
	})
	if got := b.assigned(); len(got) != 0 {
		t.Fatalf("the job manager went to the low-priority node: %v", got)
	}
	if st := *b.task("jm", "manager").State; st != azbatch.TaskStateActive {
		t.Fatalf("job manager is %s", st)
	}
	if err := b.s.NodeEnableScheduling(ctx, depsAccount, "pool", ded.id); err != nil {
		t.Fatal(err)
	}
	b.node = ded
	b.wantAssigned("manager")
	// Another job's manager that allows low-priority nodes takes the free one.
	b.addJob("jm2", func(c *azbatch.CreateJobContent) {
		c.JobManagerTask = &azbatch.JobManagerTask{ID: ptr("manager2"), CommandLine: ptr("true"), KillJobOnCompletion: ptr(false)}
	})
	b.node = spot
	b.wantAssigned("manager2")
}
