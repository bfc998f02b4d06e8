package batchclient_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/sharedkey"
)

const (
	testAccount = "kilnacct"
	filePath    = "wd/sub dir/out.txt"
	escapedFile = "/jobs/j1/tasks/t1/files/wd%2Fsub%20dir%2Fout.txt"
)

var (
	testKey    = []byte("kiln-primary-key-for-tests-0001")
	testKeyB64 = base64.StdEncoding.EncodeToString(testKey)
)

// seen is one request as the server received it.
type seen struct {
	method     string
	requestURI string
	escaped    string
	header     http.Header
	err        error
}

type testBundle struct {
	srv *httptest.Server

	mu    sync.Mutex
	seen  []seen
	flaky int // GET /pools/flaky answers 503 this many times first
}

func (b *testBundle) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.seen...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata=minimalmetadata")
	w.Header().Set("request-id", "00000000-0000-0000-0000-000000000001")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes an Azure Batch error body for a *batch.Error.
func writeError(w http.ResponseWriter, e *batch.Error) {
	values := []map[string]string{}
	for _, kv := range e.Values {
		values = append(values, map[string]string{"key": kv.Key, "value": kv.Value})
	}
	writeJSON(w, e.Status, map[string]any{
		"odata.metadata": "https://example/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
		"code":           e.Code,
		"message":        map[string]string{"lang": "en-US", "value": e.Message},
		"values":         values,
	})
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{}
	v := &sharedkey.Verifier{Keys: func(a string) ([][]byte, bool) {
		if strings.EqualFold(a, testAccount) {
			return [][]byte{testKey}, true
		}
		return nil, false
	}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := v.Verify(r)
		b.mu.Lock()
		b.seen = append(b.seen, seen{r.Method, r.RequestURI, r.URL.EscapedPath(), r.Header.Clone(), err})
		flaky := b.flaky > 0 && r.URL.Path == "/pools/flaky"
		if flaky {
			b.flaky--
		}
		b.mu.Unlock()
		if err != nil {
			var be *batch.Error
			if !errors.As(err, &be) {
				t.Errorf("Verify returned %T, want *batch.Error", err)
				be = batch.Errorf(http.StatusForbidden, "AuthenticationFailed", "%v", err)
			}
			writeError(w, be)
			return
		}
		if flaky {
			writeError(w, batch.Errorf(http.StatusServiceUnavailable, "ServerBusy", "busy"))
			return
		}
		now := time.Now().UTC().Format(http.TimeFormat)
		switch p := r.URL.EscapedPath(); {
		case r.Method == "GET" && strings.HasPrefix(p, "/pools/"):
			w.Header().Set("ETag", "0x8DD0000000000001")
			w.Header().Set("Last-Modified", now)
			writeJSON(w, 200, map[string]any{"id": strings.TrimPrefix(p, "/pools/"), "state": "active"})
		case r.Method == "GET" && p == "/pools":
			page := map[string]any{"odata.metadata": b.srv.URL + "/$metadata#pools"}
			if r.URL.Query().Get("$skiptoken") == "" {
				page["value"] = []map[string]any{{"id": "p1"}}
				page["odata.nextLink"] = b.srv.URL + "/pools?api-version=2024-07-01.20.0&maxresults=1&$skiptoken=abc%2Bdef+x%3D%3D"
			} else {
				page["value"] = []map[string]any{{"id": "p2"}}
			}
			writeJSON(w, 200, page)
		case r.Method == "POST" && p == "/jobs":
			w.Header().Set("ETag", "0x1")
			w.Header().Set("Last-Modified", now)
			w.WriteHeader(201)
		case r.Method == "POST" && p == "/jobs/j1/enable", r.Method == "DELETE" && p == "/jobs/j1":
			w.WriteHeader(202)
		case (r.Method == "GET" || r.Method == "HEAD") && p == escapedFile:
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", "5")
			w.Header().Set("ocp-batch-file-isdirectory", "false")
			w.Header().Set("ocp-creation-time", now)
			w.Header().Set("Last-Modified", now)
			_, _ = io.WriteString(w, "hello")
		default:
			writeError(w, batch.Errorf(404, "ResourceNotFound", "no route for %s %s", r.Method, p))
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func newClient(t *testing.T, b *testBundle, key string, opts *azbatch.ClientOptions) *azbatch.Client {
	t.Helper()
	c, err := batchclient.New(b.srv.URL, testAccount, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func authDetail(err error) string {
	var be *batch.Error
	if errors.As(err, &be) {
		for _, kv := range be.Values {
			if kv.Key == "AuthenticationErrorDetail" {
				return kv.Value
			}
		}
	}
	return ""
}

func TestNew_RoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newClient(t, b, testKeyB64, nil)
	ctx := context.Background()

	pool, err := c.GetPool(ctx, "p1", nil)
	if err != nil {
		t.Fatalf("GetPool: %v", err)
	}
	if pool.ID == nil || *pool.ID != "p1" {
		t.Errorf("GetPool id = %v", pool.ID)
	}

	var ids []string
	pager := c.NewListPoolsPager(&azbatch.ListPoolsOptions{MaxResults: to.Ptr[int32](1), Filter: to.Ptr("state eq 'active'")})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListPools: %v", err)
		}
		for _, p := range page.Value {
			ids = append(ids, *p.ID)
		}
	}
	if strings.Join(ids, ",") != "p1,p2" {
		t.Errorf("listed pools %v, want p1,p2", ids)
	}

	if _, err := c.CreateJob(ctx, azbatch.CreateJobContent{ID: to.Ptr("j1"), PoolInfo: &azbatch.PoolInfo{PoolID: to.Ptr("p1")}}, nil); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if _, err := c.EnableJob(ctx, "j1", nil); err != nil {
		t.Fatalf("EnableJob: %v", err)
	}
	if _, err := c.DeleteJob(ctx, "j1", &azbatch.DeleteJobOptions{IfMatch: to.Ptr(azcore.ETag("0x1"))}); err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	file, err := c.GetTaskFile(ctx, "j1", "t1", filePath, &azbatch.GetTaskFileOptions{OCPRange: to.Ptr("bytes=0-4")})
	if err != nil {
		t.Fatalf("GetTaskFile: %v", err)
	}
	data, _ := io.ReadAll(file.Body)
	_ = file.Body.Close()
	if string(data) != "hello" {
		t.Errorf("file body = %q", data)
	}
	props, err := c.GetTaskFileProperties(ctx, "j1", "t1", filePath, nil) // HEAD
	if err != nil {
		t.Fatalf("GetTaskFileProperties: %v", err)
	}
	if props.ContentLength == nil || *props.ContentLength != 5 || props.OCPBatchFileIsDirectory == nil || *props.OCPBatchFileIsDirectory {
		t.Errorf("file properties = %+v", props)
	}
	// azbatch's own option: ocp-date set by the caller, formatted "... UTC".
	if _, err := c.GetPool(ctx, "p1", &azbatch.GetPoolOptions{OCPDate: to.Ptr(time.Now().UTC())}); err != nil {
		t.Fatalf("GetPool with OCPDate: %v", err)
	}

	reqs := b.requests()
	if len(reqs) != 9 {
		t.Errorf("server saw %d requests, want 9", len(reqs))
	}
	for _, s := range reqs {
		t.Logf("%s %s\n\theaders: %v", s.method, s.requestURI, s.header)
		if s.err != nil {
			t.Errorf("%s %s: Verify failed: %v", s.method, s.requestURI, s.err)
		}
		if a := s.header.Get("Authorization"); !strings.HasPrefix(a, "SharedKey "+testAccount+":") {
			t.Errorf("%s %s: Authorization = %q, want SharedKey (the bearer header must be replaced)", s.method, s.requestURI, a)
		}
	}
	var fileReq *seen
	for i := range reqs {
		if reqs[i].method == "GET" && strings.Contains(reqs[i].requestURI, "/files/") {
			fileReq = &reqs[i]
		}
	}
	if fileReq == nil || fileReq.escaped != escapedFile || !strings.HasPrefix(fileReq.requestURI, escapedFile+"?") {
		t.Errorf("file request = %+v, want escaped path %s", fileReq, escapedFile)
	}
}

func TestNew_WrongKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newClient(t, b, base64.StdEncoding.EncodeToString([]byte("not-the-key")), nil)

	_, err := c.GetPool(context.Background(), "p1", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("GetPool err = %v, want *azcore.ResponseError", err)
	}
	if re.StatusCode != http.StatusForbidden || re.ErrorCode != "AuthenticationFailed" {
		t.Errorf("status %d code %q, want 403 AuthenticationFailed", re.StatusCode, re.ErrorCode)
	}
	reqs := b.requests()
	if len(reqs) != 1 {
		t.Errorf("server saw %d requests, want 1 (403 is not retried)", len(reqs))
	}
	if d := authDetail(reqs[0].err); !strings.Contains(d, "is not the same as any computed signature") {
		t.Errorf("Verify detail = %q", d)
	}
}

func TestNew_OldRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := newClient(t, b, testKeyB64, nil)

	old := time.Now().Add(-20 * time.Minute)
	_, err := c.GetPool(context.Background(), "p1", &azbatch.GetPoolOptions{OCPDate: &old})
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "AuthenticationFailed" {
		t.Fatalf("GetPool err = %v, want 403 AuthenticationFailed", err)
	}
	if d := authDetail(b.requests()[0].err); !strings.Contains(d, "older than 15m0s") {
		t.Errorf("Verify detail = %q", d)
	}
}

func TestNew_RetriesAreResigned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.flaky = 2
	c := newClient(t, b, testKeyB64, nil)

	start := time.Now()
	if _, err := c.GetPool(context.Background(), "flaky", nil); err != nil {
		t.Fatalf("GetPool: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("two retries took %v; the short retry defaults are not applied", d)
	}
	reqs := b.requests()
	if len(reqs) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(reqs))
	}
	for _, s := range reqs {
		if s.err != nil {
			t.Errorf("try failed verification: %v", s.err)
		}
	}
}

// countingPolicy adds a signed ocp- header, proving that caller policies run
// before the signing policy.
type countingPolicy struct{ n int }

func (p *countingPolicy) Do(req *policy.Request) (*http.Response, error) {
	p.n++
	req.Raw().Header.Set("ocp-kiln-test", "yes")
	return req.Next()
}

func TestNew_CallerOptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.flaky = 1
	cp := &countingPolicy{}
	opts := &azbatch.ClientOptions{ClientOptions: azcore.ClientOptions{
		PerRetryPolicies: []policy.Policy{cp},
		Retry:            policy.RetryOptions{MaxRetries: -1}, // no retries
	}}
	c := newClient(t, b, testKeyB64, opts)

	if _, err := c.GetPool(context.Background(), "p1", nil); err != nil {
		t.Fatalf("GetPool: %v", err)
	}
	_, err := c.GetPool(context.Background(), "flaky", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("flaky GetPool err = %v, want a 503 without retry", err)
	}
	if len(opts.PerRetryPolicies) != 1 || opts.InsecureAllowCredentialWithHTTP || opts.Retry.RetryDelay != 0 {
		t.Errorf("New modified the caller's options: %+v", opts.ClientOptions)
	}
	reqs := b.requests()
	if len(reqs) != 2 || cp.n != 2 {
		t.Fatalf("server saw %d requests, policy ran %d times; want 2 and 2", len(reqs), cp.n)
	}
	for _, s := range reqs {
		if s.err != nil || s.header.Get("ocp-kiln-test") != "yes" {
			t.Errorf("request %s: verify %v, ocp-kiln-test %q", s.requestURI, s.err, s.header.Get("ocp-kiln-test"))
		}
	}
}

func TestNew_Errors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ endpoint, account, key, want string }{
		{"127.0.0.1:8080", "a", testKeyB64, "must be an absolute http:// or https:// URL"},
		{"ftp://h", "a", testKeyB64, "must be an absolute http:// or https:// URL"},
		{"http://h?x=1", "a", testKeyB64, "must not have a query"},
		{"http://h", "", testKeyB64, "invalid account name"},
		{"http://h", "a:b", testKeyB64, "invalid account name"},
		{"http://h", "a", "", "account key is empty"},
		{"http://h", "a", "%%%", "not valid standard base64"},
	} {
		_, err := batchclient.New(tt.endpoint, tt.account, tt.key, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %q, %q) err = %v, want %q", tt.endpoint, tt.account, tt.key, err, tt.want)
		}
	}
}
