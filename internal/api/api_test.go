package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/internal/api"
	"github.com/kilnbatch/kiln/internal/service"
	"github.com/kilnbatch/kiln/sharedkey"
)

const (
	testAccount = "kilnacct"
	apiVersion  = "2024-07-01.20.0"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// fakeOps implements service.Operations with function fields. Methods
// without a field call the nil embedded interface and panic, which the
// server must turn into a 500.
type fakeOps struct {
	service.Operations

	poolAdd           func(account string, c *azbatch.CreatePoolContent) error
	poolGet           func(account, id string, cond service.Conditions) (service.Object, error)
	poolList          func(account string, p service.ListParams) (service.ListPage, error)
	poolPatch         func(account, id string, c *azbatch.UpdatePoolContent, cond service.Conditions) (service.Object, error)
	poolNodeCounts    func(account string, p service.ListParams) ([]azbatch.PoolNodeCounts, error)
	supportedImages   func() []azbatch.SupportedImage
	taskAdd           func(account, jobID string, c *azbatch.CreateTaskContent) (service.Object, error)
	taskAddCollection func(account, jobID string, tasks []azbatch.CreateTaskContent) ([]azbatch.TaskAddResult, error)
	taskFiles         func(account, jobID, taskID string) (service.FileTarget, error)
	nodeFiles         func(account, poolID, nodeID string) (service.FileTarget, error)
	jobTaskCounts     func(account, jobID string) (service.TaskCounts, error)
}

func (f *fakeOps) AccountKeys(name string) ([][]byte, bool) {
	if name != testAccount {
		return nil, false
	}
	return [][]byte{testKey}, true
}

func (f *fakeOps) PoolAdd(_ context.Context, account string, c *azbatch.CreatePoolContent) (service.Object, error) {
	return service.Object{}, f.poolAdd(account, c)
}

func (f *fakeOps) PoolGet(_ context.Context, account, id string, cond service.Conditions) (service.Object, error) {
	return f.poolGet(account, id, cond)
}

func (f *fakeOps) PoolList(_ context.Context, account string, p service.ListParams) (service.ListPage, error) {
	return f.poolList(account, p)
}

func (f *fakeOps) PoolPatch(_ context.Context, account, id string, c *azbatch.UpdatePoolContent, cond service.Conditions) (service.Object, error) {
	return f.poolPatch(account, id, c, cond)
}

func (f *fakeOps) PoolNodeCounts(_ context.Context, account string, p service.ListParams) ([]azbatch.PoolNodeCounts, error) {
	return f.poolNodeCounts(account, p)
}

func (f *fakeOps) SupportedImages() []azbatch.SupportedImage { return f.supportedImages() }

func (f *fakeOps) TaskAdd(_ context.Context, account, jobID string, c *azbatch.CreateTaskContent) (service.Object, error) {
	return f.taskAdd(account, jobID, c)
}

func (f *fakeOps) TaskAddCollection(_ context.Context, account, jobID string, tasks []azbatch.CreateTaskContent) ([]azbatch.TaskAddResult, error) {
	return f.taskAddCollection(account, jobID, tasks)
}

func (f *fakeOps) TaskFiles(_ context.Context, account, jobID, taskID string) (service.FileTarget, error) {
	return f.taskFiles(account, jobID, taskID)
}

func (f *fakeOps) NodeFiles(_ context.Context, account, poolID, nodeID string) (service.FileTarget, error) {
	return f.nodeFiles(account, poolID, nodeID)
}

func (f *fakeOps) JobTaskCounts(_ context.Context, account, jobID string) (service.TaskCounts, error) {
	return f.jobTaskCounts(account, jobID)
}

// testBundle is an API server over a fakeOps.
type testBundle struct {
	ops    *fakeOps
	srv    *httptest.Server
	logs   *bytes.Buffer
	client *azbatch.Client
}

func setup(t *testing.T) *testBundle {
	return setupWith(t, api.Config{})
}

func setupWith(t *testing.T, cfg api.Config) *testBundle {
	t.Helper()
	b := &testBundle{ops: &fakeOps{}, logs: &bytes.Buffer{}}
	cfg.Ops = b.ops
	cfg.Logger = slog.New(slog.NewTextHandler(b.logs, nil))
	b.srv = httptest.NewServer(api.New(cfg))
	t.Cleanup(b.srv.Close)
	opts := &azbatch.ClientOptions{}
	opts.Retry = policy.RetryOptions{MaxRetries: -1} // errors at once
	client, err := batchclient.New(b.srv.URL, testAccount, base64.StdEncoding.EncodeToString(testKey), opts)
	if err != nil {
		t.Fatal(err)
	}
	b.client = client
	return b
}

// request builds a request to the test server; target is a path with query.
func (b *testBundle) request(t *testing.T, method, target string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, b.srv.URL+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
	}
	return r
}

// do signs r with the test key and sends it.
func (b *testBundle) do(t *testing.T, r *http.Request) (*http.Response, []byte) {
	t.Helper()
	sharedkey.SignRequest(r, testAccount, testKey)
	return send(t, r)
}

func send(t *testing.T, r *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// azureError is the error body as clients see it.
type azureError struct {
	Metadata string `json:"odata.metadata"`
	Code     string `json:"code"`
	Message  struct {
		Lang  string `json:"lang"`
		Value string `json:"value"`
	} `json:"message"`
	Values []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"values"`
}

func (e azureError) value(key string) string {
	for _, v := range e.Values {
		if v.Key == key {
			return v.Value
		}
	}
	return ""
}

// wantError checks an error answer's status, code and (optional) values.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string, values ...string) azureError {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var e azureError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.Code != code {
		t.Fatalf("code = %q, want %q; body %s", e.Code, code, body)
	}
	if !strings.HasSuffix(e.Metadata, "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element") {
		t.Errorf("odata.metadata = %q", e.Metadata)
	}
	if e.Message.Lang != "en-US" || !strings.Contains(e.Message.Value, "\nRequestId:"+resp.Header.Get("request-id")+"\nTime:") {
		t.Errorf("message = %+v, request-id %q", e.Message, resp.Header.Get("request-id"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != api.ContentTypeJSON {
		t.Errorf("Content-Type = %q", ct)
	}
	for i := 0; i+1 < len(values); i += 2 {
		if got := e.value(values[i]); got != values[i+1] {
			t.Errorf("value %s = %q, want %q (values %+v)", values[i], got, values[i+1], e.Values)
		}
	}
	return e
}

func ptr[T any](v T) *T { return &v }

// setupWithOps serves ops (which must answer AccountKeys like fakeOps).
func setupWithOps(t *testing.T, ops service.Operations) *testBundle {
	t.Helper()
	b := &testBundle{logs: &bytes.Buffer{}}
	b.srv = httptest.NewServer(api.New(api.Config{Ops: ops, Logger: slog.New(slog.NewTextHandler(b.logs, nil))}))
	t.Cleanup(b.srv.Close)
	return b
}

func containsQuery(path string) bool { return strings.Contains(path, "?") }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
