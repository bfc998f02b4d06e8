// Package slurm runs a real one-node Slurm cluster for tests: Debian's
// slurm-wlm (slurmctld and slurmd as child processes) with a slurm.conf
// generated into a temporary directory, free ports, its own state and spool
// directories, and munge authentication through the machine's munged
// (started as the munge user when it does not run yet). Client commands
// find the cluster through SLURM_CONF (Cluster.Env). Start needs root, as
// slurmd does.
package slurm

import (
	"bytes"
	"context"
	"fmt"
	"github.com/kilnbatch/kiln/internal/testutil/testproc"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstallCommand installs what the cluster needs.
const InstallCommand = "apt-get install -y slurm-wlm munge"

// Partition is the cluster's one (default) partition.
const Partition = "kiln"

// PreemptingPartition is a second partition on the same node whose jobs
// preempt (cancel) those of Partition: `sbatch -p kilnhigh --exclusive ...`
// preempts every job of the node, which end in state PREEMPTED.
const PreemptingPartition = "kilnhigh"

// CPUs is how many CPUs the node offers (at least): every Kiln node is a
// one-CPU job, so tests can run several on a small machine.
const CPUs = 16

// Cluster is a running one-node Slurm cluster.
type Cluster struct {
	// Dir is the cluster's temporary directory (slurm.conf, state, spool,
	// logs).
	Dir string
	// Conf is the path of slurm.conf.
	Conf string
	// NodeName is the Slurm node: this machine's host name.
	NodeName string
	procs    []*exec.Cmd
	done     []chan struct{}
}

// Start runs a Slurm cluster for t; it stops (its jobs cancelled) when t
// ends. Missing Slurm or munge fails the test with the install command.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the test Slurm cluster needs root (slurmd runs jobs as their users)")
	}
	for _, tool := range []string{"slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo", "munged", "munge", "unmunge"} {
		if _, err := lookPath(tool); err != nil {
			t.Fatalf("%s not found (install Slurm and munge: %s): %v", tool, InstallCommand, err)
		}
	}
	if err := ensureMunge(); err != nil {
		t.Fatalf("munge: %v (install: %s)", err, InstallCommand)
	}
	var lastErr error
	for range 3 { // a port may be taken between probe and start
		c, err := start()
		if err == nil {
			t.Cleanup(func() { c.stop(t) })
			return c
		}
		lastErr = err
	}
	t.Fatalf("start Slurm: %v", lastErr)
	return nil
}

// Env is the environment of Slurm client commands for the cluster:
// SLURM_CONF=<Conf>.
func (c *Cluster) Env() []string { return []string{"SLURM_CONF=" + c.Conf} }

// Command returns a Slurm client command (squeue, scancel, ...) for the
// cluster.
func (c *Cluster) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), c.Env()...)
	return cmd
}

// Run runs a client command and returns its output; failure fails t.
func (c *Cluster) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := c.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Jobs lists the cluster's jobs that have not ended, by name: job id and
// state.
func (c *Cluster) Jobs(t testing.TB) map[string][2]string {
	t.Helper()
	out := c.Run(t, "squeue", "-h", "-o", "%j|%i|%T")
	jobs := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) == 3 {
			jobs[f[0]] = [2]string{f[1], f[2]}
		}
	}
	return jobs
}

// RestartController restarts slurmctld. With clean it starts from empty
// state (slurmctld -c): the controller forgets every job, as after losing
// its StateSaveLocation.
func (c *Cluster) RestartController(t testing.TB, clean bool) {
	t.Helper()
	ctld := c.procs[0]
	_ = ctld.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done[0]:
	case <-time.After(30 * time.Second):
		t.Fatal("slurmctld did not stop")
	}
	args := []string{"-D", "-i", "-f", c.Conf}
	if clean {
		args = append(args, "-c")
	}
	if err := c.daemon("slurmctld", args...); err != nil {
		t.Fatal(err)
	}
	n := len(c.procs) - 1
	c.procs[0], c.done[0] = c.procs[n], c.done[n]
	c.procs, c.done = c.procs[:n], c.done[:n]
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := c.Command("sinfo", "-h").Run(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slurmctld not answering after a restart:\n%s", c.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Logs returns the daemons' logs.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, name := range []string{"slurmctld.log", "slurmd.log"} {
		out, _ := os.ReadFile(filepath.Join(c.Dir, name))
		fmt.Fprintf(&b, "--- %s\n%s", name, out)
	}
	return b.String()
}

// lookPath finds a command on PATH or in /usr/sbin (daemons are there, and
// not every PATH has it).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return exec.LookPath(filepath.Join("/usr/sbin", name))
}

var mungeMu sync.Mutex

// ensureMunge makes sure munged runs: the one of the machine (socket in
// /run/munge), started as the munge user with /etc/munge/munge.key
// (generated when missing). A lock file serializes test processes of
// several packages.
func ensureMunge() error {
	mungeMu.Lock()
	defer mungeMu.Unlock()
	if mungeWorks() == nil {
		return nil
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "kiln-test-munge.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if mungeWorks() == nil {
		return nil
	}
	u, err := user.Lookup("munge")
	if err != nil {
		return fmt.Errorf("no munge user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{"/run/munge", "/var/lib/munge", "/var/log/munge", "/etc/munge"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chown(d, uid, gid); err != nil {
			return err
		}
	}
	_ = os.Chmod("/etc/munge", 0o700)
	key := "/etc/munge/munge.key"
	if _, err := os.Stat(key); err != nil {
		b := make([]byte, 128)
		f, err := os.Open("/dev/urandom")
		if err != nil {
			return err
		}
		_, err = f.Read(b)
		f.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(key, b, 0o400); err != nil {
			return err
		}
	}
	if err := os.Chown(key, uid, gid); err != nil {
		return err
	}
	_ = os.Chmod(key, 0o400)
	munged, err := lookPath("munged")
	if err != nil {
		return err
	}
	cmd := exec.Command(munged)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setsid: true}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + u.HomeDir, "USER=munge"}
	out, err := cmd.CombinedOutput() // munged daemonizes
	if err != nil {
		if mungeWorks() == nil {
			return nil
		}
		return fmt.Errorf("start munged: %v: %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := mungeWorks()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("munged started but does not answer: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mungeWorks encodes and decodes a credential.
func mungeWorks() error {
	cred, err := exec.Command("munge", "-n").Output()
	if err != nil {
		return fmt.Errorf("munge -n: %w", err)
	}
	cmd := exec.Command("unmunge")
	cmd.Stdin = bytes.NewReader(cred)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("unmunge: %v: %s", err, out)
	}
	return nil
}

const confTemplate = `# A one-node test cluster generated by internal/testutil/slurm.
ClusterName=%[1]s
SlurmctldHost=%[2]s(127.0.0.1)
SlurmctldPort=%[3]d
SlurmdPort=%[4]d
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmUser=root
SlurmdUser=root
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
StateSaveLocation=%[5]s/state
SlurmdSpoolDir=%[5]s/spool
SlurmctldPidFile=%[5]s/slurmctld.pid
SlurmdPidFile=%[5]s/slurmd.pid
SlurmctldLogFile=%[5]s/slurmctld.log
SlurmdLogFile=%[5]s/slurmd.log
ReturnToService=2
KillWait=5
MinJobAge=300
SlurmdParameters=config_overrides
NodeName=%[2]s NodeAddr=127.0.0.1 CPUs=%[6]d RealMemory=4000 State=UNKNOWN
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
PartitionName=%[7]s Nodes=%[2]s Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=%[8]s Nodes=%[2]s Default=NO MaxTime=INFINITE State=UP PriorityTier=2
`

func start() (*Cluster, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	host, _, _ = strings.Cut(host, ".")
	ports, err := testproc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kilnslurm")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"state", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Dir: dir, Conf: filepath.Join(dir, "slurm.conf"), NodeName: host}
	cpus := max(CPUs, runtime.NumCPU())
	name := "kiln" + strconv.Itoa(ports[0])
	conf := fmt.Sprintf(confTemplate, name, host, ports[0], ports[1], dir, cpus, Partition, PreemptingPartition)
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.kill()
			os.RemoveAll(dir)
		}
	}()
	if err := c.daemon("slurmctld", "-D", "-i", "-f", c.Conf); err != nil {
		return nil, err
	}
	if err := c.daemon("slurmd", "-D", "-f", c.Conf, "-N", host); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := c.Command("sinfo", "-h", "-n", host, "-o", "%T").Output()
		if err == nil && strings.TrimSpace(string(out)) == "idle" {
			break
		}
		for i, d := range c.done {
			select {
			case <-d:
				return nil, fmt.Errorf("%s exited at start:\n%s", c.procs[i].Args[0], c.Logs())
			default:
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("Slurm node %s not idle after 60s (sinfo: %q, %v):\n%s", host, out, err, c.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	ok = true
	return c, nil
}

// daemon starts a Slurm daemon in the foreground as a child process, killed
// should this process die.
func (c *Cluster) daemon(name string, args ...string) error {
	path, err := lookPath(name)
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), c.Env()...)
	out, err := os.Create(filepath.Join(c.Dir, name+".out"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	c.procs = append(c.procs, cmd)
	c.done = append(c.done, done)
	return nil
}

// stop cancels every job, waits for them to end (their processes gone),
// then stops the daemons and removes the directory.
func (c *Cluster) stop(t testing.TB) {
	_ = c.Command("scancel", "--user=root").Run()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		out, err := c.Command("squeue", "-h", "-o", "%i").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if t.Failed() {
		t.Logf("Slurm logs:\n%s", c.Logs())
	}
	c.kill()
	c.killLeftovers()
	os.RemoveAll(c.Dir)
}

// killLeftovers kills what is left of jobs the controller forgot (after
// RestartController with clean): the sessions of slurmstepd processes that
// still hold files of the cluster's directory, and of their job scripts.
func (c *Cluster) killLeftovers() {
	own := sessionOf("self")
	entries, _ := os.ReadDir("/proc")
	sessions := map[int]bool{}
	stat := map[int]int{} // pid -> session
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		sid := sessionOf(e.Name())
		if sid < 0 {
			continue
		}
		stat[pid] = sid
		if sid == own || sid <= 1 {
			continue
		}
		if holds(pid, c.Dir) {
			sessions[sid] = true
		}
	}
	for pid, sid := range stat {
		if sessions[sid] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// sessionOf is the session id of /proc/<pid> (-1 when unknown).
func sessionOf(pid string) int {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return -1
	}
	str := string(b)
	i := strings.LastIndexByte(str, ')')
	if i < 0 {
		return -1
	}
	// After the command: state ppid pgrp session ...
	f := strings.Fields(str[i+1:])
	if len(f) < 4 {
		return -1
	}
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		return -1
	}
	return sid
}

// holds reports whether process pid runs from dir or has a file of it open.
func holds(pid int, dir string) bool {
	p := "/proc/" + strconv.Itoa(pid)
	if b, err := os.ReadFile(p + "/cmdline"); err == nil && strings.Contains(string(b), dir+"/") {
		return true
	}
	fds, _ := os.ReadDir(p + "/fd")
	for _, fd := range fds {
		if t, err := os.Readlink(p + "/fd/" + fd.Name()); err == nil && strings.HasPrefix(t, dir+"/") {
			return true
		}
	}
	return false
}

func (c *Cluster) kill() {
	for i, cmd := range c.procs {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done[i]:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-c.done[i]
		}
	}
}
