package ui

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kilnbatch/kiln/internal/storage"
	"github.com/kilnbatch/kiln/sharedkey"
)

// apiProxy serves /ui/api/<Batch path>: the request, signed with Shared Key
// as the session's account, through the API handler.
func (h *Handler) apiProxy(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(w, r)
	if !ok || !uiHeader(w, r) {
		return
	}
	escaped := strings.TrimPrefix(r.URL.EscapedPath(), "/ui/api")
	if escaped == "" || escaped == "/" || hasSegmentPrefix(escaped, "/agent") || hasSegmentPrefix(escaped, "/storage") ||
		hasSegmentPrefix(escaped, "/healthz") || hasSegmentPrefix(escaped, "/ui") {
		writeError(w, http.StatusNotFound, "Not a Batch API path.")
		return
	}
	req, err := innerRequest(r.Context(), r, r.Method, escaped, r.URL.RawQuery, r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "The path is not valid.")
		return
	}
	req.ContentLength = r.ContentLength
	sharedkey.SignRequest(req, s.account, s.key)
	// The API's ETag and Last-Modified would let the browser answer a
	// refresh from its cache (heuristic freshness): live pages must not.
	w.Header().Set("Cache-Control", "no-store")
	h.cfg.API.ServeHTTP(w, req)
}

// hasSegmentPrefix tells whether path p is prefix or under it.
func hasSegmentPrefix(p, prefix string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

// innerRequest builds the request handed to the API handler: the browser's
// headers less its cookies, Authorization and dates (set again when
// signing), at escapedPath?rawQuery.
func innerRequest(ctx context.Context, from *http.Request, method, escapedPath, rawQuery string, body io.Reader) (*http.Request, error) {
	p, err := url.PathUnescape(escapedPath)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Path: p, RawQuery: rawQuery}
	if u.EscapedPath() != escapedPath {
		u.RawPath = escapedPath
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.RequestURI = u.RequestURI()
	if from != nil {
		req.Header = from.Header.Clone()
		req.Host = from.Host
		req.RemoteAddr = from.RemoteAddr
		req.Proto, req.ProtoMajor, req.ProtoMinor = from.Proto, from.ProtoMajor, from.ProtoMinor
		req.TLS = from.TLS
	} else {
		req.Header = http.Header{}
		req.Host = "localhost"
		req.RemoteAddr = "127.0.0.1:0"
	}
	for _, k := range []string{"Cookie", "Authorization", "X-Kiln-Ui", "Ocp-Date", "Date", "Origin", "Referer"} {
		req.Header.Del(k)
	}
	return req, nil
}

// recorder is a ResponseWriter kept in memory, for the server's own calls.
type recorder struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.buf.Write(b)
}

// call makes a Batch call as account with key through the API handler and
// returns the response in memory. path is unescaped except for its query.
func (h *Handler) call(ctx context.Context, account string, key []byte, method, escapedPath string, query url.Values, hdr http.Header) *recorder {
	if query == nil {
		query = url.Values{}
	}
	query.Set("api-version", APIVersion)
	rec := &recorder{h: http.Header{}}
	req, err := innerRequest(ctx, nil, method, escapedPath, query.Encode(), nil)
	if err != nil {
		rec.code = http.StatusBadRequest
		return rec
	}
	req.Header.Set("User-Agent", "kiln-dashboard")
	for k, v := range hdr {
		req.Header[k] = v
	}
	sharedkey.SignRequest(req, account, key)
	h.cfg.API.ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return rec
}

// storageProxy serves /ui/storage[/<container>[/<blob>]]: the session
// account's Kiln storage, through the storage handler, with a short account
// SAS added by the server. Without a query, GET lists the containers
// (/ui/storage/) or the blobs of a container (/ui/storage/<container>).
// Reads need only the session (plain links download); writes also need
// X-Kiln-UI.
func (h *Handler) storageProxy(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !uiHeader(w, r) {
		return
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.EscapedPath(), "/ui/storage"), "/")
	q := r.URL.Query()
	for k := range q { // the server signs; a SAS from the browser is dropped
		switch strings.ToLower(k) {
		case "sv", "ss", "srt", "sp", "se", "st", "spr", "sig", "sr", "skoid", "sktid", "skt", "ske", "sks", "skv", "si":
			q.Del(k)
		}
	}
	if r.Method == http.MethodGet && q.Get("comp") == "" && q.Get("restype") == "" {
		switch {
		case rest == "":
			q.Set("comp", "list")
		case !strings.Contains(strings.TrimSuffix(rest, "/"), "/"):
			rest = strings.TrimSuffix(rest, "/")
			q.Set("restype", "container")
			q.Set("comp", "list")
		}
	}
	signer := storage.Signer{Account: s.account, Key: s.key}
	sasURL := signer.ServiceURL("http://kiln/storage/"+s.account, "rwdlac", "sco", time.Now().Add(15*time.Minute))
	su, err := url.Parse(sasURL)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "Could not sign the storage request.")
		return
	}
	for k, vs := range su.Query() {
		q[k] = vs
	}
	escaped := "/storage/" + s.account + "/" + rest
	if rest == "" {
		escaped = "/storage/" + s.account + "/"
	}
	req, err := innerRequest(r.Context(), r, r.Method, escaped, q.Encode(), r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "The path is not valid.")
		return
	}
	req.ContentLength = r.ContentLength
	w.Header().Set("Cache-Control", "no-store")
	h.cfg.API.ServeHTTP(w, req)
}
