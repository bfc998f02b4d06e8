package service

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/store"
)

// Providers that watch their nodes (provider.Watcher, such as Slurm's)
// report what happens to them outside the agent protocol: a node whose
// resource was taken back is preempted (and started again later, as a
// preempted Spot node is replaced, spot.go); one whose resource failed or
// ended is unusable, its tasks requeued, as when its agent goes silent
// (maintain.go), with the provider's reason as the node's error. A node
// whose resource waits in a queue (a pending Slurm job) stays starting as
// long as the provider says so, instead of timing out after 2 minutes.

// watchProviders starts the Watch of every provider that has one; it ends
// with the service.
func (s *Service) watchProviders() {
	seen := map[provider.Provider]bool{}
	for _, p := range s.providerList() {
		w, ok := p.(provider.Watcher)
		if !ok || seen[p] {
			continue
		}
		seen[p] = true
		ctx, cancel := context.WithCancel(context.Background())
		s.wg.Add(2)
		go func() {
			defer s.wg.Done()
			<-s.stop
			cancel()
		}()
		go func() {
			defer s.wg.Done()
			w.Watch(ctx, s.providerEvent)
		}()
	}
}

// providerEvent applies one provider event.
func (s *Service) providerEvent(ev provider.NodeEvent) {
	s.mu.Lock()
	n, ok := s.nodes[ev.NodeID]
	if ok && ev.Waiting {
		// Still queued: the node's start has not timed out (maintain.go).
		if !n.registered && !n.unusable && !n.preempted && !n.removing {
			n.lastSeen = s.now()
		}
		s.mu.Unlock()
		return
	}
	if !ok || ev.Waiting || n.preempted || n.unusable && !ev.Preempted {
		s.mu.Unlock()
		return
	}
	if ev.Uncertain && s.now().Sub(n.lastSeen) < s.cfg.HeartbeatInterval+5*time.Second {
		// The agent still talks to the server: the provider lost track of
		// the node, the node is fine. Heartbeats decide.
		s.mu.Unlock()
		return
	}
	var w store.Writes
	var victims []*nodeState
	var starts []provider.NodeSpec
	if ev.Preempted && !n.removing {
		s.log.Warn("node preempted by its provider", "pool", n.pool.id(), "node", n.id, "reason", ev.Reason)
		s.preemptNodeLocked(n, &w)
		victims = append(victims, n)
	} else {
		code := ev.Code
		if code == "" {
			code = "NodeFailed"
		}
		s.log.Warn("node ended by its provider; marking it unusable", "pool", n.pool.id(), "node", n.id, "reason", ev.Reason)
		n.unusable = true
		n.doc.Errors = []azbatch.NodeError{{Code: ptr(code), Message: ptr(ev.Reason)}}
		s.evictTasksLocked(n, true, &w)
		// Nothing runs there any more: stopped attempts are not waited
		// for, and a new token keeps a dying agent from reviving the node.
		for _, pk := range s.lc.byNode[n] {
			s.forgetKillLocked(pk)
		}
		n.kill = nil
		delete(s.tokens, n.token)
		n.token = randomHex(24)
		s.tokens[n.token] = n
		s.refreshNodeLocked(n, &w)
		s.writeNode(n, &w)
		if n.removing {
			s.deleteNodeLocked(n, &w)
		} else {
			starts = s.reconcilePoolLocked(n.pool, &w)
		}
	}
	s.dispatchLocked(&w)
	err := s.commit(context.Background(), &w)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("provider event write", "node", ev.NodeID, "err", err)
		return
	}
	s.evictNodes(victims)
	s.startNodes(starts)
}
