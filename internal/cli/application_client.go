package cli

// Kiln's application package management routes. Azure manages applications
// through ARM; Kiln has no ARM, so the server takes these calls under
// /kiln/applications, signed with Batch Shared Key like every other call.
// Listing and showing applications use the official data-plane API instead.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/kilnbatch/kiln/sharedkey"
)

// kilnAPIVersion is the api-version the management calls send.
const kilnAPIVersion = "2024-07-01.20.0"

// applicationUpdate is the body of PUT /kiln/applications/{applicationId}:
// only the fields given are sent.
type applicationUpdate struct {
	DisplayName    *string `json:"displayName,omitempty"`
	DefaultVersion *string `json:"defaultVersion,omitempty"`
	AllowUpdates   *bool   `json:"allowUpdates,omitempty"`
}

// kilnApplication is an application as the management routes return it.
// Versions may be version strings or package objects ({"id": ...}).
type kilnApplication struct {
	ID             string            `json:"id"`
	DisplayName    string            `json:"displayName"`
	DefaultVersion string            `json:"defaultVersion"`
	AllowUpdates   *bool             `json:"allowUpdates"`
	Versions       []json.RawMessage `json:"versions"`
}

// applicationPackage is a package version as PUT
// /kiln/applications/{applicationId}/versions/{version} returns it.
type applicationPackage struct {
	ID                 string `json:"id"`
	State              string `json:"state"`
	Format             string `json:"format"`
	LastActivationTime string `json:"lastActivationTime"`
}

// mgmtClient sends Shared Key signed requests to the management routes.
type mgmtClient struct {
	baseURL string // server URL, no trailing slash
	account string
	key     []byte
	do      func(*http.Request) (*http.Response, error)
}

// mgmtClient resolves credentials like client() does.
func (o *globalOptions) mgmtClient() (*mgmtClient, error) {
	c, err := o.credentials()
	if err != nil {
		return nil, err
	}
	key, err := sharedkey.DecodeKey(c.AccountKey)
	if err != nil {
		return nil, err
	}
	o.resolved = c // run() then explains an unreachable server
	do := http.DefaultClient.Do
	tr, err := o.httpTransport(c)
	if err != nil {
		return nil, err
	}
	if tr != nil {
		do = tr.Do
	}
	return &mgmtClient{baseURL: c.URL, account: c.AccountName, key: key, do: do}, nil
}

func applicationPath(appID string) string {
	return "/kiln/applications/" + url.PathEscape(appID)
}

func packagePath(appID, version string) string {
	return applicationPath(appID) + "/versions/" + url.PathEscape(version)
}

// send signs and sends one request; body, if not nil, is size bytes of
// contentType, streamed as is. An answer of 400 or more is returned as an
// *azcore.ResponseError, which FormatError prints as Batch errors are
// printed ("ERROR: <code>: <message>").
func (m *mgmtClient) send(ctx context.Context, method, path string, body io.Reader, size int64, contentType string) (*http.Response, error) {
	q := url.Values{"api-version": {kilnAPIVersion}}
	req, err := http.NewRequestWithContext(ctx, method, m.baseURL+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Body = io.NopCloser(body)
		if size == 0 {
			req.Body = http.NoBody
		}
		req.ContentLength = size
		// Signed: the string to sign takes Content-Length from the headers.
		req.Header.Set("Content-Length", strconv.FormatInt(size, 10))
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	sharedkey.SignRequest(req, m.account, m.key)
	resp, err := m.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, runtime.NewResponseError(resp)
	}
	return resp, nil
}

// sendJSON sends v as JSON (no body for nil) and decodes the answer into
// out, unless out is nil or the answer is empty. It returns the status and
// the raw answer.
func (m *mgmtClient) sendJSON(ctx context.Context, method, path string, v, out any) (int, json.RawMessage, error) {
	var body io.Reader
	var size int64
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, nil, err
		}
		body, size = bytes.NewReader(b), int64(len(b))
	}
	resp, err := m.send(ctx, method, path, body, size, "application/json; charset=utf-8")
	if err != nil {
		return 0, nil, err
	}
	return decodeAnswer(resp, out)
}

// decodeAnswer reads a successful answer into out (when both are there).
func decodeAnswer(resp *http.Response, out any) (int, json.RawMessage, error) {
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return resp.StatusCode, nil, nil
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: unexpected answer: %w", resp.Request.Method, resp.Request.URL.Path, err)
		}
	}
	return resp.StatusCode, raw, nil
}

// putApplication creates or updates an application.
func (m *mgmtClient) putApplication(ctx context.Context, appID string, u applicationUpdate) (int, kilnApplication, json.RawMessage, error) {
	var app kilnApplication
	status, raw, err := m.sendJSON(ctx, http.MethodPut, applicationPath(appID), u, &app)
	return status, app, raw, err
}

// deleteApplication deletes an application and its packages.
func (m *mgmtClient) deleteApplication(ctx context.Context, appID string) error {
	_, _, err := m.sendJSON(ctx, http.MethodDelete, applicationPath(appID), nil, nil)
	return err
}

// putPackage uploads a zip of size bytes as version of the application.
func (m *mgmtClient) putPackage(ctx context.Context, appID, version string, zip io.Reader, size int64) (applicationPackage, json.RawMessage, error) {
	var pkg applicationPackage
	resp, err := m.send(ctx, http.MethodPut, packagePath(appID, version), zip, size, "application/zip")
	if err != nil {
		return pkg, nil, err
	}
	_, raw, err := decodeAnswer(resp, &pkg)
	return pkg, raw, err
}

// deletePackage deletes one version of an application.
func (m *mgmtClient) deletePackage(ctx context.Context, appID, version string) error {
	_, _, err := m.sendJSON(ctx, http.MethodDelete, packagePath(appID, version), nil, nil)
	return err
}
