package service

import (
	"encoding/json"
	"sort"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// prepRecord is a node's record of one job's preparation and release tasks
// (in nodeRecord.JobPrep): what the status API shows, and the attempts a
// restarted server must keep expecting.
type prepRecord struct {
	Account        string          `json:"account"`
	JobID          string          `json:"jobId"`
	Prep           json.RawMessage `json:"prep,omitempty"`    // azbatch.JobPreparationTaskExecutionInfo
	Release        json.RawMessage `json:"release,omitempty"` // azbatch.JobReleaseTaskExecutionInfo
	PrepAttempt    string          `json:"prepAttempt,omitempty"`
	ReleaseAttempt string          `json:"releaseAttempt,omitempty"`
}

func (n *nodeState) prepRecords() []prepRecord {
	if len(n.preps) == 0 {
		return nil
	}
	keys := make([]string, 0, len(n.preps))
	for k := range n.preps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]prepRecord, 0, len(keys))
	for _, k := range keys {
		np := n.preps[k]
		rec := prepRecord{Account: np.account, JobID: np.jobID}
		if np.prep != nil {
			rec.Prep, _ = np.prep.MarshalJSON()
		}
		if np.release != nil {
			rec.Release, _ = np.release.MarshalJSON()
		}
		if np.prepRun != nil {
			rec.PrepAttempt = np.prepRun.id
		}
		if np.releaseRun != nil {
			rec.ReleaseAttempt = np.releaseRun.id
		}
		out = append(out, rec)
	}
	return out
}

// loadNodeRunsLocked rebuilds, at start, a node's preparation and release
// runs (with the attempts still running, as delivered before the restart)
// and its subtasks, whose attempts loadHeldAttemptsLocked rebuilds once
// the tasks are loaded. Records of deleted jobs are dropped.
func (s *Service) loadNodeRunsLocked(n *nodeState, nr *nodeRecord) {
	for _, rec := range nr.JobPrep {
		j := s.jobs[key(rec.Account, rec.JobID)]
		if j == nil || j.doc.JobPreparationTask == nil {
			continue
		}
		np := nodePrepLocked(n, j)
		if len(rec.Prep) > 0 {
			np.prep = &azbatch.JobPreparationTaskExecutionInfo{}
			if err := np.prep.UnmarshalJSON(rec.Prep); err != nil {
				s.log.Error("load job preparation status", "node", n.id, "job", rec.JobID, "err", err)
				np.prep = nil
			}
		}
		if len(rec.Release) > 0 {
			np.release = &azbatch.JobReleaseTaskExecutionInfo{}
			if err := np.release.UnmarshalJSON(rec.Release); err != nil {
				s.log.Error("load job release status", "node", n.id, "job", rec.JobID, "err", err)
				np.release = nil
			}
		}
		if rec.PrepAttempt != "" && np.prep != nil {
			a := &attempt{id: rec.PrepAttempt, owner: &prepRun{np: np}, deliveredIn: -1}
			a.assignment = s.jobPrepAssignment(n, j, a.id)
			n.attempts[a.id] = a
			np.prepRun = a
		}
		if rec.ReleaseAttempt != "" && np.release != nil && j.doc.JobReleaseTask != nil {
			a := &attempt{id: rec.ReleaseAttempt, owner: &releaseRun{np: np}, deliveredIn: -1}
			a.assignment = s.jobReleaseAssignment(n, j, a.id)
			n.attempts[a.id] = a
			np.releaseRun = a
		}
	}
	s.loadSubtaskRecordsLocked(n, nr.Subtasks)
}

// loadHeldAttemptsLocked restores, once the tasks are loaded, what their
// attempts wait for: the multi-instance runs (multi_instance_store.go),
// and the job preparation task on their node. An attempt whose node's
// preparation had not completed was never delivered (it is released in
// the same commit that records the success), so it is held again.
func (s *Service) loadHeldAttemptsLocked(w *store.Writes) {
	s.loadMultiRunsLocked(w)
	for _, n := range s.nodes {
		for _, a := range n.attempts {
			j := jobOfAttempt(s, a)
			if j == nil || !waitsForPrep(j) {
				continue
			}
			switch a.owner.(type) {
			case nil:
				if s.multi[a.task] != nil {
					continue // the primary waits for its subtasks instead
				}
			case *subtask:
			default:
				continue
			}
			np := nodePrepLocked(n, j)
			if np.completed() {
				continue
			}
			a.held, a.deliveredIn = true, 0
			if np.prepRun == nil {
				s.runJobPrepLocked(n, j, np, 0, w)
			}
		}
	}
}

// jobPrepAssignment is the assignment of a preparation attempt.
func (s *Service) jobPrepAssignment(n *nodeState, j *jobState, id string) protocol.Assignment {
	jp := j.doc.JobPreparationTask
	return protocol.Assignment{
		AttemptID:      id,
		Kind:           protocol.KindJobPreparation,
		JobID:          j.id(),
		TaskID:         deref(jp.ID),
		CommandLine:    deref(jp.CommandLine),
		Dir:            jobPrepDir(j),
		Env:            jobTaskEnv(j, jp.EnvironmentSettings),
		MaxWallClock:   protocol.Duration(wallClockOf(jp.Constraints)),
		WaitForSuccess: deref(jp.WaitForSuccess),
		ResourceFiles:  s.resourceFileOrders(j.account, jp.ResourceFiles),
		Packages:       s.packageOrders(j.account, n.pool.doc.ApplicationPackageReferences),
		User:           userOrder(jp.UserIdentity),
	}
}

// jobReleaseAssignment is the assignment of a release attempt.
func (s *Service) jobReleaseAssignment(n *nodeState, j *jobState, id string) protocol.Assignment {
	jr := j.doc.JobReleaseTask
	return protocol.Assignment{
		AttemptID:     id,
		Kind:          protocol.KindJobRelease,
		JobID:         j.id(),
		TaskID:        deref(jr.ID),
		CommandLine:   deref(jr.CommandLine),
		Dir:           jobReleaseDir(j),
		Env:           jobTaskEnv(j, jr.EnvironmentSettings),
		MaxWallClock:  protocol.Duration(wallClockOf(&azbatch.TaskConstraints{MaxWallClockTime: jr.MaxWallClockTime})),
		ResourceFiles: s.resourceFileOrders(j.account, jr.ResourceFiles),
		Packages:      s.packageOrders(j.account, n.pool.doc.ApplicationPackageReferences),
		JobPrepDir:    jobPrepDir(j),
		User:          userOrder(jr.UserIdentity),
	}
}

// jobReleaseDir is the directory of the job's release task.
func jobReleaseDir(j *jobState) string { return jobDirOf(j) + "/" + deref(j.doc.JobReleaseTask.ID) }
