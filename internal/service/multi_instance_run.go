package service

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// subtask is one instance of a multi-instance task on its node: while its
// run goes on it owns an attempt running the coordination command; after
// that it is the record Task_ListSubtasks shows (kept in the node's record
// until the task or its job is deleted, or the task runs again).
type subtask struct {
	run                    *multiRun // nil once the run is over
	id                     int
	node                   *nodeState
	account, jobID, taskID string
	attempt                *attempt
	coordinated            bool // its coordination command exited with 0
	info                   azbatch.Subtask
	// loadAttempt is, at start, the attempt it ran before the restart.
	loadAttempt string
}

func subtaskKey(account, jobID, taskID string, id int) string {
	return taskKey(account, jobID, taskID) + "\x00" + strconv.Itoa(id)
}

func (sub *subtask) key() string { return subtaskKey(sub.account, sub.jobID, sub.taskID, sub.id) }

// busy: the secondaries' subtasks are the task's on their nodes; on the
// master the primary's attempt already counts.
func (sub *subtask) busy() bool { return sub.id > 0 }

func (sub *subtask) setState(s *Service, st azbatch.SubtaskState) {
	if deref(sub.info.State) == st {
		return
	}
	now := s.now()
	sub.info.PreviousState, sub.info.PreviousStateTransitionTime = sub.info.State, sub.info.StateTransitionTime
	sub.info.State, sub.info.StateTransitionTime = &st, &now
}

// startSubtaskLocked creates the subtask's attempt on its node: a new one
// (attemptID ""), gated by the job's preparation task there, or at start
// the one that ran before the restart.
func (s *Service) startSubtaskLocked(sub *subtask, attemptID string, w *store.Writes) {
	t, n := sub.run.task, sub.node
	restoring := attemptID != ""
	if !restoring {
		attemptID = randomHex(12)
	}
	a := &attempt{id: attemptID, owner: sub}
	if restoring {
		a.deliveredIn = -1
	}
	a.assignment = s.subtaskAssignment(t, n, sub, a.id)
	n.attempts[a.id] = a
	sub.attempt = a
	if sub.id > 0 {
		n.used += t.slots
	}
	if !restoring {
		sub.coordinated = false
		st := azbatch.SubtaskStateRunning
		now := s.now()
		sub.info = azbatch.Subtask{
			ID:                  ptr(int32(sub.id)),
			State:               &st,
			StateTransitionTime: &now,
			NodeInfo: &azbatch.NodeInfo{
				AffinityID:           n.doc.AffinityID,
				NodeID:               ptr(n.id),
				NodeURL:              n.doc.URL,
				PoolID:               ptr(n.pool.id()),
				TaskRootDirectory:    ptr(t.dir()),
				TaskRootDirectoryURL: ptr(deref(n.doc.URL) + "/files/" + t.dir()),
			},
		}
		delete(n.retainUntil, t.dir())
		s.prepGateLocked(t.job, n, a, w)
		if a.held {
			sub.info.State = ptr(azbatch.SubtaskStatePreparing)
		}
	}
	if n.subtasks == nil {
		n.subtasks = map[string]*subtask{}
	}
	n.subtasks[sub.key()] = sub
	s.refreshNodeLocked(n, w)
	s.writeNode(n, w)
	n.wakeLocked()
}

// subtaskAssignment is a subtask's: the task's environment, constraints and
// packages, with the coordination command and the common resource files.
func (s *Service) subtaskAssignment(t *taskState, n *nodeState, sub *subtask, id string) protocol.Assignment {
	mi := t.doc.MultiInstanceSettings
	as := s.taskAssignment(t, n, id)
	as.Kind = protocol.KindSubtask
	as.CommandLine = deref(mi.CoordinationCommandLine)
	as.ResourceFiles = s.resourceFileOrders(t.job.account, mi.CommonResourceFiles)
	as.OutputFiles = nil
	as.MultiInstance = sub.run.info(sub.id)
	return as
}

func (sub *subtask) event(s *Service, n *nodeState, a *attempt, ev protocol.Event, w *store.Writes) {
	switch ev.Kind {
	case protocol.EventStarted:
		start := ev.Time.UTC()
		sub.setState(s, azbatch.SubtaskStateRunning)
		sub.info.StartTime = &start
		s.writeNode(n, w)
	case protocol.EventCoordinated:
		sub.coordinated = true
		s.writeNode(n, w)
		if app := sub.run.task.attempt; app != nil && app.held && sub.run.coordinated() {
			app.held = false
			sub.run.task.node.wakeLocked()
		}
	case protocol.EventCompleted:
		// A subtask ends before its primary only when it failed: the
		// whole task fails.
		run := sub.run
		s.endSubtaskLocked(sub, &ev, w)
		s.failMultiRunLocked(run, sub, ev, w)
	}
}

func (sub *subtask) evicted(s *Service, n *nodeState, a *attempt, requeue bool, w *store.Writes) {
	t := sub.run.task
	if requeue {
		s.requeueTaskLocked(t, w)
		return
	}
	s.endTaskLocked(t, nil, taskEndedFailure(fmt.Sprintf("The task was terminated because the node of its subtask %d was removed from the pool.", sub.id)), w)
}

func (sub *subtask) lost(s *Service, n *nodeState, a *attempt, w *store.Writes) {
	s.requeueTaskLocked(sub.run.task, w)
}

// endSubtaskLocked takes a subtask off its node and records how it ended:
// ev is its completed event, or nil when the run stops it (its primary
// ended, or the task was stopped).
func (s *Service) endSubtaskLocked(sub *subtask, ev *protocol.Event, w *store.Writes) {
	n := sub.node
	t := sub.run.task
	if sub.attempt != nil {
		if ev == nil {
			// A job's transitions wait for its stopped attempts' processes
			// (job_lifecycle.go); a subtask's counts as its task's, and so
			// does what it consumed.
			primary := t.attempt
			t.attempt = sub.attempt
			s.noteKillLocked(t, n)
			t.attempt = primary
			s.dropAttemptLocked(n, sub.attempt)
		} else {
			s.recordAttemptLocked(t, *ev, w)
			s.detachAttemptLocked(n, sub.attempt)
		}
		if sub.id > 0 {
			n.used -= t.slots
		}
		sub.attempt = nil
	}
	sub.run = nil
	now := s.now()
	if ev != nil && !ev.Time.IsZero() {
		now = ev.Time.UTC()
	}
	if deref(sub.info.State) != azbatch.SubtaskStateCompleted {
		sub.setState(s, azbatch.SubtaskStateCompleted)
		sub.info.EndTime = &now
		switch {
		case ev != nil:
			exit, failure := failureOf(*ev)
			sub.info.ExitCode, sub.info.FailureInfo = exit, failure
		case sub.coordinated:
			sub.info.ExitCode = ptr(int32(0))
		default:
			sub.info.FailureInfo = taskEndedFailure("The subtask was stopped because its multi-instance task ended.")
		}
		sub.info.Result = ptr(azbatch.TaskExecutionResultSuccess)
		if sub.info.FailureInfo != nil {
			sub.info.Result = ptr(azbatch.TaskExecutionResultFailure)
		}
	}
	if sub.id > 0 && t.doc != nil && t.doc.Constraints != nil {
		s.retainDirLocked(n, t.dir(), t.doc.Constraints.RetentionTime)
	}
	s.refreshNodeLocked(n, w)
	s.writeNode(n, w)
	s.afterNodeFreedLocked(n, w)
}

// endMultiRunLocked stops the subtasks of t's run, if it has one: its
// primary ended, or t is being stopped. Called first by killTaskLocked and
// taskCompletedLocked.
func (s *Service) endMultiRunLocked(t *taskState, w *store.Writes) {
	run := s.multi[t]
	if run == nil {
		return
	}
	delete(s.multi, t)
	for _, sub := range run.subs {
		if sub.run == run {
			s.endSubtaskLocked(sub, nil, w)
		}
	}
}

// failMultiRunLocked fails a run whose subtask sub failed (its completed
// event is ev): the primary is stopped and the task completes, or is
// retried, as if the primary had failed with the subtask's exit code.
func (s *Service) failMultiRunLocked(run *multiRun, sub *subtask, ev protocol.Event, w *store.Writes) {
	if run == nil {
		return
	}
	t := run.task
	app, master := t.attempt, t.node
	if app == nil || master == nil {
		s.endMultiRunLocked(t, w)
		return
	}
	_, failure := failureOf(ev)
	why := "it ended"
	if failure != nil {
		why = strings.TrimSuffix(deref(failure.Message), ".")
	}
	f := &protocol.FailureInfo{Category: string(azbatch.ErrorCategoryUserError), Code: "FailureExitCode"}
	if failure != nil {
		f.Category, f.Code = string(deref(failure.Category)), deref(failure.Code)
	}
	if ev.Failure != nil {
		f.Phase = ev.Failure.Phase // a subtask that could not start is not retried
	}
	f.Message = fmt.Sprintf("Subtask %d of the multi-instance task failed on node %s: %s.", sub.id, sub.node.id, why)
	if app.deliveredIn != 0 {
		master.kill = append(master.kill, app.id)
		s.noteKillLocked(t, master)
		master.wakeLocked()
	}
	s.taskCompletedLocked(master, app, protocol.Event{
		Kind: protocol.EventCompleted, AttemptID: app.id, Time: s.now(),
		ExitCode: ev.ExitCode, TimedOut: ev.TimedOut, Failure: f,
	}, w)
}
