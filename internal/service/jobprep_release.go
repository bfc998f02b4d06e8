package service

import (
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// Job release tasks: "The Job Release Task runs when the Job ends ... on
// each Node where Tasks of the Job have run and the Job Preparation Task
// ran", with a maximum wall clock of 15 minutes, in the background (no
// task slot). "The Job is not marked as complete until all Job Release
// Tasks have completed": a terminated job stays terminating until then. A
// deleted job's release tasks run too; Kiln forgets the deleted job at once
// and the agent deletes the job's directory after they finish.

// releaseRun owns an attempt of a job release task.
type releaseRun struct{ np *nodePrep }

func (*releaseRun) busy() bool { return false }

func (r *releaseRun) event(s *Service, n *nodeState, a *attempt, ev protocol.Event, w *store.Writes) {
	np := r.np
	switch ev.Kind {
	case protocol.EventStarted:
		if np.release != nil {
			start := ev.Time.UTC()
			np.release.StartTime = &start
			s.writeNode(n, w)
		}
	case protocol.EventCompleted:
		s.detachAttemptLocked(n, a)
		np.releaseRun = nil
		defer s.afterNodeFreedLocked(n, w) // a reboot or removal may wait for it
		if !ev.StartTime.IsZero() && np.release != nil {
			start := ev.StartTime.UTC()
			np.release.StartTime = &start
		}
		exit, failure := failureOf(ev)
		s.endJobReleaseLocked(n, np, ev.Time.UTC(), exit, failure, w)
	}
}

// evicted: a release runs on through a reboot or scheduling being
// disabled (it holds no task slot; a reboot waits for it), but not through
// the node leaving or going silent: it then ends with a failure, so that
// the job does not wait for it forever.
func (r *releaseRun) evicted(s *Service, n *nodeState, a *attempt, _ bool, w *store.Writes) {
	if !n.removing && !n.unusable {
		return
	}
	s.dropAttemptLocked(n, a)
	r.np.releaseRun = nil
	s.endJobReleaseLocked(n, r.np, s.now(), nil, taskEndedFailure("The job release task ended because its node left the pool or stopped responding."), w)
}

// lost: the agent's previous process died with it; it runs again.
func (r *releaseRun) lost(s *Service, n *nodeState, a *attempt, w *store.Writes) {
	s.detachAttemptLocked(n, a)
	r.np.releaseRun = nil
	if j := s.jobs[key(r.np.account, r.np.jobID)]; j != nil && j.doc.JobReleaseTask != nil {
		s.runJobReleaseLocked(n, j, r.np, w)
	}
}

// endJobReleaseLocked records the end of a release on n.
func (s *Service) endJobReleaseLocked(n *nodeState, np *nodePrep, end time.Time, exit *int32, failure *azbatch.TaskFailureInfo, w *store.Writes) {
	info := np.release
	if info == nil {
		info = &azbatch.JobReleaseTaskExecutionInfo{StartTime: &end}
		np.release = info
	}
	info.State = ptr(azbatch.JobReleaseTaskStateCompleted)
	info.EndTime = &end
	info.ExitCode, info.FailureInfo = exit, failure
	info.Result = ptr(azbatch.TaskExecutionResultSuccess)
	if failure != nil {
		info.Result = ptr(azbatch.TaskExecutionResultFailure)
	}
	s.writeNode(n, w)
	j := s.jobs[key(np.account, np.jobID)]
	if j == nil {
		return
	}
	if jr := j.doc.JobReleaseTask; jr != nil {
		s.retainDirLocked(n, deref(info.TaskRootDirectory), jr.RetentionTime)
	}
	// A job that waited for it settles with the next dispatch
	// (job_lifecycle.go: jobBusyLocked).
}

// runJobReleaseLocked starts the job's release task on n.
func (s *Service) runJobReleaseLocked(n *nodeState, j *jobState, np *nodePrep, w *store.Writes) {
	dir := jobReleaseDir(j)
	a := &attempt{id: randomHex(12), owner: &releaseRun{np: np}}
	a.assignment = s.jobReleaseAssignment(n, j, a.id)
	n.attempts[a.id] = a
	np.releaseRun = a
	now := s.now()
	np.release = &azbatch.JobReleaseTaskExecutionInfo{
		State:                ptr(azbatch.JobReleaseTaskStateRunning),
		StartTime:            &now,
		TaskRootDirectory:    ptr(dir),
		TaskRootDirectoryURL: ptr(deref(n.doc.URL) + "/files/" + dir),
	}
	delete(n.retainUntil, dir)
	s.writeNode(n, w)
	n.wakeLocked()
}

// jobEndingLocked is called when a job ends (terminated, or deleted while
// not completed): its preparation tasks still running stop, and its
// release task starts on every node that ran the preparation task.
func (s *Service) jobEndingLocked(j *jobState, w *store.Writes) {
	if j.doc.JobPreparationTask == nil {
		return
	}
	k := key(j.account, j.id())
	for _, n := range s.nodes {
		np := n.preps[k]
		if np == nil {
			continue
		}
		if np.prepRun != nil {
			s.dropAttemptLocked(n, np.prepRun)
			np.prepRun = nil
			now := s.now()
			np.prep.State = ptr(azbatch.JobPreparationTaskStateCompleted)
			np.prep.EndTime = &now
			np.prep.Result = ptr(azbatch.TaskExecutionResultFailure)
			np.prep.FailureInfo = taskEndedFailure("The job preparation task was terminated because its job ended.")
			s.writeNode(n, w)
		}
		if j.doc.JobReleaseTask == nil || np.prep == nil || np.release != nil || !n.registered || n.unusable || n.removing {
			continue
		}
		s.runJobReleaseLocked(n, j, np, w)
	}
}

// jobReleasingLocked reports whether a release task of the job runs.
func (s *Service) jobReleasingLocked(j *jobState) bool {
	if j.doc.JobReleaseTask == nil {
		return false
	}
	k := key(j.account, j.id())
	for _, n := range s.nodes {
		if np := n.preps[k]; np != nil && np.releaseRun != nil {
			return true
		}
	}
	return false
}

// forgetJobRunsLocked drops a deleted job's records from every node;
// release tasks still running finish on their own.
func (s *Service) forgetJobRunsLocked(j *jobState, w *store.Writes) {
	k := key(j.account, j.id())
	prefix := k + "\x00"
	for _, n := range s.nodes {
		changed := false
		if _, ok := n.preps[k]; ok {
			delete(n.preps, k)
			changed = true
		}
		for sk := range n.subtasks {
			if strings.HasPrefix(sk, prefix) {
				delete(n.subtasks, sk)
				changed = true
			}
		}
		if changed {
			s.writeNode(n, w)
		}
	}
}
