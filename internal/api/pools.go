package api

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/internal/service"
)

// Pool and account operations.

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *server) poolAdd(c *call) error {
	var in azbatch.CreatePoolContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	o, err := s.ops.PoolAdd(c.r.Context(), c.account, &in)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	return c.created(c.resourceURL("pools", deref(in.ID)))
}

func (s *server) poolGet(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	o, err := s.ops.PoolGet(c.r.Context(), c.account, c.r.PathValue("poolId"), cond)
	if err != nil {
		return err
	}
	return c.writeDoc("pools/@Element", o)
}

// poolExists answers HEAD /pools/{poolId}: 200 or 404, never a body.
func (s *server) poolExists(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	o, err := s.ops.PoolGet(c.r.Context(), c.account, c.r.PathValue("poolId"), cond)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

func (s *server) poolList(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.PoolList(c.r.Context(), c.account, p)
	if err != nil {
		return err
	}
	return c.writeList("pools", page)
}

func (s *server) poolDelete(c *call) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	if err := s.ops.PoolDelete(c.r.Context(), c.account, c.r.PathValue("poolId"), cond); err != nil {
		return err
	}
	return c.noContent(http.StatusAccepted, "")
}

func (s *server) poolPatch(c *call) error {
	var in azbatch.UpdatePoolContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("poolId")
	return c.objectWrite(http.StatusOK, c.resourceURL("pools", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.PoolPatch(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) poolUpdateProperties(c *call) error {
	var in azbatch.ReplacePoolContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("poolId")
	return c.objectWrite(http.StatusNoContent, c.resourceURL("pools", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.PoolReplace(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) poolResize(c *call) error {
	var in azbatch.ResizePoolContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("poolId")
	return c.objectWrite(http.StatusAccepted, c.resourceURL("pools", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.PoolResize(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) poolStopResize(c *call) error {
	id := c.r.PathValue("poolId")
	return c.objectWrite(http.StatusAccepted, c.resourceURL("pools", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.PoolStopResize(c.r.Context(), c.account, id, cond)
	})
}

func (s *server) poolRemoveNodes(c *call) error {
	var in azbatch.RemoveNodeContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	id := c.r.PathValue("poolId")
	return c.objectWrite(http.StatusAccepted, c.resourceURL("pools", id), func(cond service.Conditions) (service.Object, error) {
		return s.ops.PoolRemoveNodes(c.r.Context(), c.account, id, &in, cond)
	})
}

func (s *server) supportedImages(c *call) error {
	return pageValues(c, "supportedimages", s.ops.SupportedImages(), MaxResultsDefault)
}

// poolNodeCounts asks the service for the counts matching $filter and pages
// them here (maxresults 1..10).
func (s *server) poolNodeCounts(c *call) error {
	f, err := c.filter()
	if err != nil {
		return err
	}
	counts, err := s.ops.PoolNodeCounts(c.r.Context(), c.account, service.ListParams{Filter: f})
	if err != nil {
		return err
	}
	return pageValues(c, "poolnodecounts", counts, NodeCountsMaxResults)
}
