package service

import (
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// attemptOwner is what runs an attempt that is neither a task's nor the
// start task's: a job preparation task (prepRun), a job release task
// (releaseRun) or one subtask of a multi-instance task (subtask). The
// node's generic code (events, evictions, an agent that registers again)
// hands such attempts to their owner, which keeps its own state and its
// node's record right.
type attemptOwner interface {
	// event applies an event of the attempt (the attempt is still the
	// node's).
	event(s *Service, n *nodeState, a *attempt, ev protocol.Event, w *store.Writes)
	// evicted: the node's work is being taken away (removal, reboot, lost
	// heartbeat, scheduling disabled); requeue is evictTasksLocked's.
	evicted(s *Service, n *nodeState, a *attempt, requeue bool, w *store.Writes)
	// lost: the agent registered again without knowing the attempt, which
	// had been delivered: it died with the agent's previous process.
	lost(s *Service, n *nodeState, a *attempt, w *store.Writes)
	// busy reports whether the attempt counts as a task running on the
	// node (its runningTasksCount and state).
	busy() bool
}

// dropAttemptLocked stops an owned attempt: a kill order if it may have
// reached the agent, and the node forgets it.
func (s *Service) dropAttemptLocked(n *nodeState, a *attempt) {
	if a.deliveredIn != 0 {
		n.kill = append(n.kill, a.id)
		n.wakeLocked()
	}
	s.detachAttemptLocked(n, a)
}

// jobOfAttempt is the job an attempt of the node works for, nil for the
// start task.
func jobOfAttempt(s *Service, a *attempt) *jobState {
	switch o := a.owner.(type) {
	case nil:
		if a.task != nil {
			return a.task.job
		}
	case *subtask:
		if o.run != nil {
			return o.run.task.job
		}
	case *prepRun:
		return s.jobs[key(o.np.account, o.np.jobID)]
	case *releaseRun:
		return s.jobs[key(o.np.account, o.np.jobID)]
	}
	return nil
}
