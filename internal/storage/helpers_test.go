package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// testSigner signs with a fixed account and a 64-byte key, like Azure's.
var testSigner = Signer{Account: "kilntest", Key: bytes.Repeat([]byte("0123456789abcdef"), 4)}

// openDirStorage opens a file:// storage in a fresh directory.
func openDirStorage(t testing.TB) (*Storage, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bucket")
	s, err := Open(context.Background(), "file://"+filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

// opCounter counts requests by operation, so that tests can check which
// protocol operations the SDK used.
type opCounter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *opCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Method + " " + r.URL.Query().Get("comp")
		c.mu.Lock()
		if c.ops == nil {
			c.ops = map[string]int{}
		}
		c.ops[op]++
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *opCounter) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[op]
}

// serve mounts the storage handler at /storage as the Kiln server does and
// returns the base URL (".../storage").
func serve(t testing.TB, s *Storage) (string, *opCounter) {
	t.Helper()
	counter := &opCounter{}
	mux := http.NewServeMux()
	mux.Handle("/storage/", counter.wrap(http.StripPrefix("/storage", s.Handler(testSigner))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/storage", counter
}

// noRetry makes SDK clients fail at once: an unexpected 5xx should fail a
// test, not slow it down with retries.
var noRetry = policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}

func serviceClient(t testing.TB, base, perms, resourceTypes string) *service.Client {
	t.Helper()
	c, err := service.NewClientWithNoCredential(testSigner.ServiceURL(base, perms, resourceTypes, time.Now().Add(time.Hour)),
		&service.ClientOptions{ClientOptions: noRetry})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func containerClient(t testing.TB, sasURL string) *container.Client {
	t.Helper()
	c, err := container.NewClientWithNoCredential(sasURL, &container.ClientOptions{ClientOptions: noRetry})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomBytes returns n pseudo-random bytes, the same for the same seed.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)})
	_, _ = r.Read(b)
	return b
}

// wantCode fails the test unless err is an Azure response error with the
// status and error code.
func wantCode(t testing.TB, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want HTTP %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("error = HTTP %d %s, want HTTP %d %s", re.StatusCode, re.ErrorCode, status, code)
	}
}

// do sends a raw request and returns the status, the x-ms-error-code and
// the body.
func do(t testing.TB, method, rawURL string, body io.Reader, header map[string]string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("x-ms-error-code"), b
}

// withPath replaces the path of a URL, keeping its query (the SAS).
func withPath(t testing.TB, rawURL, path string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawPath = "", ""
	return u.Scheme + "://" + u.Host + path + "?" + u.RawQuery
}

// withQuery replaces the query of a URL.
func withQuery(t testing.TB, rawURL string, q url.Values) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// sasQuery returns the query of a SAS URL.
func sasQuery(rawURL string) string {
	_, q, _ := strings.Cut(rawURL, "?")
	return q
}

// md5sum is crypto/md5.Sum.
func md5sum(b []byte) [16]byte { return md5.Sum(b) }
