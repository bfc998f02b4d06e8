package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// Node operations through the Go SDK: reboot, reimage, deallocate and
// start with each option, recovery of starttaskfailed and unusable nodes,
// Batch service logs, extensions, remote login settings, pool usage
// metrics and node user accounts.

// opsPool creates a one-node, one-slot pool whose start task appends a
// line to boots.txt in the shared directory (a count of the node's boots
// since its last reimage) and a job on it.
func opsPool(t *testing.T, s *Server, id string) string {
	t.Helper()
	s.CreatePool(t, id, 1, 1, func(c *azbatch.CreatePoolContent) {
		c.StartTask = &azbatch.StartTask{
			CommandLine:    to(`/bin/sh -c 'echo boot >> "$AZ_BATCH_NODE_SHARED_DIR/boots.txt"'`),
			WaitForSuccess: to(true),
		}
	})
	s.CreateJob(t, id+"job", id, nil)
	return s.poolNodeIDs(t, id)[0]
}

func opsBoots(t *testing.T, s *Server, nodeID string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(taskNodeRoot(s, nodeID), "shared", "boots.txt"))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "boot")
}

// opsWaitBoots waits until the start task ran n times since the last wipe.
func opsWaitBoots(t *testing.T, s *Server, nodeID string, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%d boots", n), func() error {
		if got := opsBoots(t, s, nodeID); got != n {
			return fmt.Errorf("%d boots", got)
		}
		return nil
	})
}

func TestNodeRebootAndReimageOptions(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	nodeID := opsPool(t, s, "rb")
	job := "rbjob"
	opsWaitBoots(t, s, nodeID, 1)
	s.poolWaitNodeState(t, "rb", nodeID, azbatch.NodeStateIdle)

	// Reboot, requeue: the running task goes back to the queue and runs
	// again after the reboot; the start task runs again; shared files stay.
	taskAdd(t, s, job, taskCmd("a", taskGateCmd))
	taskWaitState(t, s, job, "a", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := s.Client.RebootNode(ctx(t), "rb", nodeID, &azbatch.RebootNodeOptions{
		Parameters: &azbatch.RebootNodeContent{NodeRebootOption: to(azbatch.NodeRebootOptionRequeue)}}); err != nil {
		t.Fatal(err)
	}
	opsWaitBoots(t, s, nodeID, 2)
	a := taskWaitState(t, s, job, "a", azbatch.TaskStateRunning, 30*time.Second)
	if opsVal(a.ExecutionInfo.RequeueCount) != 1 {
		t.Fatalf("requeued task: requeueCount %v", a.ExecutionInfo.RequeueCount)
	}
	taskRelease(t, s, job, "a")
	a = taskWaitState(t, s, job, "a", azbatch.TaskStateCompleted, 30*time.Second)
	if *a.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("task a: %+v", a.ExecutionInfo)
	}
	aDir := taskDirOf(t, s, job, a)

	// Reimage, terminate: the running task fails, the task directories
	// and the shared directory are wiped, the start task runs again.
	taskAdd(t, s, job, taskCmd("b", taskGateCmd))
	taskWaitState(t, s, job, "b", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := s.Client.ReimageNode(ctx(t), "rb", nodeID, &azbatch.ReimageNodeOptions{
		Parameters: &azbatch.ReimageNodeContent{NodeReimageOption: to(azbatch.NodeReimageOptionTerminate)}}); err != nil {
		t.Fatal(err)
	}
	b := taskWaitState(t, s, job, "b", azbatch.TaskStateCompleted, 30*time.Second)
	if *b.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure {
		t.Fatalf("terminated task b: %+v", b.ExecutionInfo)
	}
	s.poolWaitNodeState(t, "rb", nodeID, azbatch.NodeStateIdle)
	opsWaitBoots(t, s, nodeID, 1)
	eventually(t, 30*time.Second, "task directories wiped", func() error {
		if _, err := os.Stat(aDir); err == nil {
			return fmt.Errorf("%s still exists", aDir)
		}
		return nil
	})

	// Reimage, taskcompletion: the running task finishes first, the node
	// shows reimaging meanwhile and takes no new task.
	taskAdd(t, s, job, taskCmd("c", taskGateCmd))
	c := taskWaitState(t, s, job, "c", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := s.Client.ReimageNode(ctx(t), "rb", nodeID, &azbatch.ReimageNodeOptions{
		Parameters: &azbatch.ReimageNodeContent{NodeReimageOption: to(azbatch.NodeReimageOptionTaskCompletion)}}); err != nil {
		t.Fatal(err)
	}
	if st := *s.poolNode(t, "rb", nodeID).State; st != azbatch.NodeStateReimaging {
		t.Fatalf("node during a taskcompletion reimage: %s", st)
	}
	_, err := s.Client.RebootNode(ctx(t), "rb", nodeID, nil)
	poolExpectError(t, err, http.StatusConflict, "NodeNotReady")
	taskRelease(t, s, job, "c")
	c = taskWaitState(t, s, job, "c", azbatch.TaskStateCompleted, 30*time.Second)
	if *c.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("task c: %+v", c.ExecutionInfo)
	}
	s.poolWaitNodeState(t, "rb", nodeID, azbatch.NodeStateIdle)
	opsWaitBoots(t, s, nodeID, 1)

	// Reboot, retaineddata, with nothing running: a plain reboot.
	if _, err := s.Client.RebootNode(ctx(t), "rb", nodeID, &azbatch.RebootNodeOptions{
		Parameters: &azbatch.RebootNodeContent{NodeRebootOption: to(azbatch.NodeRebootOptionRetainedData)}}); err != nil {
		t.Fatal(err)
	}
	opsWaitBoots(t, s, nodeID, 2)
	s.poolWaitNodeState(t, "rb", nodeID, azbatch.NodeStateIdle)

	// Options are validated.
	_, err = s.Client.ReimageNode(ctx(t), "rb", nodeID, &azbatch.ReimageNodeOptions{
		Parameters: &azbatch.ReimageNodeContent{NodeReimageOption: to(azbatch.NodeReimageOption("later"))}})
	poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	_, err = s.Client.ReimageNode(ctx(t), "rb", "tvmps_nosuchnode_d", nil)
	poolExpectError(t, err, http.StatusNotFound, "NodeNotFound")
}

func TestNodeDisableSchedulingOptions(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	nodeID := opsPool(t, s, "ds")
	job := "dsjob"
	s.poolWaitNodeState(t, "ds", nodeID, azbatch.NodeStateIdle)

	// taskcompletion: the running task finishes, nothing new starts.
	taskAdd(t, s, job, taskCmd("a", taskGateCmd))
	taskWaitState(t, s, job, "a", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := s.Client.DisableNodeScheduling(ctx(t), "ds", nodeID, &azbatch.DisableNodeSchedulingOptions{
		Parameters: &azbatch.DisableNodeSchedulingContent{NodeDisableSchedulingOption: to(azbatch.NodeDisableSchedulingOptionTaskCompletion)}}); err != nil {
		t.Fatal(err)
	}
	taskAdd(t, s, job, taskCmd("b", "true"))
	taskRelease(t, s, job, "a")
	taskWaitState(t, s, job, "a", azbatch.TaskStateCompleted, 30*time.Second)
	n := s.poolWaitNodeState(t, "ds", nodeID, azbatch.NodeStateOffline)
	if *n.SchedulingState != azbatch.SchedulingStateDisabled {
		t.Fatalf("scheduling state %s", *n.SchedulingState)
	}
	time.Sleep(500 * time.Millisecond)
	if st := *taskGet(t, s, job, "b").State; st != azbatch.TaskStateActive {
		t.Fatalf("task b on a disabled node: %s", st)
	}
	if _, err := s.Client.EnableNodeScheduling(ctx(t), "ds", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	taskWaitState(t, s, job, "b", azbatch.TaskStateCompleted, 30*time.Second)

	// terminate: the running task fails at once.
	taskAdd(t, s, job, taskCmd("c", taskGateCmd))
	taskWaitState(t, s, job, "c", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := s.Client.DisableNodeScheduling(ctx(t), "ds", nodeID, &azbatch.DisableNodeSchedulingOptions{
		Parameters: &azbatch.DisableNodeSchedulingContent{NodeDisableSchedulingOption: to(azbatch.NodeDisableSchedulingOptionTerminate)}}); err != nil {
		t.Fatal(err)
	}
	if c := taskWaitState(t, s, job, "c", azbatch.TaskStateCompleted, 30*time.Second); *c.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure {
		t.Fatalf("terminated task c: %+v", c.ExecutionInfo)
	}
	// requeue (the default): back to active.
	if _, err := s.Client.EnableNodeScheduling(ctx(t), "ds", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	taskAdd(t, s, job, taskCmd("d", taskGateCmd))
	taskWaitState(t, s, job, "d", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := s.Client.DisableNodeScheduling(ctx(t), "ds", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	taskWaitState(t, s, job, "d", azbatch.TaskStateActive, 30*time.Second)
	_, err := s.Client.DisableNodeScheduling(ctx(t), "ds", nodeID, &azbatch.DisableNodeSchedulingOptions{
		Parameters: &azbatch.DisableNodeSchedulingContent{NodeDisableSchedulingOption: to(azbatch.NodeDisableSchedulingOption("never"))}})
	poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
}

func TestNodeRecoveryFromStartTaskFailedAndUnusable(t *testing.T) {
	t.Parallel()
	s := StartServer(t, &ServerOpts{Args: []string{"--node-timeout", "3s", "--heartbeat-interval", "1s"}})
	pc := poolContent("rec", 1, 1)
	pc.StartTask = &azbatch.StartTask{
		CommandLine:    to(`/bin/sh -c 'test -e "$AZ_BATCH_NODE_ROOT_DIR/fixed"'`),
		WaitForSuccess: to(true),
	}
	if _, err := s.Client.CreatePool(ctx(t), pc, nil); err != nil {
		t.Fatal(err)
	}
	s.WaitNodes(t, "rec", 1, azbatch.NodeStateStartTaskFailed)
	nodeID := s.poolNodeIDs(t, "rec")[0]

	// A reboot runs the start task again: fixed now, the node is idle.
	if err := os.WriteFile(filepath.Join(taskNodeRoot(s, nodeID), "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RebootNode(ctx(t), "rec", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "rec", nodeID, azbatch.NodeStateIdle)

	// Fail it again, then recover by reimage.
	if err := os.Remove(filepath.Join(taskNodeRoot(s, nodeID), "fixed")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RebootNode(ctx(t), "rec", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "rec", nodeID, azbatch.NodeStateStartTaskFailed)
	if err := os.WriteFile(filepath.Join(taskNodeRoot(s, nodeID), "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.ReimageNode(ctx(t), "rec", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "rec", nodeID, azbatch.NodeStateIdle)

	// Kill the agent: the node goes unusable; a reboot starts a new agent
	// on a fresh node directory (whose start task then fails: no "fixed").
	pid := opsAgentPID(t, s, nodeID)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "rec", nodeID, azbatch.NodeStateUnusable)
	if _, err := s.Client.RebootNode(ctx(t), "rec", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "rec", nodeID, azbatch.NodeStateStartTaskFailed)
	if newPID := opsAgentPID(t, s, nodeID); newPID == pid || !poolProcessAlive(newPID) {
		t.Fatalf("agent pid %d after recovery (was %d)", newPID, pid)
	}
}

func opsAgentPID(t *testing.T, s *Server, nodeID string) int {
	t.Helper()
	var pid int
	eventually(t, 30*time.Second, "agent pid", func() error {
		b, err := os.ReadFile(filepath.Join(taskNodeRoot(s, nodeID), "agent.pid"))
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	return pid
}

func TestNodeDeallocateAndStart(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	nodeID := opsPool(t, s, "da")
	job := "dajob"
	s.poolWaitNodeState(t, "da", nodeID, azbatch.NodeStateIdle)

	// Starting a node that is not deallocated is refused.
	_, err := s.Client.StartNode(ctx(t), "da", nodeID, nil)
	poolExpectError(t, err, http.StatusConflict, "NodeNotDeallocated")

	// Deallocate (requeue): the task goes back to the queue and waits.
	taskAdd(t, s, job, taskCmd("a", taskGateCmd))
	taskWaitState(t, s, job, "a", azbatch.TaskStateRunning, 30*time.Second)
	if _, err := s.Client.DeallocateNode(ctx(t), "da", nodeID, &azbatch.DeallocateNodeOptions{
		Parameters: &azbatch.DeallocateNodeContent{NodeDeallocateOption: to(azbatch.NodeDeallocateOptionRequeue)}}); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "da", nodeID, azbatch.NodeStateDeallocated)
	taskWaitState(t, s, job, "a", azbatch.TaskStateActive, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	if st := *taskGet(t, s, job, "a").State; st != azbatch.TaskStateActive {
		t.Fatalf("task on a deallocated node: %s", st)
	}
	_, err = s.Client.RebootNode(ctx(t), "da", nodeID, nil)
	poolExpectError(t, err, http.StatusConflict, "NodeDeallocated")
	_, err = s.Client.DeallocateNode(ctx(t), "da", nodeID, nil)
	poolExpectError(t, err, http.StatusConflict, "NodeDeallocated")

	// Start: the node boots (start task again) and runs the task.
	if _, err := s.Client.StartNode(ctx(t), "da", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	opsWaitBoots(t, s, nodeID, 2)
	taskWaitState(t, s, job, "a", azbatch.TaskStateRunning, 30*time.Second)

	// Deallocate with taskcompletion: deallocating until the task ends.
	if _, err := s.Client.DeallocateNode(ctx(t), "da", nodeID, &azbatch.DeallocateNodeOptions{
		Parameters: &azbatch.DeallocateNodeContent{NodeDeallocateOption: to(azbatch.NodeDeallocateOptionTaskCompletion)}}); err != nil {
		t.Fatal(err)
	}
	if st := *s.poolNode(t, "da", nodeID).State; st != azbatch.NodeStateDeallocating {
		t.Fatalf("node during a taskcompletion deallocation: %s", st)
	}
	taskRelease(t, s, job, "a")
	if a := taskWaitState(t, s, job, "a", azbatch.TaskStateCompleted, 30*time.Second); *a.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("task a: %+v", a.ExecutionInfo)
	}
	s.poolWaitNodeState(t, "da", nodeID, azbatch.NodeStateDeallocated)

	// Deallocated survives a server restart.
	s.Stop()
	s.Start()
	if st := *s.poolNode(t, "da", nodeID).State; st != azbatch.NodeStateDeallocated {
		t.Fatalf("after restart: %s", st)
	}
	if _, err := s.Client.StartNode(ctx(t), "da", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "da", nodeID, azbatch.NodeStateIdle)
}

func TestNodeLogsExtensionsRemoteLoginUsage(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	start := time.Now().Add(-time.Minute)
	s.CreatePool(t, "lg", 1, 1, nil)
	nodeID := s.poolNodeIDs(t, "lg")[0]
	s.poolWaitNodeState(t, "lg", nodeID, azbatch.NodeStateIdle)

	// Upload the agent's logs to Kiln storage.
	sc := s.storageClient(t)
	if _, err := sc.CreateContainer(ctx(t), "logs", nil); err != nil {
		t.Fatal(err)
	}
	url := storageSAS(t, s.storageBase(), testAccount, testKey, "logs", "", "rwcl", time.Now().Add(time.Hour))
	res, err := s.Client.UploadNodeLogs(ctx(t), "lg", nodeID, azbatch.UploadNodeLogsContent{ContainerURL: &url, StartTime: &start}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := opsVal(res.VirtualDirectoryName)
	if opsVal(res.NumberOfFilesUploaded) != 1 || !strings.HasPrefix(dir, "lg/"+nodeID+"/") || !strings.HasSuffix(dir, "/") {
		t.Fatalf("upload logs: %d files to %q", opsVal(res.NumberOfFilesUploaded), dir)
	}
	blob, err := sc.DownloadStream(ctx(t), "logs", dir+"agent.log", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(blob.Body)
	blob.Body.Close()
	if !strings.Contains(string(data), "agent starting") {
		t.Fatalf("uploaded agent.log: %q", tail(string(data), 500))
	}
	// Nothing was logged after the future: no file.
	future := time.Now().Add(time.Hour)
	if res, err := s.Client.UploadNodeLogs(ctx(t), "lg", nodeID, azbatch.UploadNodeLogsContent{ContainerURL: &url, StartTime: &future}, nil); err != nil || opsVal(res.NumberOfFilesUploaded) != 0 {
		t.Fatalf("upload future logs: %v %v", err, res.NumberOfFilesUploaded)
	}
	// A read-only SAS cannot take them.
	ro := storageSAS(t, s.storageBase(), testAccount, testKey, "logs", "", "rl", time.Now().Add(time.Hour))
	_, err = s.Client.UploadNodeLogs(ctx(t), "lg", nodeID, azbatch.UploadNodeLogsContent{ContainerURL: &ro, StartTime: &start}, nil)
	if err == nil {
		t.Fatal("upload with a read-only SAS succeeded")
	}

	// Extensions: the Kiln agent.
	var exts []azbatch.NodeVMExtension
	pager := s.Client.NewListNodeExtensionsPager("lg", nodeID, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		exts = append(exts, page.Value...)
	}
	if len(exts) != 1 || opsVal(exts[0].VMExtension.Name) != "kiln-agent" || opsVal(exts[0].ProvisioningState) != "Succeeded" ||
		opsVal(exts[0].VMExtension.TypeHandlerVersion) == "" {
		t.Fatalf("extensions: %+v", exts)
	}
	ext, err := s.Client.GetNodeExtension(ctx(t), "lg", nodeID, "kiln-agent", nil)
	if err != nil || opsVal(ext.VMExtension.Publisher) != "Kiln" || len(ext.InstanceView.Statuses) != 1 {
		t.Fatalf("get extension: %v %+v", err, ext)
	}
	_, err = s.Client.GetNodeExtension(ctx(t), "lg", nodeID, "nosuch", nil)
	poolExpectError(t, err, http.StatusNotFound, "ExtensionNotFound")

	// Remote login: the node's SSH endpoint when an SSH server listens.
	n := s.poolNode(t, "lg", nodeID)
	rl, err := s.Client.GetNodeRemoteLoginSettings(ctx(t), "lg", nodeID, nil)
	if c, derr := net.DialTimeout("tcp", net.JoinHostPort(*n.IPAddress, "22"), time.Second); derr == nil {
		c.Close()
		if err != nil || opsVal(rl.RemoteLoginIPAddress) != *n.IPAddress || opsVal(rl.RemoteLoginPort) != 22 {
			t.Fatalf("remote login settings: %v %+v", err, rl)
		}
	} else {
		poolExpectError(t, err, http.StatusConflict, "RemoteLoginNotAvailable")
	}

	// Pool usage metrics: the node's core hours in the current hour
	// (standard_d2s_v3: 2 cores).
	time.Sleep(time.Second)
	req := s.poolRawRequest(t, http.MethodGet, "/poolusagemetrics?api-version=2023-05-01.17.0", nil)
	poolSign(t, req, "")
	resp := poolDo(t, req)
	var body struct {
		Value []struct {
			PoolID         string    `json:"poolId"`
			StartTime      time.Time `json:"startTime"`
			EndTime        time.Time `json:"endTime"`
			VMSize         string    `json:"vmSize"`
			TotalCoreHours float64   `json:"totalCoreHours"`
		} `json:"value"`
	}
	if resp.Status != http.StatusOK || json.Unmarshal(resp.Body, &body) != nil || len(body.Value) != 1 {
		t.Fatalf("pool usage metrics: %d %s", resp.Status, resp.Body)
	}
	m := body.Value[0]
	if m.PoolID != "lg" || m.VMSize != "standard_d2s_v3" || m.EndTime.Sub(m.StartTime) != time.Hour ||
		m.TotalCoreHours <= 0 || m.TotalCoreHours > 2 {
		t.Fatalf("usage metrics entry: %+v", m)
	}
	// A range before the pool existed has no entry.
	q := "/poolusagemetrics?api-version=2023-05-01.17.0&starttime=2020-01-01T00:00:00Z&endtime=2020-01-01T03:00:00Z"
	req = s.poolRawRequest(t, http.MethodGet, q, nil)
	poolSign(t, req, "")
	if resp := poolDo(t, req); resp.Status != http.StatusOK || strings.Contains(string(resp.Body), `"poolId"`) {
		t.Fatalf("usage metrics of 2020: %d %s", resp.Status, resp.Body)
	}

	// The usage of nodes that left survives a restart.
	if _, err := s.Client.ResizePool(ctx(t), "lg", azbatch.ResizePoolContent{TargetDedicatedNodes: to[int32](0)}, nil); err != nil {
		t.Fatal(err)
	}
	s.WaitNodes(t, "lg", 0, azbatch.NodeStateIdle)
	s.Stop()
	s.Start()
	// (Two hours back: the test may cross an interval boundary.)
	from := time.Now().UTC().Add(-2 * time.Hour).Format(time.RFC3339)
	to_ := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	req = s.poolRawRequest(t, http.MethodGet, "/poolusagemetrics?api-version=2023-05-01.17.0&starttime="+from+"&endtime="+to_, nil)
	poolSign(t, req, "")
	resp = poolDo(t, req)
	body.Value = nil
	total := 0.0
	if resp.Status != http.StatusOK || json.Unmarshal(resp.Body, &body) != nil || len(body.Value) == 0 {
		t.Fatalf("pool usage metrics after the node left and a restart: %d %s", resp.Status, resp.Body)
	}
	for _, v := range body.Value {
		if v.PoolID != "lg" || v.VMSize != "standard_d2s_v3" {
			t.Fatalf("usage metrics entry: %+v", v)
		}
		total += v.TotalCoreHours
	}
	if total < m.TotalCoreHours {
		t.Fatalf("core hours after the node left and a restart: %v, before %v", total, m.TotalCoreHours)
	}
}

const opsSSHKey1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln0000000000000000000000000000000000000001 first@kiln"
const opsSSHKey2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKiln0000000000000000000000000000000000000002 second@kiln"

func TestNodeUsers(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	s.CreatePool(t, "us", 1, 1, nil)
	nodeID := s.poolNodeIDs(t, "us")[0]
	s.poolWaitNodeState(t, "us", nodeID, azbatch.NodeStateIdle)
	name := fmt.Sprintf("kiln%d", time.Now().UnixNano()%1000000)
	expiry := time.Now().Add(48 * time.Hour)
	add := azbatch.CreateNodeUserContent{Name: &name, Password: to("S3cret-pass"), SSHPublicKey: to(opsSSHKey1), IsAdmin: to(true), ExpiryTime: &expiry}

	if os.Geteuid() != 0 {
		// Without root the agent cannot make accounts: Azure's shape of
		// a refusal, and nothing created.
		_, err := s.Client.CreateNodeUser(ctx(t), "us", nodeID, add, nil)
		poolExpectError(t, err, http.StatusConflict, "NodeUserManagementNotSupported")
		return
	}
	t.Cleanup(func() { _ = exec.Command("userdel", "-r", "-f", name).Run() })

	if _, err := s.Client.CreateNodeUser(ctx(t), "us", nodeID, add, nil); err != nil {
		t.Fatal(err)
	}
	pw := opsGetent(t, "passwd", name)
	if pw == "" || !strings.HasSuffix(pw, ":/bin/bash") {
		t.Fatalf("getent passwd %s: %q", name, pw)
	}
	home := strings.Split(pw, ":")[5]
	keys, err := os.ReadFile(filepath.Join(home, ".ssh", "authorized_keys"))
	if err != nil || strings.TrimSpace(string(keys)) != opsSSHKey1 {
		t.Fatalf("authorized_keys: %q %v", keys, err)
	}
	shadow := strings.Split(opsGetent(t, "shadow", name), ":")
	if len(shadow) < 8 || !strings.HasPrefix(shadow[1], "$") || shadow[7] == "" {
		t.Fatalf("shadow entry (hashed password, expiry): %q", shadow)
	}
	if g := opsGetent(t, "group", "sudo"); g != "" && !strings.Contains(g, name) {
		t.Fatalf("admin user not in sudo: %q", g)
	}
	_, err = s.Client.CreateNodeUser(ctx(t), "us", nodeID, add, nil)
	poolExpectError(t, err, http.StatusConflict, "NodeUserExists")
	_, err = s.Client.CreateNodeUser(ctx(t), "us", nodeID, azbatch.CreateNodeUserContent{Name: to("Bad Name!")}, nil)
	poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
	past := time.Now().Add(-time.Hour)
	_, err = s.Client.CreateNodeUser(ctx(t), "us", nodeID, azbatch.CreateNodeUserContent{Name: to("kilnpast"), ExpiryTime: &past}, nil)
	poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")

	// Update: a new key and no password (Azure removes it: login by
	// password is locked).
	if _, err := s.Client.ReplaceNodeUser(ctx(t), "us", nodeID, name, azbatch.UpdateNodeUserContent{SSHPublicKey: to(opsSSHKey2)}, nil); err != nil {
		t.Fatal(err)
	}
	keys, _ = os.ReadFile(filepath.Join(home, ".ssh", "authorized_keys"))
	if strings.TrimSpace(string(keys)) != opsSSHKey2 {
		t.Fatalf("authorized_keys after update: %q", keys)
	}
	if sh := strings.Split(opsGetent(t, "shadow", name), ":"); !strings.HasPrefix(sh[1], "!") {
		t.Fatalf("password after an update without one: %q", sh[1])
	}
	// Update: a password and no key.
	if _, err := s.Client.ReplaceNodeUser(ctx(t), "us", nodeID, name, azbatch.UpdateNodeUserContent{Password: to("An0ther-pass")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh", "authorized_keys")); err == nil {
		t.Fatal("authorized_keys kept after an update without a key")
	}
	if sh := strings.Split(opsGetent(t, "shadow", name), ":"); !strings.HasPrefix(sh[1], "$") {
		t.Fatalf("password after update: %q", sh[1])
	}
	_, err = s.Client.ReplaceNodeUser(ctx(t), "us", nodeID, "root", azbatch.UpdateNodeUserContent{Password: to("x")}, nil)
	poolExpectError(t, err, http.StatusNotFound, "NodeUserNotFound")

	// Delete.
	if _, err := s.Client.DeleteNodeUser(ctx(t), "us", nodeID, name, nil); err != nil {
		t.Fatal(err)
	}
	if pw := opsGetent(t, "passwd", name); pw != "" {
		t.Fatalf("deleted user still there: %q", pw)
	}
	_, err = s.Client.DeleteNodeUser(ctx(t), "us", nodeID, name, nil)
	poolExpectError(t, err, http.StatusNotFound, "NodeUserNotFound")

	// Users go with their node: reimage, then removal from the pool.
	if _, err := s.Client.CreateNodeUser(ctx(t), "us", nodeID, azbatch.CreateNodeUserContent{Name: &name, SSHPublicKey: to(opsSSHKey1)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.ReimageNode(ctx(t), "us", nodeID, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "user gone after reimage", func() error {
		if pw := opsGetent(t, "passwd", name); pw != "" {
			return fmt.Errorf("still there: %q", pw)
		}
		return nil
	})
	s.poolWaitNodeState(t, "us", nodeID, azbatch.NodeStateIdle)
	if _, err := s.Client.CreateNodeUser(ctx(t), "us", nodeID, azbatch.CreateNodeUserContent{Name: &name, Password: to("x-Y-z-123")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RemoveNodes(ctx(t), "us", azbatch.RemoveNodeContent{NodeList: []string{nodeID}}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "user gone with its node", func() error {
		if pw := opsGetent(t, "passwd", name); pw != "" {
			return fmt.Errorf("still there: %q", pw)
		}
		return nil
	})
}

// opsGetent returns the getent line of key in db, "" when there is none.
func opsGetent(t *testing.T, db, key string) string {
	t.Helper()
	out, err := exec.Command("getent", db, key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// opsVal is *p, or the zero value.
func opsVal[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
