package e2e

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
)

// TestAuthSharedKey checks Shared Key authentication: a wrong key, a stale
// or missing date, a missing signature.
func TestAuthSharedKey(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	if _, err := s.Client.CreatePool(ctx(t), poolContent("authpool", 0, 1), nil); err != nil {
		t.Fatalf("create pool with the right key: %v", err)
	}

	// The SDK with a wrong key.
	wrongKey := base64.StdEncoding.EncodeToString([]byte("not-the-kiln-e2e-account-key-0123456789abcdef-0123456789abcdef"))
	bad, err := batchclient.New(s.URL, testAccount, wrongKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.GetPool(ctx(t), "authpool", nil)
	body := poolExpectError(t, err, http.StatusForbidden, "AuthenticationFailed")
	if !strings.Contains(body.Message.Value, "RequestId:") {
		t.Fatalf("error message %q", body.Message.Value)
	}
	_, err = bad.CreatePool(ctx(t), poolContent("intruder", 0, 1), nil)
	poolExpectError(t, err, http.StatusForbidden, "AuthenticationFailed")
	// A wrong key must not leak whether a pool exists.
	_, err = bad.GetPool(ctx(t), "nosuchpool", nil)
	poolExpectError(t, err, http.StatusForbidden, "AuthenticationFailed")
	// An unknown account.
	other, err := batchclient.New(s.URL, "someoneelse", testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.GetPool(ctx(t), "authpool", nil)
	poolExpectError(t, err, http.StatusForbidden, "AuthenticationFailed")
	if _, err := s.Client.GetPool(ctx(t), "intruder", nil); statusOf(err) != http.StatusNotFound {
		t.Fatalf("the wrong key created a pool: %v", err)
	}

	// Raw requests signed by hand.
	path := "/pools/authpool?api-version=" + poolAPIVersion
	req := s.poolRawRequest(t, http.MethodGet, path, nil)
	poolSign(t, req, "")
	if r := poolDo(t, req); r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(`"authpool"`)) {
		t.Fatalf("signed get: %d %s", r.Status, r.Body)
	}

	// ocp-date older than 15 minutes.
	req = s.poolRawRequest(t, http.MethodGet, path, nil)
	req.Header.Set("ocp-date", time.Now().Add(-20*time.Minute).UTC().Format(http.TimeFormat))
	poolSign(t, req, "")
	r := poolDo(t, req)
	if r.Status != http.StatusForbidden || r.poolError(t).Code != "AuthenticationFailed" {
		t.Fatalf("stale ocp-date: %d %s", r.Status, r.Body)
	}
	// Ten minutes old is still accepted.
	req = s.poolRawRequest(t, http.MethodGet, path, nil)
	req.Header.Set("ocp-date", time.Now().Add(-10*time.Minute).UTC().Format(http.TimeFormat))
	poolSign(t, req, "")
	if r := poolDo(t, req); r.Status != http.StatusOK {
		t.Fatalf("10-minute-old ocp-date: %d %s", r.Status, r.Body)
	}

	// Date instead of ocp-date is signed and checked the same way.
	req = s.poolRawRequest(t, http.MethodGet, path, nil)
	req.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	poolSign(t, req, "")
	if r := poolDo(t, req); r.Status != http.StatusOK {
		t.Fatalf("signed with Date: %d %s", r.Status, r.Body)
	}
	req = s.poolRawRequest(t, http.MethodGet, path, nil)
	req.Header.Set("Date", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
	poolSign(t, req, "")
	if r := poolDo(t, req); r.Status != http.StatusForbidden || r.poolError(t).Code != "AuthenticationFailed" {
		t.Fatalf("stale Date: %d %s", r.Status, r.Body)
	}

	// No Authorization header at all.
	req = s.poolRawRequest(t, http.MethodGet, path, nil)
	req.Header.Set("ocp-date", time.Now().UTC().Format(http.TimeFormat))
	if r := poolDo(t, req); r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized {
		t.Fatalf("unsigned request: %d %s", r.Status, r.Body)
	}

	// A signature over another path does not authorize this one.
	req = s.poolRawRequest(t, http.MethodGet, "/pools/otherpool?api-version="+poolAPIVersion, nil)
	poolSign(t, req, "")
	forged := s.poolRawRequest(t, http.MethodGet, path, nil)
	forged.Header = req.Header.Clone()
	if r := poolDo(t, forged); r.Status != http.StatusForbidden || r.poolError(t).Code != "AuthenticationFailed" {
		t.Fatalf("replayed signature: %d %s", r.Status, r.Body)
	}
}

// TestAuthRequestChecks checks the request-level answers: api-version,
// body size and syntax, request ids.
func TestAuthRequestChecks(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)

	check := func(name string, r poolRawResponse, status int, code string) poolErrorBody {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%s: status %d, want %d: %s", name, r.Status, status, r.Body)
		}
		if r.Header.Get("request-id") == "" {
			t.Fatalf("%s: no request-id header", name)
		}
		body := r.poolError(t)
		if body.Code != code {
			t.Fatalf("%s: code %q, want %s: %s", name, body.Code, code, r.Body)
		}
		return body
	}

	// Missing and malformed api-version.
	req := s.poolRawRequest(t, http.MethodGet, "/pools", nil)
	poolSign(t, req, "")
	body := check("no api-version", poolDo(t, req), http.StatusBadRequest, "MissingRequiredQueryParameter")
	if body.value("QueryParameterName") != "api-version" {
		t.Fatalf("no api-version: values %+v", body.Values)
	}
	req = s.poolRawRequest(t, http.MethodGet, "/pools?api-version=latest", nil)
	poolSign(t, req, "")
	check("bad api-version", poolDo(t, req), http.StatusBadRequest, "InvalidQueryParameterValue")

	// A body over 1 MB.
	big := poolContent("big", 0, 1)
	big.Metadata = []azbatch.MetadataItem{{Name: to("blob"), Value: to(strings.Repeat("x", 1<<20+10))}}
	b, err := big.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	req = s.poolRawRequest(t, http.MethodPost, "/pools?api-version="+poolAPIVersion, b)
	poolSign(t, req, "")
	check("body over 1 MB", poolDo(t, req), http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")
	// The same through the SDK.
	_, err = s.Client.CreatePool(ctx(t), big, nil)
	poolExpectError(t, err, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")

	// The same without Content-Length (chunked).
	req = s.poolRawRequest(t, http.MethodPost, "/pools?api-version="+poolAPIVersion, nil)
	req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
	poolSign(t, req, "")
	check("chunked body over 1 MB", poolDo(t, req), http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")

	// Malformed JSON, and JSON that is not an object.
	for _, bad := range []string{`{"id": "broken", "vmSize": `, `["id"]`, `{"id": 42}`} {
		req = s.poolRawRequest(t, http.MethodPost, "/pools?api-version="+poolAPIVersion, []byte(bad))
		poolSign(t, req, "")
		check("body "+bad, poolDo(t, req), http.StatusBadRequest, "InvalidRequestBody")
	}
	// An empty body where one is required.
	req = s.poolRawRequest(t, http.MethodPost, "/pools?api-version="+poolAPIVersion, []byte{})
	poolSign(t, req, "")
	check("empty body", poolDo(t, req), http.StatusBadRequest, "InvalidRequestBody")
	if _, err := s.Client.GetPool(ctx(t), "broken", nil); statusOf(err) != http.StatusNotFound {
		t.Fatalf("a malformed body created a pool: %v", err)
	}

	// Unknown paths and verbs.
	req = s.poolRawRequest(t, http.MethodGet, "/nosuchresource?api-version="+poolAPIVersion, nil)
	poolSign(t, req, "")
	check("unknown path", poolDo(t, req), http.StatusBadRequest, "InvalidUri")
	req = s.poolRawRequest(t, http.MethodPut, "/pools?api-version="+poolAPIVersion, []byte(`{}`))
	poolSign(t, req, "")
	check("unsupported verb", poolDo(t, req), http.StatusMethodNotAllowed, "UnsupportedHttpVerb")

	// client-request-id is echoed only when asked for.
	req = s.poolRawRequest(t, http.MethodGet, "/pools?api-version="+poolAPIVersion, nil)
	req.Header.Set("client-request-id", "9c4d50ee-2d56-4cd3-8152-34347dc9f2b0")
	req.Header.Set("return-client-request-id", "true")
	poolSign(t, req, "")
	r := poolDo(t, req)
	if r.Status != http.StatusOK || r.Header.Get("client-request-id") != "9c4d50ee-2d56-4cd3-8152-34347dc9f2b0" || r.Header.Get("request-id") == "" {
		t.Fatalf("return-client-request-id: %d headers %v", r.Status, r.Header)
	}
	req = s.poolRawRequest(t, http.MethodGet, "/pools?api-version="+poolAPIVersion, nil)
	req.Header.Set("client-request-id", "9c4d50ee-2d56-4cd3-8152-34347dc9f2b0")
	poolSign(t, req, "")
	if r := poolDo(t, req); r.Header.Get("client-request-id") != "" {
		t.Fatalf("client-request-id echoed without return-client-request-id")
	}
	// Also on errors, and through the SDK.
	req = s.poolRawRequest(t, http.MethodGet, "/pools/nosuchpool?api-version="+poolAPIVersion, nil)
	req.Header.Set("client-request-id", "abc-123")
	req.Header.Set("return-client-request-id", "true")
	poolSign(t, req, "")
	r = poolDo(t, req)
	check("missing pool", r, http.StatusNotFound, "PoolNotFound")
	if r.Header.Get("client-request-id") != "abc-123" {
		t.Fatalf("client-request-id not echoed on an error")
	}
	lp, err := s.Client.NewListPoolsPager(&azbatch.ListPoolsOptions{
		ClientRequestID: to("11111111-2222-3333-4444-555555555555"), ReturnClientRequestID: to(true),
	}).NextPage(ctx(t))
	if err != nil || lp.ClientRequestID == nil || *lp.ClientRequestID != "11111111-2222-3333-4444-555555555555" || lp.RequestID == nil || *lp.RequestID == "" {
		t.Fatalf("SDK client-request-id: %v %v %v", err, lp.ClientRequestID, lp.RequestID)
	}

	// request-id is on every answer, and differs between requests.
	seen := map[string]bool{}
	cr, err := s.Client.CreatePool(ctx(t), poolContent("ids", 0, 1), nil)
	if err != nil || cr.RequestID == nil {
		t.Fatalf("create: %v %v", err, cr.RequestID)
	}
	seen[*cr.RequestID] = true
	ex, err := s.Client.PoolExists(ctx(t), "nosuchpool", nil)
	if err != nil || ex.RequestID == nil || seen[*ex.RequestID] {
		t.Fatalf("exists (404): %v %v", err, ex.RequestID)
	}
	seen[*ex.RequestID] = true
	dr, err := s.Client.DeletePool(ctx(t), "ids", nil)
	if err != nil || dr.RequestID == nil || seen[*dr.RequestID] {
		t.Fatalf("delete: %v %v", err, dr.RequestID)
	}
	req = s.poolRawRequest(t, http.MethodGet, "/pools?api-version="+poolAPIVersion, nil)
	req.Header.Set("Authorization", "SharedKey "+testAccount+":AAAA")
	req.Header.Set("ocp-date", time.Now().UTC().Format(http.TimeFormat))
	check("bad signature", poolDo(t, req), http.StatusForbidden, "AuthenticationFailed")
}
