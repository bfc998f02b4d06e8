package storage

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateContainerName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"abc", "a-b-c", "0day", strings.Repeat("a", 63)} {
		if err := ValidateContainerName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "ab", strings.Repeat("a", 64), "Abc", "a--b", "-ab", "ab-", "a_b", "a.b", "..", "a/b", ".kiln", "$root"} {
		if err := ValidateContainerName(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: error %v, want ErrInvalidName", name, err)
		}
	}
}

func TestValidateBlobName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "a/b/c.txt", "...", "a..b", ".hidden", "a b+c%20d", "日本語/ファイル", strings.Repeat("é", 1024), "x.attrs"} {
		if err := ValidateBlobName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "../a", "a/..", "a/../b", "a/./b", "/a", "a/", "a//b", `a\b`, `..\a`, "a\x00b", "a\nb", "a\x7fb",
		strings.Repeat("a", 1025), "\xff"} {
		if err := ValidateBlobName(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: error %v, want ErrInvalidName", name, err)
		}
	}
	// A directory bucket reserves fileblob's sidecar suffix.
	s, _ := openDirStorage(t)
	longest := strings.Repeat("a", maxDirSegmentBytes) + "/" + strings.Repeat("b", maxDirSegmentBytes)
	ctx := context.Background()
	if err := s.CreateContainer(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "box", longest, strings.NewReader("x"), PutOptions{}); err != nil {
		t.Errorf("directory bucket, longest segments: %v", err)
	}
	// A file system cannot hold "f" both as a file and as a directory.
	if _, err := s.Put(ctx, "box", "f", strings.NewReader("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "box", "f/g", strings.NewReader("x"), PutOptions{}); !errors.Is(err, ErrNameConflict) {
		t.Errorf("directory bucket, f then f/g: %v, want ErrNameConflict", err)
	}
	if _, err := s.Put(ctx, "box", "d/e", strings.NewReader("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "box", "d", strings.NewReader("x"), PutOptions{}); !errors.Is(err, ErrNameConflict) {
		t.Errorf("directory bucket, d/e then d: %v, want ErrNameConflict", err)
	}
	for _, name := range []string{"x.attrs", "d.attrs/x", strings.Repeat("a", maxDirSegmentBytes+1), "d/" + strings.Repeat("é", maxDirSegmentBytes/2+1)} {
		if err := s.validateBlobName(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("directory bucket, %q: error %v, want ErrInvalidName", name, err)
		}
	}
}

// TestBadNames_NothingEscapes sends writes with hostile names over HTTP and
// checks that each is refused with 400 and that no file appears anywhere
// but the container marker.
func TestBadNames_NothingEscapes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "bucket")
	s, err := Open(ctx, "file://"+filepath.ToSlash(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateContainer(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	// Mounted without a ServeMux, which would clean some of these paths
	// before the handler sees them.
	srv := httptest.NewServer(http.StripPrefix("/storage", s.Handler(testSigner)))
	defer srv.Close()
	sasQ := sasQuery(testSigner.ContainerURL(srv.URL+"/storage", "box", "racwdl", time.Now().Add(time.Hour)))

	paths := map[string]string{
		"box/..":                            "InvalidResourceName",
		"box/.":                             "InvalidResourceName",
		"box/a/../b":                        "InvalidResourceName",
		"box/a/../../../outside":            "InvalidResourceName",
		"box/a/./b":                         "InvalidResourceName",
		"box/%2e%2e":                        "InvalidResourceName",
		"box/%2E%2E/%2e%2e/outside":         "InvalidResourceName",
		"box/a%2F..%2F..%2F..%2Foutside":    "InvalidResourceName",
		"box/%2Fetc%2Fpasswd":               "InvalidResourceName",
		"box//x":                            "InvalidResourceName",
		"box/dir/":                          "InvalidResourceName",
		"box/a//b":                          "InvalidResourceName",
		"box/a%5Cb":                         "InvalidResourceName",
		"box/..%5C..%5Coutside":             "InvalidResourceName",
		"box/a%00b":                         "InvalidResourceName",
		"box/a%0Ab":                         "InvalidResourceName",
		"box/x.attrs":                       "InvalidResourceName",
		"box/" + strings.Repeat("a", 1025):  "OutOfRangeInput",
		"%2e%2e/x":                          "InvalidResourceName",
		"..%2Fbox/x":                        "InvalidResourceName",
		"Box/x":                             "InvalidResourceName",
		".kiln/containers":                  "InvalidResourceName",
		"box/a%2F%2E%2E%2F%2E%2E%2Foutside": "InvalidResourceName",
	}
	for p, code := range paths {
		for _, method := range []string{http.MethodPut, http.MethodGet, http.MethodDelete} {
			u := srv.URL + "/storage/" + p + "?" + sasQ
			status, got, _ := do(t, method, u, strings.NewReader("evil"), map[string]string{"x-ms-blob-type": "BlockBlob"})
			if status != http.StatusBadRequest || got != code {
				t.Errorf("%s %s: %d %s, want 400 %s", method, p, status, got, code)
			}
			status, got, _ = do(t, method, u+"&comp=block&blockid=QUFBQQ==", strings.NewReader("evil"), nil)
			if status != http.StatusBadRequest {
				t.Errorf("%s %s (block): %d %s, want 400", method, p, status, got)
			}
		}
	}

	// The Go API refuses the same names.
	for _, name := range []string{"..", "a/../b", "/x", `a\b`} {
		if _, err := s.Put(ctx, "box", name, strings.NewReader("evil"), PutOptions{}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Put(%q): %v, want ErrInvalidName", name, err)
		}
	}

	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bucket/.kiln/containers/box", "bucket/.kiln/containers/box.attrs"}; !slices.Equal(files, want) {
		t.Fatalf("files after hostile writes = %v, want only %v", files, want)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("the bucket's parent holds %d entries, want 1", len(entries))
	}
}
