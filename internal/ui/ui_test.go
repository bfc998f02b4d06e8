package ui_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/cli"
	"github.com/kilnbatch/kiln/internal/server"
	"github.com/kilnbatch/kiln/sharedkey"
)

const apiVersion = "api-version=2024-07-01.20.0"

// TestMain lets the local node provider run this test binary as
// `kiln agent` (it runs os.Executable()), so the tests have real agents.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type env struct {
	t    *testing.T
	down bool // shut down by the test
	srv  *server.Server
	url  string
	acct string
	key  string
}

// start runs a real server (SQLite, local agents) in a temporary directory.
func start(t *testing.T) *env {
	t.Helper()
	key := base64.StdEncoding.EncodeToString([]byte("ui-test-key-0123456789abcdef-0123456789abcdef"))
	srv, err := server.Start(context.Background(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		AccountName: "uiacct", AccountKey: key, AgentOrphanTimeout: 10 * time.Second, HeartbeatInterval: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, url: srv.URL(), acct: "uiacct", key: key}
	t.Cleanup(func() {
		if e.down {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return e
}

// client is a browser: a cookie jar, no redirects followed.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// signIn signs c in and returns the response.
func (e *env) signIn(c *http.Client, acct, key string) (*http.Response, []byte) {
	b, _ := json.Marshal(map[string]string{"account": acct, "key": key})
	return do(e.t, c, "POST", e.url+"/ui/session", map[string]string{"Content-Type": "application/json"}, string(b))
}

// ui calls /ui/api as the dashboard does.
func (e *env) ui(c *http.Client, method, path, body string) (*http.Response, []byte) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	hdr := map[string]string{"X-Kiln-UI": "1"}
	if body != "" {
		hdr["Content-Type"] = "application/json; odata=minimalmetadata"
	}
	return do(e.t, c, method, e.url+"/ui/api"+path+sep+apiVersion, hdr, body)
}

// direct calls the Batch API as a client of acct (Shared Key).
func (e *env) direct(acct, key, method, path, body string) (*http.Response, []byte) {
	e.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path+sep+apiVersion, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
	}
	k, _ := sharedkey.DecodeKey(key)
	sharedkey.SignRequest(req, acct, k)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const poolJSON = `{"id":"%s","vmSize":"standard_d2s_v3","targetDedicatedNodes":%d,` +
	`"virtualMachineConfiguration":{"imageReference":{"publisher":"kiln","offer":"local","sku":"host","version":"latest"},"nodeAgentSKUId":"batch.node.kiln.local"}}`

func TestSignIn(t *testing.T) {
	e := start(t)
	c := e.client()

	// No session yet.
	if res, _ := do(t, c, "GET", e.url+"/ui/session", nil, ""); res.StatusCode != 401 {
		t.Fatalf("GET /ui/session before sign-in: %d, want 401", res.StatusCode)
	}
	// A wrong key, an unknown account and a key that is not base64.
	wrong := base64.StdEncoding.EncodeToString([]byte("not-the-key-0123456789abcdef-0123456789abcdef"))
	for _, in := range [][2]string{{e.acct, wrong}, {"nosuchacct", e.key}, {e.acct, "%%%"}} {
		res, b := e.signIn(c, in[0], in[1])
		var body struct{ Error string }
		if res.StatusCode != 401 || json.Unmarshal(b, &body) != nil || body.Error == "" {
			t.Fatalf("sign-in %s with a bad key: %d %s, want 401 {\"error\"}", in[0], res.StatusCode, b)
		}
		if len(res.Cookies()) != 0 {
			t.Fatalf("a failed sign-in set cookies: %v", res.Cookies())
		}
	}

	// The right key (account names are case-insensitive).
	res, b := e.signIn(c, "UIACCT", e.key)
	if res.StatusCode != 200 || !strings.Contains(string(b), `"account":"uiacct"`) {
		t.Fatalf("sign-in: %d %s", res.StatusCode, b)
	}
	var raw string
	for _, h := range res.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "kiln_session=") {
			raw = h
		}
	}
	if raw == "" {
		t.Fatalf("no kiln_session cookie: %v", res.Header.Values("Set-Cookie"))
	}
	val, _, _ := strings.Cut(strings.TrimPrefix(raw, "kiln_session="), ";")
	if dec, err := base64.RawURLEncoding.DecodeString(val); err != nil || len(dec) != 32 {
		t.Errorf("cookie value %q: want 32 random bytes, base64url", val)
	}
	for _, want := range []string{"Path=/ui", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(raw, want) {
			t.Errorf("cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "Secure") {
		t.Errorf("cookie %q is Secure on a plain HTTP server", raw)
	}
	if res, b := do(t, c, "GET", e.url+"/ui/session", nil, ""); res.StatusCode != 200 || !strings.Contains(string(b), `"account":"uiacct"`) {
		t.Fatalf("GET /ui/session: %d %s", res.StatusCode, b)
	}

	// A form sign-in works too, with the secondary key.
	_, kb := e.direct(e.acct, e.key, "GET", "/kiln/account/keys", "")
	var keys struct {
		Primary, Secondary string
	}
	json.Unmarshal(kb, &keys)
	if keys.Secondary == "" {
		t.Fatalf("account keys: %s", kb)
	}
	c2 := e.client()
	form := url.Values{"account": {e.acct}, "key": {keys.Secondary}}.Encode()
	if res, b := do(t, c2, "POST", e.url+"/ui/session", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form); res.StatusCode != 200 {
		t.Fatalf("form sign-in with the secondary key: %d %s", res.StatusCode, b)
	}

	// Regenerating the secondary key ends the session that signed in with it.
	if res, b := e.direct(e.acct, e.key, "POST", "/kiln/account/keys/regenerate", `{"keyName":"secondary"}`); res.StatusCode != 200 {
		t.Fatalf("regenerate: %d %s", res.StatusCode, b)
	}
	if res, _ := do(t, c2, "GET", e.url+"/ui/session", nil, ""); res.StatusCode != 401 {
		t.Fatalf("session of a regenerated key: %d, want 401", res.StatusCode)
	}

	// Sign out.
	if res, _ := do(t, c, "DELETE", e.url+"/ui/session", nil, ""); res.StatusCode != 204 {
		t.Fatalf("sign out: %d", res.StatusCode)
	}
	if res, _ := do(t, c, "GET", e.url+"/ui/session", nil, ""); res.StatusCode != 401 {
		t.Fatalf("GET /ui/session after sign-out: %d, want 401", res.StatusCode)
	}
}

func TestAPIProxy(t *testing.T) {
	e := start(t)
	c := e.client()

	// Without a session: 401, with or without the header.
	if res, _ := e.ui(c, "GET", "/pools", ""); res.StatusCode != 401 {
		t.Fatalf("/ui/api without a cookie: %d, want 401", res.StatusCode)
	}
	if res, b := e.signIn(c, e.acct, e.key); res.StatusCode != 200 {
		t.Fatalf("sign-in: %d %s", res.StatusCode, b)
	}
	// A session without X-Kiln-UI: 403.
	if res, _ := do(t, c, "GET", e.url+"/ui/api/pools?"+apiVersion, nil, ""); res.StatusCode != 403 {
		t.Fatalf("/ui/api without X-Kiln-UI: %d, want 403", res.StatusCode)
	}

	// Another account with a pool of its own.
	otherKey := base64.StdEncoding.EncodeToString([]byte("other-account-key-0123456789abcdef-0123456789"))
	if res, b := e.direct(e.acct, e.key, "POST", "/kiln/accounts", `{"name":"otheracct","key":"`+otherKey+`"}`); res.StatusCode != 201 {
		t.Fatalf("create account: %d %s", res.StatusCode, b)
	}
	if res, b := e.direct("otheracct", otherKey, "POST", "/pools", fmt.Sprintf(poolJSON, "theirpool", 0)); res.StatusCode != 201 {
		t.Fatalf("other account's pool: %d %s", res.StatusCode, b)
	}

	// The dashboard creates a pool as its account...
	if res, b := e.ui(c, "POST", "/pools", fmt.Sprintf(poolJSON, "mypool", 0)); res.StatusCode != 201 {
		t.Fatalf("POST /ui/api/pools: %d %s", res.StatusCode, b)
	}
	if res, b := e.direct(e.acct, e.key, "GET", "/pools/mypool", ""); res.StatusCode != 200 {
		t.Fatalf("the dashboard's pool, read by a client of the account: %d %s", res.StatusCode, b)
	}
	// ...sees it, and not the other account's.
	res, b := e.ui(c, "GET", "/pools?$select=id", "")
	if res.StatusCode != 200 || !strings.Contains(string(b), `"mypool"`) || strings.Contains(string(b), "theirpool") {
		t.Fatalf("GET /ui/api/pools: %d %s", res.StatusCode, b)
	}
	if res, _ := e.ui(c, "GET", "/pools/mypool", ""); res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("ETag") == "" {
		t.Fatalf("a proxied read: Cache-Control %q, ETag %q: want no-store (live pages must not read the browser's cache)",
			res.Header.Get("Cache-Control"), res.Header.Get("ETag"))
	}
	res, b = e.ui(c, "GET", "/pools/theirpool", "")
	if res.StatusCode != 404 || !strings.Contains(string(b), "PoolNotFound") {
		t.Fatalf("another account's pool through the dashboard: %d %s, want 404 PoolNotFound", res.StatusCode, b)
	}
	// Kiln's own routes: the admin routes answer as for this account.
	if res, b := e.ui(c, "GET", "/kiln/account/keys", ""); res.StatusCode != 200 || !strings.Contains(string(b), "primary") {
		t.Fatalf("GET /ui/api/kiln/account/keys: %d %s", res.StatusCode, b)
	}
	// The other account signed in sees its pool only.
	c2 := e.client()
	e.signIn(c2, "otheracct", otherKey)
	if res, b := e.ui(c2, "GET", "/pools?$select=id", ""); res.StatusCode != 200 || !strings.Contains(string(b), "theirpool") || strings.Contains(string(b), "mypool") {
		t.Fatalf("other account's /ui/api/pools: %d %s", res.StatusCode, b)
	}
	if res, _ := e.ui(c2, "GET", "/kiln/accounts", ""); res.StatusCode != 403 {
		t.Fatalf("a non-admin account's /ui/api/kiln/accounts: %d, want 403", res.StatusCode)
	}
	// Not Batch paths.
	for _, p := range []string{"/agent/v1/register", "/storage/uiacct/x", "/healthz"} {
		if res, _ := e.ui(c, "GET", p, ""); res.StatusCode != 404 {
			t.Errorf("/ui/api%s: %d, want 404", p, res.StatusCode)
		}
	}
}

func TestAssets(t *testing.T) {
	e := start(t)
	c := e.client()
	for path, ct := range map[string]string{
		"/ui/":                  "text/html; charset=utf-8",
		"/ui/index.html":        "text/html; charset=utf-8",
		"/ui/app.js":            "text/javascript; charset=utf-8",
		"/ui/app.css":           "text/css; charset=utf-8",
		"/ui/pages/pools.js":    "text/javascript; charset=utf-8",
		"/ui/pages/signin.js":   "text/javascript; charset=utf-8",
		"/ui/pages/overview.js": "text/javascript; charset=utf-8",
	} {
		res, b := do(t, c, "GET", e.url+path, nil, "")
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != ct || len(b) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %q", path, res.StatusCode, res.Header.Get("Content-Type"), len(b), ct)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: security headers %v", path, res.Header)
		}
	}
	res, b := do(t, c, "GET", e.url+"/ui/", nil, "")
	if !strings.Contains(string(b), `<script type="module" src="app.js">`) || strings.Contains(string(b), "http") && strings.Contains(string(b), "cdn") {
		t.Errorf("index.html: %s", b)
	}
	_ = res
	if res, _ := do(t, c, "GET", e.url+"/ui", nil, ""); res.StatusCode != 302 || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d %q, want a redirect to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	for _, p := range []string{"/ui/nope.js", "/ui/pages/", "/ui/pages/nope.js"} {
		if res, _ := do(t, c, "GET", e.url+p, nil, ""); res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
	// The Batch API is still served around /ui.
	if res, _ := do(t, c, "GET", e.url+"/healthz", nil, ""); res.StatusCode != 200 {
		t.Errorf("/healthz: %d", res.StatusCode)
	}
}

// TestTailAndHistory runs a task on a real node (an agent process) and
// reads its stdout from /ui/tail while it runs; /ui/history has samples.
func TestTailAndHistory(t *testing.T) {
	e := start(t)
	c := e.client()
	if res, b := e.signIn(c, e.acct, e.key); res.StatusCode != 200 {
		t.Fatalf("sign-in: %d %s", res.StatusCode, b)
	}
	// History: the first sample is taken at start.
	res, b := do(t, c, "GET", e.url+"/ui/history", nil, "")
	var hist struct {
		Samples []struct {
			Time         time.Time      `json:"time"`
			RunningTasks *int           `json:"runningTasks"`
			Nodes        map[string]int `json:"nodes"`
		} `json:"samples"`
	}
	if res.StatusCode != 200 || json.Unmarshal(b, &hist) != nil || len(hist.Samples) == 0 ||
		hist.Samples[0].RunningTasks == nil || hist.Samples[0].Nodes == nil || time.Since(hist.Samples[0].Time) > time.Minute {
		t.Fatalf("/ui/history: %d %s", res.StatusCode, b)
	}
	if res, _ := do(t, e.client(), "GET", e.url+"/ui/history", nil, ""); res.StatusCode != 401 {
		t.Fatalf("/ui/history without a session: %d, want 401", res.StatusCode)
	}

	if res, b := e.ui(c, "POST", "/pools", fmt.Sprintf(poolJSON, "tailpool", 1)); res.StatusCode != 201 {
		t.Fatalf("pool: %d %s", res.StatusCode, b)
	}
	t.Cleanup(func() { e.direct(e.acct, e.key, "DELETE", "/pools/tailpool", "") })
	if res, b := e.ui(c, "POST", "/jobs", `{"id":"tailjob","poolInfo":{"poolId":"tailpool"}}`); res.StatusCode != 201 {
		t.Fatalf("job: %d %s", res.StatusCode, b)
	}
	// Lines over about three seconds, with a character of several bytes.
	cmd := `/bin/sh -c 'for i in 1 2 3 4 5 6; do echo "line $i é"; sleep 0.5; done'`
	task, _ := json.Marshal(map[string]any{"id": "tailtask", "commandLine": cmd})
	if res, b := e.ui(c, "POST", "/jobs/tailjob/tasks", string(task)); res.StatusCode != 201 {
		t.Fatalf("task: %d %s", res.StatusCode, b)
	}

	req, _ := http.NewRequest("GET", e.url+"/ui/tail?job=tailjob&task=tailtask&file=stdout.txt", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req = req.WithContext(ctx)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("/ui/tail: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var text bytes.Buffer
	chunks := 0
	ended := false
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() && !ended {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			switch event {
			case "chunk":
				var ch struct {
					Offset int64  `json:"offset"`
					Text   string `json:"text"`
				}
				if err := json.Unmarshal([]byte(data), &ch); err != nil {
					t.Fatalf("chunk %s: %v", data, err)
				}
				if ch.Offset != int64(text.Len()) {
					t.Fatalf("chunk at offset %d after %d bytes", ch.Offset, text.Len())
				}
				text.WriteString(ch.Text)
				chunks++
			case "end":
				ended = true
			case "failure":
				t.Fatalf("tail failure: %s", data)
			}
		}
	}
	if !ended {
		t.Fatalf("no end event (scan error %v); got %q", sc.Err(), text.String())
	}
	want := ""
	for i := 1; i <= 6; i++ {
		want += fmt.Sprintf("line %d é\n", i)
	}
	if text.String() != want {
		t.Fatalf("tailed stdout %q, want %q", text.String(), want)
	}
	if chunks < 2 {
		t.Errorf("stdout came in %d chunk(s): not tailed while the task ran", chunks)
	}
	// Tailing a completed task sends the file and ends at once; an
	// unknown task fails.
	_, b = do(t, c, "GET", e.url+"/ui/tail?job=tailjob&task=tailtask", nil, "")
	if !strings.Contains(string(b), "event: end") || !strings.Contains(string(b), "line 6") {
		t.Fatalf("tail of a completed task: %s", b)
	}
	_, b = do(t, c, "GET", e.url+"/ui/tail?job=tailjob&task=nosuchtask", nil, "")
	if !strings.Contains(string(b), "event: failure") {
		t.Fatalf("tail of an unknown task: %s", b)
	}
	if res, _ := do(t, e.client(), "GET", e.url+"/ui/tail?job=tailjob&task=tailtask", nil, ""); res.StatusCode != 401 {
		t.Fatalf("/ui/tail without a session: %d, want 401", res.StatusCode)
	}
}

func TestStorageProxy(t *testing.T) {
	e := start(t)
	c := e.client()
	if res, _ := do(t, c, "GET", e.url+"/ui/storage/", nil, ""); res.StatusCode != 401 {
		t.Fatalf("/ui/storage without a session: %d", res.StatusCode)
	}
	e.signIn(c, e.acct, e.key)
	ui := map[string]string{"X-Kiln-UI": "1"}
	if res, b := do(t, c, "PUT", e.url+"/ui/storage/results?restype=container", nil, ""); res.StatusCode != 403 {
		t.Fatalf("a write without X-Kiln-UI: %d %s, want 403", res.StatusCode, b)
	}
	if res, b := do(t, c, "PUT", e.url+"/ui/storage/results?restype=container", ui, ""); res.StatusCode != 201 {
		t.Fatalf("create container: %d %s", res.StatusCode, b)
	}
	up := map[string]string{"X-Kiln-UI": "1", "x-ms-blob-type": "BlockBlob", "Content-Type": "text/plain"}
	if res, b := do(t, c, "PUT", e.url+"/ui/storage/results/dir/hello.txt", up, "hello, storage\n"); res.StatusCode != 201 {
		t.Fatalf("upload: %d %s", res.StatusCode, b)
	}
	if res, b := do(t, c, "GET", e.url+"/ui/storage/", nil, ""); res.StatusCode != 200 || !strings.Contains(string(b), "<Name>results</Name>") {
		t.Fatalf("list containers: %d %s", res.StatusCode, b)
	}
	if res, b := do(t, c, "GET", e.url+"/ui/storage/results", nil, ""); res.StatusCode != 200 || !strings.Contains(string(b), "<Name>dir/hello.txt</Name>") {
		t.Fatalf("list blobs: %d %s", res.StatusCode, b)
	}
	if res, b := do(t, c, "GET", e.url+"/ui/storage/results/dir/hello.txt", nil, ""); res.StatusCode != 200 || string(b) != "hello, storage\n" {
		t.Fatalf("download: %d %q", res.StatusCode, b)
	}
	// It is the account's storage: a client SAS of the account reads it.
	// Another account's session does not see it.
	otherKey := base64.StdEncoding.EncodeToString([]byte("other-account-key-0123456789abcdef-0123456789"))
	if res, b := e.direct(e.acct, e.key, "POST", "/kiln/accounts", `{"name":"otheracct","key":"`+otherKey+`"}`); res.StatusCode != 201 {
		t.Fatalf("create account: %d %s", res.StatusCode, b)
	}
	c2 := e.client()
	e.signIn(c2, "otheracct", otherKey)
	if res, b := do(t, c2, "GET", e.url+"/ui/storage/results/dir/hello.txt", nil, ""); res.StatusCode != 404 {
		t.Fatalf("another account's blob: %d %s, want 404", res.StatusCode, b)
	}
}

// TestTailEndsAtShutdown: a live stream of a task that never starts does
// not hold up the server's shutdown.
func TestTailEndsAtShutdown(t *testing.T) {
	e := start(t)
	c := e.client()
	e.signIn(c, e.acct, e.key)
	if res, b := e.ui(c, "POST", "/pools", fmt.Sprintf(poolJSON, "emptypool", 0)); res.StatusCode != 201 {
		t.Fatalf("pool: %d %s", res.StatusCode, b)
	}
	e.ui(c, "POST", "/jobs", `{"id":"waitjob","poolInfo":{"poolId":"emptypool"}}`)
	if res, b := e.ui(c, "POST", "/jobs/waitjob/tasks", `{"id":"waiting","commandLine":"/bin/true"}`); res.StatusCode != 201 {
		t.Fatalf("task: %d %s", res.StatusCode, b)
	}
	resp, err := c.Get(e.url + "/ui/tail?job=waitjob&task=waiting")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("stream start %q: %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.down = true
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a live tail open: %v", err)
	}
}

// TestSecureCookie: over HTTPS the session cookie is Secure.
func TestSecureCookie(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("ui-test-key-0123456789abcdef-0123456789abcdef"))
	srv, err := server.Start(context.Background(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), TLSAuto: true,
		AccountName: "uiacct", AccountKey: key, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Fatalf("server URL %s", srv.URL())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	b, _ := json.Marshal(map[string]string{"account": "uiacct", "key": key})
	res, body := do(t, c, "POST", srv.URL()+"/ui/session", map[string]string{"Content-Type": "application/json"}, string(b))
	if res.StatusCode != 200 {
		t.Fatalf("sign-in: %d %s", res.StatusCode, body)
	}
	raw := res.Header.Get("Set-Cookie")
	for _, want := range []string{"kiln_session=", "Secure", "HttpOnly", "SameSite=Strict", "Path=/ui"} {
		if !strings.Contains(raw, want) {
			t.Errorf("cookie %q lacks %s", raw, want)
		}
	}
}

// TestTailRetry: a retried task's stdout starts again; the stream says so
// (reset) and ends with the last attempt's output.
func TestTailRetry(t *testing.T) {
	e := start(t)
	c := e.client()
	e.signIn(c, e.acct, e.key)
	if res, b := e.ui(c, "POST", "/pools", fmt.Sprintf(poolJSON, "retrypool", 1)); res.StatusCode != 201 {
		t.Fatalf("pool: %d %s", res.StatusCode, b)
	}
	t.Cleanup(func() { e.direct(e.acct, e.key, "DELETE", "/pools/retrypool", "") })
	e.ui(c, "POST", "/jobs", `{"id":"retryjob","poolInfo":{"poolId":"retrypool"}}`)
	marker := "$AZ_BATCH_NODE_SHARED_DIR/retrytask-first-attempt-done"
	cmd := fmt.Sprintf(`/bin/sh -c 'if [ -e %[1]s ]; then echo second; else echo "first attempt, a longer line"; sleep 2; touch %[1]s; exit 1; fi'`, marker)
	task, _ := json.Marshal(map[string]any{"id": "retrytask", "commandLine": cmd, "constraints": map[string]any{"maxTaskRetryCount": 1}})
	if res, b := e.ui(c, "POST", "/jobs/retryjob/tasks", string(task)); res.StatusCode != 201 {
		t.Fatalf("task: %d %s", res.StatusCode, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/ui/tail?job=retryjob&task=retrytask", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events []string
	text := ""
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
			events = append(events, v)
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Offset int64  `json:"offset"`
			Text   string `json:"text"`
		}
		json.Unmarshal([]byte(data), &ev)
		switch event {
		case "reset":
			text = ""
		case "chunk":
			text = text[:ev.Offset] + ev.Text
		}
		if event == "end" || event == "failure" {
			break
		}
	}
	t.Logf("events: %v", events)
	if text != "second\n" || events[len(events)-1] != "end" {
		t.Fatalf("events %v, text %q: want the second attempt's output", events, text)
	}
}

// TestCrossSite: a sign-in or an API call posted from another site is
// refused; the same site's are not.
func TestCrossSite(t *testing.T) {
	e := start(t)
	c := e.client()
	b, _ := json.Marshal(map[string]string{"account": e.acct, "key": e.key})
	res, body := do(t, c, "POST", e.url+"/ui/session", map[string]string{"Content-Type": "application/json", "Origin": "https://evil.example"}, string(b))
	if res.StatusCode != 403 || len(res.Cookies()) != 0 {
		t.Fatalf("cross-site sign-in: %d %s", res.StatusCode, body)
	}
	u, _ := url.Parse(e.url)
	res, body = do(t, c, "POST", e.url+"/ui/session", map[string]string{"Content-Type": "application/json", "Origin": "http://" + u.Host}, string(b))
	if res.StatusCode != 200 {
		t.Fatalf("same-site sign-in: %d %s", res.StatusCode, body)
	}
	hdr := map[string]string{"X-Kiln-UI": "1", "Content-Type": "application/json", "Origin": "https://evil.example"}
	if res, body := do(t, c, "POST", e.url+"/ui/api/pools?"+apiVersion, hdr, fmt.Sprintf(poolJSON, "evilpool", 0)); res.StatusCode != 403 {
		t.Fatalf("cross-site API call: %d %s", res.StatusCode, body)
	}
}
