package service

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store"
)

// Resize timeouts: a manual resize (not autoscale) that is still going
// after the pool's resizeTimeout (default 15 minutes) stops where it is, as
// Azure's does, with a resizeErrors entry AllocationTimedOut. In Kiln only a
// shrink can last that long (nodes that never register are unusable after
// two minutes): nodes still waiting for their tasks to leave
// (taskcompletion, retaineddata) stay in the pool, and the targets become
// the pool's node counts.

// resizeTimeoutDefault is Azure's default resizeTimeout.
const resizeTimeoutDefault = 15 * time.Minute

// checkResizeTimeoutsLocked stops the resizes that outlived their timeout.
func (s *Service) checkResizeTimeoutsLocked(w *store.Writes) {
	now := s.now()
	for _, p := range s.pools {
		if deref(p.doc.AllocationState) != azbatch.AllocationStateResizing || p.resizeStart.IsZero() ||
			deref(p.doc.EnableAutoScale) || deref(p.doc.State) == azbatch.PoolStateDeleting {
			continue
		}
		timeout := resizeTimeoutDefault
		if d, err := batch.ParseDuration(deref(p.doc.ResizeTimeout)); err == nil && d > 0 {
			timeout = d
		}
		if now.Sub(p.resizeStart) < timeout {
			continue
		}
		s.stopTimedOutResizeLocked(p, w)
	}
}

func (s *Service) stopTimedOutResizeLocked(p *poolState, w *store.Writes) {
	if s.agentsResizeTimedOutLocked(p, w) { // agents pools keep their targets (join.go)
		return
	}
	var ded, low int32
	for _, n := range p.nodes {
		if n.removing && len(n.attempts) > 0 {
			// Its tasks still run: the node stays.
			n.removing = false
			s.refreshNodeLocked(n, w)
			s.writeNode(n, w)
		}
		if n.removing {
			continue
		}
		if n.dedicated {
			ded++
		} else {
			low++
		}
	}
	p.doc.TargetDedicatedNodes, p.doc.TargetLowPriorityNodes = &ded, &low
	p.doc.ResizeErrors = []azbatch.ResizeError{{
		Code:    ptr("AllocationTimedOut"),
		Message: ptr("The desired number of nodes could not be reached within the resize timeout (" + deref(p.doc.ResizeTimeout) + ")."),
	}}
	p.resizeStart = time.Time{}
	s.touchPool(p, w)
	s.reconcilePoolLocked(p, w)
	s.dispatchLocked(w)
}
