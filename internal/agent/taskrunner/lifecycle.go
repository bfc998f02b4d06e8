package taskrunner

import "syscall"

// Kill kills the whole process group with SIGKILL and marks the Result
// Killed. It returns at once (use Wait to see the exit) and is safe to call
// any number of times, concurrently, and after the process exited, when it
// does nothing: once the leader has exited its pid may be reused, so the
// group is never signalled again. Processes that left the group (setsid,
// setpgid) are not reached.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	p.killed = true
	p.killGroupLocked()
	p.linger.release()
}

// timeout is run by the MaxWallClock timer.
func (p *Process) timeout() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	p.timedOut = true
	p.killGroupLocked()
}

// killGroupLocked signals the process group. p.mu must be held and the
// leader not yet reaped, which keeps its pid (the group id) from being reused.
func (p *Process) killGroupLocked() {
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		// The group is gone only if the leader is a zombie with no other
		// member left; signalling the leader directly is then harmless.
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
