package service

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/store"
)

// AgentHandler serves the agent protocol (see package protocol).
func (s *Service) AgentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathRegister, func(w http.ResponseWriter, r *http.Request) {
		var req protocol.RegisterRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&req); err != nil {
			http.Error(w, "bad register request: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp, status, err := s.agentRegister(r.Context(), &req)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		writeJSON(w, resp)
	})
	mux.HandleFunc("POST "+protocol.PathSync, func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		var req protocol.SyncRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&req); err != nil {
			http.Error(w, "bad sync request: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp, status, err := s.agentSync(r.Context(), token, &req)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		writeJSON(w, resp)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

var (
	errUnknownNode = errors.New("unknown node")
	errBadToken    = errors.New("invalid node token")
)

// agentRegister admits an agent as the node the provider created for it.
func (s *Service) agentRegister(ctx context.Context, req *protocol.RegisterRequest) (*protocol.RegisterResponse, int, error) {
	if req.ProtocolVersion != protocol.Version {
		return nil, http.StatusBadRequest, errors.New("unsupported protocol version")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[req.NodeID]
	if req.Join { // an agent with a pool join token (join.go)
		var answer *protocol.RegisterResponse
		var status int
		var err error
		if n, answer, status, err = s.joinLocked(ctx, req); n == nil {
			return answer, status, err
		}
		ok, req.Token = true, n.token
	}
	if !ok {
		return nil, http.StatusNotFound, errUnknownNode
	}
	if subtle.ConstantTimeCompare([]byte(req.Token), []byte(n.token)) != 1 {
		return nil, http.StatusForbidden, errBadToken
	}
	if n.removing {
		return nil, http.StatusGone, errors.New("node is leaving the pool")
	}
	var w store.Writes
	now := s.now()
	first := !n.registered
	n.registered = true
	n.unusable = false
	n.fileURL = req.FileServerURL
	n.rootDir = req.RootDir
	n.lastSeen = now
	n.doc.IPAddress = ptr(req.IP)
	n.doc.NodeAgentInfo = &azbatch.NodeAgentInfo{Version: ptr(req.AgentVersion), LastUpdateTime: &now}
	n.doc.Errors = nil
	// The agent starts a new life: its event sequence starts again.
	n.ack = 0
	n.latestSeq = 0
	known := map[string]bool{}
	for _, id := range req.Known {
		known[id] = true
	}
	// Attempts the server expects that the new agent process does not know
	// never reached it (or died with the old process): deliver them again
	// when the agent was never told, requeue them otherwise.
	for _, a := range n.attempts {
		if known[a.id] {
			continue
		}
		if a.deliveredIn == 0 {
			continue
		}
		if a.owner != nil {
			a.owner.lost(s, n, a, &w)
		} else if a.task != nil {
			s.requeueTaskLocked(a.task, &w)
		} else {
			s.detachAttemptLocked(n, a)
			if n.startTask == a {
				n.startTask = nil
			}
		}
	}
	for id := range known {
		if _, ok := n.attempts[id]; !ok {
			n.kill = append(n.kill, id)
		}
	}
	s.registeredKillsLocked(n, known)
	if first {
		n.doc.LastBootTime = &now
		s.beginStartTaskLocked(n, &w)
	} else if n.startTask == nil && n.doc.StartTaskInfo != nil && deref(n.doc.StartTaskInfo.State) == azbatch.StartTaskStateRunning {
		s.beginStartTaskLocked(n, &w)
	}
	certs := s.nodeCertificatesLocked(n) // certificates.go
	s.refreshNodeLocked(n, &w)
	s.writeNode(n, &w)
	s.reconcilePoolLocked(n.pool, &w) // allocation may be complete now
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		return nil, http.StatusInternalServerError, err
	}
	return &protocol.RegisterResponse{
		NodeID:            n.id,
		NodeToken:         n.token,
		HeartbeatInterval: protocol.Duration(s.cfg.HeartbeatInterval),
		NodeTimeout:       protocol.Duration(s.cfg.NodeTimeout),
		Node: protocol.NodeConfig{
			AccountName:  n.account,
			AccountURL:   s.cfg.AccountURL(n.account),
			PoolID:       n.pool.id(),
			IsDedicated:  n.dedicated,
			TaskSlots:    n.slots,
			NodeSecret:   n.secret,
			AffinityID:   deref(n.doc.AffinityID),
			Packages:     s.packageOrders(n.account, n.pool.doc.ApplicationPackageReferences),
			Certificates: certs,
			UserAccounts: userAccountOrders(n.pool.doc.UserAccounts),
		},
	}, http.StatusOK, nil
}

// agentSync applies an agent's events, reconciles what it knows with what
// the server expects, and answers with new work, possibly after waiting.
func (s *Service) agentSync(ctx context.Context, token string, req *protocol.SyncRequest) (*protocol.SyncResponse, int, error) {
	s.mu.Lock()
	n, ok := s.tokens[token]
	if !ok || n.id != req.NodeID {
		s.mu.Unlock()
		return nil, http.StatusUnauthorized, errBadToken
	}
	n.lastSeen = s.now()
	s.observeSyncLocked(n) // metrics_prom.go
	s.recordMetricsLocked(n, req.Metrics)
	if req.Seq > n.latestSeq {
		n.latestSeq = req.Seq
	}
	var w store.Writes
	if n.unusable {
		// The node came back: it is usable again; tasks it ran were
		// requeued when it went silent, and the kill orders below stop
		// what it still runs of them.
		n.unusable = false
		s.refreshNodeLocked(n, &w)
	}
	for _, ev := range req.Events {
		if ev.Seq <= n.ack {
			continue
		}
		s.applyEventLocked(n, ev, &w)
		n.ack = ev.Seq
	}
	s.resendLostLocked(n, req)
	s.reconcileKnownLocked(n, req, &w)
	s.confirmKillsLocked(n, req)
	s.dispatchLocked(&w)
	if err := s.commit(ctx, &w); err != nil {
		s.mu.Unlock()
		return nil, http.StatusInternalServerError, err
	}
	if resp := s.collectLocked(n, req.Seq); !resp.empty() {
		out := resp.finish(s, n)
		s.mu.Unlock()
		return out, http.StatusOK, nil
	}
	wait := time.Duration(req.WaitMillis) * time.Millisecond
	if wait > s.cfg.HeartbeatInterval || wait <= 0 {
		wait = s.cfg.HeartbeatInterval
	}
	wake := n.wake
	s.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-wake:
	case <-timer.C:
	case <-ctx.Done():
		return nil, http.StatusRequestTimeout, ctx.Err()
	case <-s.stop:
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Seq < n.latestSeq {
		// A newer sync of this agent supersedes this one: answer empty so
		// that nothing is delivered into a response nobody reads.
		wakeAgain(n)
		return &protocol.SyncResponse{Ack: n.ack}, http.StatusOK, nil
	}
	n.lastSeen = s.now()
	return s.collectLocked(n, req.Seq).finish(s, n), http.StatusOK, nil
}

func wakeAgain(n *nodeState) {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// resendLostLocked puts back the clean orders of answers the agent says it
// never applied (req.Applied is the last answer it acted on). Lost kill
// orders need no resend: reconcileKnownLocked derives them again from Known.
func (s *Service) resendLostLocked(n *nodeState, req *protocol.SyncRequest) {
	kept := n.sentClean[:0]
	for _, sc := range n.sentClean {
		switch {
		case sc.seq <= req.Applied:
			// applied: forget it
		case sc.seq < req.Seq:
			n.clean = append(n.clean, sc.dirs...)
		default:
			kept = append(kept, sc)
		}
	}
	n.sentClean = kept
}

// reconcileKnownLocked compares the attempts the agent knows with those the
// server expects: attempts delivered before this sync that the agent does
// not know never arrived and are delivered again; attempts the agent knows
// that the server does not expect are killed.
func (s *Service) reconcileKnownLocked(n *nodeState, req *protocol.SyncRequest, w *store.Writes) {
	known := make(map[string]bool, len(req.Known))
	for _, id := range req.Known {
		known[id] = true
	}
	for _, a := range n.attempts {
		if known[a.id] {
			if a.deliveredIn == -1 {
				a.deliveredIn = req.Seq - 1
			}
			continue
		}
		if a.deliveredIn != 0 && a.deliveredIn < req.Seq {
			a.deliveredIn = 0 // lost on the way: deliver the same attempt again
		}
	}
	for id := range known {
		if _, ok := n.attempts[id]; !ok {
			n.kill = append(n.kill, id)
		}
	}
}

type syncAnswer struct {
	protocol.SyncResponse
	shutdown bool
}

func (a *syncAnswer) empty() bool {
	return len(a.Assignments) == 0 && len(a.Kill) == 0 && len(a.Clean) == 0 && !a.shutdown
}

// collectLocked takes what is pending for the node into an answer.
func (s *Service) collectLocked(n *nodeState, seq int64) *syncAnswer {
	ans := &syncAnswer{}
	ans.Ack = n.ack
	for _, a := range n.attempts {
		if a.deliveredIn == 0 && !a.held {
			a.deliveredIn = seq
			as := a.assignment
			as.DeliveredIn = seq
			ans.Assignments = append(ans.Assignments, as)
		}
	}
	ans.Kill, n.kill = n.kill, nil
	ans.Clean, n.clean = n.clean, nil
	if len(ans.Clean) > 0 {
		n.sentClean = append(n.sentClean, sentClean{seq: seq, dirs: ans.Clean})
	}
	if n.removing && len(n.attempts) == 0 {
		ans.shutdown = true
	}
	if _, ok := s.nodes[n.id]; !ok {
		ans.shutdown = true
	}
	return ans
}

// finish completes an answer; a shutdown answer deletes the node.
func (a *syncAnswer) finish(s *Service, n *nodeState) *protocol.SyncResponse {
	if a.shutdown {
		a.Shutdown = true
		if _, ok := s.nodes[n.id]; ok {
			n.shutdownAt = s.now()
			var w store.Writes
			s.deleteNodeLocked(n, &w)
			if err := s.commit(context.Background(), &w); err != nil {
				s.log.Error("delete node", "node", n.id, "err", err)
			}
		}
	}
	return &a.SyncResponse
}
