package api

import (
	"context"
	"net/http"

	"github.com/kilnbatch/kiln/internal/batch"
)

// Spot preemption on demand. Azure preempts Spot/low-priority nodes when it
// needs the capacity back, and has no operation for it; Kiln simulates it,
// and this Kiln-specific route (Shared Key, like /kiln/applications) lets
// tests and users preempt nodes when they choose:
//
//	POST /kiln/pools/{poolId}/preempt   {"nodeIds": ["..."]} or {"count": 2}
//
// It answers 200 with {"preempted": ["<node id>", ...]}.

// spotOperations is what the route needs from the service (*service.Service
// has it).
type spotOperations interface {
	PreemptNodes(ctx context.Context, account, poolID string, nodeIDs []string, count int) ([]string, error)
}

type preemptRequest struct {
	NodeIDs []string `json:"nodeIds,omitempty"`
	Count   int      `json:"count,omitempty"`
}

type preemptResponse struct {
	Preempted []string `json:"preempted"`
}

func (s *server) poolPreempt(c *call) error {
	ops, ok := s.ops.(spotOperations)
	if !ok {
		return batch.Errorf(http.StatusNotImplemented, "NotImplemented", "This Kiln server cannot preempt nodes.")
	}
	var req preemptRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	ids, err := ops.PreemptNodes(c.r.Context(), c.account, c.r.PathValue("poolId"), req.NodeIDs, req.Count)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	return c.writeJSON(http.StatusOK, preemptResponse{Preempted: ids})
}
