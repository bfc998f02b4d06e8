package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestSpotPreemption runs tasks on a pool of one dedicated and two
// low-priority nodes, preempts a busy low-priority node with `kiln node
// preempt`, and checks Azure's behavior through the Go SDK: the node is
// preempted (still listed, still in currentLowPriorityNodes, counted as
// preempted), its agent and task processes are gone, its tasks are
// requeued (requeueCount 1, retryCount 0) and complete exactly once (a
// ledger outside the nodes), and the node is replaced under the same id.
func TestSpotPreemption(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: []string{"--spot-replace-delay", "3s"}})
	pool := poolContent("spot", 1, 2)
	pool.TargetLowPriorityNodes = to[int32](2)
	if _, err := s.Client.CreatePool(ctx(t), pool, nil); err != nil {
		t.Fatal(err)
	}
	s.WaitNodes(t, "spot", 3, azbatch.NodeStateIdle)
	p := s.poolGet(t, "spot")
	if *p.CurrentDedicatedNodes != 1 || *p.CurrentLowPriorityNodes != 2 {
		t.Fatalf("pool current dedicated %d low-priority %d", *p.CurrentDedicatedNodes, *p.CurrentLowPriorityNodes)
	}

	ledger := filepath.Join(taskTempDir(t), "ledger.txt")
	s.CreateJob(t, "spotjob", "spot", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("LEDGER"), Value: to(ledger)}}
	})
	var tasks []azbatch.CreateTaskContent
	for i := 0; i < 6; i++ {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID:          to(fmt.Sprintf("t%d", i)),
			CommandLine: to(`/bin/sh -c 'sleep 4; echo "$AZ_BATCH_TASK_ID $AZ_BATCH_NODE_ID $AZ_BATCH_NODE_IS_DEDICATED" >> "$LEDGER"'`),
		})
	}
	s.AddTasks(t, "spotjob", tasks)

	// Every slot busy; pick a low-priority node and its tasks.
	var victim string
	var victimTasks []string
	eventually(t, 30*time.Second, "six running tasks", func() error {
		victim, victimTasks = "", nil
		running := 0
		for _, task := range s.ListTasks(t, "spotjob", nil) {
			if *task.State != azbatch.TaskStateRunning {
				continue
			}
			running++
			if id := *task.NodeInfo.NodeID; strings.HasSuffix(id, "_p") && (victim == "" || victim == id) {
				victim = id
				victimTasks = append(victimTasks, *task.ID)
			}
		}
		if running != 6 {
			return fmt.Errorf("%d running", running)
		}
		return nil
	})
	if n := s.poolNode(t, "spot", victim); *n.IsDedicated {
		t.Fatalf("node %s is dedicated", victim)
	}
	pidFile := filepath.Join(s.DataDir, "nodes", victim, "agent.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var agentPID int
	fmt.Sscan(strings.TrimSpace(string(b)), &agentPID)

	out, err := spotCLI(s, "node", "preempt", "--pool-id", "spot", "--node-id", victim)
	if err != nil || !strings.Contains(out, "Preempted node "+victim) {
		t.Fatalf("kiln node preempt: %v\n%s", err, out)
	}
	start := time.Now()

	if n := s.poolNode(t, "spot", victim); *n.State != azbatch.NodeStatePreempted || *n.IsDedicated {
		t.Fatalf("node %s is %s", victim, *n.State)
	}
	p = s.poolGet(t, "spot")
	if *p.CurrentLowPriorityNodes != 2 || *p.TargetLowPriorityNodes != 2 {
		t.Fatalf("pool current low-priority %d target %d: preempted nodes count in currentLowPriorityNodes", *p.CurrentLowPriorityNodes, *p.TargetLowPriorityNodes)
	}
	counts := spotNodeCounts(t, s, "spot")
	if *counts.LowPriority.Preempted != 1 || *counts.LowPriority.Total != 2 || *counts.Dedicated.Preempted != 0 {
		t.Fatalf("low-priority node counts: preempted %d total %d", *counts.LowPriority.Preempted, *counts.LowPriority.Total)
	}
	for _, id := range victimTasks {
		task := s.poolTask(t, "spotjob", id)
		ei := task.ExecutionInfo
		if *ei.RequeueCount != 1 || *ei.RetryCount != 0 || *task.State == azbatch.TaskStateCompleted {
			t.Fatalf("task %s after preemption: %s requeueCount %d retryCount %d", id, *task.State, *ei.RequeueCount, *ei.RetryCount)
		}
	}
	// The VM is gone: its agent, its tasks and its disk.
	eventually(t, 10*time.Second, "the preempted node's agent to die", func() error {
		if syscall.Kill(agentPID, 0) == nil && poolProcessAlive(agentPID) {
			return fmt.Errorf("agent %d alive", agentPID)
		}
		return nil
	})

	// Replacement: same id, through creating/starting, back to work.
	eventually(t, 30*time.Second, "the preempted node to be replaced", func() error {
		n := s.poolNode(t, "spot", victim)
		if st := *n.State; st != azbatch.NodeStateIdle && st != azbatch.NodeStateRunning {
			return fmt.Errorf("node %s is %s", victim, st)
		}
		return nil
	})
	if d := time.Since(start); d < 3*time.Second {
		t.Fatalf("replaced after %v, before the 3s replace delay", d)
	}
	if c := spotNodeCounts(t, s, "spot"); *c.LowPriority.Preempted != 0 {
		t.Fatalf("%d preempted after replacement", *c.LowPriority.Preempted)
	}

	tc := s.WaitJobTasks(t, "spotjob", time.Minute)
	if *tc.TaskCounts.Succeeded != 6 {
		t.Fatalf("succeeded %d", *tc.TaskCounts.Succeeded)
	}
	b, _ = os.ReadFile(ledger)
	runs := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		runs[strings.Fields(line)[0]]++
	}
	for _, task := range tasks {
		if runs[*task.ID] != 1 {
			t.Errorf("task %s ran %d times (ledger:\n%s)", *task.ID, runs[*task.ID], b)
		}
	}
	for _, id := range victimTasks {
		ei := s.poolTask(t, "spotjob", id).ExecutionInfo
		if *ei.RequeueCount != 1 || *ei.RetryCount != 0 || *ei.ExitCode != 0 {
			t.Errorf("task %s: requeueCount %d retryCount %d exit %d", id, *ei.RequeueCount, *ei.RetryCount, *ei.ExitCode)
		}
	}

	// Dedicated nodes are never preempted.
	var ded string
	nodes, _ := s.ListNodes(t, "spot")
	for _, n := range nodes {
		if *n.IsDedicated {
			ded = *n.ID
		}
	}
	if out, err := spotCLI(s, "node", "preempt", "--pool-id", "spot", ded); err == nil || !strings.Contains(out, "NodeIsDedicated") {
		t.Fatalf("preempting dedicated node: %v\n%s", err, out)
	}
	// --count lets the server choose.
	out, err = spotCLI(s, "node", "preempt", "--pool-id", "spot", "--count", "5", "--output", "json")
	if err != nil || strings.Count(out, "_p\"") != 2 {
		t.Fatalf("kiln node preempt --count 5: %v\n%s", err, out)
	}
}

// spotCLI runs the kiln CLI against s with the credentials of its data dir.
func spotCLI(s *Server, args ...string) (string, error) {
	cmd := exec.Command(kilnBin, args...)
	cmd.Env = append(os.Environ(), "KILN_DATA_DIR="+s.DataDir, "KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=")
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// spotNodeCounts returns the node counts of one pool (List Pool Node Counts).
func spotNodeCounts(t testing.TB, s *Server, poolID string) azbatch.PoolNodeCounts {
	t.Helper()
	pager := s.Client.NewListPoolNodeCountsPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Value {
			if *c.PoolID == poolID {
				return c
			}
		}
	}
	t.Fatalf("no node counts for pool %s", poolID)
	return azbatch.PoolNodeCounts{}
}

// TestSpotPreemptionSchedule preempts by the server's schedule, without any
// call: the pool's one low-priority node turns preempted and stays so (the
// replace delay is long), listed with its running tasks requeued.
func TestSpotPreemptionSchedule(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: []string{"--spot-preemption-schedule", "3s", "--spot-replace-delay", "1h"}})
	pool := poolContent("sched", 1, 1)
	pool.TargetLowPriorityNodes = to[int32](1)
	if _, err := s.Client.CreatePool(ctx(t), pool, nil); err != nil {
		t.Fatal(err)
	}
	s.CreateJob(t, "schedjob", "sched", nil)
	s.AddTasks(t, "schedjob", []azbatch.CreateTaskContent{
		{ID: to("a"), CommandLine: to("sleep 30")},
		{ID: to("b"), CommandLine: to("sleep 30")},
	})
	var victim string
	eventually(t, 30*time.Second, "a preempted node", func() error {
		nodes, err := s.ListNodes(t, "sched")
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if *n.State == azbatch.NodeStatePreempted {
				victim = *n.ID
				return nil
			}
		}
		return fmt.Errorf("no preempted node yet")
	})
	if !strings.HasSuffix(victim, "_p") {
		t.Fatalf("preempted node %s is not low-priority", victim)
	}
	time.Sleep(1500 * time.Millisecond) // the one entry fired once: nothing else goes
	if c := spotNodeCounts(t, s, "sched"); *c.LowPriority.Preempted != 1 || *c.Dedicated.Preempted != 0 || *c.Dedicated.Running != 1 {
		t.Fatalf("node counts: low-priority preempted %d, dedicated running %d", *c.LowPriority.Preempted, *c.Dedicated.Running)
	}
	requeued := 0
	for _, task := range s.ListTasks(t, "schedjob", nil) {
		requeued += int(*task.ExecutionInfo.RequeueCount)
		if *task.ExecutionInfo.RetryCount != 0 {
			t.Fatalf("task %s retried", *task.ID)
		}
	}
	if requeued != 1 {
		t.Fatalf("%d requeues, want the preempted node's one task", requeued)
	}
}
