package agent_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// TestRun_MultiInstance runs a multi-instance task's two kinds of attempt
// on one agent: a subtask (common resource files in the task directory,
// coordination command, coordinated event, its daemon kept until the kill)
// and the primary's application command after it in the same directory.
func TestRun_MultiInstance(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	s.mu.Lock()
	s.files["common.txt"] = "common"
	s.mu.Unlock()
	mi := &protocol.MultiInstance{SubtaskID: 0, Hosts: []string{"10.0.0.4", "10.0.0.5"}, Master: "10.0.0.4:6000"}

	sub := task("sub0", `/bin/sh -c 'sleep 60 & echo $! > "$AZ_BATCH_TASK_SHARED_DIR/daemon.pid"; cat "$AZ_BATCH_TASK_SHARED_DIR/common.txt"; echo; env'`)
	sub.Kind = protocol.KindSubtask
	sub.Dir = "workitems/job1/job-1/mpi"
	sub.MultiInstance = mi
	sub.JobPrepDir = "workitems/job1/job-1/jobpreparation"
	sub.ResourceFiles = []protocol.ResourceFile{{URL: s.srv.URL + "/blobs/common.txt", FilePath: "common.txt"}}
	s.assign(sub)

	coord := s.waitEvent("sub0", protocol.EventCoordinated)
	if coord.ExitCode == nil || *coord.ExitCode != 0 {
		t.Fatalf("coordinated event %+v", coord)
	}
	dir := b.taskDir(sub)
	if _, err := os.Stat(filepath.Join(dir, "common.txt")); err != nil {
		t.Fatalf("common resource file not in the task directory: %v", err)
	}
	env := readEnv(t, filepath.Join(dir, "stdout.txt"))
	want := map[string]string{
		"first":                           "common",
		"AZ_BATCH_HOST_LIST":              "10.0.0.4,10.0.0.5",
		"AZ_BATCH_NODE_LIST":              "10.0.0.4;10.0.0.5",
		"AZ_BATCH_MASTER_NODE":            "10.0.0.4:6000",
		"AZ_BATCH_IS_CURRENT_NODE_MASTER": "true",
		"AZ_BATCH_TASK_SHARED_DIR":        dir,
		"AZ_BATCH_TASK_DIR":               dir,
		"AZ_BATCH_TASK_WORKING_DIR":       filepath.Join(dir, "wd"),
		"AZ_BATCH_JOB_PREP_DIR":           filepath.Join(b.root, "workitems/job1/job-1/jobpreparation"),
		"AZ_BATCH_JOB_PREP_WORKING_DIR":   filepath.Join(b.root, "workitems/job1/job-1/jobpreparation/wd"),
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	daemon := readPid(t, filepath.Join(dir, "daemon.pid"))
	if gone(daemon) {
		t.Fatal("the coordination command's daemon died with it")
	}
	s.mu.Lock()
	known := slices.Contains(s.lastSyncLocked().Known, "sub0")
	s.mu.Unlock()
	if !known {
		t.Fatal("a coordinated subtask left Known")
	}

	// The primary's application command, after the coordination command in
	// the same directory, appends to its output.
	app := task("app0", "/bin/sh -c 'echo application; cat ../common.txt'")
	app.Dir = sub.Dir
	app.MultiInstance = mi
	s.assign(app)
	if c := s.waitEvent("app0", protocol.EventCompleted); c.ExitCode == nil || *c.ExitCode != 0 {
		t.Fatalf("application completed %+v", c)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "stdout.txt"))
	if !strings.HasPrefix(string(out), "common\n") || !strings.HasSuffix(string(out), "application\ncommon") {
		t.Fatalf("stdout.txt %q: want the coordination output, then the application's", out)
	}

	// The primary ended: the server kills the subtask, and its daemon dies.
	s.send(func(n *protocol.SyncResponse) { n.Kill = append(n.Kill, "sub0") })
	c := s.waitEvent("sub0", protocol.EventCompleted)
	if !c.Killed || c.ExitCode == nil || *c.ExitCode != 0 {
		t.Fatalf("subtask completed %+v: want killed with the coordination exit code 0", c)
	}
	eventually(t, "daemon killed", func() bool { return gone(daemon) })
}

// TestRun_MultiInstanceCoordinationFails: a coordination command that exits
// non-zero completes its subtask at once with its exit code.
func TestRun_MultiInstanceCoordinationFails(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	sub := task("sub1", "/bin/sh -c 'exit 5'")
	sub.Kind = protocol.KindSubtask
	sub.MultiInstance = &protocol.MultiInstance{SubtaskID: 1, Hosts: []string{"a", "b"}, Master: "a:1"}
	b.server.assign(sub)
	c := b.server.waitEvent("sub1", protocol.EventCompleted)
	if c.ExitCode == nil || *c.ExitCode != 5 || c.Killed {
		t.Fatalf("completed %+v", c)
	}
	b.server.mu.Lock()
	n := len(b.server.eventsLocked("sub1", protocol.EventCoordinated))
	b.server.mu.Unlock()
	if n != 0 {
		t.Fatal("a failed coordination command was reported coordinated")
	}
}
