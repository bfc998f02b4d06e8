package service

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
)

// TestProviderEventUnusable: a provider reports that a node's resource ended
// (a failed Slurm job): the node is unusable with the provider's reason, its
// task is requeued, its old agent locked out, and a restart keeps it so. An
// uncertain report while the agent talks, and reports about unknown nodes,
// change nothing.
func TestProviderEventUnusable(t *testing.T) {
	b := newDepsBundle(t, 1)
	ctx := context.Background()
	b.addJob("job", nil)
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("a")})
	b.wantAssigned("a")
	node := b.node

	b.s.providerEvent(provider.NodeEvent{NodeID: "tvmps_unknown_d", Reason: "gone"})
	b.s.providerEvent(provider.NodeEvent{NodeID: node.id, Code: "SlurmJobLost", Reason: "vanished", Uncertain: true})
	if st := *b.nodeDoc(node.id).State; st != azbatch.NodeStateRunning {
		t.Fatalf("after an uncertain report while the agent talks: node %s", st)
	}

	b.s.providerEvent(provider.NodeEvent{NodeID: node.id, Code: "SlurmJobEnded", Reason: "Slurm job 7 ended in state FAILED, exit code 3:0."})
	check := func(when string) {
		t.Helper()
		d := b.nodeDoc(node.id)
		if *d.State != azbatch.NodeStateUnusable || len(d.Errors) != 1 || *d.Errors[0].Code != "SlurmJobEnded" || !strings.Contains(*d.Errors[0].Message, "Slurm job 7") {
			t.Fatalf("%s: node %s, errors %+v", when, *d.State, d.Errors)
		}
		task := b.task("job", "a")
		if *task.State != azbatch.TaskStateActive || *task.ExecutionInfo.RequeueCount != 1 || deref(task.ExecutionInfo.RetryCount) != 0 {
			t.Fatalf("%s: task %s requeued %d", when, *task.State, *task.ExecutionInfo.RequeueCount)
		}
	}
	check("after the report")
	if _, status, err := b.s.agentSync(ctx, node.token, &protocol.SyncRequest{NodeID: node.id, Seq: 99}); status != http.StatusUnauthorized {
		t.Fatalf("sync of the ended node's agent: %d %v", status, err)
	}
	// A second report changes nothing.
	b.s.providerEvent(provider.NodeEvent{NodeID: node.id, Reason: "again"})
	check("after a second report")
	b.s.Close()
	if err := b.s.cfg.Store.Close(); err != nil {
		t.Fatal(err)
	}
	b.open()
	check("after a restart")
}

// TestProviderEventPreempted: a provider reports a node taken back (a
// preempted or requeued Slurm job): the node is preempted, its task
// requeued, and it is started again under its id after the replace delay.
func TestProviderEventPreempted(t *testing.T) {
	b := newDepsBundle(t, 1)
	b.addJob("job", nil)
	b.mustAddTask("job", azbatch.CreateTaskContent{ID: ptr("a")})
	b.wantAssigned("a")
	node := b.node
	b.s.providerEvent(provider.NodeEvent{NodeID: node.id, Preempted: true, Reason: "Slurm job 8 was preempted."})
	if st := *b.nodeDoc(node.id).State; st != azbatch.NodeStatePreempted {
		t.Fatalf("node %s", st)
	}
	if task := b.task("job", "a"); *task.State != azbatch.TaskStateActive || *task.ExecutionInfo.RequeueCount != 1 {
		t.Fatalf("task %s requeued %d", *task.State, *task.ExecutionInfo.RequeueCount)
	}
}

// TestProviderEventWaiting: a node whose resource waits in the provider's
// queue does not time out while the provider says so.
func TestProviderEventWaiting(t *testing.T) {
	b := newDepsBundle(t, 1)
	ctx := context.Background()
	if _, err := b.s.PoolResize(ctx, depsAccount, "pool", &azbatch.ResizePoolContent{TargetDedicatedNodes: ptr(int32(2))}, Conditions{}); err != nil {
		t.Fatal(err)
	}
	spec := b.nextSpec()
	age := func(d time.Duration) {
		b.s.mu.Lock()
		b.s.nodes[spec.NodeID].lastSeen = time.Now().Add(-d)
		b.s.mu.Unlock()
	}
	check := func() azbatch.NodeState {
		b.s.mu.Lock()
		var w store.Writes
		b.s.checkNodesLocked(&w)
		b.s.mu.Unlock()
		return *b.nodeDoc(spec.NodeID).State
	}
	age(3 * time.Minute)
	b.s.providerEvent(provider.NodeEvent{NodeID: spec.NodeID, Waiting: true, Reason: "Slurm job 9 is PENDING (Priority)."})
	if st := check(); st == azbatch.NodeStateUnusable {
		t.Fatalf("a waiting node timed out: %s", st)
	}
	age(3 * time.Minute)
	if st := check(); st != azbatch.NodeStateUnusable {
		t.Fatalf("a node silent for 3 minutes without waiting reports: %s", st)
	}
}
