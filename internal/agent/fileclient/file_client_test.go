package fileclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/fileclient"
	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/protocol"
)

type testBundle struct {
	root   string
	client *fileclient.Client
	secret *atomic.Pointer[string]
	url    string
}

// setup serves a small tree with the real file server:
//
//	a.txt  empty/  sub/b.txt  sub/deep/c.txt  "space dir/f x.txt"  "per%cent.txt"
//	fifo  abs-link -> /etc  rel-link -> ../outside  in-link -> sub
func setup(t *testing.T) *testBundle {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	files := map[string]string{
		"a.txt":             "hello world",
		"sub/b.txt":         "b",
		"sub/deep/c.txt":    "c",
		"space dir/f x.txt": "spaced",
		"per%cent.txt":      "percent",
		"../outside/secret": "secret",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.Mkdir(filepath.Join(root, "empty"), 0o755))
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	must(t, os.Symlink("/etc", filepath.Join(root, "abs-link")))
	must(t, os.Symlink("../outside", filepath.Join(root, "rel-link")))
	must(t, os.Symlink("sub", filepath.Join(root, "in-link")))

	secret := &atomic.Pointer[string]{}
	s := "s3cret"
	secret.Store(&s)
	fs, err := fileserver.New(root, func() string { return *secret.Load() })
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fs)
	t.Cleanup(func() { srv.Close(); fs.Close() })
	return &testBundle{
		root:   root,
		client: &fileclient.Client{BaseURL: srv.URL, Secret: s},
		secret: secret,
		url:    srv.URL,
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func paths(list []protocol.FileInfo) []string {
	var out []string
	for _, fi := range list {
		out = append(out, fi.Path)
	}
	return out
}

func statusOf(err error) int {
	var se *fileclient.StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

func TestClient_List(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	t.Run("Root", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"", ".", "/"} {
			list, err := b.client.List(ctx, p, false)
			must(t, err)
			want := []string{"a.txt", "abs-link", "empty", "fifo", "in-link", "per%cent.txt", "rel-link", "space dir", "sub"}
			if got := paths(list); !slices.Equal(got, want) {
				t.Fatalf("List(%q) = %v, want %v", p, got, want)
			}
		}
	})

	t.Run("Recursive", func(t *testing.T) {
		t.Parallel()
		list, err := b.client.List(ctx, "sub", true)
		must(t, err)
		if got, want := paths(list), []string{"b.txt", "deep", "deep/c.txt"}; !slices.Equal(got, want) {
			t.Fatalf("recursive = %v, want %v", got, want)
		}
		deep := list[1]
		if !deep.IsDirectory || deep.Size != 0 || deep.FileMode != "040755" {
			t.Errorf("deep = %+v", deep)
		}
		c := list[2]
		if c.IsDirectory || c.Size != 1 || c.FileMode != "0100644" || c.LastModified.IsZero() || c.CreationTime.IsZero() {
			t.Errorf("deep/c.txt = %+v", c)
		}
	})

	t.Run("ThroughLinkInsideRoot", func(t *testing.T) {
		t.Parallel()
		list, err := b.client.List(ctx, "in-link", false)
		must(t, err)
		if got := paths(list); !slices.Equal(got, []string{"b.txt", "deep"}) {
			t.Fatalf("in-link lists %v", got)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		if _, err := b.client.List(ctx, "a.txt", false); !errors.Is(err, fileclient.ErrNotDirectory) {
			t.Errorf("List(file) = %v, want ErrNotDirectory", err)
		}
		if _, err := b.client.List(ctx, "nope", false); !errors.Is(err, fileclient.ErrNotFound) {
			t.Errorf("List(missing) = %v, want ErrNotFound", err)
		}
		for _, p := range []string{"..", "../outside", "sub/../../outside", "rel-link", "abs-link"} {
			if _, err := b.client.List(ctx, p, false); statusOf(err) != http.StatusBadRequest {
				t.Errorf("List(%q) = %v, want 400", p, err)
			}
		}
		// Encoded dots are decoded before the check.
		req, _ := http.NewRequest(http.MethodGet, b.url+"/files/sub/%2e%2e/%2E%2E/outside", nil)
		date := time.Now().UTC().Format(time.RFC3339)
		req.Header.Set(fileserver.HeaderDate, date)
		req.Header.Set(fileserver.HeaderSignature, fileserver.Sign(b.client.Secret, http.MethodGet, "/files/sub/%2e%2e/%2E%2E/outside", date))
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("encoded dot-dot: %d, want 400", resp.StatusCode)
		}
	})
}

func TestClient_Stat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	fi, err := b.client.Stat(ctx, "a.txt")
	must(t, err)
	st, _ := os.Stat(filepath.Join(b.root, "a.txt"))
	if fi.Path != "a.txt" || fi.IsDirectory || fi.Size != 11 || fi.FileMode != "0100644" {
		t.Errorf("Stat(a.txt) = %+v", fi)
	}
	if !fi.LastModified.Equal(st.ModTime().UTC().Truncate(time.Second)) || fi.CreationTime.IsZero() {
		t.Errorf("Stat(a.txt) times = %v, %v; file mtime %v", fi.LastModified, fi.CreationTime, st.ModTime())
	}

	fi, err = b.client.Stat(ctx, "space dir")
	must(t, err)
	if !fi.IsDirectory || fi.Size != 0 || fi.FileMode != "040755" {
		t.Errorf("Stat(dir) = %+v", fi)
	}
	if _, err := b.client.Stat(ctx, "nope.txt"); !errors.Is(err, fileclient.ErrNotFound) {
		t.Errorf("Stat(missing) = %v", err)
	}
	if _, err := b.client.Stat(ctx, "a.txt/x"); !errors.Is(err, fileclient.ErrNotFound) {
		t.Errorf("Stat(below a file) = %v", err)
	}
	if _, err := b.client.Stat(ctx, "abs-link/passwd"); statusOf(err) != http.StatusBadRequest {
		t.Errorf("Stat through escaping link = %v, want 400", err)
	}
}

func TestClient_Open(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	read := func(path, rng string) (*http.Response, string) {
		t.Helper()
		resp, err := b.client.Open(ctx, path, rng)
		must(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp, string(body)
	}

	resp, body := read("a.txt", "")
	if resp.StatusCode != http.StatusOK || body != "hello world" || resp.ContentLength != 11 ||
		resp.Header.Get("Last-Modified") == "" || resp.Header.Get(fileserver.HeaderIsDirectory) != "false" {
		t.Errorf("full read: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = read("a.txt", "bytes=6-")
	if resp.StatusCode != http.StatusPartialContent || body != "world" || resp.Header.Get("Content-Range") != "bytes 6-10/11" {
		t.Errorf("range read: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if _, body = read("space dir/f x.txt", ""); body != "spaced" {
		t.Errorf("escaped path read %q", body)
	}
	if _, body = read("per%cent.txt", ""); body != "percent" {
		t.Errorf("percent path read %q", body)
	}
	if _, body = read("in-link/b.txt", ""); body != "b" {
		t.Errorf("read through inner link %q", body)
	}

	if _, err := b.client.Open(ctx, "a.txt", "bytes=50-60"); statusOf(err) != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("bad range = %v, want 416", err)
	}
	if _, err := b.client.Open(ctx, "sub", ""); !errors.Is(err, fileclient.ErrIsDirectory) {
		t.Errorf("Open(dir) = %v, want ErrIsDirectory", err)
	}
	if _, err := b.client.Open(ctx, "missing", ""); !errors.Is(err, fileclient.ErrNotFound) {
		t.Errorf("Open(missing) = %v, want ErrNotFound", err)
	}
	for _, p := range []string{"../outside/secret", "rel-link/secret", "abs-link/passwd"} {
		if _, err := b.client.Open(ctx, p, ""); statusOf(err) != http.StatusBadRequest {
			t.Errorf("Open(%q) = %v, want 400", p, err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := b.client.Open(ctx, "fifo", ""); done <- err }()
	select {
	case err := <-done:
		if statusOf(err) != http.StatusBadRequest {
			t.Errorf("Open(fifo) = %v, want 400", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open(fifo) hangs")
	}
}

func TestClient_Delete(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	exists := func(p string) bool {
		_, err := os.Lstat(filepath.Join(b.root, filepath.FromSlash(p)))
		return err == nil
	}

	must(t, b.client.Delete(ctx, "a.txt", false))
	if exists("a.txt") {
		t.Error("a.txt not deleted")
	}
	if err := b.client.Delete(ctx, "a.txt", false); !errors.Is(err, fileclient.ErrNotFound) {
		t.Errorf("Delete(missing) = %v, want ErrNotFound", err)
	}
	if err := b.client.Delete(ctx, "sub", false); !errors.Is(err, fileclient.ErrDirectoryNotEmpty) {
		t.Errorf("Delete(non-empty dir) = %v, want ErrDirectoryNotEmpty", err)
	}
	must(t, b.client.Delete(ctx, "empty", false))
	must(t, b.client.Delete(ctx, "rel-link", false)) // the link, not its target
	if _, err := os.Stat(filepath.Join(filepath.Dir(b.root), "outside", "secret")); err != nil {
		t.Errorf("link target affected: %v", err)
	}
	must(t, b.client.Delete(ctx, "sub", true))
	if exists("sub") || exists("empty") || exists("rel-link") {
		t.Error("directories not deleted")
	}
	for _, p := range []string{"", ".", "../outside", "abs-link/passwd"} {
		if err := b.client.Delete(ctx, p, true); statusOf(err) != http.StatusBadRequest {
			t.Errorf("Delete(%q) = %v, want 400", p, err)
		}
	}
	if _, err := os.Stat("/etc/passwd"); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestClient_Signature(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	bad := *b.client
	bad.Secret = "other"
	if _, err := bad.Stat(ctx, "a.txt"); statusOf(err) != http.StatusForbidden {
		t.Errorf("wrong secret: %v, want 403", err)
	}
	if err := bad.Delete(ctx, "a.txt", false); statusOf(err) != http.StatusForbidden {
		t.Errorf("wrong secret delete: %v, want 403", err)
	}

	// A request signed with the right secret but replayed with another
	// method or an old date.
	do := func(method, signedMethod string, date time.Time) int {
		req, _ := http.NewRequest(method, b.url+"/files/a.txt", nil)
		d := date.UTC().Format(time.RFC3339)
		req.Header.Set(fileserver.HeaderDate, d)
		req.Header.Set(fileserver.HeaderSignature, fileserver.Sign(b.client.Secret, signedMethod, req.URL.EscapedPath(), d))
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(http.MethodGet, http.MethodGet, time.Now()); code != http.StatusOK {
		t.Errorf("valid request: %d", code)
	}
	if code := do(http.MethodGet, http.MethodGet, time.Now().Add(4*time.Minute)); code != http.StatusOK {
		t.Errorf("date within the skew: %d", code)
	}
	if code := do(http.MethodDelete, http.MethodGet, time.Now()); code != http.StatusForbidden {
		t.Errorf("method changed: %d, want 403", code)
	}
	if code := do(http.MethodGet, http.MethodGet, time.Now().Add(-6*time.Minute)); code != http.StatusForbidden {
		t.Errorf("expired: %d, want 403", code)
	}
	if code := do(http.MethodGet, http.MethodGet, time.Now().Add(6*time.Minute)); code != http.StatusForbidden {
		t.Errorf("future: %d, want 403", code)
	}

	// Before registration the secret is empty: everything is refused, even
	// a request signed with the empty key.
	empty := ""
	b.secret.Store(&empty)
	noSecret := *b.client
	noSecret.Secret = ""
	if _, err := noSecret.Stat(ctx, "a.txt"); statusOf(err) != http.StatusForbidden {
		t.Errorf("empty secret: %v, want 403", err)
	}
}
