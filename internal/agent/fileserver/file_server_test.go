package fileserver_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent/fileserver"
)

func TestServer_Raw(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := fileserver.New(root, func() string { return "k" })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()

	do := func(method, target string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+target, nil)
		date := time.Now().UTC().Format(time.RFC3339)
		req.Header.Set(fileserver.HeaderDate, date)
		req.Header.Set(fileserver.HeaderSignature, fileserver.Sign("k", method, req.URL.EscapedPath(), date))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	resp := do(http.MethodHead, "/files/d")
	h := resp.Header
	if resp.StatusCode != http.StatusOK || h.Get(fileserver.HeaderIsDirectory) != "true" || h.Get("Content-Length") != "0" ||
		h.Get("Last-Modified") == "" || h.Get(fileserver.HeaderCreationTime) == "" || h.Get(fileserver.HeaderFileMode) != "040755" {
		t.Errorf("HEAD dir: %d %v", resp.StatusCode, h)
	}
	if _, err := http.ParseTime(h.Get(fileserver.HeaderCreationTime)); err != nil {
		t.Errorf("creation time not RFC 1123: %v", err)
	}
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{http.MethodPost, "/files/d", http.StatusMethodNotAllowed},
		{http.MethodPut, "/files/d", http.StatusMethodNotAllowed},
		{http.MethodGet, "/other/d", http.StatusNotFound},
		{http.MethodGet, "/filesd", http.StatusNotFound},
		{http.MethodGet, "/files/d?recursive=maybe", http.StatusBadRequest},
		{http.MethodGet, "/files/d?recursive=true", http.StatusOK},
		{http.MethodGet, "/files", http.StatusOK},
		{http.MethodGet, "/files/", http.StatusOK},
		{http.MethodGet, "/files/d/", http.StatusOK},
		{http.MethodGet, "/files/d/../d", http.StatusBadRequest},
		{http.MethodDelete, "/files/", http.StatusBadRequest},
		{http.MethodDelete, "/files/d", http.StatusNoContent},
	} {
		if got := do(tc.method, tc.target).StatusCode; got != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.target, got, tc.want)
		}
	}
}
