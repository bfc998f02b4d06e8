package e2e

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// TestNodeGetAndStartTask reads nodes of a pool with a start task: the
// start task's file in the shared directory is visible to tasks, its output
// is readable as node files, and node files can be listed, read, inspected
// and deleted.
func TestNodeGetAndStartTask(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	before := time.Now().Add(-time.Second)
	s.CreatePool(t, "st", 2, 1, func(c *azbatch.CreatePoolContent) {
		c.StartTask = &azbatch.StartTask{
			CommandLine:         to(`/bin/sh -c 'echo "$GREETING from $AZ_BATCH_NODE_ID" > "$AZ_BATCH_NODE_SHARED_DIR/marker.txt"; mkdir -p "$AZ_BATCH_NODE_SHARED_DIR/sub/deep"; echo x > "$AZ_BATCH_NODE_SHARED_DIR/sub/deep/f.txt"; echo started; echo oops >&2'`),
			EnvironmentSettings: []azbatch.EnvironmentSetting{{Name: to("GREETING"), Value: to("hello")}},
			WaitForSuccess:      to(true),
		}
	})

	// List and get.
	nodes, err := s.ListNodes(t, "st")
	if err != nil || len(nodes) != 2 {
		t.Fatalf("list nodes: %d %v", len(nodes), err)
	}
	for _, listed := range nodes {
		n := s.poolNode(t, "st", *listed.ID)
		if *n.ID != *listed.ID || *n.State != azbatch.NodeStateIdle || *n.SchedulingState != azbatch.SchedulingStateEnabled || !*n.IsDedicated {
			t.Fatalf("node %s: state %s scheduling %s dedicated %v", *n.ID, *n.State, *n.SchedulingState, *n.IsDedicated)
		}
		if n.IPAddress == nil || *n.IPAddress == "" || n.NodeAgentInfo == nil || n.NodeAgentInfo.Version == nil || *n.NodeAgentInfo.Version == "" {
			t.Fatalf("node %s: ip %v agent %+v", *n.ID, n.IPAddress, n.NodeAgentInfo)
		}
		if n.URL == nil || !strings.HasSuffix(*n.URL, "/pools/st/nodes/"+*n.ID) || *n.VMSize != "standard_d2s_v3" {
			t.Fatalf("node %s: url %v vmSize %v", *n.ID, n.URL, n.VMSize)
		}
		if n.AllocationTime == nil || n.AllocationTime.Before(before) || n.LastBootTime == nil || n.StateTransitionTime == nil {
			t.Fatalf("node %s: allocation %v boot %v transition %v", *n.ID, n.AllocationTime, n.LastBootTime, n.StateTransitionTime)
		}
		si := n.StartTaskInfo
		if si == nil || *si.State != azbatch.StartTaskStateCompleted || si.ExitCode == nil || *si.ExitCode != 0 ||
			*si.Result != azbatch.TaskExecutionResultSuccess || si.StartTime == nil || si.EndTime == nil || *si.RetryCount != 0 {
			t.Fatalf("node %s: startTaskInfo %+v", *n.ID, si)
		}
		if n.StartTask == nil || !strings.Contains(*n.StartTask.CommandLine, "marker.txt") {
			t.Fatalf("node %s: startTask %+v", *n.ID, n.StartTask)
		}
	}
	_, err = s.Client.GetNode(ctx(t), "st", "tvmps_nosuchnode_d", nil)
	poolExpectError(t, err, http.StatusNotFound, "NodeNotFound")
	_, err = s.Client.GetNode(ctx(t), "nosuchpool", *nodes[0].ID, nil)
	poolExpectError(t, err, http.StatusNotFound, "PoolNotFound")
	if r, err := s.Client.GetNode(ctx(t), "st", *nodes[0].ID, &azbatch.GetNodeOptions{SelectParam: []string{"id", "state"}}); err != nil ||
		*r.ID != *nodes[0].ID || r.State == nil || r.IPAddress != nil {
		t.Fatalf("get node with select: %v %+v", err, r.Node)
	}
	page, err := s.Client.NewListNodesPager("st", &azbatch.ListNodesOptions{Filter: to("state eq 'idle'"), MaxResults: to(int32(1))}).NextPage(ctx(t))
	if err != nil || len(page.Value) != 1 || page.NextLink == nil {
		t.Fatalf("list idle nodes, 1 per page: %v %d next %v", err, len(page.Value), page.NextLink)
	}

	// Tasks read what the start task wrote in the shared directory.
	s.CreateJob(t, "stjob", "st", nil)
	s.AddTasks(t, "stjob", []azbatch.CreateTaskContent{
		{ID: to("read"), CommandLine: to(`/bin/sh -c 'cat "$AZ_BATCH_NODE_SHARED_DIR/marker.txt"'`)},
	})
	s.WaitJobTasks(t, "stjob", 30*time.Second)
	task := s.poolTask(t, "stjob", "read")
	if *task.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("reading task exit code %d", *task.ExecutionInfo.ExitCode)
	}
	resp, err := s.Client.GetTaskFile(ctx(t), "stjob", "read", "stdout.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 200)
	nb, _ := resp.Body.Read(b)
	resp.Body.Close()
	if got, want := strings.TrimSpace(string(b[:nb])), "hello from "+*task.NodeInfo.NodeID; got != want {
		t.Fatalf("task read %q, want %q", got, want)
	}

	// The start task's output, as node files.
	node := *task.NodeInfo.NodeID
	if out, err := s.poolReadNodeFile(t, "st", node, "startup/stdout.txt"); err != nil || strings.TrimSpace(out) != "started" {
		t.Fatalf("startup/stdout.txt: %q %v", out, err)
	}
	if out, err := s.poolReadNodeFile(t, "st", node, "startup/stderr.txt"); err != nil || strings.TrimSpace(out) != "oops" {
		t.Fatalf("startup/stderr.txt: %q %v", out, err)
	}
	if out, err := s.poolReadNodeFile(t, "st", node, "shared/marker.txt"); err != nil || strings.TrimSpace(out) != "hello from "+node {
		t.Fatalf("shared/marker.txt: %q %v", out, err)
	}

	// List: the top level without recursion, everything with it.
	listFiles := func(recursive bool) map[string]azbatch.NodeFile {
		t.Helper()
		out := map[string]azbatch.NodeFile{}
		pager := s.Client.NewListNodeFilesPager("st", node, &azbatch.ListNodeFilesOptions{Recursive: to(recursive)})
		for pager.More() {
			page, err := pager.NextPage(ctx(t))
			if err != nil {
				t.Fatalf("list node files: %v", err)
			}
			for _, f := range page.Value {
				out[*f.Name] = f
			}
		}
		return out
	}
	top := listFiles(false)
	for _, d := range []string{"shared", "startup", "tasks"} {
		if f, ok := top[d]; !ok || !*f.IsDirectory {
			t.Fatalf("top-level listing lacks directory %s: %v", d, slices.Collect(maps.Keys(top)))
		}
	}
	if _, ok := top["startup/stdout.txt"]; ok {
		t.Fatalf("non-recursive listing has startup/stdout.txt")
	}
	all := listFiles(true)
	f, ok := all["startup/stdout.txt"]
	if !ok || *f.IsDirectory || f.Properties == nil || *f.Properties.ContentLength != int64(len("started\n")) || f.URL == nil || *f.URL == "" {
		t.Fatalf("recursive listing: startup/stdout.txt %+v in %v", f, slices.Collect(maps.Keys(all)))
	}
	if _, ok := all["shared/marker.txt"]; !ok {
		t.Fatalf("recursive listing lacks shared/marker.txt")
	}

	// Properties (HEAD).
	c, status := poolCapture(t)
	props, err := s.Client.GetNodeFileProperties(c, "st", node, "startup/stdout.txt", nil)
	if err != nil || status() != http.StatusOK {
		t.Fatalf("file properties: %d %v", status(), err)
	}
	if *props.ContentLength != int64(len("started\n")) || props.OCPBatchFileIsDirectory == nil || *props.OCPBatchFileIsDirectory || props.LastModified == nil || props.RequestID == nil {
		t.Fatalf("file properties: length %v isDirectory %v lastModified %v", props.ContentLength, props.OCPBatchFileIsDirectory, props.LastModified)
	}
	props, err = s.Client.GetNodeFileProperties(ctx(t), "st", node, "startup", nil)
	if err != nil || props.OCPBatchFileIsDirectory == nil || !*props.OCPBatchFileIsDirectory {
		t.Fatalf("directory properties: %v %v", err, props.OCPBatchFileIsDirectory)
	}

	// Ranges and conditional reads.
	rr, err := s.Client.GetNodeFile(ctx(t), "st", node, "startup/stdout.txt", &azbatch.GetNodeFileOptions{OCPRange: to("bytes=0-3")})
	if err != nil {
		t.Fatalf("ranged read: %v", err)
	}
	part, _ := io.ReadAll(rr.Body)
	rr.Body.Close()
	if string(part) != "star" {
		t.Fatalf("bytes=0-3 of startup/stdout.txt: %q", part)
	}
	_, err = s.Client.GetNodeFile(ctx(t), "st", node, "startup/stdout.txt", &azbatch.GetNodeFileOptions{IfModifiedSince: to(time.Now().Add(time.Hour))})
	if statusOf(err) != http.StatusNotModified {
		t.Fatalf("get file with If-Modified-Since in the future: %v, want 304", err)
	}
	// $filter on the listing.
	fp := s.Client.NewListNodeFilesPager("st", node, &azbatch.ListNodeFilesOptions{Recursive: to(true), Filter: to("startswith(name,'startup/')")})
	var filtered []string
	for fp.More() {
		page, err := fp.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("filtered file list: %v", err)
		}
		for _, f := range page.Value {
			filtered = append(filtered, *f.Name)
		}
	}
	slices.Sort(filtered)
	if !slices.Contains(filtered, "startup/stdout.txt") || !slices.Contains(filtered, "startup/stderr.txt") || slices.Contains(filtered, "shared/marker.txt") {
		t.Fatalf("files starting with startup/: %v", filtered)
	}

	// Missing files: 404 FileNotFound.
	_, err = s.Client.GetNodeFile(ctx(t), "st", node, "startup/nosuch.txt", nil)
	poolExpectError(t, err, http.StatusNotFound, "FileNotFound")
	c, status = poolCapture(t)
	_, err = s.Client.GetNodeFileProperties(c, "st", node, "nosuch.txt", nil)
	if statusOf(err) != http.StatusNotFound {
		t.Fatalf("properties of a missing file: %d %v", status(), err)
	}

	// Delete: 200, then the file is gone.
	c, status = poolCapture(t)
	if _, err := s.Client.DeleteNodeFile(c, "st", node, "shared/marker.txt", nil); err != nil || status() != http.StatusOK {
		t.Fatalf("delete node file: %d %v", status(), err)
	}
	_, err = s.Client.GetNodeFile(ctx(t), "st", node, "shared/marker.txt", nil)
	poolExpectError(t, err, http.StatusNotFound, "FileNotFound")
	_, err = s.Client.DeleteNodeFile(ctx(t), "st", node, "shared/marker.txt", nil)
	poolExpectError(t, err, http.StatusNotFound, "FileNotFound")
	// A directory that is not empty needs recursive.
	_, err = s.Client.DeleteNodeFile(ctx(t), "st", node, "shared/sub", nil)
	if statusOf(err) != http.StatusConflict {
		t.Fatalf("delete a non-empty directory: %v", err)
	}
	if _, err := s.Client.GetNodeFileProperties(ctx(t), "st", node, "shared/sub/deep/f.txt", nil); err != nil {
		t.Fatalf("a refused delete removed files: %v", err)
	}
	if _, err := s.Client.DeleteNodeFile(ctx(t), "st", node, "shared/sub", &azbatch.DeleteNodeFileOptions{Recursive: to(true)}); err != nil {
		t.Fatalf("recursive delete: %v", err)
	}
	_, err = s.Client.GetNodeFileProperties(ctx(t), "st", node, "shared/sub", nil)
	if statusOf(err) != http.StatusNotFound {
		t.Fatalf("properties of a deleted directory: %v", err)
	}
	// Paths may not leave the node directory.
	_, err = s.Client.GetNodeFile(ctx(t), "st", node, "../agent.pid", nil)
	if statusOf(err) != http.StatusBadRequest {
		t.Fatalf("get ../agent.pid: %v", err)
	}
}

// TestNodeStartTaskFailed: a failing start task with waitForSuccess makes
// the node starttaskfailed, and no task is scheduled on it.
func TestNodeStartTaskFailed(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := poolContent("stf", 1, 1)
	c.StartTask = &azbatch.StartTask{
		CommandLine:       to(`/bin/sh -c 'echo broken >&2; exit 3'`),
		WaitForSuccess:    to(true),
		MaxTaskRetryCount: to(int32(1)),
	}
	if _, err := s.Client.CreatePool(ctx(t), c, nil); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	s.WaitNodes(t, "stf", 1, azbatch.NodeStateStartTaskFailed)
	nodeID := s.poolNodeIDs(t, "stf")[0]
	n := s.poolNode(t, "stf", nodeID)
	si := n.StartTaskInfo
	if si == nil || *si.State != azbatch.StartTaskStateCompleted || si.ExitCode == nil || *si.ExitCode != 3 ||
		*si.Result != azbatch.TaskExecutionResultFailure || si.FailureInfo == nil || si.FailureInfo.Code == nil ||
		*si.RetryCount != 1 || si.LastRetryTime == nil {
		t.Fatalf("startTaskInfo %+v", si)
	}
	if out, err := s.poolReadNodeFile(t, "stf", nodeID, "startup/stderr.txt"); err != nil || strings.TrimSpace(out) != "broken" {
		t.Fatalf("startup/stderr.txt: %q %v", out, err)
	}

	// Node counts show it.
	pager := s.Client.NewListPoolNodeCountsPager(nil)
	page, err := pager.NextPage(ctx(t))
	if err != nil || len(page.Value) != 1 || *page.Value[0].Dedicated.StartTaskFailed != 1 || *page.Value[0].Dedicated.Idle != 0 {
		t.Fatalf("node counts: %v %+v", err, page.Value)
	}

	// A task is not scheduled there.
	s.CreateJob(t, "stfjob", "stf", nil)
	s.AddTasks(t, "stfjob", []azbatch.CreateTaskContent{{ID: to("wait"), CommandLine: to("/bin/true")}})
	time.Sleep(1500 * time.Millisecond)
	if task := s.poolTask(t, "stfjob", "wait"); *task.State != azbatch.TaskStateActive || task.NodeInfo != nil {
		t.Fatalf("task on a starttaskfailed node: state %s", *task.State)
	}

	// Fixing the start task and rebooting brings the node back; the task runs.
	if _, err := s.Client.UpdatePool(ctx(t), "stf", azbatch.UpdatePoolContent{
		StartTask: &azbatch.StartTask{CommandLine: to("/bin/true"), WaitForSuccess: to(true)},
	}, nil); err != nil {
		t.Fatalf("patch start task: %v", err)
	}
	if _, err := s.Client.RebootNode(ctx(t), "stf", nodeID, nil); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	s.WaitJobTasks(t, "stfjob", 30*time.Second)
	if task := s.poolTask(t, "stfjob", "wait"); *task.ExecutionInfo.ExitCode != 0 || *task.NodeInfo.NodeID != nodeID {
		t.Fatalf("task after the fix: exit %d", *task.ExecutionInfo.ExitCode)
	}
	if n := s.poolWaitNodeState(t, "stf", nodeID, azbatch.NodeStateIdle); *n.StartTaskInfo.ExitCode != 0 || *n.StartTaskInfo.RetryCount != 0 {
		t.Fatalf("startTaskInfo after the fix %+v", n.StartTaskInfo)
	}

	// Without waitForSuccess a failing start task leaves the node usable.
	c = poolContent("nowait", 1, 1)
	c.StartTask = &azbatch.StartTask{CommandLine: to(`/bin/sh -c 'exit 4'`), WaitForSuccess: to(false)}
	if _, err := s.Client.CreatePool(ctx(t), c, nil); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	s.WaitNodes(t, "nowait", 1, azbatch.NodeStateIdle)
	nw := s.poolNodeIDs(t, "nowait")[0]
	eventually(t, 10*time.Second, "the start task to fail", func() error {
		si := s.poolNode(t, "nowait", nw).StartTaskInfo
		if si == nil || *si.State != azbatch.StartTaskStateCompleted {
			return fmt.Errorf("startTaskInfo %+v", si)
		}
		if *si.ExitCode != 4 || *si.Result != azbatch.TaskExecutionResultFailure {
			t.Fatalf("startTaskInfo %+v", si)
		}
		return nil
	})
	s.CreateJob(t, "nowaitjob", "nowait", nil)
	s.AddTasks(t, "nowaitjob", []azbatch.CreateTaskContent{{ID: to("runs"), CommandLine: to("/bin/true")}})
	s.WaitJobTasks(t, "nowaitjob", 30*time.Second)
	if n := s.poolNode(t, "nowait", nw); *n.State != azbatch.NodeStateIdle || *n.TotalTasksRun != 1 {
		t.Fatalf("node with a failed start task without waitForSuccess: %s ran %d", *n.State, *n.TotalTasksRun)
	}
}

// TestNodeReboot reboots a busy node: the running task is requeued, the
// start task runs again and the node comes back idle.
func TestNodeReboot(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	s.CreatePool(t, "rb", 1, 1, func(c *azbatch.CreatePoolContent) {
		c.StartTask = &azbatch.StartTask{
			CommandLine:    to(`/bin/sh -c 'echo boot >> "$AZ_BATCH_NODE_SHARED_DIR/boots.txt"'`),
			WaitForSuccess: to(true),
		}
	})
	nodeID := s.poolNodeIDs(t, "rb")[0]
	boot1 := *s.poolNode(t, "rb", nodeID).LastBootTime

	s.CreateJob(t, "rbjob", "rb", nil)
	s.AddTasks(t, "rbjob", []azbatch.CreateTaskContent{{ID: to("sleeper"), CommandLine: to("/bin/sh -c 'sleep 2'")}})
	s.poolWaitTask(t, "rbjob", "sleeper", "running", poolTaskState(azbatch.TaskStateRunning))
	if n := s.poolNode(t, "rb", nodeID); *n.State != azbatch.NodeStateRunning || *n.RunningTasksCount != 1 {
		t.Fatalf("busy node: %s running %d", *n.State, *n.RunningTasksCount)
	}

	c, status := poolCapture(t)
	if _, err := s.Client.RebootNode(c, "rb", nodeID, nil); err != nil || status() != http.StatusAccepted {
		t.Fatalf("reboot: %d %v", status(), err)
	}
	s.WaitJobTasks(t, "rbjob", 30*time.Second)
	task := s.poolTask(t, "rbjob", "sleeper")
	if *task.ExecutionInfo.RequeueCount != 1 || *task.ExecutionInfo.RetryCount != 0 || *task.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("after reboot: requeueCount %d retryCount %d exit %d", *task.ExecutionInfo.RequeueCount, *task.ExecutionInfo.RetryCount, *task.ExecutionInfo.ExitCode)
	}
	n := s.poolWaitNodeState(t, "rb", nodeID, azbatch.NodeStateIdle)
	if n.LastBootTime == nil || !n.LastBootTime.After(boot1) {
		t.Fatalf("lastBootTime %v, first boot %v", n.LastBootTime, boot1)
	}
	if out, err := s.poolReadNodeFile(t, "rb", nodeID, "shared/boots.txt"); err != nil || out != "boot\nboot\n" {
		t.Fatalf("boots.txt %q %v: the start task did not run again", out, err)
	}
	if si := n.StartTaskInfo; si == nil || *si.State != azbatch.StartTaskStateCompleted || *si.ExitCode != 0 {
		t.Fatalf("startTaskInfo after reboot %+v", si)
	}

	// Reboot with terminate: the running task ends as failed.
	s.AddTasks(t, "rbjob", []azbatch.CreateTaskContent{{ID: to("victim"), CommandLine: to("/bin/sh -c 'sleep 20'")}})
	s.poolWaitTask(t, "rbjob", "victim", "running", poolTaskState(azbatch.TaskStateRunning))
	if _, err := s.Client.RebootNode(ctx(t), "rb", nodeID, &azbatch.RebootNodeOptions{
		Parameters: &azbatch.RebootNodeContent{NodeRebootOption: to(azbatch.NodeRebootOptionTerminate)},
	}); err != nil {
		t.Fatalf("reboot with terminate: %v", err)
	}
	task = s.poolWaitTask(t, "rbjob", "victim", "completed", poolTaskState(azbatch.TaskStateCompleted))
	if ei := task.ExecutionInfo; *ei.Result != azbatch.TaskExecutionResultFailure || ei.FailureInfo == nil || *ei.RequeueCount != 0 {
		t.Fatalf("terminated by reboot: %+v", ei)
	}
	s.poolWaitNodeState(t, "rb", nodeID, azbatch.NodeStateIdle)
	if out, err := s.poolReadNodeFile(t, "rb", nodeID, "shared/boots.txt"); err != nil || out != "boot\nboot\nboot\n" {
		t.Fatalf("boots.txt %q %v after the second reboot", out, err)
	}

	_, err := s.Client.RebootNode(ctx(t), "rb", "tvmps_nosuchnode_d", nil)
	poolExpectError(t, err, http.StatusNotFound, "NodeNotFound")
	_, err = s.Client.RebootNode(ctx(t), "rb", nodeID, &azbatch.RebootNodeOptions{
		Parameters: &azbatch.RebootNodeContent{NodeRebootOption: to(azbatch.NodeRebootOption("gently"))},
	})
	poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
}

// TestNodeDisableScheduling takes a node offline and back: tasks avoid it,
// and disabling with requeue moves its running task to another node.
func TestNodeDisableScheduling(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	s.CreatePool(t, "ds", 2, 1, nil)
	ids := s.poolNodeIDs(t, "ds")
	a, b := ids[0], ids[1]

	c, status := poolCapture(t)
	if _, err := s.Client.DisableNodeScheduling(c, "ds", a, nil); err != nil || status() != http.StatusOK {
		t.Fatalf("disable scheduling: %d %v", status(), err)
	}
	if n := s.poolNode(t, "ds", a); *n.State != azbatch.NodeStateOffline || *n.SchedulingState != azbatch.SchedulingStateDisabled {
		t.Fatalf("disabled node: %s %s", *n.State, *n.SchedulingState)
	}
	s.CreateJob(t, "dsjob", "ds", nil)
	s.AddTasks(t, "dsjob", []azbatch.CreateTaskContent{
		{ID: to("q1"), CommandLine: to("/bin/true")},
		{ID: to("q2"), CommandLine: to("/bin/true")},
		{ID: to("q3"), CommandLine: to("/bin/true")},
	})
	s.WaitJobTasks(t, "dsjob", 30*time.Second)
	for _, id := range []string{"q1", "q2", "q3"} {
		if task := s.poolTask(t, "dsjob", id); *task.NodeInfo.NodeID != b {
			t.Fatalf("task %s ran on the offline node", id)
		}
	}

	c, status = poolCapture(t)
	if _, err := s.Client.EnableNodeScheduling(c, "ds", a, nil); err != nil || status() != http.StatusOK {
		t.Fatalf("enable scheduling: %d %v", status(), err)
	}
	if n := s.poolNode(t, "ds", a); *n.State != azbatch.NodeStateIdle || *n.SchedulingState != azbatch.SchedulingStateEnabled {
		t.Fatalf("enabled node: %s %s", *n.State, *n.SchedulingState)
	}

	// Disable with requeue while a task runs: it moves to the other node.
	s.AddTasks(t, "dsjob", []azbatch.CreateTaskContent{{ID: to("mover"), CommandLine: to("/bin/sh -c 'sleep 2'")}})
	task := s.poolWaitTask(t, "dsjob", "mover", "running", poolTaskState(azbatch.TaskStateRunning))
	from := *task.NodeInfo.NodeID
	if _, err := s.Client.DisableNodeScheduling(ctx(t), "ds", from, &azbatch.DisableNodeSchedulingOptions{
		Parameters: &azbatch.DisableNodeSchedulingContent{NodeDisableSchedulingOption: to(azbatch.NodeDisableSchedulingOptionRequeue)},
	}); err != nil {
		t.Fatalf("disable scheduling with requeue: %v", err)
	}
	s.poolWaitNodeState(t, "ds", from, azbatch.NodeStateOffline)
	s.WaitJobTasks(t, "dsjob", 30*time.Second)
	task = s.poolTask(t, "dsjob", "mover")
	if *task.NodeInfo.NodeID == from || *task.ExecutionInfo.RequeueCount != 1 || *task.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("mover: node %s (from %s) requeueCount %d exit %d", *task.NodeInfo.NodeID, from, *task.ExecutionInfo.RequeueCount, *task.ExecutionInfo.ExitCode)
	}
	if _, err := s.Client.EnableNodeScheduling(ctx(t), "ds", from, nil); err != nil {
		t.Fatal(err)
	}
	s.WaitNodes(t, "ds", 2, azbatch.NodeStateIdle)

	// Disable with taskcompletion: the running task finishes there first.
	s.AddTasks(t, "dsjob", []azbatch.CreateTaskContent{{ID: to("stayer"), CommandLine: to("/bin/sh -c 'sleep 1'")}})
	task = s.poolWaitTask(t, "dsjob", "stayer", "running", poolTaskState(azbatch.TaskStateRunning))
	on := *task.NodeInfo.NodeID
	if _, err := s.Client.DisableNodeScheduling(ctx(t), "ds", on, &azbatch.DisableNodeSchedulingOptions{
		Parameters: &azbatch.DisableNodeSchedulingContent{NodeDisableSchedulingOption: to(azbatch.NodeDisableSchedulingOptionTaskCompletion)},
	}); err != nil {
		t.Fatalf("disable scheduling with taskcompletion: %v", err)
	}
	if n := s.poolNode(t, "ds", on); *n.SchedulingState != azbatch.SchedulingStateDisabled || *n.State != azbatch.NodeStateRunning {
		t.Fatalf("node disabled while busy: %s %s", *n.State, *n.SchedulingState)
	}
	s.WaitJobTasks(t, "dsjob", 30*time.Second)
	task = s.poolTask(t, "dsjob", "stayer")
	if *task.NodeInfo.NodeID != on || *task.ExecutionInfo.RequeueCount != 0 || *task.ExecutionInfo.ExitCode != 0 {
		t.Fatalf("stayer: node %s (was %s) requeueCount %d", *task.NodeInfo.NodeID, on, *task.ExecutionInfo.RequeueCount)
	}
	s.poolWaitNodeState(t, "ds", on, azbatch.NodeStateOffline)
	if _, err := s.Client.EnableNodeScheduling(ctx(t), "ds", on, nil); err != nil {
		t.Fatal(err)
	}

	// An invalid option.
	_, err := s.Client.DisableNodeScheduling(ctx(t), "ds", a, &azbatch.DisableNodeSchedulingOptions{
		Parameters: &azbatch.DisableNodeSchedulingContent{NodeDisableSchedulingOption: to(azbatch.NodeDisableSchedulingOption("never"))},
	})
	poolExpectError(t, err, http.StatusBadRequest, "InvalidPropertyValue")
}

// TestAccountNodeCountsAndImages checks Account - List Pool Node Counts and
// List Supported Images.
func TestAccountNodeCountsAndImages(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	s.CreatePool(t, "cnt", 2, 1, nil)
	if _, err := s.Client.CreatePool(ctx(t), poolContent("empty", 0, 1), nil); err != nil {
		t.Fatal(err)
	}
	s.CreateJob(t, "cntjob", "cnt", nil)
	s.AddTasks(t, "cntjob", []azbatch.CreateTaskContent{{ID: to("busy"), CommandLine: to("/bin/sh -c 'sleep 2'")}})
	s.poolWaitTask(t, "cntjob", "busy", "running", poolTaskState(azbatch.TaskStateRunning))

	counts := func(opts *azbatch.ListPoolNodeCountsOptions) map[string]azbatch.PoolNodeCounts {
		t.Helper()
		out := map[string]azbatch.PoolNodeCounts{}
		pager := s.Client.NewListPoolNodeCountsPager(opts)
		for pager.More() {
			page, err := pager.NextPage(ctx(t))
			if err != nil {
				t.Fatalf("list pool node counts: %v", err)
			}
			for _, pc := range page.Value {
				out[*pc.PoolID] = pc
			}
		}
		return out
	}
	eventually(t, 10*time.Second, "node counts idle 1 running 1", func() error {
		all := counts(nil)
		if len(all) != 2 {
			return fmt.Errorf("%d pools", len(all))
		}
		d := all["cnt"].Dedicated
		if *d.Idle != 1 || *d.Running != 1 || *d.Total != 2 || *d.Offline != 0 || *d.StartTaskFailed != 0 {
			return fmt.Errorf("dedicated idle %d running %d total %d", *d.Idle, *d.Running, *d.Total)
		}
		if lp := all["cnt"].LowPriority; *lp.Total != 0 {
			return fmt.Errorf("low priority total %d", *lp.Total)
		}
		if e := all["empty"].Dedicated; *e.Total != 0 {
			return fmt.Errorf("empty pool total %d", *e.Total)
		}
		return nil
	})
	if got := counts(&azbatch.ListPoolNodeCountsOptions{Filter: to("poolId eq 'empty'")}); len(got) != 1 || got["empty"].PoolID == nil {
		t.Fatalf("filtered node counts: %v", got)
	}
	if got := counts(&azbatch.ListPoolNodeCountsOptions{MaxResults: to(int32(1))}); len(got) != 2 {
		t.Fatalf("node counts 1 per page: %v", got)
	}
	pager := s.Client.NewListPoolNodeCountsPager(&azbatch.ListPoolNodeCountsOptions{MaxResults: to(int32(11))})
	_, err := pager.NextPage(ctx(t))
	poolExpectError(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")

	// Supported images: the local one.
	var images []azbatch.SupportedImage
	ip := s.Client.NewListSupportedImagesPager(nil)
	for ip.More() {
		page, err := ip.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list supported images: %v", err)
		}
		images = append(images, page.Value...)
	}
	found := false
	for _, im := range images {
		r := im.ImageReference
		if *im.NodeAgentSKUID == "batch.node.kiln.local" && *r.Publisher == "kiln" && *r.Offer == "local" && *r.SKU == "host" &&
			im.OSType != nil && *im.OSType == azbatch.OSTypeLinux {
			found = true
		}
	}
	if !found {
		t.Fatalf("supported images lack the local image: %+v", images)
	}
	for filter, want := range map[string]int{"osType eq 'windows'": 0, "osType eq 'linux'": len(images)} {
		page, err := s.Client.NewListSupportedImagesPager(&azbatch.ListSupportedImagesOptions{Filter: to(filter)}).NextPage(ctx(t))
		if err != nil || len(page.Value) != want {
			t.Fatalf("supported images %s: %v %d, want %d", filter, err, len(page.Value), want)
		}
	}
	s.WaitJobTasks(t, "cntjob", 30*time.Second)
}

// TestNodeStartTaskWait: with waitForSuccess the node waits for its start
// task (waitingforstarttask) and tasks start only after it succeeded.
func TestNodeStartTaskWait(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	c := poolContent("slow", 1, 1)
	c.StartTask = &azbatch.StartTask{CommandLine: to("/bin/sh -c 'sleep 1'"), WaitForSuccess: to(true)}
	if _, err := s.Client.CreatePool(ctx(t), c, nil); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	s.WaitNodes(t, "slow", 1, azbatch.NodeStateWaitingForStartTask)
	nodeID := s.poolNodeIDs(t, "slow")[0]
	if si := s.poolNode(t, "slow", nodeID).StartTaskInfo; si == nil || *si.State != azbatch.StartTaskStateRunning || si.StartTime == nil {
		t.Fatalf("startTaskInfo while it runs: %+v", si)
	}
	counts, err := s.Client.NewListPoolNodeCountsPager(nil).NextPage(ctx(t))
	if err != nil || len(counts.Value) != 1 || *counts.Value[0].Dedicated.WaitingForStartTask != 1 {
		t.Fatalf("node counts while the start task runs: %v %+v", err, counts.Value)
	}
	s.CreateJob(t, "slowjob", "slow", nil)
	s.AddTasks(t, "slowjob", []azbatch.CreateTaskContent{{ID: to("after"), CommandLine: to("/bin/true")}})
	s.WaitJobTasks(t, "slowjob", 30*time.Second)
	task := s.poolTask(t, "slowjob", "after")
	n := s.poolNode(t, "slow", nodeID)
	if *n.State != azbatch.NodeStateIdle || n.StartTaskInfo.EndTime == nil || task.ExecutionInfo.StartTime.Before(*n.StartTaskInfo.EndTime) {
		t.Fatalf("task started %v, start task ended %v (node %s)", task.ExecutionInfo.StartTime, n.StartTaskInfo.EndTime, *n.State)
	}
}
