package taskrunner

import (
	"sync"
	"time"
)

// Lingering (Spec.Linger) is for commands whose job is to leave something
// running: a multi-instance task's coordination command starts a daemon in
// the background and exits, and the daemon must live until the task ends,
// then die with it. Once the leader has exited, a process group can only be
// signalled safely while its id cannot be reused, that is while the leader
// is not reaped. So a lingering Process reports the leader's exit through
// LeaderExited and LeaderResult but leaves it a zombie until Kill, which
// kills the group (daemons included) and lets Wait return.
//
// Where the exit status of an unreaped process cannot be read (not Linux),
// the leader is reaped at once as usual: LeaderExited is then closed with
// Done, and Kill no longer reaches what the leader left behind.

// lingerState is the lingering part of a Process.
type lingerState struct {
	exited   chan struct{} // closed when the leader has exited
	result   Result        // the leader's exit; valid once exited is closed
	kill     chan struct{} // closed by the first Kill
	killOnce sync.Once
	endOnce  sync.Once
}

func newLingerState() *lingerState {
	return &lingerState{exited: make(chan struct{}), kill: make(chan struct{})}
}

// release lets a lingering process end; safe on a nil receiver.
func (l *lingerState) release() {
	if l != nil {
		l.killOnce.Do(func() { close(l.kill) })
	}
}

// LeaderExited is closed when the leader process has exited. For a process
// started without Spec.Linger it is Done.
func (p *Process) LeaderExited() <-chan struct{} {
	if p.linger == nil {
		return p.done
	}
	return p.linger.exited
}

// LeaderResult is how the leader ended: its exit code, and whether it
// timed out or was killed. Valid once LeaderExited is closed. Usage is not
// set; Wait's Result has it.
func (p *Process) LeaderResult() Result {
	if p.linger == nil {
		return p.Wait()
	}
	<-p.linger.exited
	return p.linger.result
}

// lingerAfterExit runs in wait once the leader has exited, before it is
// reaped: for a lingering process it publishes the leader's exit and holds
// the zombie until Kill.
func (p *Process) lingerAfterExit(end time.Time) {
	l := p.linger
	if l == nil {
		return
	}
	code, ok := unreapedExitCode(p.cmd.Process.Pid)
	if !ok {
		return // lingerEnded publishes the reaped result
	}
	if p.timer != nil {
		// The wall clock bounds the command, not what it leaves behind.
		p.timer.Stop()
	}
	p.mu.Lock()
	r := Result{ExitCode: code, StartTime: p.start, EndTime: end, Killed: p.killed, TimedOut: p.timedOut}
	p.mu.Unlock()
	l.endOnce.Do(func() {
		l.result = r
		close(l.exited)
	})
	<-l.kill
}

// lingerEnded runs at the end of wait: if the leader's exit was not
// published while it lingered, the final result is it.
func (p *Process) lingerEnded() {
	l := p.linger
	if l == nil {
		return
	}
	l.endOnce.Do(func() {
		l.result = p.result
		close(l.exited)
	})
}
