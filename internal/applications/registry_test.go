package applications

import (
	"context"
	"errors"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/storage"
)

// openRegistry opens a registry on a file:// bucket in dir.
func openRegistry(t *testing.T, dir string) (*Registry, *storage.Storage) {
	t.Helper()
	st, err := storage.Open(context.Background(), (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sign := func(account, container, blob string, expiry time.Time) string {
		return "signed:" + account + "/" + container + "/" + blob
	}
	r, err := Open(context.Background(), StorageBlobs(st), sign, []string{"acct", "other"})
	if err != nil {
		t.Fatal(err)
	}
	return r, st
}

func TestRegistryLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, st := openRegistry(t, dir)

	if _, _, err := r.Put(ctx, "acct", "bad name!", Update{}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("invalid name: %v", err)
	}
	a, created, err := r.Put(ctx, "acct", "Blender", Update{DisplayName: ptr("Blender 3D")})
	if err != nil || !created || a.ID != "Blender" || !a.AllowUpdates {
		t.Fatalf("create: %+v %v %v", a, created, err)
	}
	if _, err := r.PutVersion(ctx, "acct", "nosuch", "1.0", strings.NewReader("zip")); !errors.Is(err, ErrApplicationNotFound) {
		t.Fatalf("version of a missing application: %v", err)
	}
	p, err := r.PutVersion(ctx, "acct", "blender", "2.7", strings.NewReader("zip-bytes"))
	if err != nil || p.Size != 9 || p.State != "active" || p.Format != "zip" {
		t.Fatalf("put version: %+v %v", p, err)
	}
	// The zip is in storage where Resolve's URL points.
	acct, err := st.Account(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	rd, err := acct.NewReader(ctx, Container, "blender/2.7.zip", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rd)
	rd.Close()
	if string(b) != "zip-bytes" {
		t.Fatalf("stored zip %q", b)
	}
	if _, err := r.Resolve("acct", "blender", ""); !errors.Is(err, ErrNoDefaultVersion) {
		t.Fatalf("resolve without default: %v", err)
	}
	if _, _, err := r.Put(ctx, "acct", "blender", Update{DefaultVersion: ptr("9.9")}); !errors.Is(err, ErrVersionNotFound) {
		t.Fatalf("default version that does not exist: %v", err)
	}
	if _, created, err := r.Put(ctx, "acct", "BLENDER", Update{DefaultVersion: ptr("2.7")}); err != nil || created {
		t.Fatalf("set default: %v %v", created, err)
	}
	pkg, err := r.Resolve("ACCT", "blender", "")
	if err != nil || pkg.Version != "2.7" || !pkg.IsDefault || pkg.URL != "signed:acct/kiln-applications/blender/2.7.zip" || pkg.Revision == "" {
		t.Fatalf("resolve default: %+v %v", pkg, err)
	}
	// Uploading the version again gives it a new revision.
	if _, err := r.PutVersion(ctx, "acct", "blender", "2.7", strings.NewReader("zip-bytes-2")); err != nil {
		t.Fatal(err)
	}
	if again, _ := r.Resolve("acct", "blender", "2.7"); again.Revision == pkg.Revision {
		t.Fatalf("a re-uploaded version keeps revision %q", again.Revision)
	}

	// Another account sees nothing; a reopened registry sees everything.
	if len(r.List("other")) != 0 {
		t.Fatal("applications leak across accounts")
	}
	r2, _ := openRegistry(t, dir)
	got, err := r2.Get("acct", "blender")
	if err != nil || got.DisplayName != "Blender 3D" || got.DefaultVersion != "2.7" || len(got.Versions) != 1 {
		t.Fatalf("reopened: %+v %v", got, err)
	}

	// Updates of existing versions need allowUpdates.
	if _, _, err := r.Put(ctx, "acct", "blender", Update{AllowUpdates: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutVersion(ctx, "acct", "blender", "2.7", strings.NewReader("new")); !errors.Is(err, ErrUpdatesNotAllowed) {
		t.Fatalf("replace without allowUpdates: %v", err)
	}
	// Deleting the default version clears it; deleting the application
	// removes its blobs.
	if err := r.DeleteVersion(ctx, "acct", "blender", "2.7"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Get("acct", "blender"); got.DefaultVersion != "" || len(got.Versions) != 0 {
		t.Fatalf("after version delete: %+v", got)
	}
	if err := r.Delete(ctx, "acct", "blender"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("acct", "blender"); !errors.Is(err, ErrApplicationNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	names, err := StorageBlobs(st).List(ctx, "acct", Container, "")
	if err != nil || len(names) != 0 {
		t.Fatalf("blobs left after delete: %v %v", names, err)
	}
}

func ptr[T any](v T) *T { return &v }
