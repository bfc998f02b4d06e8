package api

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// Compute node operations (node files are in files.go).

func (s *server) nodeList(c *call) error {
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.NodeList(c.r.Context(), c.account, c.r.PathValue("poolId"), p)
	if err != nil {
		return err
	}
	return c.writeList("nodes", page)
}

func (s *server) nodeGet(c *call) error {
	o, err := s.ops.NodeGet(c.r.Context(), c.account, c.r.PathValue("poolId"), c.r.PathValue("nodeId"))
	if err != nil {
		return err
	}
	return c.writeDoc("nodes/@Element", o)
}

func (c *call) nodeURL() string {
	return c.resourceURL("pools", c.r.PathValue("poolId"), "nodes", c.r.PathValue("nodeId"))
}

func (s *server) nodeReboot(c *call) error {
	var in azbatch.RebootNodeContent
	if err := c.decodeBody(&in, false); err != nil {
		return err
	}
	if err := s.ops.NodeReboot(c.r.Context(), c.account, c.r.PathValue("poolId"), c.r.PathValue("nodeId"), &in); err != nil {
		return err
	}
	return c.noContent(http.StatusAccepted, c.nodeURL())
}

func (s *server) nodeDisableScheduling(c *call) error {
	var in azbatch.DisableNodeSchedulingContent
	if err := c.decodeBody(&in, false); err != nil {
		return err
	}
	if err := s.ops.NodeDisableScheduling(c.r.Context(), c.account, c.r.PathValue("poolId"), c.r.PathValue("nodeId"), &in); err != nil {
		return err
	}
	return c.noContent(http.StatusOK, c.nodeURL())
}

func (s *server) nodeEnableScheduling(c *call) error {
	if err := s.ops.NodeEnableScheduling(c.r.Context(), c.account, c.r.PathValue("poolId"), c.r.PathValue("nodeId")); err != nil {
		return err
	}
	return c.noContent(http.StatusOK, c.nodeURL())
}
