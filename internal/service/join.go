package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// Remote agents (bring-your-own nodes, docs/remote-agents.md). A pool whose
// provider is "agents" gets no node from the service: agents started by
// hand on any machine (`kiln agent --pool P --token T`) register with the
// pool's join token (protocol.RegisterRequest.Join) and are admitted as new
// nodes while the pool has fewer live nodes of their kind (dedicated, or
// low-priority with --low-priority) than its target; the others are told to
// wait as standby and register again every StandbyRetryAfter until a place
// frees up. Shrinking the pool (resize, removeNodes, autoscale) sends the
// leaving nodes' agents Shutdown, after which they wait as standby again.
//
// An agent proposes the node id it had before (kept in its root directory);
// the node keeps it when no other node of another pool has it, so an agent
// that restarts reconciles as the same node (its Known attempts), and a
// standby agent is admitted under the id it already showed.
//
// Join tokens are per pool, random, and kept in the pool's record
// (poolKiln.JoinToken). Rotating a pool's token revokes the old one: every
// node of the pool (all joined with it) is removed, its tasks requeued, and
// agents presenting the old token are refused (403) and exit.
//
// Resize timeout: a pool still waiting for agents after its resizeTimeout
// keeps its targets (unlike local pools, which stop where they are): it
// goes steady with a resizeErrors entry AllocationTimedOut, as Azure
// reports, and agents that come later are still admitted up to the
// targets. A shrink that outlives the timeout (nodes finishing their tasks
// before leaving) stops where it is, as for every pool.

// StandbyRetryAfter is how long a standby agent waits before it registers
// again.
const StandbyRetryAfter = 2 * time.Second

// standbyForget is how long a standby agent that stopped registering stays
// listed.
const standbyForget = 5 * StandbyRetryAfter

// nodeIDPattern is the shape of node ids agents may propose.
var nodeIDPattern = regexp.MustCompile(`^tvmps_[0-9a-f]{32,64}_[dp]$`)

// joinState holds the join tokens' index and the standby agents.
type joinState struct {
	byHash  map[string]*poolState    // sha256(token) → pool; nil until first used
	standby map[string]*standbyAgent // by node id
}

type standbyAgent struct {
	pool *poolState
	info StandbyAgent
}

// StandbyAgent is an agent that joined a pool with its token and waits for a
// place (GET /kiln/pools/{poolId}/standbyAgents).
type StandbyAgent struct {
	NodeID      string    `json:"nodeId"`
	Hostname    string    `json:"hostname,omitempty"`
	IPAddress   string    `json:"ipAddress,omitempty"`
	LowPriority bool      `json:"lowPriority,omitempty"`
	Since       time.Time `json:"since"`
	LastSeen    time.Time `json:"lastSeen"`
}

// JoinToken is a pool's join token (GET /kiln/pools/{poolId}/joinToken).
type JoinToken struct {
	PoolID string `json:"poolId"`
	Token  string `json:"token"`
	// AgentURL is where agents reach the server (its public URL).
	AgentURL string `json:"agentUrl"`
	// RemovedNodes are the nodes a rotation removed from the pool.
	RemovedNodes []string `json:"removedNodes,omitempty"`
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// joinIndexLocked returns the token index, built from the pools on first use.
func (s *Service) joinIndexLocked() map[string]*poolState {
	if s.join.byHash == nil {
		s.join.byHash = map[string]*poolState{}
		for _, p := range s.pools {
			if p.kiln.JoinToken != "" {
				s.join.byHash[tokenHash(p.kiln.JoinToken)] = p
			}
		}
	}
	return s.join.byHash
}

// joinPoolLocked finds the pool whose current join token tok is.
func (s *Service) joinPoolLocked(tok string) (*poolState, bool) {
	if tok == "" {
		return nil, false
	}
	p, ok := s.joinIndexLocked()[tokenHash(tok)]
	if !ok || s.pools[key(p.account, p.id())] != p || p.kiln.JoinToken != tok {
		return nil, false
	}
	return p, true
}

// PoolJoinToken returns the pool's join token, creating it on first use;
// with rotate it replaces it by a new one and revokes the old: the pool's
// nodes (which joined with it) are removed and their tasks requeued.
func (s *Service) PoolJoinToken(ctx context.Context, account, poolID string, rotate bool) (JoinToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p *poolState
	var err error
	if rotate {
		p, err = s.writablePoolLocked(account, poolID, Conditions{})
	} else {
		p, err = s.poolLocked(account, poolID)
	}
	if err != nil {
		return JoinToken{}, err
	}
	if !s.joinsAgentsLocked(p) {
		return JoinToken{}, batch.Conflict("PoolProviderNotAgents",
			"The pool's node provider is %q: only pools created with metadata %s=%s take agents that join with a token.",
			s.providerNameLocked(p), MetadataProvider, providerAgents).With("poolId", p.id())
	}
	out := JoinToken{PoolID: p.id(), AgentURL: s.cfg.AgentURL}
	if p.kiln.JoinToken != "" && !rotate {
		out.Token = p.kiln.JoinToken
		return out, nil
	}
	var w store.Writes
	idx := s.joinIndexLocked()
	if old := p.kiln.JoinToken; old != "" {
		delete(idx, tokenHash(old))
		now := s.now()
		ids := make([]string, 0, len(p.nodes))
		for _, n := range p.nodes {
			if !n.removing {
				ids = append(ids, n.id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			s.removeNodeLocked(p.nodes[id], azbatch.NodeDeallocationOptionRequeue, now, &w)
		}
		out.RemovedNodes = ids
		for id, sa := range s.join.standby {
			if sa.pool == p {
				delete(s.join.standby, id)
			}
		}
		s.log.Info("join token rotated; the pool's nodes leave", "pool", p.id(), "nodes", len(ids))
	}
	p.kiln.JoinToken = "kjt_" + randomHex(32)
	idx[tokenHash(p.kiln.JoinToken)] = p
	s.writePool(p, &w)
	s.reconcilePoolLocked(p, &w)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return JoinToken{}, err
	}
	out.Token = p.kiln.JoinToken
	return out, nil
}

// PoolStandbyAgents lists the agents waiting for a place in the pool.
func (s *Service) PoolStandbyAgents(ctx context.Context, account, poolID string) ([]StandbyAgent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.poolLocked(account, poolID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []StandbyAgent{}
	for id, sa := range s.join.standby {
		if now.Sub(sa.info.LastSeen) > standbyForget || s.pools[key(sa.pool.account, sa.pool.id())] != sa.pool {
			delete(s.join.standby, id)
			continue
		}
		if sa.pool == p {
			out = append(out, sa.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

var errJoinRefused = errors.New("join token refused")

// joinLocked handles the registration of an agent that joins with a pool
// join token: it returns the node the agent is (a new one, or the one its
// proposed id names), or else the answer to send (standby, or a refusal).
func (s *Service) joinLocked(ctx context.Context, req *protocol.RegisterRequest) (*nodeState, *protocol.RegisterResponse, int, error) {
	p, ok := s.joinPoolLocked(req.Token)
	if !ok || req.PoolID != "" && !strings.EqualFold(req.PoolID, p.id()) {
		return nil, nil, http.StatusForbidden, errors.New("join token refused: it is not the current join token of pool " +
			strings.TrimSpace(req.PoolID) + " (wrong, or revoked by `kiln pool join-token --rotate`); get the current one with `kiln pool join-token " +
			strings.TrimSpace(req.PoolID) + "`")
	}
	if !s.joinsAgentsLocked(p) {
		return nil, nil, http.StatusForbidden, errors.New("pool " + p.id() + " does not take joining agents: its node provider is " + s.providerNameLocked(p))
	}
	if deref(p.doc.State) == azbatch.PoolStateDeleting {
		return nil, nil, http.StatusGone, errors.New("pool " + p.id() + " is being deleted")
	}
	dedicated := !req.LowPriority
	id := req.NodeID
	if n, ok := s.nodes[id]; ok && n.pool == p {
		if !n.removing {
			delete(s.join.standby, id)
			return n, nil, http.StatusOK, nil // the same node again
		}
		// The node is still leaving: wait for it to be gone.
		return nil, s.standbyLocked(p, req, id, "its node "+id+" is still leaving the pool"), http.StatusOK, nil
	} else if ok || !nodeIDPattern.MatchString(id) || strings.HasSuffix(id, "_d") != dedicated {
		id = newNodeID(dedicated)
	}
	live := 0
	for _, n := range p.nodes {
		if !n.removing && n.dedicated == dedicated {
			live++
		}
	}
	target := int(deref(p.doc.TargetDedicatedNodes))
	kind := "dedicated"
	if !dedicated {
		target, kind = int(deref(p.doc.TargetLowPriorityNodes)), "low-priority"
	}
	if live >= target {
		return nil, s.standbyLocked(p, req, id, "pool "+p.id()+" has the "+itoa(int32(target))+" "+kind+" nodes its target asks for"), http.StatusOK, nil
	}
	var w store.Writes
	s.createNodeWithIDLocked(p, id, dedicated, s.now(), &w)
	n := s.nodes[id]
	delete(s.join.standby, id)
	s.log.Info("agent joined pool", "pool", p.id(), "node", id, "host", req.Hostname, "dedicated", dedicated)
	if err := s.commit(ctx, &w); err != nil {
		return nil, nil, http.StatusInternalServerError, err
	}
	return n, nil, http.StatusOK, nil
}

// standbyLocked records a waiting agent and answers it.
func (s *Service) standbyLocked(p *poolState, req *protocol.RegisterRequest, id, why string) *protocol.RegisterResponse {
	now := s.now()
	if s.join.standby == nil {
		s.join.standby = map[string]*standbyAgent{}
	}
	sa, ok := s.join.standby[id]
	if !ok || sa.pool != p {
		sa = &standbyAgent{pool: p, info: StandbyAgent{NodeID: id, Since: now}}
		s.join.standby[id] = sa
		s.log.Info("agent waits as standby", "pool", p.id(), "node", id, "host", req.Hostname, "why", why)
	}
	sa.info.Hostname, sa.info.IPAddress, sa.info.LowPriority, sa.info.LastSeen = req.Hostname, req.IP, req.LowPriority, now
	return &protocol.RegisterResponse{
		NodeID:            id,
		HeartbeatInterval: protocol.Duration(s.cfg.HeartbeatInterval),
		Standby:           true,
		RetryAfter:        protocol.Duration(StandbyRetryAfter),
		Message:           "standby: " + why,
	}
}

// agentsAllocationLocked corrects the allocation state of an agents pool:
// once its resize timed out (resizeErrors AllocationTimedOut) it is steady
// while it has no more nodes than its targets.
func (s *Service) agentsAllocationLocked(p *poolState, alloc azbatch.AllocationState, ded, low int32) azbatch.AllocationState {
	if alloc != azbatch.AllocationStateResizing || !s.joinsAgentsLocked(p) || !allocationTimedOut(p) {
		return alloc
	}
	if ded <= deref(p.doc.TargetDedicatedNodes) && low <= deref(p.doc.TargetLowPriorityNodes) {
		for _, n := range p.nodes {
			if n.removing {
				return alloc
			}
		}
		return azbatch.AllocationStateSteady
	}
	return alloc
}

func allocationTimedOut(p *poolState) bool {
	for _, e := range p.doc.ResizeErrors {
		if deref(e.Code) == "AllocationTimedOut" {
			return true
		}
	}
	return false
}

// agentsResizeTimedOutLocked handles the resize timeout of an agents pool
// still waiting for agents (see the top of this file); it reports false for
// every other case, which stops the resize where it is.
func (s *Service) agentsResizeTimedOutLocked(p *poolState, w *store.Writes) bool {
	if !s.joinsAgentsLocked(p) {
		return false
	}
	var ded, low int32
	for _, n := range p.nodes {
		if n.removing {
			return false
		}
		if n.dedicated {
			ded++
		} else {
			low++
		}
	}
	td, tl := deref(p.doc.TargetDedicatedNodes), deref(p.doc.TargetLowPriorityNodes)
	if ded > td || low > tl {
		return false
	}
	p.doc.ResizeErrors = []azbatch.ResizeError{{
		Code: ptr("AllocationTimedOut"),
		Message: ptr("Only " + itoa(ded) + " of " + itoa(td) + " dedicated and " + itoa(low) + " of " + itoa(tl) +
			" low-priority agents joined within the resize timeout (" + deref(p.doc.ResizeTimeout) + "); agents that join later are still admitted."),
	}}
	p.resizeStart = time.Time{}
	s.touchPool(p, w)
	s.reconcilePoolLocked(p, w)
	return true
}

// errNoPreemptAgents: Kiln does not own the machines of an agents pool, so
// it cannot evict them as Azure evicts Spot VMs (spot.go).
func errNoPreemptAgents(p *poolState) error {
	return batch.Conflict("OperationNotSupportedForPoolProvider",
		"The nodes of a pool whose node provider is agents cannot be preempted: Kiln does not own their machines.").With("poolId", p.id())
}
