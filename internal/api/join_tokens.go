package api

import (
	"context"
	"net/http"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/service"
)

// Join tokens of pools whose node provider is "agents" (bring-your-own
// nodes, docs/remote-agents.md). Azure has no such thing; Kiln adds routes
// under /kiln/pools, behind Shared Key authentication:
//
//	GET  /kiln/pools/{poolId}/joinToken         {"poolId", "token", "agentUrl"} (created on first use)
//	POST /kiln/pools/{poolId}/joinToken/rotate  the same with a new token, plus "removedNodes":
//	                                            the old token is revoked and the nodes that joined with it leave
//	GET  /kiln/pools/{poolId}/standbyAgents     {"value": [{"nodeId", "hostname", "ipAddress", "lowPriority", "since", "lastSeen"}]}
//
// A pool of another provider answers 409 PoolProviderNotAgents.

// joinTokenOperations is implemented by *service.Service.
type joinTokenOperations interface {
	PoolJoinToken(ctx context.Context, account, poolID string, rotate bool) (service.JoinToken, error)
	PoolStandbyAgents(ctx context.Context, account, poolID string) ([]service.StandbyAgent, error)
}

func (s *server) joinTokenRoutes(h func(string, func(*call) error)) {
	h("GET /kiln/pools/{poolId}/joinToken", s.poolJoinToken(false))
	h("POST /kiln/pools/{poolId}/joinToken/rotate", s.poolJoinToken(true))
	h("GET /kiln/pools/{poolId}/standbyAgents", s.poolStandbyAgents)
}

func (s *server) joinTokenOps() (joinTokenOperations, error) {
	ops, ok := s.ops.(joinTokenOperations)
	if !ok {
		return nil, batch.Errorf(http.StatusNotImplemented, "NotImplemented", "This Kiln server has no join tokens.")
	}
	return ops, nil
}

func (s *server) poolJoinToken(rotate bool) func(*call) error {
	return func(c *call) error {
		ops, err := s.joinTokenOps()
		if err != nil {
			return err
		}
		t, err := ops.PoolJoinToken(c.r.Context(), c.account, c.r.PathValue("poolId"), rotate)
		if err != nil {
			return err
		}
		return c.writeJSON(http.StatusOK, t)
	}
}

func (s *server) poolStandbyAgents(c *call) error {
	ops, err := s.joinTokenOps()
	if err != nil {
		return err
	}
	list, err := ops.PoolStandbyAgents(c.r.Context(), c.account, c.r.PathValue("poolId"))
	if err != nil {
		return err
	}
	return c.writeJSON(http.StatusOK, map[string]any{"value": list})
}
