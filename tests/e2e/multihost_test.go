package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/provider/local"
	"github.com/kilnbatch/kiln/internal/testutil/netns"
)

// hostAgent is a `kiln agent` running on a separate network host (its own
// network namespace, internal/testutil/netns), joined to a pool with the
// pool's join token over the host's link.
type hostAgent struct {
	host *netns.Host
	root string
	log  string
	pid  int
}

func startHostAgent(t *testing.T, h *netns.Host, port int, pool, token, root string) *hostAgent {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ha := &hostAgent{host: h, root: root, log: root + ".log"}
	logf, err := os.Create(ha.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	server := fmt.Sprintf("http://%s:%d", h.RootIP, port)
	cmd := h.Command(kilnBin, "agent", "--server", server, "--pool", pool, "--token", token,
		"--root-dir", root, "--listen", "0.0.0.0:0", "--log-level", "info")
	cmd.Env = append(os.Environ(), "KILN_AGENT_TOKEN=")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ha.pid = cmd.Process.Pid // `ip netns exec` execs the agent in place
	go cmd.Wait()
	t.Cleanup(func() {
		_ = syscall.Kill(ha.pid, syscall.SIGKILL)
		local.KillSession(ha.pid)
		if t.Failed() {
			b, _ := os.ReadFile(ha.log)
			t.Logf("agent on %s (%s) log:\n%s", h.Name, h.IP, tail(string(b), 3000))
		}
	})
	return ha
}

// TestMultiHostLinkCut runs three agents on three network hosts. Cutting
// one host's link makes its node unusable and requeues its tasks; the cut-off
// agent stops them itself before the server requeues them (fencing), so no
// task runs on two hosts at once; restoring the link brings the node back,
// and every task completes exactly once.
func TestMultiHostLinkCut(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := startServerAt(t, fmt.Sprintf("0.0.0.0:%d", port), &ServerOpts{Args: []string{"--node-timeout", "8s", "--heartbeat-interval", "1s"}})

	createAgentsPool(t, s, "mh", 3, 2)
	token, _, _ := joinToken(t, s, "mh", false)
	dir := t.TempDir()
	hosts := []*netns.Host{netns.New(t), netns.New(t), netns.New(t)}
	agentOn := map[*netns.Host]*hostAgent{}
	for i, h := range hosts {
		agentOn[h] = startHostAgent(t, h, port, "mh", token, filepath.Join(dir, fmt.Sprintf("host%d", i)))
	}
	s.WaitNodes(t, "mh", 3, azbatch.NodeStateIdle)
	nodes, err := s.ListNodes(t, "mh")
	if err != nil {
		t.Fatal(err)
	}
	byIP := map[string]*netns.Host{}
	for _, h := range hosts {
		byIP[h.IP] = h
	}
	hostOf := map[string]*netns.Host{}
	for _, n := range nodes {
		var ip string
		if n.IPAddress != nil {
			ip = *n.IPAddress
		}
		h := byIP[ip]
		if h == nil {
			t.Fatalf("node %s has IP %q, not one of the hosts'", *n.ID, ip)
		}
		hostOf[*n.ID] = h
	}

	markers := filepath.Join(dir, "markers")
	mkdirShared(t, markers)
	s.CreateJob(t, "mhjob", "mh", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("MARKERS"), Value: to(markers)}}
	})
	const n = 6 // one per slot: all run at once
	var tasks []azbatch.CreateTaskContent
	for i := range n {
		tasks = append(tasks, azbatch.CreateTaskContent{
			ID: to(fmt.Sprintf("t%d", i)),
			CommandLine: to(`/bin/sh -c 'echo "$AZ_BATCH_NODE_ID" >> "$MARKERS/$AZ_BATCH_TASK_ID.start"; sleep 15; ` +
				`echo "$AZ_BATCH_NODE_ID" >> "$MARKERS/$AZ_BATCH_TASK_ID.done"'`),
		})
	}
	s.AddTasks(t, "mhjob", tasks)
	var victim string
	eventually(t, 60*time.Second, "every task running", func() error {
		running := 0
		for _, task := range s.ListTasks(t, "mhjob", nil) {
			if *task.State == azbatch.TaskStateRunning {
				running++
				victim = *task.NodeInfo.NodeID
			}
		}
		if running != n {
			return fmt.Errorf("%d of %d running", running, n)
		}
		return nil
	})
	cut := hostOf[victim]
	var victims []string
	for _, task := range s.ListTasks(t, "mhjob", nil) {
		if *task.NodeInfo.NodeID == victim {
			victims = append(victims, *task.ID)
		}
	}
	t.Logf("cutting %s (node %s, tasks %v)", cut.Name, victim, victims)
	if err := cut.Cut(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the cut host's node unusable", func() error {
		node, err := s.Client.GetNode(ctx(t), "mh", victim, nil)
		if err != nil {
			return err
		}
		if *node.State != azbatch.NodeStateUnusable {
			return fmt.Errorf("state %s", *node.State)
		}
		return nil
	})
	for _, id := range victims {
		task, err := s.Client.GetTask(ctx(t), "mhjob", id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := *task.State; st == azbatch.TaskStateRunning && *task.NodeInfo.NodeID == victim {
			t.Fatalf("task %s still running on the unusable node", id)
		}
	}
	// The cut-off agent fenced itself: its tasks' processes are gone while
	// the link is still down.
	log := agentOn[cut].log
	eventually(t, 30*time.Second, "the cut-off agent to stop its tasks", func() error {
		b, _ := os.ReadFile(log)
		if !strings.Contains(string(b), "stopping running attempts") {
			return fmt.Errorf("no fence in its log yet")
		}
		return nil
	})
	if err := cut.Restore(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the restored node usable again", func() error {
		node, err := s.Client.GetNode(ctx(t), "mh", victim, nil)
		if err != nil {
			return err
		}
		if st := *node.State; st != azbatch.NodeStateIdle && st != azbatch.NodeStateRunning {
			return fmt.Errorf("state %s", st)
		}
		return nil
	})
	waitCompleted(t, s, "mhjob", n, 3*time.Minute)

	for _, task := range s.ListTasks(t, "mhjob", nil) {
		id := *task.ID
		done := readLines(t, filepath.Join(markers, id+".done"))
		starts := readLines(t, filepath.Join(markers, id+".start"))
		if len(done) != 1 {
			t.Errorf("task %s finished %d times (%v), want exactly once", id, len(done), done)
		}
		requeues := 0
		if task.ExecutionInfo.RequeueCount != nil {
			requeues = int(*task.ExecutionInfo.RequeueCount)
		}
		if contains(victims, id) {
			if requeues < 1 || len(starts) < 2 || starts[0] != victim {
				t.Errorf("victim task %s: requeueCount %d, starts %v: want a first start on %s and a requeue", id, requeues, starts, victim)
			}
		} else if len(starts) != 1 {
			t.Errorf("task %s started %d times (%v), want once", id, len(starts), starts)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// TestFenceServerDownLonger: a server that is down for longer than its node
// timeout finds, when it comes back, that the node's agent stopped the task
// it was running (fencing) and registered again; the task is requeued and
// completes once.
func TestFenceServerDownLonger(t *testing.T) {
	s := StartServer(t, &ServerOpts{Args: []string{"--node-timeout", "6s"}})
	s.CreatePool(t, "fence", 1, 1, nil)
	markers := taskTempDir(t)
	s.CreateJob(t, "fencejob", "fence", func(c *azbatch.CreateJobContent) {
		c.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to("MARKERS"), Value: to(markers)}}
	})
	s.AddTasks(t, "fencejob", []azbatch.CreateTaskContent{{ID: to("long"),
		CommandLine: to(`/bin/sh -c 'echo x >> "$MARKERS/start"; sleep 8; echo x >> "$MARKERS/done"'`)}})
	taskWaitState(t, s, "fencejob", "long", azbatch.TaskStateRunning, time.Minute)
	agentLog := filepath.Join(s.DataDir, "nodes", s.poolNodeIDs(t, "fence")[0], "agent.log")
	s.Kill()
	eventually(t, 60*time.Second, "the agent to fence its task", func() error {
		if len(readLines(t, filepath.Join(markers, "done"))) != 0 {
			t.Fatal("the task finished while the server was down for longer than the node timeout")
		}
		b, _ := os.ReadFile(agentLog)
		if !strings.Contains(string(b), "stopping running attempts") {
			return fmt.Errorf("no fence in the agent's log yet")
		}
		return nil
	})
	s.Start()
	task := taskWaitState(t, s, "fencejob", "long", azbatch.TaskStateCompleted, 2*time.Minute)
	if ei := task.ExecutionInfo; *ei.ExitCode != 0 || *ei.RequeueCount != 1 || *ei.RetryCount != 0 {
		t.Fatalf("execution %+v: want exit 0 after one requeue", ei)
	}
	if starts, done := readLines(t, filepath.Join(markers, "start")), readLines(t, filepath.Join(markers, "done")); len(starts) != 2 || len(done) != 1 {
		t.Fatalf("%d starts and %d ends, want 2 and 1", len(starts), len(done))
	}
}
