package service

import (
	"context"
	"sort"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Task preemption (allowTaskPreemption): "If the value is set to True,
// other high priority jobs submitted to the system will take precedence and
// will be able requeue tasks from this job." When a job's next task finds
// no room in its pool, Kiln requeues running tasks of lower-priority jobs
// that allow preemption, on one node, until the task fits there, and
// starts it. A preempted task goes back to active with its requeueCount
// one higher (a requeue is not a retry), and waits in its job's queue like
// any other.
//
// Victims are chosen on the node that needs the fewest of them, lowest
// priority first, then the most recently started (the least work lost). A
// job never preempts tasks of a job of equal or higher priority, and
// maxParallelTasks still bounds the preempting job.

// preemptLocked places what it can of the queued tasks of jobs (the pool's
// jobs with queued tasks) by preempting. dispatchLocked calls it once
// placement on free slots is over.
func (s *Service) preemptLocked(p *poolState, jobs []*jobState, w *store.Writes) {
	if len(jobs) == 0 || !s.preemptibleInPoolLocked(p, jobs) {
		return
	}
	byPrio := append([]*jobState(nil), jobs...)
	sort.SliceStable(byPrio, func(a, b int) bool {
		return deref(byPrio[a].doc.Priority) > deref(byPrio[b].doc.Priority)
	})
	for _, j := range byPrio {
		if j.state() != azbatch.JobStateActive {
			continue
		}
		for {
			t := j.peek()
			if t == nil {
				break
			}
			if mp := deref(j.doc.MaxParallelTasks); mp > 0 && j.running >= int(mp) {
				break
			}
			if s.multiInstanceLocked(t) {
				break // it waits for free nodes (multi_instance.go)
			}
			n, victims := s.victimsLocked(p, deref(j.doc.Priority), t.slots)
			if n == nil || prepFailedOn(n, j) {
				break
			}
			for _, v := range victims {
				if n.free() >= t.slots {
					break
				}
				s.requeueTaskLocked(v, w)
			}
			j.pop()
			if _, err := s.docLocked(context.Background(), t); err != nil {
				s.log.Error("load task to assign it", "job", j.id(), "task", t.id(), "err", err)
				continue
			}
			s.assignLocked(t, n, w)
		}
	}
}

// preemptibleInPoolLocked is a cheap gate: does a job on the pool that
// allows preemption run a task, with a priority below the highest of jobs?
func (s *Service) preemptibleInPoolLocked(p *poolState, jobs []*jobState) bool {
	top := deref(jobs[0].doc.Priority)
	for _, j := range jobs {
		top = max(top, deref(j.doc.Priority))
	}
	for _, j := range s.jobs {
		if j.running > 0 && deref(j.doc.AllowTaskPreemption) && deref(j.doc.Priority) < top &&
			j.account == p.account && j.poolID() != "" && s.pools[key(j.account, j.poolID())] == p {
			return true
		}
	}
	return false
}

// victimsLocked finds the schedulable node of p where a task of slots
// slots fits after preempting the fewest tasks of jobs of priority below
// prio that allow preemption, and returns it with its candidate victims in
// preemption order (nil when no node can make room).
func (s *Service) victimsLocked(p *poolState, prio int32, slots int) (*nodeState, []*taskState) {
	var best *nodeState
	var bestVictims []*taskState
	bestNeeded := 0
	for _, n := range p.nodes {
		if !n.schedulable() || n.slots < slots {
			continue
		}
		var vs []*taskState
		for _, a := range n.attempts {
			if t := a.task; t != nil && deref(t.job.doc.AllowTaskPreemption) && deref(t.job.doc.Priority) < prio {
				vs = append(vs, t)
			}
		}
		sort.Slice(vs, func(a, b int) bool {
			pa, pb := deref(vs[a].job.doc.Priority), deref(vs[b].job.doc.Priority)
			if pa != pb {
				return pa < pb
			}
			return startedAfter(vs[a], vs[b])
		})
		free, needed := n.free(), 0
		for _, v := range vs {
			if free >= slots {
				break
			}
			free += v.slots
			needed++
		}
		if free < slots || needed == 0 {
			continue // no room even so, or room without preempting
		}
		if best == nil || needed < bestNeeded || needed == bestNeeded && n.id < best.id {
			best, bestVictims, bestNeeded = n, vs, needed
		}
	}
	return best, bestVictims
}

// startedAfter orders tasks most recently started first; a task still
// preparing has not started and comes before any running one.
func startedAfter(a, b *taskState) bool {
	sa, sb := a.doc.ExecutionInfo.StartTime, b.doc.ExecutionInfo.StartTime
	switch {
	case sa == nil:
		return sb != nil
	case sb == nil:
		return false
	}
	return sa.After(*sb)
}
