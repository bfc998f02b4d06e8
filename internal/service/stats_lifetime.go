package service

import (
	"context"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

// accountStartLocked is when an account's lifetime statistics start: its
// creation.
func (s *Service) accountStartLocked(account string) (time.Time, error) {
	a, ok := s.accounts[strings.ToLower(account)]
	if !ok {
		return time.Time{}, batch.Errorf(404, "AccountNotFound", "The specified account does not exist.")
	}
	if a.CreationTime.IsZero() {
		return s.started, nil
	}
	return a.CreationTime, nil
}

// LifetimeJobStats answers Job_GetAllLifetimeStatistics: every task attempt
// of every job the account ever had, deleted jobs included, with the wait
// times Azure reports only here.
func (s *Service) LifetimeJobStats(ctx context.Context, account string) (azbatch.JobStatistics, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start, err := s.accountStartLocked(account)
	if err != nil {
		return azbatch.JobStatistics{}, err
	}
	a := s.accountTotalsLocked(account)
	return *a.Jobs.jobStatistics(s.cfg.AccountURL(account)+"/lifetimejobstats", start, true), nil
}

// LifetimePoolStats answers Pool_GetAllLifetimeStatistics. What Kiln knows
// of its nodes is how long they were in their pools and what their tasks
// consumed, so:
//
//   - usageStats.dedicatedCoreTime is the time dedicated nodes spent in
//     the account's pools, counting one core per node (Kiln records a
//     pool's vmSize but does not model its cores);
//   - resourceStats.avgCPUPercentage is the tasks' CPU time over the
//     nodes' time, and the disk figures are the tasks' I/O (see
//     taskrunner.Usage); memory, disk space and network are not measured
//     and are 0.
func (s *Service) LifetimePoolStats(ctx context.Context, account string) (azbatch.PoolStatistics, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start, err := s.accountStartLocked(account)
	if err != nil {
		return azbatch.PoolStatistics{}, err
	}
	now := s.now()
	a := s.accountTotalsLocked(account)
	nodeTime, dedicated := time.Duration(a.Nodes.NodeTime), time.Duration(a.Nodes.DedicatedNodeTime)
	for _, n := range s.nodes {
		if !strings.EqualFold(n.account, account) || n.doc.AllocationTime == nil {
			continue
		}
		d := max(now.Sub(*n.doc.AllocationTime), 0)
		nodeTime += d
		if n.dedicated {
			dedicated += d
		}
	}
	cpu := float32(0)
	if nodeTime > 0 {
		cpu = float32(100 * float64(a.Jobs.UserCPU+a.Jobs.KernelCPU) / float64(nodeTime))
	}
	start, now = start.UTC(), now.UTC()
	zero := ptr(float32(0))
	return azbatch.PoolStatistics{
		URL:            ptr(s.cfg.AccountURL(account) + "/lifetimepoolstats"),
		StartTime:      &start,
		LastUpdateTime: &now,
		UsageStats: &azbatch.PoolUsageStatistics{
			StartTime: &start, LastUpdateTime: &now,
			DedicatedCoreTime: ptr(batch.FormatDuration(dedicated)),
		},
		ResourceStats: &azbatch.PoolResourceStatistics{
			StartTime: &start, LastUpdateTime: &now,
			AvgCPUPercentage: &cpu,
			AvgMemoryGiB:     zero, PeakMemoryGiB: zero, AvgDiskGiB: zero, PeakDiskGiB: zero,
			DiskReadIOPS: ptr(a.Jobs.ReadOps), DiskWriteIOPS: ptr(a.Jobs.WriteOps),
			DiskReadGiB: gibOf(a.Jobs.ReadBytes), DiskWriteGiB: gibOf(a.Jobs.WriteBytes),
			NetworkReadGiB: zero, NetworkWriteGiB: zero,
		},
	}, nil
}
