package service

import (
	"container/heap"
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// removalGrace is how long a leaving node may take to pick up its shutdown
// order before it is deleted anyway.
const removalGrace = 30 * time.Second

// maintain runs the periodic work: node health, removals, retention.
func (s *Service) maintain() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		var w store.Writes
		s.checkNodesLocked(&w)
		s.checkResizeTimeoutsLocked(&w) // node_ops_resize.go
		s.expireRetentionLocked()
		s.expireJobsLocked(&w)
		s.dispatchLocked(&w)
		if err := s.commit(context.Background(), &w); err != nil {
			s.log.Error("maintenance write", "err", err)
		}
		s.mu.Unlock()
	}
}

func (s *Service) checkNodesLocked(w *store.Writes) {
	now := s.now()
	for _, n := range s.nodes {
		silent := now.Sub(n.lastSeen)
		switch {
		case n.removing && silent > removalGrace || n.removing && !n.shutdownAt.IsZero() && now.Sub(n.shutdownAt) > removalGrace:
			s.deleteNodeLocked(n, w)
		case n.registered && !n.unusable && silent > s.cfg.NodeTimeout:
			s.log.Warn("node stopped heartbeating; marking it unusable", "node", n.id, "silent", silent)
			n.unusable = true
			n.doc.Errors = []azbatch.NodeError{{Code: ptr("NodeHeartbeatLost"), Message: ptr("The node's agent has not contacted the server for " + silent.Round(time.Second).String() + ".")}}
			s.evictTasksLocked(n, true, w)
			s.refreshNodeLocked(n, w)
			s.writeNode(n, w)
			if n.removing {
				s.deleteNodeLocked(n, w)
			}
		case !n.registered && !n.unusable && !n.preempted && silent > 2*time.Minute:
			n.unusable = true
			n.doc.Errors = []azbatch.NodeError{{Code: ptr("NodeStartTimeout"), Message: ptr("The node's agent did not register within 2 minutes.")}}
			s.refreshNodeLocked(n, w)
			s.writeNode(n, w)
			s.reconcilePoolLocked(n.pool, w)
		}
	}
}

// expireJobsLocked terminates the jobs that outlived their
// constraints.maxWallClockTime (measured from creation), as Azure does, with
// reason MaxWallClockTimeExpiry.
func (s *Service) expireJobsLocked(w *store.Writes) {
	now := s.now()
	for _, j := range s.jobs {
		st := j.state()
		if st != azbatch.JobStateActive && st != azbatch.JobStateDisabling && st != azbatch.JobStateDisabled || j.doc.Constraints == nil || j.doc.Constraints.MaxWallClockTime == nil {
			continue
		}
		d, err := batch.ParseDuration(*j.doc.Constraints.MaxWallClockTime)
		if err != nil || d >= batch.MaxDuration || now.Sub(deref(j.doc.CreationTime)) < d {
			continue
		}
		s.terminateJobLocked(j, "MaxWallClockTimeExpiry", w)
	}
}

// retention: completed tasks' directories are deleted from their node once
// their retentionTime has passed.
type retentionItem struct {
	at     time.Time
	nodeID string
	dir    string
}

type retentionHeap []retentionItem

func (h retentionHeap) Len() int           { return len(h) }
func (h retentionHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h retentionHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retentionHeap) Push(x any)        { *h = append(*h, x.(retentionItem)) }
func (h *retentionHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (s *Service) scheduleRetentionLocked(t *taskState) {
	if t.doc.NodeInfo == nil || t.doc.Constraints == nil || t.doc.Constraints.RetentionTime == nil {
		return
	}
	d, err := batch.ParseDuration(*t.doc.Constraints.RetentionTime)
	if err != nil || d >= batch.MaxDuration {
		return
	}
	n, ok := s.nodes[deref(t.doc.NodeInfo.NodeID)]
	if !ok {
		return
	}
	at := s.now().Add(d)
	if n.retainUntil == nil {
		n.retainUntil = map[string]time.Time{}
	}
	// Only the latest run of a directory decides when it goes: an older
	// timer (an earlier run, a deleted and re-created task) is void.
	n.retainUntil[t.dir()] = at
	heap.Push(&s.retention, retentionItem{at: at, nodeID: n.id, dir: t.dir()})
}

func (s *Service) expireRetentionLocked() {
	now := s.now()
	for s.retention.Len() > 0 && !s.retention[0].at.After(now) {
		it := heap.Pop(&s.retention).(retentionItem)
		if n, ok := s.nodes[it.nodeID]; ok && n.retainUntil[it.dir].Equal(it.at) {
			delete(n.retainUntil, it.dir)
			n.clean = append(n.clean, it.dir)
			n.wakeLocked()
		}
	}
}
