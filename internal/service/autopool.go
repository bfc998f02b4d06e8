package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
)

// Auto pools. A job whose poolInfo has an autoPoolSpecification runs on a
// pool Kiln creates for it. poolLifetimeOption says whose pool it is: the
// job's ("job": created with the job, deleted when the job completes or is
// deleted) or, for the jobs of a job schedule, the schedule's ("jobschedule":
// created with the schedule's first job, shared by its later jobs, deleted
// when the schedule completes or is deleted). keepAlive keeps the pool after
// its lifetime; it is then the user's to delete.
//
// As in Azure, the job's poolInfo shows the specification and its
// executionInfo.poolId the pool, whose id is the autoPoolIdPrefix, an
// underscore and a GUID (the GUID alone without a prefix).

// AutoPoolIDPrefixMax is the longest autoPoolIdPrefix Azure accepts.
const AutoPoolIDPrefixMax = 20

// isScheduleJobID reports whether id is one a job schedule gives its jobs,
// <schedule>:job-<n>. Users cannot choose such ids: JobAdd refuses colons.
func isScheduleJobID(id string) bool { return strings.Contains(id, ":") }

// newJobPoolInfo validates the poolInfo of a job to create (jobID says
// whether it is a schedule's) and returns the poolInfo the job shows.
func (s *Service) newJobPoolInfo(account, jobID string, pi *azbatch.PoolInfo) (*azbatch.PoolInfo, error) {
	if pi == nil {
		return nil, batch.MissingProperty("poolInfo")
	}
	if pi.AutoPoolSpecification == nil {
		if deref(pi.PoolID) == "" {
			return nil, batch.MissingProperty("poolInfo.poolId")
		}
		return &azbatch.PoolInfo{PoolID: pi.PoolID}, nil
	}
	if deref(pi.PoolID) != "" {
		return nil, batch.InvalidProperty("poolInfo.poolId", *pi.PoolID, "Specify either poolId or autoPoolSpecification, not both.")
	}
	spec, err := s.validateAutoPoolSpec(account, pi.AutoPoolSpecification, isScheduleJobID(jobID))
	if err != nil {
		return nil, err
	}
	return &azbatch.PoolInfo{AutoPoolSpecification: spec}, nil
}

// validateAutoPoolSpec checks an auto pool specification the way pool add
// checks a pool and returns it with Azure's defaults filled in. The
// jobschedule lifetime is allowed only for the jobs of a schedule.
func (s *Service) validateAutoPoolSpec(account string, spec *azbatch.AutoPoolSpecification, onSchedule bool) (*azbatch.AutoPoolSpecification, error) {
	const prop = "poolInfo.autoPoolSpecification"
	if spec.PoolLifetimeOption == nil {
		return nil, batch.MissingProperty(prop + ".poolLifetimeOption")
	}
	life := azbatch.PoolLifetimeOption(strings.ToLower(string(*spec.PoolLifetimeOption)))
	switch life {
	case azbatch.PoolLifetimeOptionJob:
	case azbatch.PoolLifetimeOptionJobSchedule:
		if !onSchedule {
			return nil, batch.InvalidProperty(prop+".poolLifetimeOption", string(*spec.PoolLifetimeOption),
				"The jobschedule lifetime applies only to job schedules, not to jobs.")
		}
	default:
		return nil, batch.InvalidProperty(prop+".poolLifetimeOption", string(*spec.PoolLifetimeOption), "Allowed values are job and jobschedule.")
	}
	if p := deref(spec.AutoPoolIDPrefix); p != "" {
		if len(p) > AutoPoolIDPrefixMax {
			return nil, batch.InvalidProperty(prop+".autoPoolIdPrefix", p, fmt.Sprintf("The prefix can be up to %d characters long.", AutoPoolIDPrefixMax))
		}
		if err := batch.ValidateID(prop+".autoPoolIdPrefix", p, AutoPoolIDPrefixMax); err != nil {
			return nil, err
		}
	}
	if spec.Pool == nil {
		return nil, batch.MissingProperty(prop + ".pool")
	}
	if _, err := s.newPoolDoc(account, autoPoolContent("autopool", spec.Pool)); err != nil {
		return nil, prefixProperty(err, prop+".pool.")
	}
	return &azbatch.AutoPoolSpecification{
		AutoPoolIDPrefix:   spec.AutoPoolIDPrefix,
		PoolLifetimeOption: &life,
		KeepAlive:          ptr(deref(spec.KeepAlive)),
		Pool:               spec.Pool,
	}, nil
}

// prefixProperty returns err with its PropertyName detail prefixed, so that
// a pool specification's error names the property where the request has it.
func prefixProperty(err error, prefix string) error {
	var be *batch.Error
	if !errors.As(err, &be) {
		return err
	}
	c := *be
	c.Values = append([]batch.KV(nil), be.Values...)
	for i := range c.Values {
		if c.Values[i].Key == "PropertyName" {
			c.Values[i].Value = prefix + c.Values[i].Value
		}
	}
	return &c
}

// autoPoolContent is the pool add request an auto pool specification makes.
func autoPoolContent(id string, ps *azbatch.PoolSpecification) *azbatch.CreatePoolContent {
	return &azbatch.CreatePoolContent{
		ID:                           &id,
		VMSize:                       ps.VMSize,
		DisplayName:                  ps.DisplayName,
		ApplicationPackageReferences: ps.ApplicationPackageReferences,
		AutoScaleEvaluationInterval:  ps.AutoScaleEvaluationInterval,
		AutoScaleFormula:             ps.AutoScaleFormula,
		CertificateReferences:        ps.CertificateReferences,
		EnableAutoScale:              ps.EnableAutoScale,
		EnableInterNodeCommunication: ps.EnableInterNodeCommunication,
		Metadata:                     ps.Metadata,
		MountConfiguration:           ps.MountConfiguration,
		NetworkConfiguration:         ps.NetworkConfiguration,
		ResizeTimeout:                ps.ResizeTimeout,
		StartTask:                    ps.StartTask,
		TargetDedicatedNodes:         ps.TargetDedicatedNodes,
		TargetLowPriorityNodes:       ps.TargetLowPriorityNodes,
		TargetNodeCommunicationMode:  ps.TargetNodeCommunicationMode,
		TaskSchedulingPolicy:         ps.TaskSchedulingPolicy,
		TaskSlotsPerNode:             ps.TaskSlotsPerNode,
		UpgradePolicy:                ps.UpgradePolicy,
		UserAccounts:                 ps.UserAccounts,
		VirtualMachineConfiguration:  ps.VirtualMachineConfiguration,
	}
}

// newAutoPoolID names an auto pool: prefix_GUID, or the GUID alone.
func newAutoPoolID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	guid := fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if prefix == "" {
		return guid
	}
	return prefix + "_" + guid
}

func autoPoolSpec(j *jobState) *azbatch.AutoPoolSpecification {
	if j.doc.PoolInfo == nil {
		return nil
	}
	return j.doc.PoolInfo.AutoPoolSpecification
}

// createAutoPoolLocked gives a job just created its auto pool, if it has an
// autoPoolSpecification, and commits the pool with the job's executionInfo.
func (s *Service) createAutoPoolLocked(ctx context.Context, j *jobState) error {
	if autoPoolSpec(j) == nil {
		return nil
	}
	var w store.Writes
	starts := s.ensureAutoPoolLocked(j, &w)
	if err := s.commit(ctx, &w); err != nil {
		return err
	}
	s.startNodes(starts)
	return nil
}

// ensureAutoPoolLocked makes sure an unfinished job with an auto pool has
// its pool: the schedule's for the jobschedule lifetime, else its own. It
// creates what is missing, which after a restart between the job's commit
// and the pool's is the pool itself. It returns the nodes to start once the
// writes are committed.
func (s *Service) ensureAutoPoolLocked(j *jobState, w *store.Writes) []provider.NodeSpec {
	spec := autoPoolSpec(j)
	if spec == nil {
		return nil
	}
	if j.doc.ExecutionInfo == nil {
		j.doc.ExecutionInfo = &azbatch.JobExecutionInfo{StartTime: j.doc.CreationTime}
	}
	id := deref(j.doc.ExecutionInfo.PoolID)
	var sc *scheduleState
	if deref(spec.PoolLifetimeOption) == azbatch.PoolLifetimeOptionJobSchedule {
		sc = s.scheduleOfJobLocked(j)
		if sc != nil && id == "" {
			id = sc.autoPoolID
		}
	}
	if id != "" {
		if _, ok := s.pools[key(j.account, id)]; ok {
			if deref(j.doc.ExecutionInfo.PoolID) != id {
				j.doc.ExecutionInfo.PoolID = &id
				s.writeJob(j, w)
			}
			return nil
		}
	} else {
		id = newAutoPoolID(deref(spec.AutoPoolIDPrefix))
	}
	doc, err := s.newPoolDoc(j.account, autoPoolContent(id, spec.Pool))
	if err != nil {
		// Checked when the job was added: only a package removed since
		// then gets here. Azure completes the job with a scheduling error.
		s.log.Warn("auto pool refused", "job", j.id(), "err", err)
		code := "InvalidAutoPoolSettings"
		var be *batch.Error
		if errors.As(err, &be) && be.Code == "InvalidApplicationPackageReferences" {
			code = "InvalidApplicationPackageReferencesInAutoPool"
		}
		j.doc.ExecutionInfo.SchedulingError = &azbatch.JobSchedulingError{
			Category: ptr(azbatch.ErrorCategoryUserError), Code: ptr(code), Message: ptr(err.Error()),
		}
		if st := j.state(); st == azbatch.JobStateActive || st == azbatch.JobStateDisabled {
			s.terminateJobLocked(j, "AutoPoolCreationFailed", w)
		}
		return nil
	}
	now := s.now()
	p := &poolState{account: j.account, doc: doc, nodes: map[string]*nodeState{}, deallocation: azbatch.NodeDeallocationOptionRequeue}
	p.doc.ETag = ptr(azcore.ETag(s.newETag()))
	p.doc.LastModified = &now
	s.pools[key(j.account, id)] = p
	s.writePool(p, w)
	j.doc.ExecutionInfo.PoolID = &id
	s.writeJob(j, w)
	if sc != nil {
		sc.autoPoolID = id
		s.writeScheduleLocked(sc, w)
	}
	s.log.Info("auto pool created", "job", j.id(), "pool", id)
	starts := s.reconcilePoolLocked(p, w)
	if deref(p.doc.EnableAutoScale) {
		starts = append(starts, s.startAutoScaleLocked(p, w)...)
	}
	return starts
}

// releaseJobAutoPoolLocked deletes the auto pool of a job that completed or
// was deleted, when the pool lived for the job and is not kept alive.
func (s *Service) releaseJobAutoPoolLocked(j *jobState, w *store.Writes) {
	spec := autoPoolSpec(j)
	if spec == nil || deref(spec.KeepAlive) || deref(spec.PoolLifetimeOption) != azbatch.PoolLifetimeOptionJob {
		return
	}
	s.deleteAutoPoolLocked(j.account, j.poolID(), w)
}

func (s *Service) deleteAutoPoolLocked(account, poolID string, w *store.Writes) {
	if poolID == "" {
		return
	}
	if p, ok := s.pools[key(account, poolID)]; ok {
		s.log.Info("auto pool lifetime ended", "pool", poolID)
		s.deletePoolLocked(p, w)
	}
}

// recoverAutoPoolsLocked runs at load: unfinished jobs whose auto pool is
// missing get it (created in the same pass as the pools' nodes).
func (s *Service) recoverAutoPoolsLocked(w *store.Writes) []provider.NodeSpec {
	var starts []provider.NodeSpec
	for _, j := range s.jobs {
		if st := j.state(); st != azbatch.JobStateActive && st != azbatch.JobStateDisabled {
			continue
		}
		if autoPoolSpec(j) == nil {
			continue
		}
		if _, ok := s.pools[key(j.account, j.poolID())]; ok && j.poolID() != "" {
			continue
		}
		starts = append(starts, s.ensureAutoPoolLocked(j, w)...)
	}
	return starts
}

// jobEndedLocked runs when a job completes or is deleted: its auto pool may
// go, and its schedule learns that its active job ended.
func (s *Service) jobEndedLocked(j *jobState, w *store.Writes) {
	s.releaseJobAutoPoolLocked(j, w)
	s.scheduleJobEndedLocked(j, w)
}
