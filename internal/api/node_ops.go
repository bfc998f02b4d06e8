package api

import (
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
)

// Node operations beyond reboot and scheduling, node user accounts,
// extensions, remote login settings and pool usage metrics.

// nodeOpsRoutes registers the routes of this file.
func (s *server) nodeOpsRoutes(h func(string, func(*call) error)) {
	h("POST /pools/{poolId}/nodes/{nodeId}/reimage", s.nodeReimage)
	h("POST /pools/{poolId}/nodes/{nodeId}/deallocate", s.nodeDeallocate)
	h("POST /pools/{poolId}/nodes/{nodeId}/start", s.nodeStart)
	h("POST /pools/{poolId}/nodes/{nodeId}/uploadbatchservicelogs", s.nodeUploadLogs)
	h("GET /pools/{poolId}/nodes/{nodeId}/extensions", s.nodeExtensionList)
	h("GET /pools/{poolId}/nodes/{nodeId}/extensions/{extensionName}", s.nodeExtensionGet)
	h("GET /pools/{poolId}/nodes/{nodeId}/remoteloginsettings", s.nodeRemoteLoginSettings)
	h("POST /pools/{poolId}/nodes/{nodeId}/users", s.nodeUserAdd)
	h("PUT /pools/{poolId}/nodes/{nodeId}/users/{userName}", s.nodeUserUpdate)
	h("DELETE /pools/{poolId}/nodes/{nodeId}/users/{userName}", s.nodeUserDelete)
	h("GET /poolusagemetrics", s.poolUsageMetrics)
}

func (c *call) poolID() string { return c.r.PathValue("poolId") }
func (c *call) nodeID() string { return c.r.PathValue("nodeId") }

func (s *server) nodeReimage(c *call) error {
	var in azbatch.ReimageNodeContent
	if err := c.decodeBody(&in, false); err != nil {
		return err
	}
	if err := s.ops.NodeReimage(c.r.Context(), c.account, c.poolID(), c.nodeID(), &in); err != nil {
		return err
	}
	return c.noContent(http.StatusAccepted, c.nodeURL())
}

func (s *server) nodeDeallocate(c *call) error {
	var in azbatch.DeallocateNodeContent
	if err := c.decodeBody(&in, false); err != nil {
		return err
	}
	if err := s.ops.NodeDeallocate(c.r.Context(), c.account, c.poolID(), c.nodeID(), &in); err != nil {
		return err
	}
	return c.noContent(http.StatusAccepted, c.nodeURL())
}

func (s *server) nodeStart(c *call) error {
	if err := s.ops.NodeStart(c.r.Context(), c.account, c.poolID(), c.nodeID()); err != nil {
		return err
	}
	return c.noContent(http.StatusAccepted, c.nodeURL())
}

func (s *server) nodeUploadLogs(c *call) error {
	var in azbatch.UploadNodeLogsContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	res, err := s.ops.NodeUploadLogs(c.r.Context(), c.account, c.poolID(), c.nodeID(), &in)
	if err != nil {
		return err
	}
	return c.writeValue("Microsoft.Azure.Batch.Protocol.Entities.UploadBatchServiceLogsResult", res)
}

func (s *server) nodeExtensionList(c *call) error {
	exts, err := s.ops.NodeExtensions(c.r.Context(), c.account, c.poolID(), c.nodeID())
	if err != nil {
		return err
	}
	return pageValues(c, "extensions", exts, 1000)
}

func (s *server) nodeExtensionGet(c *call) error {
	ext, err := s.ops.NodeExtension(c.r.Context(), c.account, c.poolID(), c.nodeID(), c.r.PathValue("extensionName"))
	if err != nil {
		return err
	}
	return c.writeValue("extensions/@Element", ext)
}

func (s *server) nodeRemoteLoginSettings(c *call) error {
	rl, err := s.ops.NodeRemoteLoginSettings(c.r.Context(), c.account, c.poolID(), c.nodeID())
	if err != nil {
		return err
	}
	return c.writeValue("Microsoft.Azure.Batch.Protocol.Entities.ComputeNodeGetRemoteLoginSettingsResult", rl)
}

func (s *server) nodeUserAdd(c *call) error {
	var in azbatch.CreateNodeUserContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	if err := s.ops.NodeUserAdd(c.r.Context(), c.account, c.poolID(), c.nodeID(), &in); err != nil {
		return err
	}
	return c.created(c.resourceURL("pools", c.poolID(), "nodes", c.nodeID(), "users", deref(in.Name)))
}

func (s *server) nodeUserUpdate(c *call) error {
	var in azbatch.UpdateNodeUserContent
	if err := c.decodeBody(&in, true); err != nil {
		return err
	}
	name := c.r.PathValue("userName")
	if err := s.ops.NodeUserUpdate(c.r.Context(), c.account, c.poolID(), c.nodeID(), name, &in); err != nil {
		return err
	}
	return c.noContent(http.StatusOK, c.resourceURL("pools", c.poolID(), "nodes", c.nodeID(), "users", name))
}

func (s *server) nodeUserDelete(c *call) error {
	if err := s.ops.NodeUserDelete(c.r.Context(), c.account, c.poolID(), c.nodeID(), c.r.PathValue("userName")); err != nil {
		return err
	}
	return c.noContent(http.StatusOK, "")
}

// poolUsageMetrics answers Pool_ListUsageMetrics: starttime and endtime
// select the aggregation intervals, $filter the entries.
func (s *server) poolUsageMetrics(c *call) error {
	var start, end time.Time
	for name, dst := range map[string]*time.Time{"starttime": &start, "endtime": &end} {
		v, ok := c.q(name)
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return batch.InvalidQuery(name, v, "Expected an ISO 8601 date and time.")
		}
		*dst = t
	}
	p, err := c.listParams()
	if err != nil {
		return err
	}
	page, err := s.ops.PoolUsageMetrics(c.r.Context(), c.account, start, end, p)
	if err != nil {
		return err
	}
	return c.writeList("poolusagemetrics", page)
}
