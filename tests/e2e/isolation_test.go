package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// Task isolation (docs/task-isolation.md) needs an agent running as root:
// the e2e suite runs as root on CI.
func isolationRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("task isolation runs tasks as other users: run the e2e tests as root (as .ci/run does)")
	}
}

const (
	isoUser      = "kiliso1"
	isoAdminUser = "kiliso2"
	isoUID       = 61234
)

// isoIdentity is a userIdentity with an auto-user.
func isoAuto(scope azbatch.AutoUserScope, level azbatch.ElevationLevel) *azbatch.UserIdentity {
	return &azbatch.UserIdentity{AutoUser: &azbatch.AutoUserSpecification{Scope: to(scope), ElevationLevel: to(level)}}
}

// isoRun adds a task and waits until it completes.
func isoRun(t *testing.T, s *Server, job, id, cmd string, ui *azbatch.UserIdentity) azbatch.Task {
	t.Helper()
	c := taskCmd(id, cmd)
	c.UserIdentity = ui
	taskAdd(t, s, job, c)
	return taskWaitState(t, s, job, id, azbatch.TaskStateCompleted, 60*time.Second)
}

// isoOut is a completed task's stdout, trimmed; it fails the test unless
// the task exited with code want.
func isoOut(t *testing.T, s *Server, job string, task azbatch.Task, want int32) string {
	t.Helper()
	out := taskMustReadFile(t, s, job, *task.ID, "stdout.txt")
	if code := task.ExecutionInfo.ExitCode; code == nil || *code != want {
		errOut, _ := taskReadFile(t, s, job, *task.ID, "stderr.txt")
		fi := task.ExecutionInfo.FailureInfo
		if fi != nil {
			t.Fatalf("task %s failed: %v %v", *task.ID, deref(fi.Code), deref(fi.Message))
		}
		t.Fatalf("task %s exit code %v, want %d; stdout %q stderr %q", *task.ID, deref(code), want, out, errOut)
	}
	return strings.TrimSpace(out)
}

// TestIsolationUsers: tasks run as the users their userIdentity names, and
// a task-scope user cannot read another task's directory while pool-scope
// tasks share a user and can.
func TestIsolationUsers(t *testing.T) {
	isolationRoot(t)
	t.Parallel()
	if u, err := user.LookupId(strconv.Itoa(isoUID)); err == nil && u.Username != isoUser {
		t.Fatalf("uid %d is taken by %s on this machine", isoUID, u.Username)
	}
	t.Cleanup(func() {
		for _, n := range []string{isoUser, isoAdminUser} {
			_ = exec.Command("userdel", "-r", "-f", n).Run()
		}
		_ = exec.Command("groupdel", isoUser).Run()
	})
	s := jobStartPool(t, 1, 4, func(c *azbatch.CreatePoolContent) {
		c.UserAccounts = []azbatch.UserAccount{
			{Name: to(isoUser), Password: to("Pa55word!"), LinuxUserConfiguration: &azbatch.LinuxUserConfiguration{UID: to(int32(isoUID)), GID: to(int32(isoUID))}},
			{Name: to(isoAdminUser), Password: to("Pa55word!"), ElevationLevel: to(azbatch.ElevationLevelAdmin)},
		}
	})
	s.CreateJob(t, "iso", jobPool, nil)
	const job = "iso"
	const idCmd = `/bin/sh -c 'echo $(id -u) $(id -g) $AZ_BATCH_TASK_USER_IDENTITY'`

	// Task scope: a user of its own; another task-scope task cannot read it.
	ta := isoRun(t, s, job, "ta", `/bin/sh -c 'echo secret > mine.txt; echo $(id -u) $AZ_BATCH_TASK_USER_IDENTITY'`, isoAuto(azbatch.AutoUserScopeTask, azbatch.ElevationLevelNonAdmin))
	taOut := strings.Fields(isoOut(t, s, job, ta, 0))
	if len(taOut) != 2 || taOut[0] == "0" || taOut[1] != "TaskNonAdmin" {
		t.Fatalf("task-scope task: %q", taOut)
	}
	tb := isoRun(t, s, job, "tb", `/bin/sh -c 'id -u; cat $AZ_BATCH_TASK_DIR/../ta/wd/mine.txt'`, isoAuto(azbatch.AutoUserScopeTask, azbatch.ElevationLevelNonAdmin))
	if code := tb.ExecutionInfo.ExitCode; code == nil || *code == 0 {
		t.Fatalf("a task-scope task read another task's file (exit %v)", deref(code))
	}
	if errOut := taskMustReadFile(t, s, job, "tb", "stderr.txt"); !strings.Contains(errOut, "Permission denied") {
		t.Fatalf("reading another task's file: stderr %q, want Permission denied", errOut)
	}
	if uid := strings.TrimSpace(taskMustReadFile(t, s, job, "tb", "stdout.txt")); uid == taOut[0] || uid == "0" {
		t.Fatalf("task-scope tasks ran as uid %s and %s", taOut[0], uid)
	}

	// Pool scope (and the default): one shared user that reads the other's
	// files and writes the node's shared directory.
	pool := isoAuto(azbatch.AutoUserScopePool, azbatch.ElevationLevelNonAdmin)
	pa := isoRun(t, s, job, "pa", `/bin/sh -c 'echo pooled > mine.txt; echo shared > $AZ_BATCH_NODE_SHARED_DIR/pa.txt; id -u'`, pool)
	paUID := isoOut(t, s, job, pa, 0)
	pb := isoRun(t, s, job, "pb", `/bin/sh -c 'cat $AZ_BATCH_TASK_DIR/../pa/wd/mine.txt $AZ_BATCH_NODE_SHARED_DIR/pa.txt; echo $(id -u) $AZ_BATCH_TASK_USER_IDENTITY'`, pool)
	if got := isoOut(t, s, job, pb, 0); got != "pooled\nshared\n"+paUID+" PoolNonAdmin" || paUID == "0" || paUID == taOut[0] {
		t.Fatalf("pool-scope task: %q (first pool task uid %s)", got, paUID)
	}
	pd := isoRun(t, s, job, "pd", idCmd, nil)
	if got := isoOut(t, s, job, pd, 0); got != paUID+" "+paUID+" PoolNonAdmin" {
		t.Fatalf("task without userIdentity: %q, want the pool auto-user %s", got, paUID)
	}

	// Admin auto-user: root.
	ad := isoRun(t, s, job, "ad", `/bin/sh -c 'echo $(id -u) $AZ_BATCH_TASK_USER_IDENTITY; cat $AZ_BATCH_TASK_DIR/../ta/wd/mine.txt'`, isoAuto(azbatch.AutoUserScopeTask, azbatch.ElevationLevelAdmin))
	if got := isoOut(t, s, job, ad, 0); got != "0 TaskAdmin\nsecret" {
		t.Fatalf("admin auto-user: %q", got)
	}

	// A pool user account with uid and gid runs as them.
	named := isoRun(t, s, job, "named", idCmd, &azbatch.UserIdentity{Username: to(isoUser)})
	if got, want := isoOut(t, s, job, named, 0), fmt.Sprintf("%d %d %s", isoUID, isoUID, isoUser); got != want {
		t.Fatalf("named user: %q, want %q", got, want)
	}
	// An admin user account keeps every capability: it reads what only
	// root could (another user's private task directory).
	na := isoRun(t, s, job, "namedadmin", `/bin/sh -c 'id -u; cat $AZ_BATCH_TASK_DIR/../ta/wd/mine.txt'`, &azbatch.UserIdentity{Username: to(isoAdminUser)})
	if got := isoOut(t, s, job, na, 0); !strings.HasSuffix(got, "\nsecret") || strings.HasPrefix(got, "0\n") {
		t.Fatalf("admin user account: %q", got)
	}

	// A user name the pool does not have fails the task before it runs.
	bad := isoRun(t, s, job, "nouser", idCmd, &azbatch.UserIdentity{Username: to("nobodyhere")})
	if fi := bad.ExecutionInfo.FailureInfo; fi == nil || deref(fi.Code) != "UserAccountNotFound" {
		t.Fatalf("unknown user: failureInfo %+v", fi)
	}
}

// TestIsolationPoolValidation: bad userAccounts are refused at pool add.
func TestIsolationPoolValidation(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	for name, accts := range map[string][]azbatch.UserAccount{
		"elevation": {{Name: to("u1"), Password: to("p"), ElevationLevel: to(azbatch.ElevationLevel("root"))}},
		"name":      {{Name: to("Bad Name"), Password: to("p")}},
		"uidAlone":  {{Name: to("u1"), Password: to("p"), LinuxUserConfiguration: &azbatch.LinuxUserConfiguration{UID: to(int32(5000))}}},
		"duplicate": {{Name: to("u1"), Password: to("p")}, {Name: to("u1"), Password: to("q")}},
	} {
		c := poolContent("bad-"+strings.ToLower(name), 0, 1)
		c.UserAccounts = accts
		_, err := s.Client.CreatePool(ctx(t), c, nil)
		jobAzureError(t, err, 400, "InvalidPropertyValue")
	}
	_, err := s.Client.CreateJob(ctx(t), azbatch.CreateJobContent{ID: to("j"), PoolInfo: &azbatch.PoolInfo{PoolID: to("p")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := taskCmd("t", "true")
	c.UserIdentity = &azbatch.UserIdentity{AutoUser: &azbatch.AutoUserSpecification{ElevationLevel: to(azbatch.ElevationLevel("superuser"))}}
	_, err = s.Client.CreateTask(ctx(t), "j", c, nil)
	jobAzureError(t, err, 400, "InvalidPropertyValue")
}

// isoPids are the pids of the processes running in dir (taskProcsUnder).
func isoPids(dir string) []int {
	var pids []int
	for _, p := range taskProcsUnder(dir) {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		pids = append(pids, pid)
	}
	return pids
}

// isoAlive reports whether pid is a live (not zombie) process.
func isoAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}

// isoDaemonCmd starts a daemon that leaves the task's process group and
// session (setsid), then waits.
const isoDaemonCmd = `/bin/sh -c 'setsid sleep 1000 & echo started; sleep 1000'`

// TestIsolationKillTree: terminating a task kills what it started, a setsid
// daemon included; so does the task's normal end.
func TestIsolationKillTree(t *testing.T) {
	isolationRoot(t)
	t.Parallel()
	s := jobStartPool(t, 1, 2, nil)
	s.CreateJob(t, "tree", jobPool, nil)
	taskAdd(t, s, "tree", taskCmd("daemon", isoDaemonCmd))
	running := taskWaitState(t, s, "tree", "daemon", azbatch.TaskStateRunning, 30*time.Second)
	wd := filepath.Join(taskDirOf(t, s, "tree", running), "wd")
	eventually(t, 20*time.Second, "the task and its daemon running", func() error {
		if n := len(isoPids(wd)); n < 3 { // sh, sleep, setsid sleep
			return fmt.Errorf("%d processes: %v", n, taskProcsUnder(wd))
		}
		return nil
	})
	if _, err := s.Client.TerminateTask(ctx(t), "tree", "daemon", nil); err != nil {
		t.Fatal(err)
	}
	taskWaitState(t, s, "tree", "daemon", azbatch.TaskStateCompleted, 30*time.Second)
	taskWaitNoProcs(t, wd, 20*time.Second)

	done := isoRun(t, s, "tree", "leaves", `/bin/sh -c 'setsid sleep 1000 & echo left'`, nil)
	if out := isoOut(t, s, "tree", done, 0); out != "left" {
		t.Fatalf("stdout %q", out)
	}
	taskWaitNoProcs(t, filepath.Join(taskDirOf(t, s, "tree", done), "wd"), 20*time.Second)
}

// TestIsolationAgentRestart: an agent killed with SIGKILL leaves its tasks
// running; the next agent on the same root kills them before it runs
// anything.
func TestIsolationAgentRestart(t *testing.T) {
	isolationRoot(t)
	t.Parallel()
	s := jobStartPool(t, 1, 1, nil)
	s.CreateJob(t, "orphan", jobPool, nil)
	taskAdd(t, s, "orphan", taskCmd("daemon", isoDaemonCmd))
	running := taskWaitState(t, s, "orphan", "daemon", azbatch.TaskStateRunning, 30*time.Second)
	wd := filepath.Join(taskDirOf(t, s, "orphan", running), "wd")
	var orphans []int
	eventually(t, 20*time.Second, "the task and its daemon running", func() error {
		if orphans = isoPids(wd); len(orphans) < 3 {
			return fmt.Errorf("%d processes: %v", len(orphans), taskProcsUnder(wd))
		}
		return nil
	})

	root := taskNodeRoot(s, *running.NodeInfo.NodeID)
	pidFile := filepath.Join(root, "agent.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cmdline, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	environ, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err1 != nil || err2 != nil || pid <= 0 {
		t.Fatalf("agent %d: %v %v", pid, err1, err2)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "agent gone", func() error {
		if isoAlive(pid) {
			return fmt.Errorf("agent %d alive", pid)
		}
		return nil
	})
	for _, p := range orphans {
		if !isoAlive(p) {
			t.Fatalf("task process %d died with the agent: nothing left to test", p)
		}
	}

	// A new agent process on the same root, as the provider started it.
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = strings.Split(strings.TrimRight(string(environ), "\x00"), "\x00")
	logf, err := os.OpenFile(filepath.Join(root, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	// The harness's cleanup kills the agent named in agent.pid.
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the orphaned task processes killed", func() error {
		for _, p := range orphans {
			if isoAlive(p) {
				return fmt.Errorf("process %d still runs", p)
			}
		}
		return nil
	})
}

// taskTempDir is a temporary directory every task may write, whatever user
// it runs as: on a root agent tasks run as unprivileged users
// (docs/task-isolation.md) and t.TempDir() is private to root. Tests that
// give tasks a ledger or marker files outside their task directories make
// them here.
func taskTempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o1777); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent (one per test) is 0700: let task users through.
	for p := filepath.Dir(d); p != filepath.Clean(os.TempDir()) && p != filepath.Dir(p); p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(p, fi.Mode().Perm()|0o001)
		}
	}
	return d
}
