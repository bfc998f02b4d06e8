package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/provider/local"
)

// remoteAgent is a `kiln agent` process the test runs by hand, as a user
// would on another machine: it joins a pool with the pool's join token.
type remoteAgent struct {
	t       testing.TB
	root    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // valid once done is closed
}

// startRemoteAgent starts `kiln agent --server --pool --token --root-dir`;
// the agent (and its tasks) is killed when the test ends.
func startRemoteAgent(t testing.TB, serverURL, pool, token, root string, extra ...string) *remoteAgent {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ra := &remoteAgent{t: t, root: root, logPath: filepath.Join(filepath.Dir(root), filepath.Base(root)+".log")}
	ra.start(serverURL, pool, token, extra...)
	return ra
}

func (ra *remoteAgent) start(serverURL, pool, token string, extra ...string) {
	ra.t.Helper()
	logf, err := os.OpenFile(ra.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		ra.t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"agent", "--server", serverURL, "--pool", pool, "--token", token, "--root-dir", ra.root, "--log-level", "info"}, extra...)
	cmd := exec.Command(kilnBin, args...)
	cmd.Env = append(os.Environ(), "KILN_AGENT_TOKEN=")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // its tasks stay in its session
	if err := cmd.Start(); err != nil {
		ra.t.Fatal(err)
	}
	ra.cmd, ra.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		ra.err = cmd.Wait()
		close(done)
	}(ra.done)
	pid := cmd.Process.Pid
	ra.t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		local.KillSession(pid)
		if ra.t.Failed() {
			ra.t.Logf("agent %s log:\n%s", filepath.Base(ra.root), tail(ra.log(), 3000))
		}
	})
}

func (ra *remoteAgent) log() string {
	b, _ := os.ReadFile(ra.logPath)
	return string(b)
}

func (ra *remoteAgent) alive() bool {
	select {
	case <-ra.done:
		return false
	default:
		return true
	}
}

// nodeID is the node id the agent keeps in its root directory.
func (ra *remoteAgent) nodeID() string {
	b, _ := os.ReadFile(filepath.Join(ra.root, "kiln-node-id"))
	return strings.TrimSpace(string(b))
}

// kill ends the agent with SIGKILL (its tasks too) and waits for it.
func (ra *remoteAgent) kill() {
	_ = syscall.Kill(ra.cmd.Process.Pid, syscall.SIGKILL)
	local.KillSession(ra.cmd.Process.Pid)
	<-ra.done
}

// joinToken runs `kiln pool join-token` against s (JSON output).
func joinToken(t testing.TB, s *Server, pool string, rotate bool) (tok string, command string, removed []string) {
	t.Helper()
	args := []string{"pool", "join-token", pool, "--output", "json"}
	if rotate {
		args = append(args, "--rotate")
	}
	cmd := exec.Command(kilnBin, args...)
	cmd.Env = append(os.Environ(), "KILN_DATA_DIR="+s.DataDir, "KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=", "KILN_SERVER_FINGERPRINT=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kiln %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var r struct {
		PoolID       string   `json:"poolId"`
		Token        string   `json:"token"`
		Command      string   `json:"command"`
		RemovedNodes []string `json:"removedNodes"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("kiln pool join-token output: %v\n%s", err, out)
	}
	return r.Token, r.Command, r.RemovedNodes
}

// createAgentsPool creates a pool whose nodes are joining agents.
func createAgentsPool(t testing.TB, s *Server, id string, dedicated, slots int32) {
	t.Helper()
	c := azbatch.CreatePoolContent{
		ID:                   to(id),
		VMSize:               to("standard_d2s_v3"),
		TargetDedicatedNodes: to(dedicated),
		TaskSlotsPerNode:     to(slots),
		Metadata:             []azbatch.MetadataItem{{Name: to("kiln.provider"), Value: to("agents")}},
	}
	if _, err := s.Client.CreatePool(ctx(t), c, nil); err != nil {
		t.Fatalf("create pool %s: %v", id, err)
	}
}

// standbyAgents lists the pool's standby agents (GET /kiln/pools/{id}/standbyAgents).
func standbyAgents(t testing.TB, s *Server, pool string) []string {
	t.Helper()
	req := s.poolRawRequest(t, "GET", "/kiln/pools/"+pool+"/standbyAgents?api-version=2024-07-01.20.0", nil)
	poolSign(t, req, "")
	resp := poolDo(t, req)
	if resp.Status != 200 {
		t.Fatalf("standbyAgents: %d %s", resp.Status, resp.Body)
	}
	var r struct {
		Value []struct {
			NodeID string `json:"nodeId"`
		} `json:"value"`
	}
	if err := json.Unmarshal(resp.Body, &r); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range r.Value {
		ids = append(ids, v.NodeID)
	}
	sort.Strings(ids)
	return ids
}

func nodeIDs(t testing.TB, s *Server, pool string) []string {
	t.Helper()
	nodes, err := s.ListNodes(t, pool)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, *n.ID)
	}
	sort.Strings(ids)
	return ids
}

func resizePool(t testing.TB, s *Server, pool string, dedicated int32) {
	t.Helper()
	eventually(t, 60*time.Second, "resize of "+pool+" accepted", func() error {
		_, err := s.Client.ResizePool(ctx(t), pool, azbatch.ResizePoolContent{TargetDedicatedNodes: to(dedicated)}, nil)
		return err
	})
}

// TestRemoteAgents: agents run by hand join a pool of provider "agents" with
// its join token. With 3 agents and a target of 2, two become idle nodes and
// one waits as standby; a resize to 3 admits it; a job runs on them; an
// agent restarted with its root directory is the same node again; a resize
// to 1 sends two back to standby (their processes live on); a wrong token is
// refused; a rotation removes the nodes and the old token's agents exit.
func TestRemoteAgents(t *testing.T) {
	s := StartServer(t, nil)
	dir := t.TempDir()

	// A pool of another provider has no join token.
	s.CreatePool(t, "localpool", 0, 1, nil)
	req := s.poolRawRequest(t, "GET", "/kiln/pools/localpool/joinToken?api-version=2024-07-01.20.0", nil)
	poolSign(t, req, "")
	if resp := poolDo(t, req); resp.Status != 409 || !strings.Contains(string(resp.Body), "PoolProviderNotAgents") {
		t.Fatalf("join token of a local pool: %d %s", resp.Status, resp.Body)
	}
	// An unknown provider is refused.
	_, err := s.Client.CreatePool(ctx(t), azbatch.CreatePoolContent{ID: to("nope"), VMSize: to("standard_d2s_v3"),
		Metadata: []azbatch.MetadataItem{{Name: to("kiln.provider"), Value: to("nope")}}}, nil)
	if batchCode(err) != "InvalidPropertyValue" || !strings.Contains(err.Error(), "metadata") {
		t.Fatalf("pool with kiln.provider=nope: %v", err)
	}

	createAgentsPool(t, s, "byo", 2, 2)
	tok, command, _ := joinToken(t, s, "byo", false)
	if want := "kiln agent --server " + s.URL + " --pool byo --token " + tok; command != want {
		t.Fatalf("join command %q, want %q", command, want)
	}
	if again, _, _ := joinToken(t, s, "byo", false); again != tok {
		t.Fatalf("second join-token %q, want the same %q", again, tok)
	}

	var agents []*remoteAgent
	for i := 0; i < 3; i++ {
		agents = append(agents, startRemoteAgent(t, s.URL, "byo", tok, filepath.Join(dir, fmt.Sprintf("agent%d", i))))
	}
	s.WaitNodes(t, "byo", 2, azbatch.NodeStateIdle)
	eventually(t, 30*time.Second, "one standby agent", func() error {
		if sb := standbyAgents(t, s, "byo"); len(sb) != 1 {
			return fmt.Errorf("standby %v", sb)
		}
		return nil
	})
	standby := standbyAgents(t, s, "byo")[0]
	for _, id := range nodeIDs(t, s, "byo") {
		if id == standby {
			t.Fatalf("standby agent %s is also a node", id)
		}
	}
	pool, err := s.Client.GetPool(ctx(t), "byo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *pool.AllocationState != azbatch.AllocationStateSteady || *pool.CurrentDedicatedNodes != 2 {
		t.Fatalf("pool byo: %s, %d nodes", *pool.AllocationState, *pool.CurrentDedicatedNodes)
	}

	// Resize to 3: the standby agent joins, under the id it showed.
	resizePool(t, s, "byo", 3)
	s.WaitNodes(t, "byo", 3, azbatch.NodeStateIdle)
	if ids := nodeIDs(t, s, "byo"); !contains(ids, standby) {
		t.Fatalf("nodes %v lack the standby agent %s", ids, standby)
	}
	for _, a := range agents {
		if !contains(nodeIDs(t, s, "byo"), a.nodeID()) {
			t.Fatalf("agent's kept node id %q is not a node", a.nodeID())
		}
	}

	// A job runs on the joined nodes.
	markers := filepath.Join(dir, "markers")
	mkdirShared(t, markers)
	s.CreateJob(t, "byojob", "byo", nil)
	var tasks []azbatch.CreateTaskContent
	for i := 0; i < 12; i++ {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: to(fmt.Sprintf("t%02d", i)),
			CommandLine: to(fmt.Sprintf(`/bin/sh -c 'sleep 0.3; echo "$AZ_BATCH_NODE_ID" >> %s/$AZ_BATCH_TASK_ID; echo out-$AZ_BATCH_TASK_ID'`, markers))})
	}
	s.AddTasks(t, "byojob", tasks)
	waitCompleted(t, s, "byojob", 12, time.Minute)
	used := map[string]bool{}
	for _, task := range s.ListTasks(t, "byojob", nil) {
		b, err := os.ReadFile(filepath.Join(markers, *task.ID))
		if err != nil || strings.Count(string(b), "\n") != 1 {
			t.Fatalf("task %s marker: %q %v", *task.ID, b, err)
		}
		used[*task.NodeInfo.NodeID] = true
	}
	// The server reaches the joined nodes' files.
	if out := taskMustReadFile(t, s, "byojob", "t05", "stdout.txt"); out != "out-t05\n" {
		t.Fatalf("stdout.txt of t05 through the server: %q", out)
	}
	if len(used) < 2 {
		t.Fatalf("tasks ran on %d node(s) only", len(used))
	}

	// An agent restarted on its root directory is the same node again.
	a0 := agents[0]
	id0 := a0.nodeID()
	a0.kill()
	a0.start(s.URL, "byo", tok)
	eventually(t, 30*time.Second, "restarted agent registered again", func() error {
		if c := strings.Count(a0.log(), "msg=registered"); c < 2 {
			return fmt.Errorf("%d registrations", c)
		}
		return nil
	})
	s.WaitNodes(t, "byo", 3, azbatch.NodeStateIdle)
	if ids := nodeIDs(t, s, "byo"); !contains(ids, id0) || a0.nodeID() != id0 {
		t.Fatalf("restarted agent: nodes %v, kept id %s, want %s", ids, a0.nodeID(), id0)
	}

	// Resize to 1: two agents go back to standby, their processes alive.
	resizePool(t, s, "byo", 1)
	s.WaitNodes(t, "byo", 1, azbatch.NodeStateIdle)
	eventually(t, 30*time.Second, "two standby agents", func() error {
		if sb := standbyAgents(t, s, "byo"); len(sb) != 2 {
			return fmt.Errorf("standby %v", sb)
		}
		return nil
	})
	for i, a := range agents {
		if !a.alive() {
			t.Fatalf("agent %d exited after the resize to 1: %v", i, a.err)
		}
	}

	// A wrong token is refused: the agent exits with an error that says so.
	bad := startRemoteAgent(t, s.URL, "byo", "kjt_wrong", filepath.Join(dir, "bad"))
	select {
	case <-bad.done:
	case <-time.After(30 * time.Second):
		t.Fatal("agent with a wrong token still runs")
	}
	if bad.err == nil || !strings.Contains(bad.log(), "join token refused") {
		t.Fatalf("agent with a wrong token: exit %v, log:\n%s", bad.err, bad.log())
	}

	// Rotation: the node leaves, every agent of the old token is refused.
	newTok, _, removed := joinToken(t, s, "byo", true)
	if newTok == tok || len(removed) != 1 {
		t.Fatalf("rotate: token %q (old %q), removed %v", newTok, tok, removed)
	}
	s.WaitNodes(t, "byo", 0, azbatch.NodeStateIdle)
	for i, a := range agents {
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("agent %d still runs after the rotation", i)
		}
		if a.err == nil || !strings.Contains(a.log(), "join token refused") {
			t.Fatalf("agent %d after the rotation: exit %v", i, a.err)
		}
	}
	// The new token works.
	startRemoteAgent(t, s.URL, "byo", newTok, filepath.Join(dir, "agent-new"))
	s.WaitNodes(t, "byo", 1, azbatch.NodeStateIdle)
}

// waitCompleted waits until the job's n tasks completed, and checks that
// they all succeeded.
func waitCompleted(t testing.TB, s *Server, jobID string, n int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d tasks of job %s to complete", n, jobID), func() error {
		r, err := s.Client.GetJobTaskCounts(ctx(t), jobID, nil)
		if err != nil {
			return err
		}
		if c := r.TaskCounts; int(*c.Completed) != n {
			return fmt.Errorf("active %d running %d completed %d", *c.Active, *c.Running, *c.Completed)
		}
		return nil
	})
	for _, task := range s.ListTasks(t, jobID, nil) {
		if *task.State != azbatch.TaskStateCompleted || task.ExecutionInfo.ExitCode == nil || *task.ExecutionInfo.ExitCode != 0 {
			fi, _ := json.Marshal(task.ExecutionInfo)
			t.Fatalf("task %s: state %s, execution %s", *task.ID, *task.State, fi)
		}
	}
}

// mkdirShared creates a directory every task user may write to (tasks run
// as non-root users) under a test's temporary directory.
func mkdirShared(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		mode := os.FileMode(0o755)
		if d == dir {
			mode = 0o777
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestRemoteAgentsServerRestart kills the server (SIGKILL) twice while
// joined agents run a job: the agents keep running their tasks, buffer the
// results and reconcile when the server is back; every task completes, and
// runs exactly once (each appends to its own marker file).
func TestRemoteAgentsServerRestart(t *testing.T) {
	s := StartServer(t, nil)
	dir := t.TempDir()
	createAgentsPool(t, s, "byo", 2, 4)
	tok, _, _ := joinToken(t, s, "byo", false)
	var agents []*remoteAgent
	for i := 0; i < 2; i++ {
		agents = append(agents, startRemoteAgent(t, s.URL, "byo", tok, filepath.Join(dir, fmt.Sprintf("agent%d", i))))
	}
	s.WaitNodes(t, "byo", 2, azbatch.NodeStateIdle)

	markers := filepath.Join(dir, "markers")
	mkdirShared(t, markers)
	const n = 120
	s.CreateJob(t, "rjob", "byo", nil)
	var tasks []azbatch.CreateTaskContent
	for i := 0; i < n; i++ {
		tasks = append(tasks, azbatch.CreateTaskContent{ID: to(fmt.Sprintf("t%03d", i)),
			CommandLine: to(fmt.Sprintf(`/bin/sh -c 'sleep 0.4; echo run >> %s/$AZ_BATCH_TASK_ID'`, markers))})
	}
	s.AddTasks(t, "rjob", tasks)
	done := func() int {
		entries, _ := os.ReadDir(markers)
		return len(entries)
	}
	for _, frac := range []float64{0.25, 0.6} {
		eventually(t, 2*time.Minute, "progress", func() error {
			if d := done(); float64(d) < frac*n {
				return fmt.Errorf("%d done", d)
			}
			return nil
		})
		s.Kill()
		before := done()
		// The agents work on while the server is down: the tasks they run
		// finish, and their results wait in the agents' outboxes.
		eventually(t, 30*time.Second, "tasks finishing while the server is down", func() error {
			if d := done(); d < before+4 {
				return fmt.Errorf("%d done at the kill, %d now", before, d)
			}
			return nil
		})
		s.Start()
	}
	for i, a := range agents {
		if !a.alive() {
			t.Fatalf("agent %d exited: %v", i, a.err)
		}
	}
	waitCompleted(t, s, "rjob", n, 2*time.Minute)
	for i := 0; i < n; i++ {
		b, err := os.ReadFile(filepath.Join(markers, fmt.Sprintf("t%03d", i)))
		if err != nil || string(b) != "run\n" {
			t.Errorf("task t%03d ran %d times (%v)", i, strings.Count(string(b), "run"), err)
		}
	}
}
