package service

import (
	"context"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/provider"
	"github.com/kilnbatch/kiln/internal/scheduler"
	"github.com/kilnbatch/kiln/internal/store"
)

// Spot/low-priority nodes and their preemption, as Azure Batch has them:
//
//   - A preempted node's state becomes preempted; its VM is gone (processes
//     and local data), and the tasks it ran are requeued (requeueCount + 1,
//     retryCount unchanged) to run again on another node.
//   - The node stays listed in its pool, and in currentLowPriorityNodes
//     ("Spot/Low-priority Compute Nodes which have been preempted are
//     included in this count"), until replacement capacity is found: then
//     it keeps its id but is reinitialized, going through creating and
//     starting (its start task runs again) before it takes tasks.
//   - $PreemptedNodeCount, for autoscale formulas, is the number of the
//     pool's nodes in the preempted state (PoolPreemptedNodeCount).
//
// Kiln's nodes are never needed back, so preemption is simulated: at random
// (SpotConfig.Rate), on a schedule (SpotConfig.Schedule) or on demand
// (PreemptNodes, behind POST /kiln/pools/{poolId}/preempt). Replacement
// capacity is always there after SpotConfig.ReplaceDelay.

// spotState is the service's preemption bookkeeping (under s.mu).
type spotState struct {
	model *spotModel
	// evicting holds the nodes whose provider eviction is still running:
	// they are not restarted before it is over.
	evicting map[*nodeState]bool
	// events holds the preemption times of each pool (by key) of the last
	// day, for PoolPreemptionsSince.
	events map[string][]time.Time
}

// spotEventsKept bounds how long preemption times are kept.
const spotEventsKept = 24 * time.Hour

func (s *Service) spotRand() float64 {
	if s.cfg.Spot.Rand != nil {
		return s.cfg.Spot.Rand()
	}
	return rand.Float64()
}

func (s *Service) spotReplaceDelay() time.Duration {
	if d := s.cfg.Spot.ReplaceDelay; d > 0 {
		return d
	}
	return SpotReplaceDelayDefault
}

// preemptible reports whether n can be preempted now: a low-priority node
// whose agent runs, of a pool that is not being deleted.
func (n *nodeState) preemptible() bool {
	return !n.dedicated && n.registered && !n.unusable && !n.removing && !n.preempted &&
		deref(n.pool.doc.State) == azbatch.PoolStateActive && n.pool.kiln.Provider != providerAgents // join.go
}

// PreemptNodes preempts low-priority nodes of a pool on demand: the named
// ones, or else count of them (at least one) chosen at random among those
// running. It returns the ids of the nodes preempted.
func (s *Service) PreemptNodes(ctx context.Context, account, poolID string, nodeIDs []string, count int) ([]string, error) {
	if count < 0 {
		return nil, batch.InvalidProperty("count", itoa(int32(count)), "The value must not be negative.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.writablePoolLocked(account, poolID, Conditions{})
	if err != nil {
		return nil, err
	}
	if s.joinsAgentsLocked(p) { // join.go
		return nil, errNoPreemptAgents(p)
	}
	var victims []*nodeState
	if len(nodeIDs) > 0 {
		seen := map[string]bool{}
		for _, id := range nodeIDs {
			n, ok := p.nodes[id]
			if !ok {
				return nil, batch.NotFound("NodeNotFound", "node", id)
			}
			switch {
			case n.dedicated:
				return nil, batch.Conflict("NodeIsDedicated", "Only Spot/low-priority nodes can be preempted; the node is dedicated.").With("nodeId", id)
			case n.preempted:
				return nil, batch.Conflict("NodePreempted", "The node is already preempted.").With("nodeId", id)
			case n.removing:
				return nil, batch.Conflict("NodeBeingRemoved", "The node is leaving the pool.").With("nodeId", id)
			case !n.preemptible():
				return nil, batch.Conflict("NodeNotReady", "The node is not running: only running nodes can be preempted.").With("nodeId", id)
			}
			if !seen[id] {
				seen[id] = true
				victims = append(victims, n)
			}
		}
	} else {
		var cands []*nodeState
		for _, n := range p.nodes {
			if n.preemptible() {
				cands = append(cands, n)
			}
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
		rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		victims = cands[:min(max(count, 1), len(cands))]
	}
	var w store.Writes
	ids := make([]string, 0, len(victims))
	for _, n := range victims {
		s.preemptNodeLocked(n, &w)
		ids = append(ids, n.id)
	}
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return nil, err
	}
	s.evictNodes(victims)
	sort.Strings(ids)
	return ids, nil
}

// preemptNodeLocked puts a node in the preempted state: its tasks are
// requeued, everything its agent held is forgotten (the VM and its disk are
// gone), and it gets a new token so the old agent can no longer report.
// The provider eviction (evictNodes) follows the commit.
func (s *Service) preemptNodeLocked(n *nodeState, w *store.Writes) {
	s.log.Info("preempting low-priority node", "pool", n.pool.id(), "node", n.id, "tasks", len(n.attempts))
	s.evictTasksLocked(n, true, w)
	// Stopped attempts are not waited for: the processes die with the VM.
	for _, pk := range s.lc.byNode[n] {
		s.forgetKillLocked(pk)
	}
	now := s.now()
	n.preempted = true
	n.registered = false
	n.startFail = false
	n.fileURL, n.rootDir = "", ""
	n.kill, n.clean, n.sentClean, n.retainUntil = nil, nil, nil, nil
	// Job preparation runs again on the new VM; release tasks have no node
	// left to run on.
	n.preps = nil
	n.doc.StartTaskInfo = nil
	n.doc.Errors = nil
	n.doc.IPAddress = nil
	delete(s.tokens, n.token)
	n.token, n.secret = randomHex(24), randomHex(24)
	s.tokens[n.token] = n
	s.refreshNodeLocked(n, w)
	s.writeNode(n, w)
	s.reconcilePoolLocked(n.pool, w)
	if s.spot.events == nil {
		s.spot.events = map[string][]time.Time{}
	}
	k := key(n.pool.account, n.pool.id())
	ev := append(s.spot.events[k], now)
	for len(ev) > 0 && now.Sub(ev[0]) > spotEventsKept {
		ev = ev[1:]
	}
	s.spot.events[k] = ev
	if s.spot.evicting == nil {
		s.spot.evicting = map[*nodeState]bool{}
	}
	s.spot.evicting[n] = true
	n.wakeLocked()
}

// evictNodes asks the provider to evict preempted nodes; called after the
// preemption is committed, without the lock. A provider that cannot preempt
// stops the node.
func (s *Service) evictNodes(nodes []*nodeState) {
	for _, n := range nodes {
		spec := provider.NodeSpec{Account: n.account, PoolID: n.pool.id(), NodeID: n.id, Dedicated: n.dedicated}
		go func() {
			var err error
			prov := s.specProvider(spec) // providers.go
			if pp, ok := prov.(provider.Preempter); ok {
				err = pp.Preempt(context.Background(), spec)
			} else {
				err = prov.Stop(context.Background(), spec)
			}
			if err != nil {
				s.log.Warn("evict preempted node", "node", spec.NodeID, "err", err)
			}
			s.mu.Lock()
			delete(s.spot.evicting, n)
			s.mu.Unlock()
		}()
	}
}

// replacePreemptedLocked reinitializes the preempted nodes whose delay has
// passed, as Azure does when it finds replacement capacity: same id, new
// VM, through creating and starting. It returns the nodes to start once
// the writes are committed.
func (s *Service) replacePreemptedLocked(w *store.Writes) []provider.NodeSpec {
	var starts []provider.NodeSpec
	now := s.now()
	for _, n := range s.nodes {
		if !n.preempted || n.removing || s.spot.evicting[n] || deref(n.pool.doc.State) != azbatch.PoolStateActive {
			continue
		}
		if now.Sub(deref(n.doc.StateTransitionTime)) < s.spotReplaceDelay() {
			continue
		}
		s.log.Info("replacing preempted node", "pool", n.pool.id(), "node", n.id)
		n.preempted = false
		n.lastSeen = now
		n.doc.State = ptr(azbatch.NodeStateCreating)
		n.doc.StateTransitionTime = &now
		s.refreshNodeLocked(n, w)
		s.writeNode(n, w)
		s.reconcilePoolLocked(n.pool, w)
		starts = append(starts, provider.NodeSpec{Account: n.account, PoolID: n.pool.id(), NodeID: n.id, Dedicated: n.dedicated, Token: n.token, ServerURL: s.cfg.AgentURL})
	}
	return starts
}

// runSpot is the preemption loop: once a second it applies the rate and the
// schedule, and replaces preempted nodes whose delay has passed.
func (s *Service) runSpot() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.spotTick()
	}
}

func (s *Service) spotTick() {
	s.mu.Lock()
	var w store.Writes
	var victims []*nodeState
	if s.cfg.Spot.Rate > 0 || len(s.cfg.Spot.Schedule) > 0 {
		if s.spot.model == nil {
			s.spot.model = newSpotModel(s.cfg.Spot, s.started)
		}
		var cands []*nodeState
		for _, n := range s.nodes {
			if n.preemptible() {
				cands = append(cands, n)
			}
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
		ids := make([]string, len(cands))
		for i, n := range cands {
			ids[i] = n.id
		}
		for _, id := range s.spot.model.step(s.now(), ids, s.spotRand) {
			n := s.nodes[id]
			s.preemptNodeLocked(n, &w)
			victims = append(victims, n)
		}
	}
	starts := s.replacePreemptedLocked(&w)
	if len(victims) > 0 {
		s.dispatchLocked(&w)
	}
	err := s.commit(context.Background(), &w)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("spot preemption write", "err", err)
		return
	}
	s.evictNodes(victims)
	s.startNodes(starts)
}

// pickNode is scheduler.Pick for task t among nodes (cands in the same
// order): a job manager task whose allowLowPriorityNode is false goes to
// dedicated nodes only, as on Azure.
func pickNode(t *taskState, nodes []*nodeState, cands []scheduler.Candidate, fill scheduler.Fill) int {
	m := t.job.doc.JobManagerTask
	if m == nil || deref(m.AllowLowPriorityNode) || !strings.EqualFold(deref(m.ID), t.id()) {
		return scheduler.Pick(cands, t.slots, fill)
	}
	saved := make([]int, len(cands))
	for i := range cands {
		saved[i] = cands[i].Free
		if !nodes[i].dedicated {
			cands[i].Free = 0
		}
	}
	picked := scheduler.Pick(cands, t.slots, fill)
	for i := range cands {
		cands[i].Free = saved[i]
	}
	return picked
}

// PoolPreemptedNodeCount is the number of the pool's nodes in the preempted
// state now: the value of the autoscale variable $PreemptedNodeCount at a
// sample.
func (s *Service) PoolPreemptedNodeCount(account, poolID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return 0, err
	}
	return preemptedNodeCountLocked(p), nil
}

// preemptedNodeCountLocked is PoolPreemptedNodeCount for callers holding
// s.mu.
func preemptedNodeCountLocked(p *poolState) int {
	c := 0
	for _, n := range p.nodes {
		if n.preempted {
			c++
		}
	}
	return c
}

// PoolPreemptionsSince is the number of preemptions of the pool's nodes
// since a time (kept for a day; a restart forgets them).
func (s *Service) PoolPreemptionsSince(account, poolID string, since time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return 0, err
	}
	c := 0
	for _, t := range s.spot.events[key(p.account, p.id())] {
		if !t.Before(since) {
			c++
		}
	}
	return c, nil
}
