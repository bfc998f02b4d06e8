package storage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Azure's limits on one request body.
const (
	maxPutBlobBytes  = 5000 << 20
	maxPutBlockBytes = 4000 << 20
)

// setBlobHeaders sets the headers Azure sends with a blob's properties.
// Content-Length, Content-MD5 and Content-Range depend on the range and are
// set by the caller.
func (c *call) setBlobHeaders(b BlobInfo) {
	h := c.w.Header()
	h.Set("Content-Type", b.ContentType)
	h.Set("ETag", b.ETag)
	h.Set("Last-Modified", httpTime(b.LastModified))
	h.Set("x-ms-creation-time", httpTime(b.CreationTime))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-lease-status", "unlocked")
	h.Set("x-ms-lease-state", "available")
	h.Set("x-ms-server-encrypted", "false")
	h.Set("x-ms-access-tier", "Hot")
	h.Set("x-ms-access-tier-inferred", "true")
	h.Set("Accept-Ranges", "bytes")
	for k, v := range map[string]string{
		"Content-Encoding":    b.ContentEncoding,
		"Content-Language":    b.ContentLanguage,
		"Content-Disposition": b.ContentDisposition,
		"Cache-Control":       b.CacheControl,
	} {
		if v != "" {
			h.Set(k, v)
		}
	}
	for k, v := range b.Metadata {
		h.Set("x-ms-meta-"+k, v)
	}
}

// getBlob answers Get Blob (GET, streaming the content or a range of it)
// and Get Blob Properties (HEAD).
func (h *handler) getBlob(c *call) error {
	ctx := c.r.Context()
	for attempt := 0; ; attempt++ {
		info, err := h.s.Attributes(ctx, c.container, c.blob)
		if err != nil {
			return err
		}
		if err := c.checkConditions(&info, true); err != nil {
			return err
		}
		c.setBlobHeaders(info)
		hd := c.w.Header()
		md5 := ""
		if len(info.ContentMD5) > 0 {
			md5 = base64.StdEncoding.EncodeToString(info.ContentMD5)
		}
		if c.r.Method == http.MethodHead {
			if md5 != "" {
				hd.Set("Content-MD5", md5)
			}
			hd.Set("Content-Length", strconv.FormatInt(info.Size, 10))
			c.w.WriteHeader(http.StatusOK)
			return nil
		}
		spec := c.r.Header.Get("x-ms-range")
		if spec == "" {
			spec = c.r.Header.Get("Range")
		}
		off, n, partial, err := parseRange(spec, info.Size)
		if err != nil {
			hd.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
			return err
		}
		rd, err := h.s.openRange(ctx, c.container, c.blob, info, off, n)
		if errors.Is(err, errBlobChanged) && attempt < 2 {
			continue
		}
		if err != nil {
			return err
		}
		defer rd.Close()
		status := http.StatusOK
		if partial {
			status = http.StatusPartialContent
			hd.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, info.Size))
			if md5 != "" {
				hd.Set("x-ms-blob-content-md5", md5)
			}
		} else if md5 != "" {
			hd.Set("Content-MD5", md5)
		}
		hd.Set("Content-Length", strconv.FormatInt(n, 10))
		c.w.WriteHeader(status)
		// The status is sent: a failure now can only cut the body short,
		// which the client sees against Content-Length.
		_, _ = io.Copy(c.w, rd)
		return nil
	}
}

// parseRange reads a "bytes=first-last", "bytes=first-" or "bytes=-suffix"
// range of a blob of size bytes and returns its offset and length.
// Anything else, several ranges included, means the whole blob, as in
// Azure. A range starting at or past the end is 416 InvalidRange.
func parseRange(spec string, size int64) (off, n int64, partial bool, err error) {
	r, ok := strings.CutPrefix(strings.TrimSpace(spec), "bytes=")
	if !ok || strings.Contains(r, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(r, "-")
	if !ok {
		return 0, size, false, nil
	}
	invalid := errorf(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "the range %q is not satisfiable for a blob of %d bytes", spec, size)
	if first == "" { // suffix: the last n bytes
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k < 0 {
			return 0, size, false, nil
		}
		if k == 0 || size == 0 {
			return 0, 0, false, invalid
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, size, false, nil
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, size, false, nil
		}
	}
	if a >= size {
		return 0, 0, false, invalid
	}
	b = min(b, size-1)
	return a, b - a + 1, true, nil
}

// hasConditions reports whether the request has conditional headers.
func (c *call) hasConditions() bool {
	for _, k := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if c.r.Header.Get(k) != "" {
			return true
		}
	}
	return false
}

// checkConditions evaluates the conditional headers against a blob (nil:
// it does not exist). A failed read condition is 304 for If-None-Match and
// If-Modified-Since, as in HTTP; every other failure is 412 ConditionNotMet,
// except If-None-Match: * on a write to an existing blob, which is 409
// BlobAlreadyExists.
func (c *call) checkConditions(b *BlobInfo, read bool) error {
	h := c.r.Header
	notMet := errorf(http.StatusPreconditionFailed, "ConditionNotMet", "the condition specified using HTTP conditional header(s) is not met")
	if b == nil {
		if h.Get("If-Match") != "" {
			return notMet
		}
		return nil
	}
	// HTTP dates have whole seconds.
	mod := b.LastModified.Truncate(time.Second)
	if v := h.Get("If-Match"); v != "" && !etagMatches(v, b.ETag) {
		return notMet
	}
	if t, err := http.ParseTime(h.Get("If-Unmodified-Since")); err == nil && mod.After(t) {
		return notMet
	}
	notModified := errorf(http.StatusNotModified, "ConditionNotMet", "not modified")
	if v := h.Get("If-None-Match"); v != "" && etagMatches(v, b.ETag) {
		switch {
		case read:
			return notModified
		case strings.TrimSpace(v) == "*":
			return errorf(http.StatusConflict, "BlobAlreadyExists", "the specified blob already exists")
		default:
			return notMet
		}
	}
	if t, err := http.ParseTime(h.Get("If-Modified-Since")); err == nil && !mod.After(t) {
		if read {
			return notModified
		}
		return notMet
	}
	return nil
}

// etagMatches reports whether a list of ETags (or "*") names etag.
func etagMatches(list, etag string) bool {
	norm := func(s string) string { return strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "W/"), "\"") }
	for v := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(v) == "*" || norm(v) == norm(etag) {
			return true
		}
	}
	return false
}

// checkOverwrite enforces what a write may replace: the conditional
// headers, and Azure's rule that a SAS with c but not w creates blobs and
// does not overwrite them. It reads the blob's properties only when one of
// them applies.
func (h *handler) checkOverwrite(c *call) error {
	createOnly := !c.granted.allows(PermWrite)
	if !createOnly && !c.hasConditions() {
		return nil
	}
	info, err := h.s.Attributes(c.r.Context(), c.container, c.blob)
	var cur *BlobInfo
	switch {
	case err == nil:
		cur = &info
	case errors.Is(err, ErrBlobNotFound):
	default:
		return err
	}
	if createOnly && cur != nil {
		return fmt.Errorf("%w: the SAS grants create (c) but not write (w), and the blob exists", ErrPermissionMismatch)
	}
	return c.checkConditions(cur, false)
}

// rejectStructuredBody refuses Azure's structured message framing (CRC64
// transfer validation): the body would not be the content.
func (c *call) rejectStructuredBody() error {
	if c.r.Header.Get("x-ms-structured-body") != "" {
		return errorf(http.StatusBadRequest, "UnsupportedHeader", "Kiln storage does not support x-ms-structured-body (CRC64 structured messages); use Content-MD5")
	}
	return nil
}

// body returns the request body limited to max bytes.
func (c *call) body(max int64) (io.Reader, error) {
	if c.r.ContentLength > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "the request body is larger than %d bytes", max)
	}
	return http.MaxBytesReader(c.w, c.r.Body, max), nil
}

// md5Header decodes a base64 MD5 header.
func (c *call) md5Header(name string) ([]byte, error) {
	v := c.r.Header.Get(name)
	if v == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != 16 {
		return nil, errorf(http.StatusBadRequest, "InvalidMd5", "%s %q is not base64 of 16 bytes", name, v)
	}
	return b, nil
}

// putOptions reads the blob properties of a write: the x-ms-blob-*
// headers, and for Put Blob (whose body is the content) the standard
// headers when those are absent.
func (c *call) putOptions(bodyIsContent bool) PutOptions {
	get := func(msName, stdName string) string {
		if v := c.r.Header.Get(msName); v != "" || !bodyIsContent {
			return v
		}
		return c.r.Header.Get(stdName)
	}
	o := PutOptions{
		ContentType:        get("x-ms-blob-content-type", "Content-Type"),
		ContentEncoding:    get("x-ms-blob-content-encoding", "Content-Encoding"),
		ContentLanguage:    get("x-ms-blob-content-language", "Content-Language"),
		ContentDisposition: get("x-ms-blob-content-disposition", "Content-Disposition"),
		CacheControl:       get("x-ms-blob-cache-control", "Cache-Control"),
	}
	for k, v := range c.r.Header {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "x-ms-meta-"); ok && len(v) > 0 {
			if o.Metadata == nil {
				o.Metadata = map[string]string{}
			}
			o.Metadata[name] = v[0]
		}
	}
	return o
}

// putBlob answers Put Blob for block blobs, streaming the body into the
// bucket.
func (h *handler) putBlob(c *call) error {
	switch t := c.r.Header.Get("x-ms-blob-type"); t {
	case "BlockBlob":
	case "":
		return errorf(http.StatusBadRequest, "MissingRequiredHeader", "x-ms-blob-type is required")
	default:
		return errorf(http.StatusBadRequest, "InvalidHeaderValue", "Kiln storage stores block blobs only, not x-ms-blob-type %q", t)
	}
	if err := c.rejectStructuredBody(); err != nil {
		return err
	}
	body, err := c.body(maxPutBlobBytes)
	if err != nil {
		return err
	}
	sum, err := c.md5Header("Content-MD5")
	if err != nil {
		return err
	}
	blobSum, err := c.md5Header("x-ms-blob-content-md5")
	if err != nil {
		return err
	}
	if sum == nil {
		sum = blobSum
	} else if blobSum != nil && string(blobSum) != string(sum) {
		return fmt.Errorf("%w: Content-MD5 and x-ms-blob-content-md5 differ", ErrMD5Mismatch)
	}
	if err := h.checkOverwrite(c); err != nil {
		return err
	}
	opts := c.putOptions(true)
	opts.ContentMD5 = sum
	info, err := h.s.Put(c.r.Context(), c.container, c.blob, body, opts)
	if err != nil {
		return err
	}
	hd := c.w.Header()
	hd.Set("ETag", info.ETag)
	hd.Set("Last-Modified", httpTime(info.LastModified))
	if len(info.ContentMD5) > 0 {
		hd.Set("Content-MD5", base64.StdEncoding.EncodeToString(info.ContentMD5))
	}
	hd.Set("x-ms-request-server-encrypted", "false")
	return c.empty(http.StatusCreated)
}

// putBlock answers Put Block, staging the body.
func (h *handler) putBlock(c *call) error {
	id := c.q.Get("blockid")
	if id == "" {
		return errorf(http.StatusBadRequest, "MissingRequiredQueryParameter", "blockid is required")
	}
	if err := c.rejectStructuredBody(); err != nil {
		return err
	}
	body, err := c.body(maxPutBlockBytes)
	if err != nil {
		return err
	}
	sum, err := c.md5Header("Content-MD5")
	if err != nil {
		return err
	}
	if err := h.s.PutBlock(c.r.Context(), c.container, c.blob, id, body, sum); err != nil {
		return err
	}
	hd := c.w.Header()
	if sum != nil {
		hd.Set("Content-MD5", base64.StdEncoding.EncodeToString(sum))
	}
	hd.Set("x-ms-request-server-encrypted", "false")
	return c.empty(http.StatusCreated)
}

// putBlockList answers Put Block List, committing staged blocks.
func (h *handler) putBlockList(c *call) error {
	body, err := c.body(maxBlockListBytes)
	if err != nil {
		return err
	}
	ids, err := parseBlockList(body)
	if err != nil {
		return err
	}
	if err := h.checkOverwrite(c); err != nil {
		return err
	}
	info, err := h.s.CommitBlocks(c.r.Context(), c.container, c.blob, ids, c.putOptions(false))
	if err != nil {
		return err
	}
	hd := c.w.Header()
	hd.Set("ETag", info.ETag)
	hd.Set("Last-Modified", httpTime(info.LastModified))
	hd.Set("x-ms-request-server-encrypted", "false")
	return c.empty(http.StatusCreated)
}

// deleteBlob answers Delete Blob. Kiln keeps no snapshots, so
// x-ms-delete-snapshots=only has nothing to delete.
func (h *handler) deleteBlob(c *call) error {
	ctx := c.r.Context()
	if c.hasConditions() || c.r.Header.Get("x-ms-delete-snapshots") == "only" {
		info, err := h.s.Attributes(ctx, c.container, c.blob)
		if err != nil {
			return err
		}
		if err := c.checkConditions(&info, false); err != nil {
			return err
		}
		if c.r.Header.Get("x-ms-delete-snapshots") == "only" {
			return c.empty(http.StatusAccepted)
		}
	}
	if err := h.s.DeleteBlob(ctx, c.container, c.blob); err != nil {
		return err
	}
	return c.empty(http.StatusAccepted)
}
