package service

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Statistics, as Azure keeps them:
//
//   - a task's (TaskStatistics, Get Task with $expand=stats) sum what its
//     attempts consumed, retries included, and its waitTime is the time
//     from its creation to the start of its latest execution;
//   - a job's (JobStatistics, Get/List Job with $expand=stats) sum its
//     tasks' attempts and count the tasks that succeeded or failed (a task
//     fails when it completes with a failure: retries exhausted, a
//     pre-processing or upload error, or terminated) and the retries; Azure
//     reports no waitTime for jobs;
//   - an account's lifetime statistics (Job_GetAllLifetimeStatistics) sum
//     every job it ever had, deleted ones included, waitTime too.
//
// An attempt counts once it has ended: Azure refreshes statistics
// periodically, Kiln when an attempt ends, so a running attempt is not in
// them yet. Usage is what the agent measured of the process (see
// taskrunner.Usage): CPU and storage bytes of the process and the
// descendants it waited for, read and write system calls as I/O
// operations, and the process's run time as wall clock. Attempts stopped
// by the server (task terminated, job disabled, terminated or deleted,
// preempted) count when their agent reports how the process ended.
//
// A job keeps exact totals in memory and in its record (as "kilnUsage",
// beside the wire document, which rounds GiB to float32); the account's
// live in the store's account statistics records.

// usageTotals sums resource usage and task outcomes. Durations and counts
// are exact; the wire shapes are rendered from them.
type usageTotals struct {
	UserCPU    time.Duration `json:"userCpu"`
	KernelCPU  time.Duration `json:"kernelCpu"`
	WallClock  time.Duration `json:"wallClock"`
	Wait       time.Duration `json:"wait"`
	ReadOps    int64         `json:"readOps"`
	WriteOps   int64         `json:"writeOps"`
	ReadBytes  int64         `json:"readBytes"`
	WriteBytes int64         `json:"writeBytes"`
	Succeeded  int64         `json:"succeeded"`
	Failed     int64         `json:"failed"`
	Retries    int64         `json:"retries"`
	LastUpdate time.Time     `json:"lastUpdate"`
}

// usageOf is what one ended attempt consumed. An agent that sends no stats
// (older ones) is credited the time between the process's start and the
// event, and nothing else.
func usageOf(ev protocol.Event) usageTotals {
	if st := ev.Stats; st != nil {
		return usageTotals{
			UserCPU: time.Duration(st.UserCPU), KernelCPU: time.Duration(st.KernelCPU), WallClock: time.Duration(st.WallClock),
			ReadOps: st.ReadOps, WriteOps: st.WriteOps, ReadBytes: st.ReadBytes, WriteBytes: st.WriteBytes,
		}
	}
	var u usageTotals
	if !ev.StartTime.IsZero() && ev.Time.After(ev.StartTime) {
		u.WallClock = ev.Time.Sub(ev.StartTime)
	}
	return u
}

// addUsage adds what an attempt consumed (not the outcome counters).
func (u *usageTotals) addUsage(v usageTotals) {
	u.UserCPU += v.UserCPU
	u.KernelCPU += v.KernelCPU
	u.WallClock += v.WallClock
	u.ReadOps += v.ReadOps
	u.WriteOps += v.WriteOps
	u.ReadBytes += v.ReadBytes
	u.WriteBytes += v.WriteBytes
}

const gib = 1 << 30

func gibOf(b int64) *float32 { return ptr(float32(float64(b) / gib)) }

// jobStatistics renders totals as Azure's JobStatistics.
func (u *usageTotals) jobStatistics(url string, start time.Time, withWait bool) *azbatch.JobStatistics {
	last := u.LastUpdate
	if last.IsZero() {
		last = start
	}
	wait := time.Duration(0)
	if withWait {
		wait = u.Wait
	}
	return &azbatch.JobStatistics{
		URL:               ptr(url),
		StartTime:         ptr(start.UTC()),
		LastUpdateTime:    ptr(last.UTC()),
		UserCPUTime:       ptr(batch.FormatDuration(u.UserCPU)),
		KernelCPUTime:     ptr(batch.FormatDuration(u.KernelCPU)),
		WallClockTime:     ptr(batch.FormatDuration(u.WallClock)),
		ReadIOps:          ptr(u.ReadOps),
		WriteIOps:         ptr(u.WriteOps),
		ReadIOGiB:         gibOf(u.ReadBytes),
		WriteIOGiB:        gibOf(u.WriteBytes),
		NumSucceededTasks: ptr(u.Succeeded),
		NumFailedTasks:    ptr(u.Failed),
		NumTaskRetries:    ptr(u.Retries),
		WaitTime:          ptr(batch.FormatDuration(wait)),
	}
}

// addTaskStats adds an attempt's usage to a task document's statistics;
// start is when the attempt's process started (zero: not known). A task
// sums a handful of attempts, so its totals live in the document itself
// (float32 GiB lose nothing that matters at that scale).
func addTaskStats(doc *azbatch.Task, u usageTotals, start, now time.Time) {
	st := doc.Stats
	if st == nil {
		st = &azbatch.TaskStatistics{URL: doc.URL, StartTime: doc.CreationTime}
		doc.Stats = st
	}
	dur := func(p *string) time.Duration {
		if p == nil {
			return 0
		}
		d, _ := batch.ParseDuration(*p)
		return d
	}
	bytesOf := func(p *float32) int64 {
		if p == nil {
			return 0
		}
		return int64(float64(*p) * gib)
	}
	st.UserCPUTime = ptr(batch.FormatDuration(dur(st.UserCPUTime) + u.UserCPU))
	st.KernelCPUTime = ptr(batch.FormatDuration(dur(st.KernelCPUTime) + u.KernelCPU))
	st.WallClockTime = ptr(batch.FormatDuration(dur(st.WallClockTime) + u.WallClock))
	st.ReadIOPS = ptr(deref(st.ReadIOPS) + u.ReadOps)
	st.WriteIOPS = ptr(deref(st.WriteIOPS) + u.WriteOps)
	st.ReadIOGiB = gibOf(bytesOf(st.ReadIOGiB) + u.ReadBytes)
	st.WriteIOGiB = gibOf(bytesOf(st.WriteIOGiB) + u.WriteBytes)
	// The wait is up to the latest execution's start.
	if start.IsZero() && doc.ExecutionInfo != nil && doc.ExecutionInfo.StartTime != nil {
		start = *doc.ExecutionInfo.StartTime
	}
	if !start.IsZero() && doc.CreationTime != nil {
		st.WaitTime = ptr(batch.FormatDuration(max(start.Sub(*doc.CreationTime), 0)))
	} else if st.WaitTime == nil {
		st.WaitTime = ptr("PT0S")
	}
	st.LastUpdateTime = ptr(now.UTC())
}

// taskWait is the wait of a completed task: from its creation to the start
// of its latest execution (0 if it never ran).
func taskWait(doc *azbatch.Task) time.Duration {
	ei := doc.ExecutionInfo
	if ei == nil || ei.StartTime == nil || doc.CreationTime == nil || doc.NodeInfo == nil {
		return 0
	}
	return max(ei.StartTime.Sub(*doc.CreationTime), 0)
}
