// Package taskrunner runs one task process for the node agent: it starts the
// command in its own process group with stdout and stderr going straight to
// files, enforces the wall-clock limit, and reports how the process ended.
//
// It knows nothing of the agent protocol; the agent turns a Result into
// events. Kill and the timeout act on the whole process group, so children and
// grandchildren die with the task.
package taskrunner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrProgramNotFound is returned (wrapped) by Start when the program named by
// Args[0] does not exist or cannot be found on the PATH of Spec.Env.
var ErrProgramNotFound = errors.New("program not found")

// Spec describes the process to run.
type Spec struct {
	// Args is the program and its arguments. A program without a slash is
	// looked up on the PATH found in Env (not the caller's PATH); a relative
	// path with a slash is relative to Dir.
	Args []string
	// Dir is the working directory, created (with parents) if missing.
	Dir string
	// Env is the complete environment of the process ("KEY=value"). Nil or
	// empty means an empty environment, never the caller's.
	Env []string
	// Stdout and Stderr are file paths, created or truncated. The process
	// writes to them directly (no pipe, no buffering), so they can be read
	// while it runs. Empty means /dev/null. They may name the same file.
	Stdout, Stderr string
	// MaxWallClock bounds the run time; on expiry the whole process group is
	// killed and Result.TimedOut is set. Zero means no limit.
	MaxWallClock time.Duration
	// Append opens Stdout and Stderr for appending instead of truncating
	// them: a multi-instance task's application command writes after the
	// coordination command that ran before it in the same directory.
	Append bool
	// Linger keeps the process group after the leader exits (see
	// linger.go): LeaderExited reports the exit while whatever the leader
	// left running in its group keeps running, until Kill ends it all.
	Linger bool
	// Credential runs the process as another user (uid, gid, supplementary
	// groups); the caller must be root. The output files are given to that
	// user.
	Credential *syscall.Credential
	// AmbientCaps are Linux capabilities the process keeps although it runs
	// as Credential's user (an admin user account); ignored elsewhere.
	AmbientCaps []uintptr
	// Cgroup is a cgroup v2 directory the process starts in (Linux: clone3
	// with CLONE_INTO_CGROUP, else the pid is written to its cgroup.procs
	// right after the start). Empty: the caller's cgroup.
	Cgroup string
}

// Result is how a process ended.
type Result struct {
	// ExitCode is the exit status, or 128+N when the process was killed by
	// signal N (137 after SIGKILL).
	ExitCode           int
	StartTime, EndTime time.Time
	// TimedOut is set when MaxWallClock expired and the process was killed.
	TimedOut bool
	// Killed is set when Kill was called before the process exited.
	Killed bool
	// StartErr is the error Start returned. Wait never sets it; it lets a
	// caller keep a failed start and a finished run in one value (see Failed).
	StartErr error
	// Usage is what the process and the descendants it waited for
	// consumed (see Usage for what is and is not counted).
	Usage Usage
}

// Failed returns a Result for a process that could not be started.
func Failed(err error) Result {
	now := time.Now()
	return Result{ExitCode: -1, StartTime: now, EndTime: now, StartErr: err}
}

// Process is a started task process.
type Process struct {
	cmd   *exec.Cmd
	start time.Time
	done  chan struct{}
	timer *time.Timer

	mu       sync.Mutex
	exited   bool // the leader has exited; its pid (= pgid) must not be signalled any more
	killed   bool
	timedOut bool
	result   Result
	linger   *lingerState // nil unless Spec.Linger
}

// Start starts the process described by spec. Errors (working directory,
// output files, program not found, exec failure) are returned here; a
// program that cannot be found gives an error wrapping ErrProgramNotFound.
func Start(spec Spec) (*Process, error) {
	if len(spec.Args) == 0 || spec.Args[0] == "" {
		return nil, errors.New("taskrunner: empty command")
	}
	if err := os.MkdirAll(spec.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("taskrunner: create working directory: %w", err)
	}
	path, err := lookPath(spec.Args[0], spec.Dir, spec.Env)
	if err != nil {
		return nil, err
	}
	stdout, stderr, closeOutputs, err := openOutputs(spec.Stdout, spec.Stderr, spec.Append)
	if err != nil {
		return nil, err
	}
	defer closeOutputs() // the child holds its own descriptors once started
	if c := spec.Credential; c != nil {
		for _, f := range []*os.File{stdout, stderr} {
			if f != nil {
				if err := f.Chown(int(c.Uid), int(c.Gid)); err != nil {
					return nil, fmt.Errorf("taskrunner: give output to uid %d: %w", c.Uid, err)
				}
			}
		}
	}

	env := spec.Env
	if env == nil {
		env = []string{}
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   spec.Args,
		Dir:    spec.Dir,
		Env:    env,
		Stdout: stdout,
		Stderr: stderr,
	}
	cmd.SysProcAttr, err = sysProcAttr(spec)
	if err != nil {
		return nil, err
	}
	startMu.RLock()
	err = cmd.Start()
	startMu.RUnlock()
	closeCgroup(cmd.SysProcAttr)
	if err != nil && spec.Cgroup != "" && !errors.Is(err, os.ErrNotExist) {
		// clone3 into a cgroup can be refused (old kernel, seccomp):
		// start outside it and move the process in at once.
		cmd = &exec.Cmd{Path: cmd.Path, Args: cmd.Args, Dir: cmd.Dir, Env: cmd.Env, Stdout: cmd.Stdout, Stderr: cmd.Stderr}
		noCgroup := spec
		noCgroup.Cgroup = ""
		if cmd.SysProcAttr, err = sysProcAttr(noCgroup); err != nil {
			return nil, err
		}
		startMu.RLock()
		err = cmd.Start()
		startMu.RUnlock()
		if err == nil {
			_ = os.WriteFile(filepath.Join(spec.Cgroup, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0)
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("taskrunner: %w: %s", ErrProgramNotFound, spec.Args[0])
		}
		return nil, fmt.Errorf("taskrunner: start %s: %w", spec.Args[0], err)
	}
	p := &Process{cmd: cmd, start: time.Now(), done: make(chan struct{})}
	if spec.Linger {
		p.linger = newLingerState()
	}
	if spec.MaxWallClock > 0 {
		p.timer = time.AfterFunc(spec.MaxWallClock, p.timeout)
	}
	go p.wait()
	return p, nil
}

// startMu is held for reading by every Start while it forks and execs, and
// taken for writing by WaitStarts.
var startMu sync.RWMutex

// WaitStarts returns once every Start that was in progress when it was
// called has finished. Call it after closing a file this process wrote and a
// task will execute: a child forked while the file was open for writing
// holds that descriptor until its own exec, and executing the file meanwhile
// fails with ETXTBSY ("text file busy", golang/go#22315). Start returns only
// after the child's exec, so once WaitStarts returns no child holds it.
func WaitStarts() {
	startMu.Lock()
	startMu.Unlock()
}

// Pid returns the process id of the leader (also the process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// StartTime returns when the process was started.
func (p *Process) StartTime() time.Time { return p.start }

// Done is closed when the process has exited and Wait will not block.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the process exits and returns its Result. It may be
// called any number of times.
func (p *Process) Wait() Result {
	<-p.done
	return p.result
}

func (p *Process) wait() {
	// Wait without reaping first, then mark the process exited, then reap:
	// until the leader is reaped its pid cannot be reused, so Kill can never
	// signal an unrelated process group.
	waitExited(p.cmd.Process.Pid)
	end := time.Now()
	p.lingerAfterExit(end)
	// The exited, unreaped process still holds its final I/O counters.
	var usage Usage
	ioUsage(p.cmd.Process.Pid, &usage)
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
	}

	_ = p.cmd.Wait() // exit status is read from ProcessState below
	cpuUsage(p.cmd.ProcessState, &usage)
	res := Result{ExitCode: exitCode(p.cmd.ProcessState), StartTime: p.start, EndTime: end, Usage: usage}
	p.mu.Lock()
	res.Killed, res.TimedOut = p.killed, p.timedOut
	p.result = res
	p.mu.Unlock()
	close(p.done)
	p.lingerEnded()
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func openOutputs(stdoutPath, stderrPath string, appendOut bool) (stdout, stderr *os.File, closeAll func(), err error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendOut {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	var files []*os.File
	closeAll = func() {
		for _, f := range files {
			f.Close()
		}
	}
	open := func(name string) (*os.File, error) {
		if name == "" {
			return nil, nil // exec.Cmd connects nil to /dev/null
		}
		f, err := os.OpenFile(name, flags, 0o644)
		if err != nil {
			return nil, fmt.Errorf("taskrunner: open output: %w", err)
		}
		files = append(files, f)
		return f, nil
	}
	if stdout, err = open(stdoutPath); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	if stderrPath != "" && filepath.Clean(stderrPath) == filepath.Clean(stdoutPath) {
		return stdout, stdout, closeAll, nil
	}
	if stderr, err = open(stderrPath); err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return stdout, stderr, closeAll, nil
}
