package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// apiVersion is the x-ms-version Kiln answers when the client sends none:
// the version of the azblob SDK it is tested with.
const apiVersion = "2026-12-06"

// Handler serves the storage over HTTP in the subset of the Azure Blob
// Storage REST protocol that the azblob SDK uses for containers and block
// blobs, every request authorised by a SAS that signer verifies. Paths are
// relative to the mount point: the server mounts it with
// http.StripPrefix("/storage", ...), giving URLs like
// http://host:8080/storage/<container>/<blob>?<sas>.
func (s *Storage) Handler(signer Signer) http.Handler {
	return &handler{s: s, signer: signer}
}

type handler struct {
	s      *Storage
	signer Signer
}

// call is one request being answered.
type call struct {
	w         http.ResponseWriter
	r         *http.Request
	q         url.Values
	id        string
	container string // "" for the service
	blob      string // "" for a container or the service
	granted   Permission
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, id: newRequestID()}
	hd := w.Header()
	hd.Set("x-ms-request-id", c.id)
	v := r.Header.Get("x-ms-version")
	if v == "" {
		v = apiVersion
	}
	hd.Set("x-ms-version", v)
	if id := r.Header.Get("x-ms-client-request-id"); id != "" {
		hd.Set("x-ms-client-request-id", id)
	}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			c.fail(http.StatusInternalServerError, "InternalError", fmt.Sprintf("Kiln storage failed: %v", p))
		}
	}()
	if err := h.serve(c); err != nil {
		c.error(err)
	}
}

// statusError is an answer with an Azure error code chosen by the handler.
type statusError struct {
	status int
	code   string
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) error {
	return &statusError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// serve parses the path and dispatches to the operation.
func (h *handler) serve(c *call) error {
	var err error
	c.q, err = url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		return errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "the query string is malformed: %v", err)
	}
	if err := c.parsePath(); err != nil {
		return err
	}
	// Names are checked before the SAS so that a bad name is a 400 whoever
	// asks; nothing about the storage's content is revealed by it.
	if c.blob != "" {
		if err := h.s.validateBlobName(c.blob); err != nil {
			return errorf(http.StatusBadRequest, "InvalidResourceName", "%s", trimPrefix(err))
		}
	}
	if err := c.rejectUnsupportedHeaders(); err != nil {
		return err
	}
	restype, comp := c.q.Get("restype"), c.q.Get("comp")
	m := c.r.Method
	switch {
	case c.container == "":
		if comp == "list" && (m == http.MethodGet || m == http.MethodHead) {
			return h.op(c, PermList, h.listContainers)
		}
	case c.blob == "":
		if restype != "container" {
			return errorf(http.StatusBadRequest, "InvalidUri", "container operations need restype=container (a blob needs a name after the container)")
		}
		switch {
		case comp == "" && m == http.MethodPut:
			return h.op(c, PermCreate, h.createContainer)
		case comp == "" && m == http.MethodDelete:
			return h.op(c, PermDelete, h.deleteContainer)
		case comp == "" && (m == http.MethodGet || m == http.MethodHead):
			return h.op(c, PermRead, h.containerProperties)
		case comp == "list" && (m == http.MethodGet || m == http.MethodHead):
			return h.op(c, PermList, h.listBlobs)
		}
	default:
		switch {
		case comp == "" && (m == http.MethodGet || m == http.MethodHead):
			return h.op(c, PermRead, h.getBlob)
		case comp == "" && m == http.MethodPut:
			return h.op(c, PermCreate, h.putBlob)
		case comp == "block" && m == http.MethodPut:
			return h.op(c, PermCreate, h.putBlock)
		case comp == "blocklist" && m == http.MethodPut:
			return h.op(c, PermCreate, h.putBlockList)
		case comp == "" && m == http.MethodDelete:
			return h.op(c, PermDelete, h.deleteBlob)
		}
	}
	return errorf(http.StatusNotImplemented, "NotImplemented",
		"Kiln storage does not implement %s with restype=%q comp=%q on this resource", m, restype, comp)
}

// rejectUnsupportedHeaders refuses requests whose meaning rests on a
// header Kiln does not implement and that would otherwise be answered as
// something else: a Put Blob or Put Block "from URL" would store an empty
// body, and a customer-provided key or encryption scope would store the
// content unencrypted while the client believes otherwise.
func (c *call) rejectUnsupportedHeaders() error {
	if c.r.Header.Get("x-ms-copy-source") != "" {
		return errorf(http.StatusNotImplemented, "NotImplemented", "Kiln storage does not copy from URLs (x-ms-copy-source); download and upload instead")
	}
	for _, k := range []string{"x-ms-encryption-key", "x-ms-encryption-scope"} {
		if c.r.Header.Get(k) != "" {
			return errorf(http.StatusBadRequest, "UnsupportedHeader", "Kiln storage does not support %s", k)
		}
	}
	return nil
}

// op authorises the call for need and runs it.
func (h *handler) op(c *call, need Permission, run func(*call) error) error {
	granted, err := h.signer.verify(c.q, c.container, c.blob, time.Now())
	if err != nil {
		return err
	}
	if !granted.allows(need) {
		return fmt.Errorf("%w: the SAS grants %q", ErrPermissionMismatch, c.q.Get("sp"))
	}
	c.granted = granted
	return run(c)
}

// parsePath splits the escaped path into container and blob name. The
// blob name is unescaped once, whole: azblob escapes "/" inside names as
// %2F, other clients do not, and both mean the same name.
func (c *call) parsePath() error {
	p := strings.TrimPrefix(c.r.URL.EscapedPath(), "/")
	if p == "" {
		return nil
	}
	rawContainer, rawBlob, _ := strings.Cut(p, "/")
	container, err := url.PathUnescape(rawContainer)
	if err != nil {
		return errorf(http.StatusBadRequest, "InvalidUri", "the container name is badly escaped: %v", err)
	}
	if err := ValidateContainerName(container); err != nil {
		return errorf(http.StatusBadRequest, "InvalidResourceName", "%s", trimPrefix(err))
	}
	c.container = container
	if rawBlob == "" {
		return nil
	}
	name, err := url.PathUnescape(rawBlob)
	if err != nil {
		return errorf(http.StatusBadRequest, "InvalidUri", "the blob name is badly escaped: %v", err)
	}
	if utf8.RuneCountInString(name) > MaxBlobNameLength {
		return errorf(http.StatusBadRequest, "OutOfRangeInput", "the blob name is longer than %d characters", MaxBlobNameLength)
	}
	c.blob = name
	return nil
}

// serviceEndpoint is the URL of the mount point, ending in "/", as the
// client addressed it.
func (c *call) serviceEndpoint() string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	} else if p, _, _ := strings.Cut(c.r.Header.Get("X-Forwarded-Proto"), ","); strings.EqualFold(strings.TrimSpace(p), "https") {
		scheme = "https"
	}
	mount := ""
	if u, err := url.ParseRequestURI(c.r.RequestURI); err == nil {
		if full, rel := u.EscapedPath(), c.r.URL.EscapedPath(); strings.HasSuffix(full, rel) {
			mount = strings.TrimSuffix(full[:len(full)-len(rel)], "/")
		}
	}
	return scheme + "://" + c.r.Host + mount + "/"
}

// error answers err in Azure's shape.
func (c *call) error(err error) {
	var se *statusError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &se):
		c.fail(se.status, se.code, se.msg)
		return
	case errors.As(err, &mbe):
		c.fail(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit))
		return
	}
	status, code := http.StatusInternalServerError, "InternalError"
	for _, m := range errorCodes {
		if errors.Is(err, m.err) {
			status, code = m.status, m.code
			break
		}
	}
	if status == http.StatusInternalServerError {
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			status, code = http.StatusBadRequest, "InvalidInput"
		case errors.Is(err, context.Canceled) && c.r.Context().Err() != nil:
			status, code = http.StatusBadRequest, "InvalidInput" // the client went away
		}
	}
	c.fail(status, code, trimPrefix(err))
}

// errorCodes maps the package's errors to Azure's status and code.
var errorCodes = []struct {
	err    error
	status int
	code   string
}{
	{ErrAuthenticationFailed, http.StatusForbidden, "AuthenticationFailed"},
	{ErrPermissionMismatch, http.StatusForbidden, "AuthorizationPermissionMismatch"},
	{ErrResourceTypeMismatch, http.StatusForbidden, "AuthorizationResourceTypeMismatch"},
	{ErrInvalidName, http.StatusBadRequest, "InvalidResourceName"},
	{ErrContainerNotFound, http.StatusNotFound, "ContainerNotFound"},
	{ErrBlobNotFound, http.StatusNotFound, "BlobNotFound"},
	{ErrContainerExists, http.StatusConflict, "ContainerAlreadyExists"},
	{ErrNameConflict, http.StatusConflict, "PathConflict"},
	{ErrMD5Mismatch, http.StatusBadRequest, "Md5Mismatch"},
	{ErrInvalidBlockID, http.StatusBadRequest, "InvalidQueryParameterValue"},
	{ErrInvalidBlockList, http.StatusBadRequest, "InvalidBlockList"},
	{ErrInvalidMarker, http.StatusBadRequest, "InvalidQueryParameterValue"},
	{ErrInvalidProperty, http.StatusBadRequest, "InvalidHeaderValue"},
}

// trimPrefix drops the package prefix from an error message.
func trimPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "storage: ")
}

// fail answers an error: x-ms-error-code always, the XML body except to
// HEAD and 304.
func (c *call) fail(status int, code, msg string) {
	h := c.w.Header()
	for _, k := range []string{"ETag", "Last-Modified", "Content-MD5", "Content-Range", "Content-Type", "Content-Length"} {
		h.Del(k)
	}
	h.Set("x-ms-error-code", code)
	if c.r.Method == http.MethodHead || status == http.StatusNotModified {
		c.w.WriteHeader(status)
		return
	}
	msg = fmt.Sprintf("%s\nRequestId:%s\nTime:%s", msg, c.id, time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"))
	c.writeXML(status, xmlError{Code: code, Message: msg})
}

// writeXML answers status with v as an XML document.
func (c *call) writeXML(status int, v any) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xml.NewEncoder(&b).Encode(v); err != nil {
		c.w.Header().Set("x-ms-error-code", "InternalError")
		c.w.WriteHeader(http.StatusInternalServerError)
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	c.w.WriteHeader(status)
	if c.r.Method != http.MethodHead {
		_, _ = c.w.Write(b.Bytes())
	}
}

// empty answers status without a body.
func (c *call) empty(status int) error {
	c.w.Header().Set("Content-Length", "0")
	c.w.WriteHeader(status)
	return nil
}

// newRequestID returns a random UUID (version 4).
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
