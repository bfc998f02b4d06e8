package service

import (
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// Azure's job state machine has three transitional states, each left once
// the job's running tasks have been dealt with:
//
//   - disabling: Disable Job "immediately moves the job to the disabling
//     state"; running tasks are requeued, terminated or, with "wait", left
//     to finish; the job is disabled once that is done.
//   - terminating: Terminate Job (and maxWallClockTime, onAllTasksComplete)
//     terminates the running tasks; the job completes once they are gone.
//   - deleting: Delete Job kills the running tasks and removes the job once
//     they are gone. Until then it can still be read, and every change to
//     it fails with 409 JobBeingDeleted.
//
// A task Kiln stops leaves its state at once (requeued or completed), but
// its process runs on until the agent acts on the kill order. "Dealt with"
// therefore means: no task of the job is assigned any more, and the agent
// of every attempt the server stopped has confirmed it is gone. The agent
// confirms by reporting the attempt's completed event, or by a sync whose
// Known list no longer holds it; an attempt never delivered needs no
// confirmation, and one on a node that went silent or left needs none
// either (the node's tasks are not waited for, as in Azure when a node is
// lost). Every dispatch settles the jobs whose transition is over.
//
// A server that restarts during a transition finishes it when it loads the
// job: the kills were not persisted, so it does not wait for them (the
// agents' next syncs stop what still runs of those attempts anyway).

// lifecycleState is the service's bookkeeping of stopped attempts and of
// jobs in a transitional state. Its maps are created on first use.
type lifecycleState struct {
	// kills are the stopped attempts whose process may still run, by
	// attempt id, and by node.
	kills  map[string]*pendingKill
	byNode map[*nodeState]map[string]*pendingKill
	// settling holds the jobs in disabling, terminating or deleting.
	settling map[*jobState]*transition
}

// pendingKill is an attempt the server stopped, until its agent confirms.
type pendingKill struct {
	id   string
	job  *jobState
	task *taskState
	node *nodeState
	// deliveredIn is the attempt's: a sync of a later Seq whose Known list
	// lacks the attempt proves it no longer runs.
	deliveredIn int64
}

// transition is what a job in a transitional state waits to finish.
type transition struct {
	// reason is the terminationReason a terminating job completes with.
	reason string
}

// noteKillLocked records that the current attempt of t is being stopped
// (called by killTaskLocked before the attempt is detached).
func (s *Service) noteKillLocked(t *taskState, n *nodeState) {
	a := t.attempt
	if a == nil || a.deliveredIn == 0 {
		return // never sent: nothing runs
	}
	l := &s.lc
	if l.kills == nil {
		l.kills = map[string]*pendingKill{}
		l.byNode = map[*nodeState]map[string]*pendingKill{}
	}
	pk := &pendingKill{id: a.id, job: t.job, task: t, node: n, deliveredIn: a.deliveredIn}
	l.kills[a.id] = pk
	if l.byNode[n] == nil {
		l.byNode[n] = map[string]*pendingKill{}
	}
	l.byNode[n][a.id] = pk
}

func (s *Service) forgetKillLocked(pk *pendingKill) {
	delete(s.lc.kills, pk.id)
	if m := s.lc.byNode[pk.node]; m != nil {
		delete(m, pk.id)
		if len(m) == 0 {
			delete(s.lc.byNode, pk.node)
		}
	}
}

// staleEventLocked handles an event of an attempt the node is no longer
// expected to run. The completed event of a stopped attempt confirms the
// kill and carries what the process consumed until it died, which still
// counts in the statistics.
func (s *Service) staleEventLocked(n *nodeState, ev protocol.Event, w *store.Writes) {
	pk, ok := s.lc.kills[ev.AttemptID]
	if !ok || pk.node != n || ev.Kind != protocol.EventCompleted {
		return
	}
	s.forgetKillLocked(pk)
	s.recordStoppedAttemptLocked(pk, ev, w)
}

// confirmKillsLocked confirms the stopped attempts of n that a sync's Known
// list no longer holds although they were delivered before it.
func (s *Service) confirmKillsLocked(n *nodeState, req *protocol.SyncRequest) {
	m := s.lc.byNode[n]
	if len(m) == 0 {
		return
	}
	known := make(map[string]bool, len(req.Known))
	for _, id := range req.Known {
		known[id] = true
	}
	for id, pk := range m {
		if !known[id] && pk.deliveredIn < req.Seq {
			s.forgetKillLocked(pk)
		}
	}
}

// registeredKillsLocked handles the stopped attempts of a node whose agent
// registers again (a new agent process, whose syncs count from 1): those it
// does not know are gone; those it knows are killed again by the
// registration, and any later sync without them confirms them.
func (s *Service) registeredKillsLocked(n *nodeState, known map[string]bool) {
	for id, pk := range s.lc.byNode[n] {
		if known[id] {
			pk.deliveredIn = 0
		} else {
			s.forgetKillLocked(pk)
		}
	}
}

// sweepKillsLocked confirms the stopped attempts of nodes that left the pool
// or went silent: their processes are not waited for.
func (s *Service) sweepKillsLocked() {
	for n, m := range s.lc.byNode {
		if s.nodes[n.id] == n && !n.unusable {
			continue
		}
		for _, pk := range m {
			s.forgetKillLocked(pk)
		}
	}
}

// jobBusyLocked reports whether a job in a transitional state still has
// something to wait for: a task assigned to a node, or a stopped attempt
// not yet confirmed.
func (s *Service) jobBusyLocked(j *jobState) bool {
	if j.running > 0 || s.jobReleasingLocked(j) {
		return true
	}
	for _, pk := range s.lc.kills {
		if pk.job == j {
			return true
		}
	}
	return false
}

// queuesTasks reports whether a job keeps its active tasks queued: active
// and disabled jobs do (a disabled job's tasks wait for enable), and so does
// a disabling one.
func queuesTasks(j *jobState) bool {
	switch j.state() {
	case azbatch.JobStateActive, azbatch.JobStateDisabling, azbatch.JobStateDisabled:
		return true
	}
	return false
}

func (s *Service) beginTransitionLocked(j *jobState, st azbatch.JobState, tr *transition) {
	if j.state() != st {
		s.setJobState(j, st)
	}
	if s.lc.settling == nil {
		s.lc.settling = map[*jobState]*transition{}
	}
	s.lc.settling[j] = tr
}

// settleJobsLocked finishes the transitions that are over. dispatchLocked
// calls it first, so every operation that may have freed a job settles it.
func (s *Service) settleJobsLocked(w *store.Writes) {
	s.sweepKillsLocked()
	if len(s.lc.settling) == 0 {
		return
	}
	for j, tr := range s.lc.settling {
		st := j.state()
		if st != azbatch.JobStateDisabling && st != azbatch.JobStateTerminating && st != azbatch.JobStateDeleting {
			delete(s.lc.settling, j) // enabled while disabling
			continue
		}
		if s.jobBusyLocked(j) {
			continue
		}
		delete(s.lc.settling, j)
		switch st {
		case azbatch.JobStateDisabling:
			s.setJobState(j, azbatch.JobStateDisabled)
			s.touchJob(j, w)
		case azbatch.JobStateTerminating:
			s.completeJobLocked(j, tr.reason, w)
		case azbatch.JobStateDeleting:
			s.removeJobLocked(j, w)
		}
	}
}

// disableJobLocked moves an active job to disabling and deals with its
// running tasks as opt says.
func (s *Service) disableJobLocked(j *jobState, opt azbatch.DisableJobOption, w *store.Writes) {
	s.beginTransitionLocked(j, azbatch.JobStateDisabling, &transition{})
	if opt != azbatch.DisableJobOptionWait {
		for _, t := range s.tasks {
			if t.job != j || t.attempt == nil {
				continue
			}
			if opt == azbatch.DisableJobOptionRequeue {
				s.requeueTaskLocked(t, w)
			} else {
				s.endTaskLocked(t, nil, taskEndedFailure("The task was terminated because its job was disabled."), w)
			}
		}
	}
	s.touchJob(j, w)
}

// beginTerminateLocked moves a job to terminating: its running tasks are
// terminated (they complete with a failure) and its active tasks stay
// active but never run. The job completes with reason once the terminated
// processes are gone.
func (s *Service) beginTerminateLocked(j *jobState, reason string, w *store.Writes) {
	for _, t := range s.tasks {
		if t.job != j {
			continue
		}
		if t.attempt != nil {
			s.endTaskLocked(t, nil, taskEndedFailure("The task was terminated because its job was terminated."), w)
		} else if t.queued {
			// Active tasks of a completed job never run; they stay active
			// in the record, as in Azure Batch.
			t.queued = false
		}
	}
	s.jobEndingLocked(j, w) // release tasks (jobprep_release.go)
	s.beginTransitionLocked(j, azbatch.JobStateTerminating, &transition{reason: reason})
	s.touchJob(j, w)
}

// completeJobLocked ends a terminating job.
func (s *Service) completeJobLocked(j *jobState, reason string, w *store.Writes) {
	now := s.now()
	s.setJobState(j, azbatch.JobStateCompleted)
	if j.doc.ExecutionInfo == nil {
		j.doc.ExecutionInfo = &azbatch.JobExecutionInfo{}
	}
	j.doc.ExecutionInfo.EndTime = &now
	j.doc.ExecutionInfo.TerminationReason = &reason
	s.touchJob(j, w)
	s.jobEndedLocked(j, w)
}

// beginDeleteLocked moves a job to deleting: its tasks leave the scheduler
// and their running processes are killed. Its record and its tasks' stay
// in the store until the job is removed.
func (s *Service) beginDeleteLocked(j *jobState, w *store.Writes) {
	for k, t := range s.tasks {
		if t.job == j {
			s.killTaskLocked(t, w)
			t.queued = false
			delete(s.tasks, k)
		}
	}
	s.jobEndingLocked(j, w) // release tasks (jobprep_release.go)
	s.beginTransitionLocked(j, azbatch.JobStateDeleting, &transition{})
	s.touchJob(j, w)
}

// removeJobLocked deletes a job whose deletion is over, with its tasks and,
// as in Azure, its task directories on the nodes.
func (s *Service) removeJobLocked(j *jobState, w *store.Writes) {
	k := key(j.account, j.id())
	if s.jobs[k] == j {
		delete(s.jobs, k)
	}
	s.forgetJobStatsLocked(j)
	s.forgetJobRunsLocked(j, w)
	for _, n := range s.nodes {
		if strings.EqualFold(n.account, j.account) {
			s.cleanOnNodeLocked(n.id, "workitems/"+j.id())
		}
	}
	// The job's record may already be among the writes: it goes instead.
	for i := range w.Jobs {
		if strings.EqualFold(w.Jobs[i].Account, j.account) && strings.EqualFold(w.Jobs[i].ID, j.id()) {
			w.Jobs = append(w.Jobs[:i], w.Jobs[i+1:]...)
			break
		}
	}
	w.DeleteJobs = append(w.DeleteJobs, store.Job{Account: j.account, ID: j.id()})
	s.jobEndedLocked(j, w)
}

// resumeTransitionsLocked finishes, at start, the transitions a previous
// server process left: a deleting or terminating job's tasks still recorded
// as running are stopped again, and every such job settles with the first
// dispatch. A disabling job's disableTasks option was not kept: its running
// tasks are left to finish, as with "wait".
func (s *Service) resumeTransitionsLocked(w *store.Writes) {
	for _, j := range s.jobs {
		switch j.state() {
		case azbatch.JobStateDisabling:
			s.beginTransitionLocked(j, azbatch.JobStateDisabling, &transition{})
		case azbatch.JobStateTerminating:
			// The reason was not kept either.
			s.beginTerminateLocked(j, "UserTerminate", w)
		case azbatch.JobStateDeleting:
			s.beginDeleteLocked(j, w)
		}
	}
}
