package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/odata"
	"github.com/kilnbatch/kiln/internal/service"
)

// ContentTypeJSON is the Content-Type of every JSON answer.
const ContentTypeJSON = "application/json;odata=minimalmetadata"

// errorsMetadata is the odata.metadata fragment of error bodies.
const errorsMetadata = "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"

var errPanic = errors.New("api: handler panicked")

// call is one Azure Batch request being answered.
type call struct {
	s          *server
	w          http.ResponseWriter
	r          *http.Request
	id         string // request-id
	account    string // authenticated account, lowercased
	query      url.Values
	apiVersion string
}

func (s *server) newCall(w http.ResponseWriter, r *http.Request) *call {
	c := &call{s: s, w: w, r: r, id: newRequestID()}
	c.query, _ = url.ParseQuery(r.URL.RawQuery) // keeps what parses
	h := w.Header()
	h.Set("request-id", c.id)
	h.Set("DataServiceVersion", "3.0")
	if v := header(r, "return-client-request-id"); strings.EqualFold(strings.TrimSpace(v), "true") {
		if id := header(r, "client-request-id"); id != "" {
			h.Set("client-request-id", id)
		}
	}
	return c
}

// newRequestID returns a random UUID (version 4) string.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// header returns the first value of a request header, looked up
// case-insensitively (requests built in-process may keep any spelling).
func header(r *http.Request, name string) string {
	if v := r.Header.Get(name); v != "" {
		return v
	}
	for k, v := range r.Header {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// baseURL is the scheme and host the client used, e.g. "https://host:port".
func (c *call) baseURL() string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	} else if p := header(c.r, "X-Forwarded-Proto"); p != "" {
		p, _, _ = strings.Cut(p, ",")
		if strings.EqualFold(strings.TrimSpace(p), "https") {
			scheme = "https"
		}
	}
	return scheme + "://" + c.r.Host
}

// metadata is the odata.metadata value for a fragment such as
// "pools/@Element".
func (c *call) metadata(fragment string) string {
	return c.baseURL() + "/$metadata#" + fragment
}

// resourceURL joins escaped path segments onto the base URL:
// resourceURL("pools", id) is ".../pools/<escaped id>".
func (c *call) resourceURL(segments ...string) string {
	var b strings.Builder
	b.WriteString(c.baseURL())
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// requestURL is the absolute URL of the request without its query.
func (c *call) requestURL() string {
	return c.baseURL() + c.r.URL.EscapedPath()
}

// setObjectHeaders sets ETag and Last-Modified from o when known.
func (c *call) setObjectHeaders(o service.Object) {
	h := c.w.Header()
	if o.ETag != "" {
		h.Set("ETag", o.ETag)
	}
	if !o.LastModified.IsZero() {
		h.Set("Last-Modified", o.LastModified.UTC().Format(http.TimeFormat))
	}
}

// noContent answers a write without a body. dataServiceID, when not empty,
// is sent as DataServiceId.
func (c *call) noContent(status int, dataServiceID string) error {
	h := c.w.Header()
	if dataServiceID != "" {
		h.Set("DataServiceId", dataServiceID)
	}
	if status != http.StatusNoContent {
		h.Set("Content-Length", "0")
	}
	c.w.WriteHeader(status)
	return nil
}

// objectWrite reads the If-* headers, runs op and answers status with the
// ETag and Last-Modified of the object op returns and DataServiceId.
func (c *call) objectWrite(status int, dataServiceID string, op func(service.Conditions) (service.Object, error)) error {
	cond, err := c.conditions()
	if err != nil {
		return err
	}
	o, err := op(cond)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	return c.noContent(status, dataServiceID)
}

// created answers a create (201) with Location and DataServiceId set to the
// new resource's URL.
func (c *call) created(location string) error {
	c.w.Header().Set("Location", location)
	return c.noContent(http.StatusCreated, location)
}

// writeBody sends a JSON body with status 200.
func (c *call) writeBody(body []byte) error {
	h := c.w.Header()
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method != http.MethodHead {
		_, _ = c.w.Write(body)
	}
	return nil
}

// writeDoc answers one resource: its stored document with odata.metadata
// for fragment spliced in, filtered by $select when asked.
func (c *call) writeDoc(fragment string, o service.Object) error {
	sel, err := c.selectProps()
	if err != nil {
		return err
	}
	body, err := withMetadata(c.metadata(fragment), c.unexpanded(o.Doc, c.expandsStats()), sel)
	if err != nil {
		return err
	}
	c.setObjectHeaders(o)
	return c.writeBody(body)
}

// writeValue answers a value marshalled with encoding/json (azbatch types
// marshal themselves), with odata.metadata spliced in.
func (c *call) writeValue(fragment string, v any) error {
	doc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	body, err := withMetadata(c.metadata(fragment), doc, nil)
	if err != nil {
		return err
	}
	return c.writeBody(body)
}

// withMetadata returns doc (a JSON object) with "odata.metadata" as its
// first property. Without sel the document is spliced, not re-encoded.
func withMetadata(metadata string, doc []byte, sel []string) ([]byte, error) {
	inner, err := members(doc, sel)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(inner) + len(metadata) + 24)
	b.WriteString(`{"odata.metadata":`)
	writeJSONString(&b, metadata)
	if len(inner) > 0 {
		b.WriteByte(',')
		b.Write(inner)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// members returns the members of the JSON object doc without the braces,
// keeping only the properties in sel when sel is not empty.
func members(doc []byte, sel []string) ([]byte, error) {
	if len(sel) > 0 {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(doc))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return nil, errors.New("api: stored document is not a JSON object: " + err.Error())
		}
		doc, _ = json.Marshal(odata.ApplySelect(m, sel))
	}
	inner := bytes.TrimSpace(doc)
	if len(inner) < 2 || inner[0] != '{' || inner[len(inner)-1] != '}' {
		return nil, errors.New("api: stored document is not a JSON object")
	}
	return bytes.TrimSpace(inner[1 : len(inner)-1]), nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}

// azureTime formats t as Azure does in error messages: RFC 3339, UTC, seven
// decimals.
func azureTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// errorBody is the Azure Batch error document.
type errorBody struct {
	Metadata string       `json:"odata.metadata"`
	Code     string       `json:"code"`
	Message  errorMessage `json:"message"`
	Values   []errorValue `json:"values,omitempty"`
}

type errorMessage struct {
	Lang  string `json:"lang"`
	Value string `json:"value"`
}

type errorValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// fail answers err: a *batch.Error with its status (500 when unset) and the
// Azure error body; anything else as 500 InternalError, logged. 304 and
// answers to HEAD carry no body.
func (c *call) fail(err error) {
	var be *batch.Error
	if !errors.As(err, &be) {
		c.s.log.Error("request failed", "method", c.r.Method, "path", c.r.URL.EscapedPath(),
			"request_id", c.id, "err", err)
		be = &batch.Error{Code: "InternalError", Status: http.StatusInternalServerError,
			Message: "Server encountered an internal error. Please try again after some time."}
	}
	status := be.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	h := c.w.Header()
	// Headers meant for a success answer must not leak into the error.
	for _, k := range []string{"ETag", "Last-Modified", "Location", "DataServiceId", "Content-Range",
		"ocp-creation-time", "ocp-batch-file-isdirectory", "ocp-batch-file-url", "ocp-batch-file-mode"} {
		h.Del(k)
	}
	if status == http.StatusNotModified || c.r.Method == http.MethodHead {
		h.Del("Content-Type")
		h.Del("Content-Length")
		c.w.WriteHeader(status)
		return
	}
	msg := be.Message
	if msg == "" {
		msg = http.StatusText(status)
	}
	body := errorBody{
		Metadata: c.metadata(errorsMetadata),
		Code:     be.Code,
		Message: errorMessage{
			Lang:  "en-US",
			Value: msg + "\nRequestId:" + c.id + "\nTime:" + azureTime(c.s.now()),
		},
	}
	for _, kv := range be.Values {
		body.Values = append(body.Values, errorValue{Key: kv.Key, Value: kv.Value})
	}
	b, _ := json.Marshal(body)
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(b)
}
