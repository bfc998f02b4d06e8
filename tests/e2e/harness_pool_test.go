package e2e

// Helpers of the pool, node, account and auth tests (pool_test.go,
// node_test.go, auth_test.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/sharedkey"
)

// poolAPIVersion is the api-version of raw requests.
const poolAPIVersion = "2024-07-01.20.0"

// poolCapture returns a context that records the HTTP response of the SDK
// call made with it, and a function returning that response's status.
func poolCapture(t testing.TB) (context.Context, func() int) {
	var resp *http.Response
	c := runtime.WithCaptureResponse(ctx(t), &resp)
	return c, func() int {
		if resp == nil {
			return 0
		}
		return resp.StatusCode
	}
}

// poolContent is the body CreatePool uses: n dedicated nodes of the local
// image with slots task slots each.
func poolContent(id string, n, slots int32) azbatch.CreatePoolContent {
	return azbatch.CreatePoolContent{
		ID:                   to(id),
		VMSize:               to("standard_d2s_v3"),
		TargetDedicatedNodes: to(n),
		TaskSlotsPerNode:     to(slots),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: &azbatch.ImageReference{Publisher: to("kiln"), Offer: to("local"), SKU: to("host"), Version: to("latest")},
			NodeAgentSKUID: to("batch.node.kiln.local"),
		},
	}
}

// poolGet returns a pool and fails the test on error.
func (s *Server) poolGet(t testing.TB, id string) azbatch.Pool {
	t.Helper()
	r, err := s.Client.GetPool(ctx(t), id, nil)
	if err != nil {
		t.Fatalf("get pool %s: %v", id, err)
	}
	return r.Pool
}

// poolWaitSteady waits until the pool is steady with want dedicated nodes
// (current and target), all of them idle.
func (s *Server) poolWaitSteady(t testing.TB, id string, want int32) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("pool %s steady at %d nodes", id, want), func() error {
		r, err := s.Client.GetPool(ctx(t), id, nil)
		if err != nil {
			return err
		}
		p := r.Pool
		if *p.AllocationState != azbatch.AllocationStateSteady || *p.CurrentDedicatedNodes != want || *p.TargetDedicatedNodes != want {
			return fmt.Errorf("allocation %s current %d target %d", *p.AllocationState, *p.CurrentDedicatedNodes, *p.TargetDedicatedNodes)
		}
		return nil
	})
	s.WaitNodes(t, id, int(want), azbatch.NodeStateIdle)
}

// poolWaitGone waits until GetPool answers 404 PoolNotFound.
func (s *Server) poolWaitGone(t testing.TB, id string) {
	t.Helper()
	eventually(t, 60*time.Second, "pool "+id+" to be deleted", func() error {
		r, err := s.Client.GetPool(ctx(t), id, nil)
		if err == nil {
			return fmt.Errorf("pool is %s", *r.State)
		}
		if statusOf(err) != http.StatusNotFound || batchCode(err) != "PoolNotFound" {
			return fmt.Errorf("unexpected error: %v", err)
		}
		return nil
	})
}

// poolTask returns a task and fails the test on error.
func (s *Server) poolTask(t testing.TB, jobID, taskID string) azbatch.Task {
	t.Helper()
	r, err := s.Client.GetTask(ctx(t), jobID, taskID, nil)
	if err != nil {
		t.Fatalf("get task %s/%s: %v", jobID, taskID, err)
	}
	return r.Task
}

// poolWaitTask waits until cond accepts the task and returns it.
func (s *Server) poolWaitTask(t testing.TB, jobID, taskID, what string, cond func(azbatch.Task) error) azbatch.Task {
	t.Helper()
	var task azbatch.Task
	eventually(t, 60*time.Second, "task "+taskID+" "+what, func() error {
		r, err := s.Client.GetTask(ctx(t), jobID, taskID, nil)
		if err != nil {
			return err
		}
		task = r.Task
		return cond(task)
	})
	return task
}

// poolTaskState is a poolWaitTask condition on the task state.
func poolTaskState(want azbatch.TaskState) func(azbatch.Task) error {
	return func(task azbatch.Task) error {
		if *task.State != want {
			return fmt.Errorf("state %s", *task.State)
		}
		return nil
	}
}

// poolNode returns a node and fails the test on error.
func (s *Server) poolNode(t testing.TB, poolID, nodeID string) azbatch.Node {
	t.Helper()
	r, err := s.Client.GetNode(ctx(t), poolID, nodeID, nil)
	if err != nil {
		t.Fatalf("get node %s: %v", nodeID, err)
	}
	return r.Node
}

// poolWaitNodeState waits until the node is in state want.
func (s *Server) poolWaitNodeState(t testing.TB, poolID, nodeID string, want azbatch.NodeState) azbatch.Node {
	t.Helper()
	var n azbatch.Node
	eventually(t, 60*time.Second, "node "+nodeID+" "+string(want), func() error {
		r, err := s.Client.GetNode(ctx(t), poolID, nodeID, nil)
		if err != nil {
			return err
		}
		n = r.Node
		if *n.State != want {
			return fmt.Errorf("node is %s", *n.State)
		}
		return nil
	})
	return n
}

// poolNodeIDs returns the ids of a pool's nodes.
func (s *Server) poolNodeIDs(t testing.TB, poolID string) []string {
	t.Helper()
	nodes, err := s.ListNodes(t, poolID)
	if err != nil {
		t.Fatalf("list nodes of %s: %v", poolID, err)
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, *n.ID)
	}
	return ids
}

// poolReadNodeFile returns the content of a node file.
func (s *Server) poolReadNodeFile(t testing.TB, poolID, nodeID, path string) (string, error) {
	r, err := s.Client.GetNodeFile(ctx(t), poolID, nodeID, path, nil)
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

// poolAgentPIDs returns the pids of the agent processes started for the
// server's nodes that still have a node directory.
func (s *Server) poolAgentPIDs() []int {
	matches, _ := filepath.Glob(filepath.Join(s.DataDir, "nodes", "*", "agent.pid"))
	var pids []int
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// poolProcessAlive reports whether pid is a running (not zombie) process.
func poolProcessAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// poolErrorBody is the Azure Batch error document.
type poolErrorBody struct {
	Metadata string `json:"odata.metadata"`
	Code     string `json:"code"`
	Message  struct {
		Lang  string `json:"lang"`
		Value string `json:"value"`
	} `json:"message"`
	Values []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"values"`
}

// value returns the value of key in the error's values ("" if absent).
func (e poolErrorBody) value(key string) string {
	for _, kv := range e.Values {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// poolErrorOf decodes the error body of an SDK error.
func poolErrorOf(t testing.TB, err error) poolErrorBody {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("not a response error: %v", err)
	}
	b, perr := runtime.Payload(re.RawResponse)
	if perr != nil {
		t.Fatalf("read error body: %v", perr)
	}
	var body poolErrorBody
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("error body %q: %v", b, err)
	}
	return body
}

// poolExpectError checks that err is an Azure Batch error with the status
// and code, and returns its body.
func poolExpectError(t testing.TB, err error, status int, code string) poolErrorBody {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %d %s", status, code)
	}
	if statusOf(err) != status || batchCode(err) != code {
		t.Fatalf("got %d %q (%v), want %d %s", statusOf(err), batchCode(err), err, status, code)
	}
	return poolErrorOf(t, err)
}

// poolRawResponse is the answer to a raw request.
type poolRawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// poolError decodes the body as an Azure Batch error.
func (r poolRawResponse) poolError(t testing.TB) poolErrorBody {
	t.Helper()
	var body poolErrorBody
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("error body %q: %v", r.Body, err)
	}
	return body
}

// poolRawRequest builds a request to the server. pathAndQuery is appended
// to the server URL as is.
func (s *Server) poolRawRequest(t testing.TB, method, pathAndQuery string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx(t), method, s.URL+pathAndQuery, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
	}
	return req
}

// poolSign signs a request with the test account key (or another base64
// key when given).
func poolSign(t testing.TB, req *http.Request, b64Key string) {
	t.Helper()
	if b64Key == "" {
		b64Key = testKey
	}
	key, err := sharedkey.DecodeKey(b64Key)
	if err != nil {
		t.Fatal(err)
	}
	sharedkey.SignRequest(req, testAccount, key)
}

// poolDo sends a raw request and reads the whole answer.
func poolDo(t testing.TB, req *http.Request) poolRawResponse {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer of %s %s: %v", req.Method, req.URL, err)
	}
	return poolRawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// poolLiveAgents returns the pids of running `kiln agent` processes whose
// command line names the server's data directory (found through /proc, so
// that agents without a pid file count too).
func (s *Server) poolLiveAgents() []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) < 2 || args[1] != "agent" || !strings.Contains(string(b), s.DataDir) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil && poolProcessAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
