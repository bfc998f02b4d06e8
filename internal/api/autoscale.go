package api

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/service"
)

// Pool autoscale operations: Pool_EnableAutoScale, Pool_DisableAutoScale
// and Pool_EvaluateAutoScale.

func (s *server) autoScaleRoutes(h func(string, func(*call) error)) {
	h("POST /pools/{poolId}/enableautoscale", s.poolEnableAutoScale)
	h("POST /pools/{poolId}/disableautoscale", s.poolDisableAutoScale)
	h("POST /pools/{poolId}/evaluateautoscale", s.poolEvaluateAutoScale)
}

func (s *server) poolEnableAutoScale(c *call) error {
	var in azbatch.EnablePoolAutoScaleContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("poolId")
	return c.objectWrite(http.StatusOK, c.resourceURL("pools", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.PoolEnableAutoScale(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) poolDisableAutoScale(c *call) error {
	id := c.r.PathValue("poolId")
	return c.objectWrite(http.StatusOK, c.resourceURL("pools", id), func(service.Conditions) (service.Object, error) {
		return s.ops.PoolDisableAutoScale(c.r.Context(), c.account, id)
	})
}

// poolEvaluateAutoScale answers the AutoScaleRun of the formula: 200 even
// when the evaluation failed (the run's error says why); a formula that
// does not parse is a 400.
func (s *server) poolEvaluateAutoScale(c *call) error {
	var in azbatch.EvaluatePoolAutoScaleContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("poolId")
	run, err := s.ops.PoolEvaluateAutoScale(c.r.Context(), c.account, id, &in)
	if err != nil {
		return err
	}
	c.w.Header().Set("DataServiceId", c.resourceURL("pools", id))
	return c.writeValue("Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun", run)
}
