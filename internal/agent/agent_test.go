package agent_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent"
	"github.com/kilnbatch/kiln/internal/agent/fileclient"
	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/protocol"
)

type testBundle struct {
	server *fakeServer
	root   string // node root
	parent string // directory holding root, for escape checks
	cfg    agent.Config
	cancel context.CancelFunc
	done   chan error
}

type testOpts struct {
	config func(*agent.Config)
	server func(*fakeServer) // runs before the agent starts
}

func setup(t *testing.T, opts *testOpts) *testBundle {
	t.Helper()
	if opts == nil {
		opts = &testOpts{}
	}
	s := newFakeServer(t)
	if opts.server != nil {
		opts.server(s)
	}
	parent := t.TempDir()
	var logMu sync.Mutex
	logDone := false
	b := &testBundle{
		server: s,
		root:   filepath.Join(parent, "root"),
		parent: parent,
		done:   make(chan error, 1),
	}
	b.cfg = agent.Config{
		ServerURL: s.srv.URL,
		PoolID:    "pool1",
		NodeID:    "node1",
		Token:     "join-token",
		RootDir:   b.root,
		Logger: slog.New(slog.NewTextHandler(testLogWriter{t, &logMu, &logDone},
			&slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if opts.config != nil {
		opts.config(&b.cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- agent.Run(ctx, b.cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-b.done:
			if err != nil && !expectErr(t) {
				t.Errorf("Run = %v after cancel, want nil", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
		logMu.Lock()
		logDone = true
		logMu.Unlock()
	})
	return b
}

// expectErr reports whether the test expects Run to fail.
func expectErr(t *testing.T) bool { return strings.HasSuffix(t.Name(), "FatalOn4xx") }

// wait waits for Run to return.
func (b *testBundle) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v", within)
		return nil
	}
}

func task(id, commandLine string) protocol.Assignment {
	return protocol.Assignment{
		AttemptID:     id,
		Kind:          protocol.KindTask,
		JobID:         "job1",
		TaskID:        "task-" + id,
		CommandLine:   commandLine,
		Dir:           "workitems/job1/job-1/task-" + id,
		RequiredSlots: 1,
	}
}

func (b *testBundle) taskDir(as protocol.Assignment) string {
	return filepath.Join(b.root, filepath.FromSlash(as.Dir))
}

func (b *testBundle) fileClient() *fileclient.Client {
	b.server.mu.Lock()
	defer b.server.mu.Unlock()
	return &fileclient.Client{BaseURL: b.server.registers[len(b.server.registers)-1].FileServerURL, Secret: b.server.secret}
}

func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	eventually(t, "pid file", func() bool {
		data, err := os.ReadFile(path)
		if err != nil || !strings.HasSuffix(string(data), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
		return err == nil
	})
	return pid
}

func TestRun_Register(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	s.waitFor("a sync", func() bool { return len(s.syncs) > 0 })

	s.mu.Lock()
	reg := s.registers[0]
	sync0 := s.syncs[0]
	s.mu.Unlock()
	if reg.ProtocolVersion != protocol.Version || reg.PoolID != "pool1" || reg.NodeID != "node1" || reg.Token != "join-token" {
		t.Errorf("register request = %+v", reg)
	}
	if reg.RootDir != b.root || !strings.HasPrefix(reg.FileServerURL, "http://127.0.0.1:") || reg.Hostname == "" || reg.AgentVersion == "" {
		t.Errorf("register request = %+v", reg)
	}
	if sync0.NodeID != "node1" || sync0.Seq != 1 || sync0.Applied != 0 || sync0.WaitMillis != int(s.heartbeat/time.Millisecond) || sync0.Known == nil {
		t.Errorf("first sync = %+v", sync0)
	}
	for _, d := range []string{"applications", "certs", "fsmounts", "shared", "startup", "tasks", "volatile", "workitems"} {
		if fi, err := os.Stat(filepath.Join(b.root, d)); err != nil || !fi.IsDir() {
			t.Errorf("node directory %s: %v", d, err)
		}
	}
}

func TestRun_RegisterRetriesThenRefused(t *testing.T) {
	t.Parallel()

	t.Run("RetriesTransientErrors", func(t *testing.T) {
		t.Parallel()
		codes := []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusRequestTimeout}
		b := setup(t, &testOpts{server: func(s *fakeServer) {
			s.registerHook = func(n int) int {
				if n < len(codes) {
					return codes[n]
				}
				return 0
			}
		}})
		s := b.server
		s.waitFor("a sync after retried registration", func() bool { return len(s.syncs) > 0 })
		if got := len(s.registers); got != 4 {
			t.Fatalf("registrations = %d, want 4", got)
		}
	})

	t.Run("FatalOn4xx", func(t *testing.T) {
		t.Parallel()
		b := setup(t, &testOpts{server: func(s *fakeServer) {
			s.registerHook = func(int) int { return http.StatusForbidden }
		}})
		if err := b.wait(t, 10*time.Second); err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("Run = %v, want a registration error with 403", err)
		}
	})
}

func TestRun_AssignmentRunsExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	as := task("a1", `/bin/sh -c 'echo run >> "$AZ_BATCH_NODE_SHARED_DIR/runs"'`)
	s.mu.Lock()
	s.repeat = 3 // the same attempt in four consecutive answers
	s.mu.Unlock()
	s.assign(as)
	s.waitEvent("a1", protocol.EventCompleted)
	s.waitFor("repeats delivered", func() bool { return s.repeat == 0 && !s.hasWorkLocked() })
	s.waitForgotten("a1")

	// Delivered again after its completion was acknowledged: still ignored.
	s.assign(as)
	s.waitFor("the redelivery to be taken", func() bool { return !s.hasWorkLocked() })
	s.waitForgotten("a1")

	runs, err := os.ReadFile(filepath.Join(b.root, "shared", "runs"))
	if err != nil || string(runs) != "run\n" {
		t.Fatalf("runs file = %q, %v; want one run", runs, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	started, completed := s.eventsLocked("a1", protocol.EventStarted), s.eventsLocked("a1", protocol.EventCompleted)
	if len(started) != 1 || len(completed) != 1 {
		t.Fatalf("started = %d, completed = %d events, want 1 each", len(started), len(completed))
	}
	c := completed[0]
	if c.ExitCode == nil || *c.ExitCode != 0 || c.Failure != nil || c.StartTime.IsZero() || c.Killed || c.TimedOut {
		t.Fatalf("completed event = %+v", c)
	}
	if !started[0].Time.Equal(c.StartTime) || started[0].Seq >= c.Seq {
		t.Fatalf("started %+v does not precede completed %+v", started[0], c)
	}
}

func TestRun_EventsRetriedUntilAcked(t *testing.T) {
	t.Parallel()
	var carried []syncAction
	b := setup(t, &testOpts{server: func(s *fakeServer) {
		// The first three syncs carrying the completion are lost in three
		// ways; only the fourth is answered.
		script := []syncAction{actFail, actApplyThenFail, actDrop}
		s.syncHook = func(n int, req protocol.SyncRequest) syncAction {
			for _, ev := range req.Events {
				if ev.Kind == protocol.EventCompleted {
					act := actNormal
					if len(carried) < len(script) {
						act = script[len(carried)]
					}
					carried = append(carried, act)
					return act
				}
			}
			return actNormal
		}
	}})
	s := b.server
	s.assign(task("e1", "/bin/sh -c 'exit 7'"))
	c := s.waitEvent("e1", protocol.EventCompleted)
	if c.ExitCode == nil || *c.ExitCode != 7 {
		t.Fatalf("completed = %+v, want exit code 7", c)
	}
	s.waitForgotten("e1")
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(carried) < 4 {
		t.Fatalf("completion sent %d times, want at least 4 (three lost answers)", len(carried))
	}
	if n := len(s.eventsLocked("e1", protocol.EventCompleted)); n != 1 {
		t.Fatalf("completed applied %d times", n)
	}
	// Every sync up to the acknowledgement listed the attempt in Known, and
	// Applied never claims an answer the agent did not get.
	for i, req := range s.syncs {
		if req.Applied >= req.Seq || (i > 0 && req.Applied < s.syncs[i-1].Applied) {
			t.Fatalf("sync %d: applied = %d", req.Seq, req.Applied)
		}
		hasCompletion := slices.ContainsFunc(req.Events, func(ev protocol.Event) bool { return ev.Kind == protocol.EventCompleted })
		if hasCompletion && !slices.Contains(req.Known, "e1") {
			t.Fatalf("sync %d carries the completion but Known = %v", req.Seq, req.Known)
		}
	}
}

func TestRun_KnownAndKill(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	as := task("k1", `/bin/sh -c 'echo $$ > pid; sleep 100 & sleep 100'`)
	s.assign(as)
	s.waitEvent("k1", protocol.EventStarted)
	pid := readPid(t, filepath.Join(b.taskDir(as), "wd", "pid"))
	s.waitFor("k1 in Known", func() bool { return slices.Contains(s.lastSyncLocked().Known, "k1") })

	s.send(func(n *protocol.SyncResponse) { n.Kill = []string{"k1"} })
	c := s.waitEvent("k1", protocol.EventCompleted)
	if !c.Killed || c.TimedOut || c.ExitCode == nil || *c.ExitCode != 137 {
		t.Fatalf("completed = %+v, want Killed with exit code 137", c)
	}
	if !gone(pid) {
		t.Fatalf("process %d still running after kill", pid)
	}
	s.waitForgotten("k1")
}

func TestRun_MaxWallClock(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	as := task("w1", "sleep 100")
	as.MaxWallClock = protocol.Duration(300 * time.Millisecond)
	s.assign(as)
	c := s.waitEvent("w1", protocol.EventCompleted)
	if !c.TimedOut || c.Killed || c.ExitCode == nil || *c.ExitCode != 137 {
		t.Fatalf("completed = %+v, want TimedOut with exit code 137", c)
	}
	if d := c.Time.Sub(c.StartTime); d < 300*time.Millisecond || d > 10*time.Second {
		t.Fatalf("ran %v, want about 300ms", d)
	}
}

func TestRun_Clean(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	as := task("c1", "/bin/sh -c 'echo hi > out.txt'")
	s.assign(as)
	s.waitEvent("c1", protocol.EventCompleted)
	dir := b.taskDir(as)
	if _, err := os.Stat(filepath.Join(dir, "wd", "out.txt")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(b.parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	s.send(func(n *protocol.SyncResponse) {
		n.Clean = []string{"../outside", "/" + outside, ".", "", as.Dir}
	})
	eventually(t, "task directory removed", func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist)
	})
	for _, d := range []string{outside, b.root, filepath.Join(b.root, "workitems", "job1", "job-1")} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v (must survive)", d, err)
		}
	}
}

func TestRun_CleanWaitsForRunningAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	as := task("cw", "/bin/sh -c 'sleep 100; echo late'")
	s.assign(as)
	s.waitEvent("cw", protocol.EventStarted)
	// Task deleted: kill and clean in one answer.
	s.send(func(n *protocol.SyncResponse) {
		n.Kill = []string{"cw"}
		n.Clean = []string{as.Dir}
	})
	s.waitEvent("cw", protocol.EventCompleted)
	eventually(t, "task directory removed", func() bool {
		_, err := os.Stat(b.taskDir(as))
		return errors.Is(err, os.ErrNotExist)
	})
}

func TestRun_Shutdown(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	as := task("s1", `/bin/sh -c 'echo $$ > pid; exec sleep 100'`)
	s.assign(as)
	s.waitEvent("s1", protocol.EventStarted)
	pid := readPid(t, filepath.Join(b.taskDir(as), "wd", "pid"))
	s.send(func(n *protocol.SyncResponse) { n.Shutdown = true })
	if err := b.wait(t, 10*time.Second); err != nil {
		t.Fatalf("Run = %v, want nil after Shutdown", err)
	}
	s.mu.Lock()
	completed := s.eventsLocked("s1", protocol.EventCompleted)
	last := s.lastSyncLocked()
	s.mu.Unlock()
	if len(completed) != 1 || !completed[0].Killed {
		t.Fatalf("completed events = %+v, want one Killed (sent in the final sync)", completed)
	}
	if last.WaitMillis != 0 {
		t.Errorf("final sync waits %dms, want 0", last.WaitMillis)
	}
	if !gone(pid) {
		t.Fatalf("process %d survived shutdown", pid)
	}
}

func TestRun_Reregister(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	s.assign(task("r1", "sleep 100"))
	s.waitEvent("r1", protocol.EventStarted)

	t.Run("On401", func(t *testing.T) {
		s.mu.Lock()
		s.token = "" // the server forgot the node: every sync gets 401
		s.changedLocked()
		s.mu.Unlock()
		s.waitFor("a second registration", func() bool { return len(s.registers) == 2 })
		s.waitFor("syncs with the new token", func() bool { return s.token == "tok-1" && s.lastSyncLocked().Seq > 0 })
	})

	t.Run("OnOrder", func(t *testing.T) {
		s.send(func(n *protocol.SyncResponse) { n.Reregister = true })
		s.waitFor("a third registration", func() bool { return len(s.registers) == 3 })
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, reg := range s.registers[1:] {
		if !slices.Contains(reg.Known, "r1") {
			t.Errorf("re-registration Known = %v, want r1", reg.Known)
		}
	}
	// Sync Seq keeps increasing across registrations (syncs answered 401
	// are not recorded, so there may be gaps).
	for i := 1; i < len(s.syncs); i++ {
		if s.syncs[i].Seq <= s.syncs[i-1].Seq {
			t.Fatalf("sync seqs %d then %d", s.syncs[i-1].Seq, s.syncs[i].Seq)
		}
	}
}

func TestRun_OrphanTimeout(t *testing.T) {
	t.Parallel()
	var serverDown bool
	b := setup(t, &testOpts{
		config: func(c *agent.Config) { c.OrphanTimeout = 500 * time.Millisecond },
		server: func(s *fakeServer) {
			s.heartbeat = 100 * time.Millisecond
			s.syncHook = func(int, protocol.SyncRequest) syncAction {
				if serverDown {
					return actFail
				}
				return actNormal
			}
		},
	})
	s := b.server
	as := task("o1", `/bin/sh -c 'echo $$ > pid; exec sleep 100'`)
	s.assign(as)
	s.waitEvent("o1", protocol.EventStarted)
	pid := readPid(t, filepath.Join(b.taskDir(as), "wd", "pid"))
	s.mu.Lock()
	serverDown = true
	s.mu.Unlock()
	if err := b.wait(t, 30*time.Second); err != nil {
		t.Fatalf("Run = %v, want nil after the orphan timeout", err)
	}
	if !gone(pid) {
		t.Fatalf("process %d survived the orphan timeout", pid)
	}
}

func TestRun_CompletionLatency(t *testing.T) {
	t.Parallel()
	// Syncs are held for 30s; a completion must still arrive at once, by
	// interrupting the open long poll.
	b := setup(t, nil)
	s := b.server
	s.assign(task("l1", "sleep 0.3"))
	c := s.waitEvent("l1", protocol.EventCompleted)
	s.mu.Lock()
	lag := s.received[c.Seq].Sub(c.Time)
	s.mu.Unlock()
	t.Logf("process exit -> server: %v", lag)
	if lag > 2*time.Second {
		t.Fatalf("completion reached the server %v after the process exited", lag)
	}
}

func TestRun_Failures(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	s.mu.Lock()
	s.files["ok.txt"] = "fine"
	s.mu.Unlock()

	withFiles := func(as protocol.Assignment, files ...protocol.ResourceFile) protocol.Assignment {
		as.ResourceFiles = files
		return as
	}
	badDir := task("f-dir", "true")
	badDir.Dir = "../elsewhere"
	notExecutable := task("f-noexec", "./ok.txt")
	notExecutable.ResourceFiles = []protocol.ResourceFile{{URL: s.srv.URL + "/blobs/ok.txt", FilePath: "ok.txt", FileMode: "0644"}}
	cases := []struct {
		as       protocol.Assignment
		category string
		code     string
	}{
		{task("f-empty", "  "), agent.CategoryUserError, agent.CodeCommandLineInvalid},
		{task("f-quote", "echo 'unterminated"), agent.CategoryUserError, agent.CodeCommandLineInvalid},
		{task("f-path", "kiln-no-such-program --flag"), agent.CategoryUserError, agent.CodeCommandProgramNotFound},
		{task("f-abs", "/nonexistent/program"), agent.CategoryUserError, agent.CodeCommandProgramNotFound},
		{notExecutable, agent.CategoryUserError, agent.CodeCommandLaunchFailed},
		{withFiles(task("f-404", "true"), protocol.ResourceFile{URL: s.srv.URL + "/blobs/missing?sig=secret", FilePath: "x"}),
			agent.CategoryUserError, agent.CodeBlobNotFound},
		{withFiles(task("f-403", "true"), protocol.ResourceFile{URL: s.srv.URL + "/forbidden?sig=secret", FilePath: "x"}),
			agent.CategoryUserError, agent.CodeBlobAccessDenied},
		{withFiles(task("f-500", "true"), protocol.ResourceFile{URL: s.srv.URL + "/broken?sig=secret", FilePath: "x"}),
			agent.CategoryUserError, agent.CodeBlobDownloadMiscError},
		{withFiles(task("f-escape", "true"), protocol.ResourceFile{URL: s.srv.URL + "/blobs/ok.txt", FilePath: "../../x"}),
			agent.CategoryUserError, agent.CodeBlobDownloadMiscError},
		{withFiles(task("f-mode", "true"), protocol.ResourceFile{URL: s.srv.URL + "/blobs/ok.txt", FilePath: "x", FileMode: "rwx"}),
			agent.CategoryUserError, agent.CodeBlobDownloadMiscError},
		{withFiles(task("f-none", "true"), protocol.ResourceFile{FilePath: "x"}),
			agent.CategoryUserError, agent.CodeBlobDownloadMiscError},
		{badDir, agent.CategoryServerError, agent.CodeTaskDirectoryInvalid},
	}
	for _, tc := range cases {
		s.assign(tc.as)
	}
	for _, tc := range cases {
		c := s.waitEvent(tc.as.AttemptID, protocol.EventCompleted)
		if c.Failure == nil || c.Failure.Category != tc.category || c.Failure.Code != tc.code || c.Failure.Message == "" ||
			c.Failure.Phase != protocol.PhasePreProcessing {
			t.Errorf("%s: failure = %+v, want %s/%s in phase preprocessing", tc.as.AttemptID, c.Failure, tc.category, tc.code)
		}
		if c.ExitCode != nil {
			t.Errorf("%s: exit code %d, want none", tc.as.AttemptID, *c.ExitCode)
		}
		if c.Failure != nil && strings.Contains(c.Failure.Message, "secret") {
			t.Errorf("%s: message leaks the URL query: %s", tc.as.AttemptID, c.Failure.Message)
		}
		s.mu.Lock()
		if n := len(s.eventsLocked(tc.as.AttemptID, protocol.EventStarted)); n != 0 {
			t.Errorf("%s: %d started events, want none", tc.as.AttemptID, n)
		}
		s.mu.Unlock()
	}
	if _, err := os.Stat(filepath.Join(b.parent, "elsewhere")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory outside the root was created: %v", err)
	}
}

func TestRun_ResourceFilesAndEnvironment(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	s.mu.Lock()
	s.files["script.sh"] = "#!/bin/sh\necho from-script\n"
	s.files["data.txt"] = "data"
	s.mu.Unlock()

	as := task("env1", "/bin/sh -c 'bin/script.sh && env'")
	as.Env = map[string]string{"FOO": "bar baz", "AZ_BATCH_JOB_PREP_DIR": "/from/server"}
	as.ResourceFiles = []protocol.ResourceFile{
		{URL: s.srv.URL + "/blobs/script.sh", FilePath: "bin/script.sh", FileMode: "0755"},
		{URL: s.srv.URL + "/blobs/data.txt", FilePath: "data/data.txt"},
	}
	start := protocol.Assignment{AttemptID: "st1", Kind: protocol.KindStartTask, CommandLine: "env", Dir: "startup"}
	s.assign(as, start)

	for _, id := range []string{"env1", "st1"} {
		if c := s.waitEvent(id, protocol.EventCompleted); c.ExitCode == nil || *c.ExitCode != 0 {
			t.Fatalf("%s: completed = %+v", id, c)
		}
	}
	wd := filepath.Join(b.taskDir(as), "wd")
	for name, mode := range map[string]os.FileMode{"bin/script.sh": 0o755, "data/data.txt": 0o770} {
		fi, err := os.Stat(filepath.Join(wd, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	env := readEnv(t, filepath.Join(b.taskDir(as), "stdout.txt"))
	want := map[string]string{
		"AZ_BATCH_ACCOUNT_NAME":       "acct",
		"AZ_BATCH_ACCOUNT_URL":        "http://acct.example",
		"AZ_BATCH_POOL_ID":            "pool1",
		"AZ_BATCH_NODE_ID":            "node1",
		"AZ_BATCH_NODE_IS_DEDICATED":  "true",
		"AZ_BATCH_NODE_ROOT_DIR":      b.root,
		"AZ_BATCH_NODE_SHARED_DIR":    filepath.Join(b.root, "shared"),
		"AZ_BATCH_NODE_STARTUP_DIR":   filepath.Join(b.root, "startup"),
		"AZ_BATCH_NODE_MOUNTS_DIR":    filepath.Join(b.root, "fsmounts"),
		"AZ_BATCH_TASK_DIR":           b.taskDir(as),
		"AZ_BATCH_TASK_WORKING_DIR":   wd,
		"AZ_BATCH_TASK_ID":            "task-env1",
		"AZ_BATCH_JOB_ID":             "job1",
		"AZ_BATCH_TASK_USER":          "_azbatch",
		"AZ_BATCH_TASK_USER_IDENTITY": "PoolNonAdmin",
		"AZ_BATCH_JOB_PREP_DIR":       "/from/server",
		"FOO":                         "bar baz",
		"PATH":                        os.Getenv("PATH"),
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if env["first"] != "from-script" {
		t.Errorf("script output %q", env["first"])
	}

	senv := readEnv(t, filepath.Join(b.root, "startup", "stdout.txt"))
	if senv["AZ_BATCH_TASK_WORKING_DIR"] != filepath.Join(b.root, "startup", "wd") || senv["AZ_BATCH_TASK_DIR"] != filepath.Join(b.root, "startup") {
		t.Errorf("start task directories: %v", senv)
	}
	if _, ok := senv["AZ_BATCH_TASK_ID"]; ok {
		t.Errorf("start task has AZ_BATCH_TASK_ID")
	}
	if _, ok := senv["AZ_BATCH_JOB_ID"]; ok {
		t.Errorf("start task has AZ_BATCH_JOB_ID")
	}
}

// readEnv parses `env` output; the first line that is not KEY=value is
// stored under "first".
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		} else if _, seen := env["first"]; !seen {
			env["first"] = line
		}
	}
	return env
}

func TestRun_FileServer(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	as := task("fs1", "/bin/sh -c 'echo hello; echo oops >&2; exec sleep 100'")
	s.assign(as)
	s.waitEvent("fs1", protocol.EventStarted)
	ctx := context.Background()
	fc := b.fileClient()

	t.Run("StdoutWhileRunning", func(t *testing.T) {
		eventually(t, "stdout through the file server", func() bool {
			resp, err := fc.Open(ctx, as.Dir+"/stdout.txt", "")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return string(body) == "hello\n"
		})
		list, err := fc.List(ctx, as.Dir, false)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, fi := range list {
			names = append(names, fi.Path)
		}
		if !slices.Equal(names, []string{"stderr.txt", "stdout.txt", "wd"}) {
			t.Fatalf("task directory lists %v", names)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.eventsLocked("fs1", protocol.EventCompleted)) != 0 {
			t.Fatal("task completed too early")
		}
	})

	t.Run("SignatureRejected", func(t *testing.T) {
		bad := *fc
		bad.Secret = "wrong"
		var se *fileclient.StatusError
		if _, err := bad.List(ctx, as.Dir, false); !errors.As(err, &se) || se.StatusCode != http.StatusForbidden {
			t.Errorf("wrong secret: %v, want 403", err)
		}

		u := fc.BaseURL + "/files/" + as.Dir + "/stdout.txt"
		check := func(name string, mod func(*http.Request)) {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			mod(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
			}
		}
		check("unsigned", func(*http.Request) {})
		check("expired", func(r *http.Request) {
			date := time.Now().Add(-10 * time.Minute).UTC().Format(time.RFC3339)
			r.Header.Set(fileserver.HeaderDate, date)
			r.Header.Set(fileserver.HeaderSignature, fileserver.Sign(s.secret, r.Method, r.URL.EscapedPath(), date))
		})
		check("signed for another path", func(r *http.Request) {
			date := time.Now().UTC().Format(time.RFC3339)
			r.Header.Set(fileserver.HeaderDate, date)
			r.Header.Set(fileserver.HeaderSignature, fileserver.Sign(s.secret, r.Method, "/files/shared", date))
		})
		check("signed for another method", func(r *http.Request) {
			date := time.Now().UTC().Format(time.RFC3339)
			r.Header.Set(fileserver.HeaderDate, date)
			r.Header.Set(fileserver.HeaderSignature, fileserver.Sign(s.secret, http.MethodDelete, r.URL.EscapedPath(), date))
		})
	})

	s.send(func(n *protocol.SyncResponse) { n.Kill = []string{"fs1"} })
	s.waitEvent("fs1", protocol.EventCompleted)
}
