package e2e

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/provider/slurm"
	testslurm "github.com/kilnbatch/kiln/internal/testutil/slurm"
)

// slurmServer starts a one-node Slurm cluster and a server whose nodes are
// Slurm jobs on it (--provider slurm, or --slurm with provider=false).
func slurmServer(t *testing.T, args ...string) (*testslurm.Cluster, *Server) {
	c := testslurm.Start(t)
	root := filepath.Join(t.TempDir(), "slurm-nodes")
	s := StartServer(t, &ServerOpts{
		Args: append([]string{"--slurm-partition", testslurm.Partition, "--slurm-root-dir", root,
			"--slurm-agent-binary", kilnBin, "--slurm-poll-interval", "300ms", "--slurm-sbatch-args", "--cpus-per-task=1",
			"--spot-replace-delay", "1s"}, args...),
		Env: c.Env(),
	})
	return c, s
}

// slurmJobs maps the node ids of the cluster's Kiln jobs (not ended) to
// their Slurm job ids.
func slurmJobs(t *testing.T, c *testslurm.Cluster) map[string]string {
	out := map[string]string{}
	for name, j := range c.Jobs(t) {
		if id, ok := strings.CutPrefix(name, slurm.JobPrefix); ok {
			out[id] = j[0]
		}
	}
	return out
}

// slurmWaitJobs waits until the cluster runs exactly the jobs of nodes.
func slurmWaitJobs(t *testing.T, c *testslurm.Cluster, nodes []string) map[string]string {
	var jobs map[string]string
	eventually(t, 60*time.Second, fmt.Sprintf("Slurm jobs of nodes %v", nodes), func() error {
		jobs = slurmJobs(t, c)
		var have []string
		for id := range jobs {
			have = append(have, id)
		}
		sort.Strings(have)
		want := append([]string(nil), nodes...)
		sort.Strings(want)
		if strings.Join(have, ",") != strings.Join(want, ",") {
			return fmt.Errorf("jobs of %v", have)
		}
		return nil
	})
	return jobs
}

// TestSlurmPool: a pool whose nodes are Slurm jobs running kiln agent runs
// tasks; resizing cancels and submits jobs; a job cancelled from outside
// makes its node unusable and its task runs again on the other node, and a
// reboot of the node submits a new job; a requeued job (as Slurm's preemption with PreemptMode=REQUEUE does) makes
// its node preempted until it is replaced by a new job; deleting the pool
// cancels every job.
func TestSlurmPool(t *testing.T) {
	c, s := slurmServer(t, "--provider", "slurm")
	const pool = "slurmpool"
	s.CreatePool(t, pool, 2, 2, nil)
	nodes := s.poolNodeIDs(t, pool)
	slurmWaitJobs(t, c, nodes)

	// Tasks run on both Slurm nodes.
	s.CreateJob(t, "sj", pool, nil)
	var tasks []azbatch.CreateTaskContent
	for i := range 6 {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: to(fmt.Sprintf("t%d", i)), CommandLine: to("/bin/sh -c 'echo hello from $AZ_BATCH_NODE_ID; sleep 1'")})
	}
	s.AddTasks(t, "sj", tasks)
	counts := s.WaitJobTasks(t, "sj", 60*time.Second)
	if *counts.TaskCounts.Succeeded != 6 {
		t.Fatalf("task counts %+v", counts.TaskCounts)
	}
	ran := map[string]bool{}
	for _, task := range s.ListTasks(t, "sj", nil) {
		ran[*task.NodeInfo.NodeID] = true
	}
	for _, n := range nodes {
		if !ran[n] {
			t.Errorf("no task ran on node %s (ran on %v)", n, ran)
		}
	}

	// Resize to 1: one job is cancelled; back to 2: a job is submitted.
	if _, err := s.Client.ResizePool(ctx(t), pool, azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](1)}, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitSteady(t, pool, 1)
	slurmWaitJobs(t, c, s.poolNodeIDs(t, pool))
	if _, err := s.Client.ResizePool(ctx(t), pool, azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](2)}, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitSteady(t, pool, 2)
	nodes = s.poolNodeIDs(t, pool)
	jobs := slurmWaitJobs(t, c, nodes)

	// scancel from outside Kiln while a task runs there: the node is
	// unusable, the task requeued and completed on the other node.
	s.AddTasks(t, "sj", []azbatch.CreateTaskContent{{ID: to("long"), CommandLine: to("/bin/sh -c 'sleep 4; echo done'")}})
	task := taskWaitState(t, s, "sj", "long", azbatch.TaskStateRunning, 60*time.Second)
	victim := *task.NodeInfo.NodeID
	other := nodes[0]
	if other == victim {
		other = nodes[1]
	}
	c.Run(t, "scancel", jobs[victim])
	n := s.poolWaitNodeState(t, pool, victim, azbatch.NodeStateUnusable)
	if len(n.Errors) != 1 || *n.Errors[0].Code != "SlurmJobEnded" || !strings.Contains(*n.Errors[0].Message, "Slurm job "+jobs[victim]+" ended in state CANCELLED") {
		t.Errorf("errors of the cancelled node: %s", nodeErrors(n))
	}
	task = taskWaitState(t, s, "sj", "long", azbatch.TaskStateCompleted, 60*time.Second)
	if *task.NodeInfo.NodeID != other || *task.ExecutionInfo.ExitCode != 0 || *task.ExecutionInfo.RequeueCount != 1 || *task.ExecutionInfo.RetryCount != 0 {
		t.Errorf("long task: node %s (want %s) exit %d requeued %d retried %d", *task.NodeInfo.NodeID, other,
			*task.ExecutionInfo.ExitCode, *task.ExecutionInfo.RequeueCount, *task.ExecutionInfo.RetryCount)
	}

	// Rebooting the unusable node submits a new job for it.
	if _, err := s.Client.RebootNode(ctx(t), pool, victim, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, pool, victim, azbatch.NodeStateIdle)
	if j := slurmJobs(t, c)[victim]; j == "" || j == jobs[victim] {
		t.Errorf("job of the rebooted node: %q (was %q)", j, jobs[victim])
	}

	// scontrol requeue (what preemption with PreemptMode=REQUEUE does): the
	// node is preempted, then replaced by a new job under the same id.
	c.Run(t, "scontrol", "requeue", jobs[other])
	s.poolWaitNodeState(t, pool, other, azbatch.NodeStatePreempted)
	s.poolWaitNodeState(t, pool, other, azbatch.NodeStateIdle)
	eventually(t, 60*time.Second, "a new job for the preempted node", func() error {
		j := slurmJobs(t, c)
		if j[other] == "" || j[other] == jobs[other] {
			return fmt.Errorf("jobs %v", j)
		}
		return nil
	})

	// A restarted server finds its nodes' jobs again: an outside scancel
	// is still noticed, and deleting the pool cancels every job.
	s.Stop()
	s.Start()
	eventually(t, 60*time.Second, "the preempted node back", func() error {
		if st := *s.poolNode(t, pool, other).State; st != azbatch.NodeStateIdle {
			return fmt.Errorf("node %s", st)
		}
		return nil
	})
	if _, err := s.Client.ResizePool(ctx(t), pool, azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](3)}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "a third node", func() error {
		if ids := s.poolNodeIDs(t, pool); len(ids) != 3 {
			return fmt.Errorf("nodes %v", ids)
		}
		return nil
	})
	otherJob := slurmJobs(t, c)[other]
	c.Run(t, "scancel", otherJob)
	n = s.poolWaitNodeState(t, pool, other, azbatch.NodeStateUnusable)
	if len(n.Errors) != 1 || *n.Errors[0].Code != "SlurmJobEnded" || !strings.Contains(*n.Errors[0].Message, "Slurm job "+otherJob+" ended in state CANCELLED") {
		t.Errorf("errors of the node cancelled after the restart: %s", nodeErrors(n))
	}
	var third string
	for _, id := range s.poolNodeIDs(t, pool) {
		if id != victim && id != other {
			third = id
		}
	}
	s.poolWaitNodeState(t, pool, third, azbatch.NodeStateIdle)
	slurmWaitJobs(t, c, []string{victim, third})
	if _, err := s.Client.DeletePool(ctx(t), pool, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitGone(t, pool)
	slurmWaitJobs(t, c, nil)
}

func nodeErrors(n azbatch.Node) string {
	var b strings.Builder
	for _, e := range n.Errors {
		fmt.Fprintf(&b, "[%s: %s] ", slurmStr(e.Code), slurmStr(e.Message))
	}
	return b.String()
}

func slurmStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestSlurmPoolByMetadata: with --slurm, the server's default provider stays
// local, and a pool with metadata kiln.provider=slurm gets Slurm nodes.
func TestSlurmPoolByMetadata(t *testing.T) {
	c, s := slurmServer(t, "--slurm")
	s.CreatePool(t, "onslurm", 1, 1, func(p *azbatch.CreatePoolContent) {
		p.Metadata = []azbatch.MetadataItem{{Name: to("kiln.provider"), Value: to("slurm")}}
	})
	s.CreatePool(t, "onlocal", 1, 1, nil)
	slurmWaitJobs(t, c, s.poolNodeIDs(t, "onslurm"))
	s.CreateJob(t, "mj", "onslurm", nil)
	s.AddTasks(t, "mj", []azbatch.CreateTaskContent{{ID: to("t"), CommandLine: to("/bin/sh -c 'echo $SLURM_JOB_ID'")}})
	if counts := s.WaitJobTasks(t, "mj", 60*time.Second); *counts.TaskCounts.Succeeded != 1 {
		t.Fatalf("task counts %+v", counts.TaskCounts)
	}
	// A job of a higher-priority partition preempts the node's job (state
	// PREEMPTED): the node is preempted, and replaced by a new job once the
	// Slurm node is free again.
	node := s.poolNodeIDs(t, "onslurm")[0]
	before := slurmJobs(t, c)[node]
	c.Run(t, "sbatch", "--job-name=urgent", "-p", testslurm.PreemptingPartition, "--exclusive", "--output=/dev/null", "--wrap", "sleep 3")
	s.poolWaitNodeState(t, "onslurm", node, azbatch.NodeStatePreempted)
	s.poolWaitNodeState(t, "onslurm", node, azbatch.NodeStateIdle)
	if after := slurmJobs(t, c)[node]; after == "" || after == before {
		t.Errorf("job of the replaced node: %q (was %q)", after, before)
	}
	if _, err := s.Client.DeletePool(ctx(t), "onslurm", nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitGone(t, "onslurm")
	slurmWaitJobs(t, c, nil)
}
