package cli

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Unit tests of the storage commands' pure parts; storage_test.go runs the
// commands against Azurite.

func TestLocalBlobPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, want, err string }{
		{"a.txt", "a.txt", ""},
		{"dir/sub/a b.txt", filepath.Join("dir", "sub", "a b.txt"), ""},
		{"dir//a.txt", filepath.Join("dir", "a.txt"), ""},
		{"./dir/./a.txt", filepath.Join("dir", "a.txt"), ""},
		{"..a/b..", filepath.Join("..a", "b.."), ""},
		{"", "", "empty"},
		{".", "", "not a path inside"},
		{"..", "", ".. segment"},
		{"../x", "", ".. segment"},
		{"a/../../x", "", ".. segment"},
		{"a/../b", "", ".. segment"},
		{`a\..\..\x`, "", ".. segment"},
		{"/etc/passwd", "", "absolute"},
		{`\x`, "", "absolute"},
		{"a\x00b", "", "NUL"},
	} {
		got, err := localBlobPath(tc.name)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %q, %v; want error with %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestDownloadPlan(t *testing.T) {
	t.Parallel()
	items, dirs, err := downloadPlan([]storageBlob{
		{Name: "a/b.txt", ContentLength: 3}, {Name: "a/empty/"}, {Name: "c", ContentLength: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].path != filepath.Join("a", "b.txt") || items[0].blob != "a/b.txt" || items[0].size != 3 || items[1].path != "c" {
		t.Errorf("items %+v", items)
	}
	if len(dirs) != 1 || dirs[0] != filepath.Join("a", "empty") {
		t.Errorf("dirs %q", dirs)
	}
	if _, _, err := downloadPlan([]storageBlob{{Name: "a/b"}, {Name: "a//b"}}); err == nil || !strings.Contains(err.Error(), `blobs "a/b" and "a//b" would both be written to`) {
		t.Errorf("same path twice: %v", err)
	}
	if _, _, err := downloadPlan([]storageBlob{{Name: "ok"}, {Name: "../x/"}}); err == nil || !strings.Contains(err.Error(), `refusing to download blob "../x/"`) {
		t.Errorf("escaping directory marker: %v", err)
	}
}

func TestCollectUploads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "tree", "a.txt"), []byte("a"))
	writeFile(t, filepath.Join(dir, "tree", "sub", "b.txt"), []byte("bb"))
	writeFile(t, filepath.Join(dir, "target.txt"), []byte("ccc"))
	if err := os.Symlink(filepath.Join(dir, "target.txt"), filepath.Join(dir, "tree", "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "tree"), filepath.Join(dir, "tree", "sub", "loop")); err != nil {
		t.Fatal(err)
	}

	items, err := collectUploads([]string{filepath.Join(dir, "tree"), filepath.Join(dir, "target.txt")}, "p/")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.blob+"="+strings.TrimPrefix(it.path, dir)+":"+string(rune('0'+it.size)))
	}
	want := "p/a.txt=/tree/a.txt:1 p/link.txt=/tree/link.txt:3 p/sub/b.txt=/tree/sub/b.txt:2 p/target.txt=/target.txt:3"
	if strings.Join(got, " ") != want {
		t.Errorf("items\n%s\nwant\n%s", strings.Join(got, " "), want)
	}

	if _, err := collectUploads([]string{filepath.Join(dir, "tree"), filepath.Join(dir, "tree", "a.txt")}, ""); err == nil ||
		!strings.Contains(err.Error(), "would both be uploaded as a.txt") {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := collectUploads([]string{filepath.Join(dir, "nope")}, ""); err == nil || err.Error() != "upload source "+filepath.Join(dir, "nope")+" does not exist" {
		t.Errorf("missing: %v", err)
	}
	items, err = collectUploads([]string{t.TempDir()}, "")
	if err != nil || len(items) != 0 {
		t.Errorf("empty directory: %v, %v", items, err)
	}
}

func TestSASPermissions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		forBlob bool
		want    string
	}{
		{"", false, "rl"}, {"", true, "r"}, {"lr", false, "rl"}, {"lwr", false, "rwl"},
		{"dwcar", true, "racwd"}, {"racwdl", false, "racwdl"},
	} {
		got, err := sasPermissions(tc.in, tc.forBlob)
		if err != nil || got != tc.want {
			t.Errorf("%q (blob %v): %q, %v; want %q", tc.in, tc.forBlob, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in      string
		forBlob bool
	}{{"rl", true}, {"x", false}, {"R", false}} {
		if got, err := sasPermissions(tc.in, tc.forBlob); err == nil {
			t.Errorf("%q (blob %v): %q, want an error", tc.in, tc.forBlob, got)
		}
	}
}

func TestParseExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 500, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":                  now.Add(24 * time.Hour).Truncate(time.Second),
		"90m":                  now.Add(90 * time.Minute).Truncate(time.Second),
		"7d":                   now.AddDate(0, 0, 7).Truncate(time.Second),
		"2030-01-02T03:04:05Z": time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	} {
		if got, err := parseExpiry(in, now); err != nil || !got.Equal(want) {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1h", "0s", "2020-01-01T00:00:00Z"} {
		if got, err := parseExpiry(in, now); err == nil {
			t.Errorf("%q: %v, want an error", in, got)
		}
	}
}

func TestStorageBaseURL(t *testing.T) {
	t.Parallel()
	c := Credentials{URL: "http://127.0.0.1:8080", AccountName: "Acct1"}
	s := &storageOptions{g: &globalOptions{getenv: envMap(nil)}}
	if got := s.baseURL(c); got != "http://127.0.0.1:8080/storage/acct1" {
		t.Errorf("default %q", got)
	}
	s.g.getenv = envMap(map[string]string{EnvStorageURL: "127.0.0.1:10000/devstoreaccount1/"})
	if got := s.baseURL(c); got != "http://127.0.0.1:10000/devstoreaccount1" {
		t.Errorf("env %q", got)
	}
	s.storageURL = "https://store.example/x"
	if got := s.baseURL(c); got != "https://store.example/x" {
		t.Errorf("flag %q", got)
	}
}

func TestSignURL(t *testing.T) {
	t.Parallel()
	cred, err := azblob.NewSharedKeyCredential("acct", "c2VjcmV0")
	if err != nil {
		t.Fatal(err)
	}
	target := storageTarget{baseURL: "http://h:1/storage", cred: cred}
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	u, err := signURL(target, "c", "dir/a b#?.txt", "", exp)
	if err != nil {
		t.Fatal(err)
	}
	base, query, _ := strings.Cut(u.URL, "?")
	if base != "http://h:1/storage/c/dir/a%20b%23%3F.txt" {
		t.Errorf("blob URL %q", base)
	}
	q, _ := url.ParseQuery(query)
	if q.Get("sr") != "b" || q.Get("sp") != "r" || q.Get("se") != "2030-01-01T00:00:00Z" || q.Get("spr") != "https,http" || q.Get("sig") == "" {
		t.Errorf("blob SAS %v", q)
	}
	u, err = signURL(target, "c", "", "wl", exp)
	if err != nil {
		t.Fatal(err)
	}
	base, query, _ = strings.Cut(u.URL, "?")
	q, _ = url.ParseQuery(query)
	if base != "http://h:1/storage/c" || q.Get("sr") != "c" || q.Get("sp") != "wl" || u.Permissions != "wl" {
		t.Errorf("container URL %q", u.URL)
	}
}

func TestSASPolicyRenews(t *testing.T) {
	t.Parallel()
	cred, _ := azblob.NewSharedKeyCredential("acct", "c2VjcmV0")
	p := &sasPolicy{cred: cred}
	first, err := p.token()
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(first)
	se, err := time.Parse(time.RFC3339, q.Get("se"))
	if err != nil || se.Before(time.Now().Add(55*time.Minute)) || q.Get("srt") != "sco" || q.Get("ss") != "b" || q.Get("sp") != "rwdlac" {
		t.Errorf("account SAS %v (%v)", q, err)
	}
	if again, _ := p.token(); again != first {
		t.Error("token re-signed before its renewal time")
	}
	p.renewAt = time.Now().Add(-time.Second)
	p.query = "stale"
	if renewed, _ := p.token(); renewed == "stale" {
		t.Error("token not renewed")
	}
}
