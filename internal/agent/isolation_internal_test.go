//go:build linux

package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/taskrunner"
	"github.com/kilnbatch/kiln/internal/protocol"
)

func isoLayout(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := createLayout(root); err != nil {
		t.Fatal(err)
	}
	return root
}

// isoDaemon starts sh that leaves a setsid daemon and waits; it returns the
// process and the file the daemon's pid is written to.
func isoDaemon(t *testing.T, dir string, spec taskrunner.Spec) (*taskrunner.Process, string) {
	t.Helper()
	pidFile := filepath.Join(dir, "daemon.pid")
	spec.Args = []string{"/bin/sh", "-c", "setsid sleep 300 & echo $! > " + pidFile + "; sleep 300"}
	spec.Dir = dir
	spec.Env = []string{"PATH=/usr/bin:/bin"}
	p, err := taskrunner.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p, pidFile
}

func isoPid(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", file)
	return 0
}

func isoGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still runs", pid)
}

// TestIsolationRecordedGroupsKilled: without cgroups, the process group an
// agent recorded is killed by the next agent on the root (the group only:
// a setsid daemon escapes, as documented).
func TestIsolationRecordedGroupsKilled(t *testing.T) {
	root := isoLayout(t)
	iso := &isolation{rootDir: root, log: slog.Default()}
	p, _ := isoDaemon(t, t.TempDir(), taskrunner.Spec{})
	iso.recordProcess("att1", p.Pid(), nil, "")
	if n := iso.killRecorded(); n != 1 {
		t.Fatalf("killRecorded = %d, want 1", n)
	}
	if r := p.Wait(); r.ExitCode != 137 {
		t.Fatalf("recorded process exit %d, want 137", r.ExitCode)
	}
	if ents, _ := os.ReadDir(iso.procsDir()); len(ents) != 0 {
		t.Fatalf("records left: %v", ents)
	}
}

// TestIsolationCgroupKill: a task's cgroup catches the daemon that left its
// process group, and a new isolation on the same root kills what an old
// one's cgroups still hold.
func TestIsolationCgroupKill(t *testing.T) {
	root := isoLayout(t)
	cg := newCgroups(nodeKey(root), slog.Default())
	if cg.base == "" {
		t.Fatal("no cgroup v2 this test may use: run it as root on Linux with cgroup v2 (the CI machine has it)")
	}
	t.Cleanup(func() { cg.cleanLeftovers(); os.Remove(cg.base) })

	dir := cg.attemptCgroup("kill")
	p, pidFile := isoDaemon(t, t.TempDir(), taskrunner.Spec{Cgroup: dir})
	daemon := isoPid(t, pidFile)
	p.Kill()
	cg.kill(dir)
	p.Wait()
	isoGone(t, daemon)
	cg.remove(dir)
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("cgroup %s not removed", dir)
	}

	// Leftovers of an agent that died: the next one kills them.
	_, pidFile = isoDaemon(t, t.TempDir(), taskrunner.Spec{Cgroup: cg.attemptCgroup("left")})
	daemon = isoPid(t, pidFile)
	// ... and what a recorded cgroup elsewhere holds (the old agent ran in
	// another cgroup).
	other := newCgroups(nodeKey(root+"-elsewhere"), slog.Default())
	t.Cleanup(func() { other.cleanLeftovers(); os.Remove(other.base) })
	elsewhere := other.attemptCgroup("moved")
	p, pidFile = isoDaemon(t, t.TempDir(), taskrunner.Spec{Cgroup: elsewhere})
	moved := isoPid(t, pidFile)
	(&isolation{rootDir: root, log: slog.Default()}).recordProcess("moved", p.Pid(), nil, elsewhere)

	iso := newIsolation(root, slog.Default())
	t.Cleanup(iso.close)
	isoGone(t, daemon)
	isoGone(t, moved)
	if _, err := os.Stat(elsewhere); err == nil {
		t.Fatalf("recorded cgroup %s not removed", elsewhere)
	}
}

// TestIsolationIdentities: who attempts run as on a root agent.
func TestIsolationIdentities(t *testing.T) {
	root := isoLayout(t)
	iso := newIsolation(root, slog.Default())
	t.Cleanup(iso.close)
	node := protocol.NodeConfig{AccountName: "acct", PoolID: "p1"}
	at := func(dir string, u *protocol.UserIdentity) *attempt {
		return &attempt{as: protocol.Assignment{User: u}, node: node, dir: filepath.Join(root, dir)}
	}
	if os.Geteuid() != 0 {
		// An agent that is not root runs every task as itself.
		id, fail := iso.identity(at("t", &protocol.UserIdentity{Scope: "task"}))
		if fail != nil || id.cred != nil || id.label != "TaskNonAdmin" {
			t.Fatalf("non-root agent: %+v %+v", id, fail)
		}
		return
	}
	get := func(a *attempt) *identity {
		t.Helper()
		id, fail := iso.identity(a)
		if fail != nil {
			t.Fatalf("identity: %+v", fail.Failure)
		}
		return id
	}
	def := get(at("t0", nil))
	pool := get(at("t1", &protocol.UserIdentity{Scope: "pool"}))
	if def.cred == nil || pool.cred == nil || def.cred.Uid != pool.cred.Uid || def.label != "PoolNonAdmin" || def.cred.Uid != poolUID("acct", "p1") {
		t.Fatalf("default %+v, pool %+v", def, pool)
	}
	t1 := get(at("ta", &protocol.UserIdentity{Scope: "task"}))
	t1again := get(at("ta", &protocol.UserIdentity{Scope: "task"})) // the same task directory
	t2 := get(at("tb", &protocol.UserIdentity{Scope: "task"}))
	if t1.cred.Uid != t1again.cred.Uid || t1.cred.Uid == t2.cred.Uid || t1.cred.Uid == pool.cred.Uid || t1.label != "TaskNonAdmin" {
		t.Fatalf("task users %d %d %d (pool %d)", t1.cred.Uid, t1again.cred.Uid, t2.cred.Uid, pool.cred.Uid)
	}
	iso.release(t1)
	iso.release(t1again)
	if t3 := get(at("ta", &protocol.UserIdentity{Scope: "task"})); t3.cred.Uid == t1.cred.Uid {
		t.Fatalf("a released task user was handed out again at once: %d", t3.cred.Uid)
	}
	if admin := get(at("ad", &protocol.UserIdentity{Scope: "task", Admin: true})); admin.cred != nil || admin.label != "TaskAdmin" {
		t.Fatalf("admin %+v", admin)
	}
	if _, fail := iso.identity(at("x", &protocol.UserIdentity{UserName: "nosuch"})); fail == nil || fail.Failure.Code != CodeUserAccountNotFound {
		t.Fatalf("unknown account: %+v", fail)
	}

	// The task directory becomes the user's, private; start task
	// directories stay readable.
	a := at("ta", nil)
	os.MkdirAll(filepath.Join(a.dir, "wd"), 0o755)
	if fail := iso.prepareDirs(a, t1); fail != nil {
		t.Fatal(fail.Failure)
	}
	fi, _ := os.Stat(a.dir)
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != t1.cred.Uid || fi.Mode().Perm() != 0o700 {
		t.Fatalf("task directory uid %d mode %v", st.Uid, fi.Mode())
	}
	s := at("startup", nil)
	s.as.Kind = protocol.KindStartTask
	os.MkdirAll(filepath.Join(s.dir, "wd"), 0o755)
	if fail := iso.prepareDirs(s, pool); fail != nil {
		t.Fatal(fail.Failure)
	}
	if fi, _ := os.Stat(s.dir); fi.Mode().Perm() != 0o755 {
		t.Fatalf("startup directory mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(root, dirShared)); fi.Mode()&(os.ModePerm|os.ModeSticky) != 0o777|os.ModeSticky {
		t.Fatalf("shared directory mode %v", fi.Mode())
	}
}
