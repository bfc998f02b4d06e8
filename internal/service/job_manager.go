package service

import (
	"context"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Job manager tasks (Azure's JobManagerTask): "automatically started when
// the Job is created", as the job's first task, so that it is scheduled
// before the others. With killJobOnCompletion (the default) its completion
// terminates the job with reason JMComplete, terminating the tasks still
// running. With runExclusive (the default) no other task runs on its node
// while it runs: Kiln makes it take every slot of a node of the job's pool.
// With allowLowPriorityNode false it runs on dedicated nodes only
// (pickNode, spot.go). A job manager task that is
// terminated by Terminate Task does not end its job; one that ends on its
// own does, retries exhausted or not.

// jobManagerDoc validates a new job's manager task and returns it with
// Azure's defaults.
func (s *Service) jobManagerDoc(account, jobID string, jm *azbatch.JobManagerTask, prep *azbatch.JobPreparationTask, release *azbatch.JobReleaseTask) (*azbatch.JobManagerTask, error) {
	if jm == nil {
		return nil, nil
	}
	m := *jm
	if deref(m.ID) == "" {
		return nil, batch.MissingProperty("jobManagerTask.id")
	}
	if _, err := s.newTaskDoc(account, jobID, jobManagerContent(&m), 0); err != nil {
		if be, ok := err.(*batch.Error); ok {
			for i := range be.Values {
				if be.Values[i].Key == "PropertyName" {
					be.Values[i].Value = "jobManagerTask." + be.Values[i].Value
				}
			}
		}
		return nil, err
	}
	for _, other := range []*string{prepID(prep), releaseID(release)} {
		if other != nil && strings.EqualFold(*other, *m.ID) {
			return nil, batch.InvalidProperty("jobManagerTask.id", *m.ID, "The job manager task's id must differ from the job preparation and release tasks'.")
		}
	}
	if m.KillJobOnCompletion == nil {
		m.KillJobOnCompletion = ptr(true)
	}
	if m.RunExclusive == nil {
		m.RunExclusive = ptr(true)
	}
	if m.AllowLowPriorityNode == nil {
		m.AllowLowPriorityNode = ptr(true)
	}
	return &m, nil
}

func prepID(p *azbatch.JobPreparationTask) *string {
	if p == nil {
		return nil
	}
	return p.ID
}

func releaseID(r *azbatch.JobReleaseTask) *string {
	if r == nil {
		return nil
	}
	return r.ID
}

// jobManagerContent is the task a job manager task becomes.
func jobManagerContent(m *azbatch.JobManagerTask) *azbatch.CreateTaskContent {
	return &azbatch.CreateTaskContent{
		ID:                           m.ID,
		DisplayName:                  m.DisplayName,
		CommandLine:                  m.CommandLine,
		ContainerSettings:            m.ContainerSettings,
		ResourceFiles:                m.ResourceFiles,
		OutputFiles:                  m.OutputFiles,
		EnvironmentSettings:          m.EnvironmentSettings,
		Constraints:                  m.Constraints,
		RequiredSlots:                m.RequiredSlots,
		UserIdentity:                 m.UserIdentity,
		ApplicationPackageReferences: m.ApplicationPackageReferences,
		AuthenticationTokenSettings:  m.AuthenticationTokenSettings,
	}
}

// startJobManagerLocked adds a new job's manager task, the job's first
// task, and dispatches it.
func (s *Service) startJobManagerLocked(ctx context.Context, j *jobState) error {
	m := j.doc.JobManagerTask
	if m == nil {
		return nil
	}
	doc, err := s.newTaskDoc(j.account, j.id(), jobManagerContent(m), jobMaxRetry(j))
	if err != nil {
		return err
	}
	t := newTaskState(j, doc)
	if deref(m.RunExclusive) {
		// Every slot of a node: nothing else runs there meanwhile.
		if p, ok := s.pools[key(j.account, j.poolID())]; ok {
			t.slots = max(t.slots, p.slotsPerNode())
		}
	}
	rec, err := t.record()
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.TaskInsert(context.WithoutCancel(ctx), []store.Task{rec}); err != nil {
		return err
	}
	s.acceptTasksLocked(j, []*taskState{t}, true)
	var w store.Writes
	s.dispatchLocked(&w)
	return s.commit(ctx, &w)
}

// jobManagerEndedLocked applies killJobOnCompletion when a task that ended
// on its own is its job's manager task.
func (s *Service) jobManagerEndedLocked(t *taskState, w *store.Writes) {
	j := t.job
	m := j.doc.JobManagerTask
	if m == nil || !deref(m.KillJobOnCompletion) || !strings.EqualFold(deref(m.ID), t.id()) {
		return
	}
	if st := j.state(); st != azbatch.JobStateActive && st != azbatch.JobStateDisabled {
		return
	}
	s.terminateJobLocked(j, "JMComplete", w)
}
