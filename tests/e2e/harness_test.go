// Package e2e drives a real `kiln server` process, with real local agent
// processes, through the official Azure Batch Go SDK.
package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/internal/provider/local"
)

// kilnBin is the kiln binary built once for the whole package.
var kilnBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kiln-e2e-bin")
	if err != nil {
		panic(err)
	}
	kilnBin = filepath.Join(dir, "kiln")
	// KILN_E2E_RACE=1 builds the server and agents with the race detector.
	args := []string{"build", "-o", kilnBin}
	if os.Getenv("KILN_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../../cmd/kiln")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building kiln:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testAccount = "kilntest"

// testKey is a fixed account key so that servers restart with it.
var testKey = base64.StdEncoding.EncodeToString([]byte("kiln-e2e-test-key-0123456789abcdef-0123456789abcdef-0123456789ab"))

// Server is a running `kiln server` process.
type Server struct {
	t       testing.TB
	DataDir string
	Addr    string
	URL     string
	Client  *azbatch.Client
	Args    []string
	Env     []string
	cmd     *exec.Cmd
	logPath string
}

// ServerOpts tune StartServer.
type ServerOpts struct {
	Args []string // extra server flags
	Env  []string // extra environment variables (KEY=value)
}

// StartServer starts a kiln server in a fresh data directory and returns a
// client for it. Everything (agents included) is stopped when the test ends.
func StartServer(t testing.TB, opts *ServerOpts) *Server {
	t.Helper()
	return startServerAt(t, freeAddr(t), opts)
}

// startServerAt is StartServer on a given address.
func startServerAt(t testing.TB, addr string, opts *ServerOpts) *Server {
	t.Helper()
	if opts == nil {
		opts = &ServerOpts{}
	}
	s := &Server{t: t, DataDir: t.TempDir(), Addr: addr, Args: opts.Args, Env: opts.Env}
	s.URL = "http://" + s.Addr
	s.logPath = filepath.Join(s.DataDir, "server.log")
	s.Start()
	client, err := batchclient.New(s.URL, testAccount, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Client = client
	t.Cleanup(func() {
		s.Kill()
		killAgents(s.DataDir)
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				t.Logf("server log (%s):\n%s", s.URL, tail(string(b), 8000))
			}
		}
	})
	return s
}

// Start (re)starts the server process on the same address and data dir.
func (s *Server) Start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	args := append([]string{"server", "--addr", s.Addr, "--data-dir", s.DataDir, "--heartbeat-interval", "2s", "--agent-orphan-timeout", "2m"}, s.Args...)
	cmd := exec.Command(kilnBin, args...)
	cmd.Env = append(append(os.Environ(), "KILN_ACCOUNT_NAME="+testAccount, "KILN_ACCOUNT_KEY="+testKey), s.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	logf.Close()
	s.cmd = cmd
	if err := healthy(s.URL, cmd); err != nil {
		b, _ := os.ReadFile(s.logPath)
		s.t.Fatalf("%v; server log:\n%s", err, tail(string(b), 8000))
	}
}

// Kill stops the server with SIGKILL (agents keep running).
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Stop stops the server with SIGTERM and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// killAgents kills every agent process started under dataDir.
func killAgents(dataDir string) {
	matches, _ := filepath.Glob(filepath.Join(dataDir, "nodes", "*", "agent.pid"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var pid int
		fmt.Sscan(strings.TrimSpace(string(b)), &pid)
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			local.KillSession(pid) // and the tasks it leaves behind
		}
	}
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(t testing.TB, url string) {
	t.Helper()
	if err := healthy(url, nil); err != nil {
		t.Fatal(err)
	}
}

// healthy waits until the server at url answers /healthz, or its process
// (when given) exits.
func healthy(url string, cmd *exec.Cmd) error {
	exited := make(chan struct{})
	if cmd != nil {
		go func() {
			for cmd.ProcessState == nil {
				if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
					close(exited)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("server at %s exited before it became healthy", url)
		default:
		}
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("server at %s did not become healthy", url)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// ctx returns a context bounded for one test step.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func to[T any](v T) *T { return &v }

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}

// CreatePool creates a pool of n dedicated nodes with slots task slots each
// and waits until every node is idle.
func (s *Server) CreatePool(t testing.TB, id string, n, slots int32, mutate func(*azbatch.CreatePoolContent)) {
	t.Helper()
	c := azbatch.CreatePoolContent{
		ID:                   to(id),
		VMSize:               to("standard_d2s_v3"),
		TargetDedicatedNodes: to(n),
		TaskSlotsPerNode:     to(slots),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: &azbatch.ImageReference{Publisher: to("kiln"), Offer: to("local"), SKU: to("host"), Version: to("latest")},
			NodeAgentSKUID: to("batch.node.kiln.local"),
		},
	}
	if mutate != nil {
		mutate(&c)
	}
	if _, err := s.Client.CreatePool(ctx(t), c, nil); err != nil {
		t.Fatalf("create pool %s: %v", id, err)
	}
	s.WaitNodes(t, id, int(n), azbatch.NodeStateIdle)
}

// WaitNodes waits until the pool has exactly n nodes, all in state want.
func (s *Server) WaitNodes(t testing.TB, poolID string, n int, want azbatch.NodeState) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%d %s nodes in pool %s", n, want, poolID), func() error {
		nodes, err := s.ListNodes(t, poolID)
		if err != nil {
			return err
		}
		if len(nodes) != n {
			return fmt.Errorf("%d nodes", len(nodes))
		}
		for _, nd := range nodes {
			if *nd.State != want {
				return fmt.Errorf("node %s is %s", *nd.ID, *nd.State)
			}
		}
		return nil
	})
}

// ListNodes returns all nodes of a pool.
func (s *Server) ListNodes(t testing.TB, poolID string) ([]azbatch.Node, error) {
	var out []azbatch.Node
	pager := s.Client.NewListNodesPager(poolID, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			return nil, err
		}
		out = append(out, page.Value...)
	}
	return out, nil
}

// CreateJob creates a job on a pool.
func (s *Server) CreateJob(t testing.TB, id, poolID string, mutate func(*azbatch.CreateJobContent)) {
	t.Helper()
	c := azbatch.CreateJobContent{ID: to(id), PoolInfo: &azbatch.PoolInfo{PoolID: to(poolID)}}
	if mutate != nil {
		mutate(&c)
	}
	if _, err := s.Client.CreateJob(ctx(t), c, nil); err != nil {
		t.Fatalf("create job %s: %v", id, err)
	}
}

// AddTasks adds tasks in collections of 100 and fails on any per-task error.
func (s *Server) AddTasks(t testing.TB, jobID string, tasks []azbatch.CreateTaskContent) {
	t.Helper()
	for len(tasks) > 0 {
		n := min(100, len(tasks))
		resp, err := s.Client.CreateTaskCollection(ctx(t), jobID, azbatch.TaskGroup{Value: tasks[:n]}, nil)
		if err != nil {
			t.Fatalf("add task collection: %v", err)
		}
		for _, r := range resp.Value {
			if *r.Status != azbatch.TaskAddStatusSuccess {
				t.Fatalf("task %s: %s %v", *r.TaskID, *r.Status, r.Error)
			}
		}
		tasks = tasks[n:]
	}
}

// WaitJobTasks waits until the job's task counts show no active or running
// task and returns the counts.
func (s *Server) WaitJobTasks(t testing.TB, jobID string, timeout time.Duration) azbatch.TaskCountsResult {
	t.Helper()
	var res azbatch.TaskCountsResult
	eventually(t, timeout, "tasks of job "+jobID+" to complete", func() error {
		r, err := s.Client.GetJobTaskCounts(ctx(t), jobID, nil)
		if err != nil {
			return err
		}
		c := r.TaskCounts
		if *c.Active+*c.Running > 0 {
			return fmt.Errorf("active %d running %d completed %d", *c.Active, *c.Running, *c.Completed)
		}
		res = r.TaskCountsResult
		return nil
	})
	return res
}

// ListTasks returns all tasks of a job.
func (s *Server) ListTasks(t testing.TB, jobID string, opts *azbatch.ListTasksOptions) []azbatch.Task {
	t.Helper()
	var out []azbatch.Task
	pager := s.Client.NewListTasksPager(jobID, opts)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list tasks: %v", err)
		}
		out = append(out, page.Value...)
	}
	return out
}

// batchCode returns the Azure Batch error code of an SDK error.
func batchCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// statusOf returns the HTTP status of an SDK error.
func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

var _ = sync.Mutex{}
