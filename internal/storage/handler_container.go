package storage

import (
	"net/http"
	"strconv"
	"strings"
)

// maxResults reads the maxresults query parameter: Azure's default and cap
// is 5000, and a value below 1 is an error.
func (c *call) maxResults() (int, error) {
	v := c.q.Get("maxresults")
	if v == "" {
		return MaxListResults, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errorf(http.StatusBadRequest, "OutOfRangeQueryParameterValue", "maxresults %q must be a number from 1 to %d", v, MaxListResults)
	}
	return min(n, MaxListResults), nil
}

// includes reports whether the include query parameter names what.
func (c *call) includes(what string) bool {
	for v := range strings.SplitSeq(c.q.Get("include"), ",") {
		if strings.EqualFold(strings.TrimSpace(v), what) {
			return true
		}
	}
	return false
}

// listContainers answers List Containers. Containers are few, so the whole
// list is read and paged by name: the marker is the first name of the next
// page.
func (h *handler) listContainers(c *call) error {
	max, err := c.maxResults()
	if err != nil {
		return err
	}
	prefix, marker := c.q.Get("prefix"), c.q.Get("marker")
	all, err := h.s.ListContainers(c.r.Context(), prefix)
	if err != nil {
		return err
	}
	out := containerList{ServiceEndpoint: c.serviceEndpoint(), Prefix: prefix, Marker: marker, MaxResults: max}
	if c.q.Get("maxresults") == "" {
		out.MaxResults = 0
	}
	for _, ct := range all {
		if ct.Name < marker {
			continue
		}
		if len(out.Containers) == max {
			out.NextMarker = ct.Name
			break
		}
		item := containerItem{Name: ct.Name, Properties: containerProperties{
			LastModified: httpTime(ct.LastModified), ETag: ct.ETag,
			LeaseStatus: "unlocked", LeaseState: "available",
		}}
		if c.includes("metadata") {
			item.Metadata = &struct{}{}
		}
		out.Containers = append(out.Containers, item)
	}
	c.writeXML(http.StatusOK, out)
	return nil
}

// setContainerHeaders sets the headers Azure sends with a container.
func (c *call) setContainerHeaders(ct Container) {
	h := c.w.Header()
	h.Set("ETag", ct.ETag)
	h.Set("Last-Modified", httpTime(ct.LastModified))
}

// createContainer answers Create Container. Public access levels are
// accepted and ignored: Kiln storage is reached only with a SAS.
func (h *handler) createContainer(c *call) error {
	ctx := c.r.Context()
	if err := h.s.CreateContainer(ctx, c.container); err != nil {
		return err
	}
	ct, err := h.s.GetContainer(ctx, c.container)
	if err != nil {
		return err
	}
	c.setContainerHeaders(ct)
	return c.empty(http.StatusCreated)
}

// deleteContainer answers Delete Container. Azure deletes in the
// background and answers 202; Kiln has deleted everything when it answers.
func (h *handler) deleteContainer(c *call) error {
	if err := h.s.DeleteContainer(c.r.Context(), c.container); err != nil {
		return err
	}
	return c.empty(http.StatusAccepted)
}

// containerProperties answers Get Container Properties.
func (h *handler) containerProperties(c *call) error {
	ct, err := h.s.GetContainer(c.r.Context(), c.container)
	if err != nil {
		return err
	}
	c.setContainerHeaders(ct)
	hd := c.w.Header()
	hd.Set("x-ms-lease-status", "unlocked")
	hd.Set("x-ms-lease-state", "available")
	hd.Set("x-ms-has-immutability-policy", "false")
	hd.Set("x-ms-has-legal-hold", "false")
	return c.empty(http.StatusOK)
}

// listBlobs answers List Blobs, flat or (with a delimiter) hierarchical.
func (h *handler) listBlobs(c *call) error {
	max, err := c.maxResults()
	if err != nil {
		return err
	}
	if c.q.Get("startFrom") != "" {
		return errorf(http.StatusBadRequest, "UnsupportedQueryParameter", "Kiln storage does not support startFrom; page with marker")
	}
	prefix, delimiter, marker := c.q.Get("prefix"), c.q.Get("delimiter"), c.q.Get("marker")
	blobs, prefixes, next, err := h.s.ListBlobsHierarchy(c.r.Context(), c.container, prefix, delimiter, marker, max)
	if err != nil {
		return err
	}
	out := blobList{
		ServiceEndpoint: c.serviceEndpoint(), ContainerName: c.container,
		Prefix: prefix, Marker: marker, Delimiter: delimiter, NextMarker: next,
	}
	if c.q.Get("maxresults") != "" {
		out.MaxResults = max
	}
	withMetadata := c.includes("metadata")
	for _, b := range blobs {
		out.Blobs.Blobs = append(out.Blobs.Blobs, newBlobItem(b, withMetadata))
	}
	for _, p := range prefixes {
		out.Blobs.Prefixes = append(out.Blobs.Prefixes, blobPrefix{Name: p})
	}
	c.writeXML(http.StatusOK, out)
	return nil
}
