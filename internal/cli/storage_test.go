package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/storage"
	"github.com/kilnbatch/kiln/internal/testutil/azurite"
)

// These tests run the storage commands in-process against a real Azurite
// blob service, and the transfers also against the Kiln server's own storage
// handler (internal/storage), which speak the same protocol.

// storageCLI runs kiln commands against one storage endpoint.
type storageCLI struct {
	kilnURL    string // --url
	storageURL string // $KILN_STORAGE_URL, if any
	account    string
	key        string // base64
	tty        bool   // draw progress as on a terminal
}

// azuriteCLI runs against Azurite: the storage URL comes from
// $KILN_STORAGE_URL and the Kiln URL itself leads nowhere.
func azuriteCLI(az *azurite.Azurite) storageCLI {
	return storageCLI{kilnURL: "http://127.0.0.1:9", storageURL: az.BlobURL, account: az.Account, key: az.Key}
}

// kilnStorageCLI runs against the Kiln storage handler mounted at /storage
// of a test server, as `kiln server` mounts it; the storage URL is derived
// from --url.
func kilnStorageCLI(t *testing.T) storageCLI {
	t.Helper()
	s, err := storage.Open(context.Background(), "file://"+filepath.ToSlash(filepath.Join(t.TempDir(), "bucket")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key := []byte("kiln-storage-test-key")
	mux := http.NewServeMux()
	keys := func(account string) ([][]byte, bool) { return [][]byte{key}, account == "acct" }
	mux.Handle("/storage/", http.StripPrefix("/storage", s.AccountsHandler(keys)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return storageCLI{kilnURL: srv.URL, account: "acct", key: base64.StdEncoding.EncodeToString(key)}
}

// run executes `kiln <args>`.
func (s storageCLI) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	root := &cobra.Command{Use: "kiln", SilenceErrors: true, SilenceUsage: true}
	env := map[string]string{}
	if s.storageURL != "" {
		env[EnvStorageURL] = s.storageURL
	}
	o := &globalOptions{getenv: envMap(env)}
	addClientCommands(root, o)
	root.AddCommand((&storageOptions{g: o, isTerminal: func(io.Writer) bool { return s.tty }}).command())
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetIn(strings.NewReader(""))
	root.SetArgs(append([]string{"--url", s.kilnURL, "--account-name", s.account, "--account-key", s.key, "--data-dir", t.TempDir()}, args...))
	code := HandleError(&stderr, root.ExecuteContext(context.Background()))
	return cliResult{stdout.String(), stderr.String(), code}
}

// mustRun runs and fails the test on a non-zero exit.
func (s storageCLI) mustRun(t *testing.T, args ...string) cliResult {
	t.Helper()
	res := s.run(t, args...)
	if res.code != 0 {
		t.Fatalf("kiln %s: exit %d, stderr %q", strings.Join(args, " "), res.code, res.stderr)
	}
	return res
}

// wantFail runs, expecting exit 1 with want in stderr.
func (s storageCLI) wantFail(t *testing.T, want string, args ...string) {
	t.Helper()
	res := s.run(t, args...)
	if res.code != 1 || !strings.Contains(res.stderr, want) {
		t.Errorf("kiln %s: exit %d, stderr %q; want exit 1 and %q", strings.Join(args, " "), res.code, res.stderr, want)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// randomBytes is n bytes of a fixed pseudo-random sequence.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{'k', 'i', 'l', 'n'}).Read(b)
	return b
}

// forEachStorage runs test against Azurite and against Kiln's storage.
func forEachStorage(t *testing.T, test func(t *testing.T, cli storageCLI)) {
	t.Run("Azurite", func(t *testing.T) {
		t.Parallel()
		test(t, azuriteCLI(azurite.Start(t)))
	})
	t.Run("KilnStorage", func(t *testing.T) {
		t.Parallel()
		test(t, kilnStorageCLI(t))
	})
}

func TestStorage_Containers(t *testing.T) {
	t.Parallel()
	forEachStorage(t, exerciseContainers)
}

func exerciseContainers(t *testing.T, cli storageCLI) {
	res := cli.mustRun(t, "storage", "container", "create", "inputs")
	if !strings.HasPrefix(res.stdout, "NAME    LAST MODIFIED\ninputs  20") {
		t.Errorf("create: stdout %q", res.stdout)
	}
	cli.mustRun(t, "storage", "container", "create", "outputs")
	if res := cli.mustRun(t, "storage", "container", "create", "inputs"); res.stdout != "" || !strings.Contains(res.stderr, `container "inputs" already exists`) {
		t.Errorf("create of an existing container: stdout %q stderr %q", res.stdout, res.stderr)
	}
	cli.wantFail(t, `container "inputs" already exists`, "storage", "container", "create", "inputs", "--fail-on-exist")

	res = cli.mustRun(t, "storage", "container", "list", "-o", "json")
	var cs []storageContainer
	if err := json.Unmarshal([]byte(res.stdout), &cs); err != nil {
		t.Fatalf("list json %q: %v", res.stdout, err)
	}
	if len(cs) != 2 || cs[0].Name != "inputs" || cs[1].Name != "outputs" || cs[0].LastModified == nil || cs[0].ETag == "" {
		t.Errorf("list json %+v", cs)
	}

	res = cli.mustRun(t, "storage", "container", "delete", "inputs")
	if res.stdout != "Deleted container inputs.\n" {
		t.Errorf("delete: stdout %q", res.stdout)
	}
	cli.wantFail(t, `container "inputs" does not exist`, "storage", "container", "delete", "inputs")
	res = cli.mustRun(t, "storage", "container", "list")
	if lines := strings.Split(strings.TrimSpace(res.stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "outputs  ") {
		t.Errorf("list after delete:\n%s", res.stdout)
	}
}

func TestStorage_UploadListDownload(t *testing.T) {
	t.Parallel()
	t.Run("Azurite", func(t *testing.T) {
		t.Parallel()
		az := azurite.Start(t)
		cli := azuriteCLI(az)
		cli.tty = true
		exerciseTransfers(t, cli, func(container, name string) int {
			bl, err := az.Container(t, container).NewBlockBlobClient(name).GetBlockList(context.Background(), blockblob.BlockListTypeCommitted, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(bl.CommittedBlocks) == 3 && (*bl.CommittedBlocks[0].Size != 8<<20 || *bl.CommittedBlocks[2].Size != 20_000_000-16<<20) {
				t.Errorf("committed blocks %+v", bl.CommittedBlocks)
			}
			return len(bl.CommittedBlocks)
		})
	})
	t.Run("KilnStorage", func(t *testing.T) {
		t.Parallel()
		cli := kilnStorageCLI(t)
		cli.tty = true
		exerciseTransfers(t, cli, nil)
	})
}

// exerciseTransfers uploads a tree, lists it, downloads it and compares,
// overwrites and deletes. blocks, if not nil, returns the number of
// committed blocks of a blob.
func exerciseTransfers(t *testing.T, cli storageCLI, blocks func(container, name string) int) {
	cli.mustRun(t, "storage", "container", "create", "data")

	// A tree with nested directories, an empty file and a 20 MB file (three
	// blocks of 8 MiB), plus a loose file given on its own.
	src := t.TempDir()
	files := map[string][]byte{
		"a.txt":               []byte("hello\n"),
		"empty.dat":           {},
		"sub/b.json":          []byte(`{"b": 1}`),
		"sub/deeper/c d.bin":  randomBytes(1000),
		"sub/deeper/big.bin":  randomBytes(20_000_000),
		"sub/deeper/ünï.txt":  []byte("unicode name\n"),
		"sub/empty-dir/.keep": {},
	}
	for name, data := range files {
		writeFile(t, filepath.Join(src, "tree", filepath.FromSlash(name)), data)
	}
	loose := filepath.Join(src, "loose.csv")
	writeFile(t, loose, []byte("x,y\n1,2\n"))

	res := cli.mustRun(t, "storage", "upload", "--container", "data", "--prefix", "run1/", filepath.Join(src, "tree"), loose)
	if !strings.HasPrefix(res.stdout, "Uploaded 8 files (19.1 MiB) to data in ") {
		t.Errorf("upload: stdout %q", res.stdout)
	}
	// The bar redraws one line in place and ends complete.
	if !strings.Contains(res.stderr, "\r[") || !strings.Contains(res.stderr, "[##############################] 100%  19.1 MiB/19.1 MiB  8/8 files") {
		t.Errorf("upload: stderr %q", res.stderr)
	}

	// The big file went as Put Block requests and a Put Block List.
	if blocks != nil {
		if n := blocks("data", "run1/sub/deeper/big.bin"); n != 3 {
			t.Errorf("%d committed blocks, want 3", n)
		}
	}

	res = cli.mustRun(t, "storage", "list", "--container", "data", "-o", "json")
	var blobs []storageBlob
	if err := json.Unmarshal([]byte(res.stdout), &blobs); err != nil {
		t.Fatalf("list json %q: %v", res.stdout, err)
	}
	got := map[string]storageBlob{}
	var names []string
	for _, b := range blobs {
		got[b.Name] = b
		names = append(names, b.Name)
	}
	want := []string{"run1/a.txt", "run1/empty.dat", "run1/loose.csv", "run1/sub/b.json", "run1/sub/deeper/big.bin",
		"run1/sub/deeper/c d.bin", "run1/sub/deeper/ünï.txt", "run1/sub/empty-dir/.keep"}
	sort.Strings(names)
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("blobs %q\nwant  %q", names, want)
	}
	if b := got["run1/sub/deeper/big.bin"]; b.ContentLength != 20_000_000 || b.ContentType != "application/octet-stream" || b.LastModified == nil {
		t.Errorf("big.bin %+v", b)
	}
	if b := got["run1/a.txt"]; b.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("a.txt %+v", b)
	}

	res = cli.mustRun(t, "storage", "list", "-c", "data", "--prefix", "run1/sub/deeper/")
	table := regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`).ReplaceAllString(res.stdout, "<time>             ")
	wantTable := "" +
		"NAME                     SIZE      LAST MODIFIED        CONTENT TYPE\n" +
		"run1/sub/deeper/big.bin  19.1 MiB  <time>               application/octet-stream\n" +
		"run1/sub/deeper/c d.bin  1000 B    <time>               application/octet-stream\n" +
		"run1/sub/deeper/ünï.txt  13 B      <time>               text/plain; charset=utf-8\n"
	if table != wantTable {
		t.Errorf("list table:\n%s\nwant:\n%s", table, wantTable)
	}

	// Download everything under run1/ to a new directory: byte for byte.
	dest := filepath.Join(t.TempDir(), "new", "dir")
	res = cli.mustRun(t, "storage", "download", "--container", "data", "--prefix", "run1/", dest, "-o", "json")
	var sum transferSummary
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil {
		t.Fatalf("download json %q: %v", res.stdout, err)
	}
	if sum.Files != 8 || sum.Bytes != 20_000_000+6+8+1000+13+8 || sum.Container != "data" || sum.Destination != dest || len(sum.Blobs) != 8 {
		t.Errorf("download summary %+v", sum)
	}
	files["../loose.csv"] = []byte("x,y\n1,2\n")
	for name, data := range files {
		b, err := os.ReadFile(filepath.Join(dest, "run1", filepath.FromSlash(strings.TrimPrefix(name, "../"))))
		if err != nil || !bytes.Equal(b, data) {
			t.Errorf("%s: %d bytes, want %d; %v", name, len(b), len(data), err)
		}
	}
	var count int
	filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			count++
		}
		return err
	})
	if count != 8 {
		t.Errorf("%d files downloaded, want 8 (no leftover temporary files)", count)
	}

	// --overwrite=false refuses an existing blob and leaves it alone.
	writeFile(t, filepath.Join(src, "other", "a.txt"), []byte("changed"))
	cli.wantFail(t, "upload "+filepath.Join(src, "other", "a.txt")+" to run1/a.txt: the blob already exists (--overwrite=false)",
		"storage", "upload", "-c", "data", "--prefix", "run1/", "--overwrite=false", filepath.Join(src, "other", "a.txt"))
	// The default replaces it.
	cli.mustRun(t, "storage", "upload", "-c", "data", "--prefix", "run1/", filepath.Join(src, "other", "a.txt"))
	if b := downloadString(t, cli, "data", "run1/a.txt"); b != "changed" {
		t.Errorf("a.txt after overwrite: %q", b)
	}

	// Deleting blobs.
	res = cli.mustRun(t, "storage", "delete", "-c", "data", "run1/a.txt", "run1/empty.dat")
	if res.stdout != "Deleted run1/a.txt.\nDeleted run1/empty.dat.\n" {
		t.Errorf("delete: stdout %q", res.stdout)
	}
	cli.wantFail(t, "ERROR: delete run1/a.txt: BlobNotFound: ", "storage", "delete", "-c", "data", "run1/a.txt")
}

// downloadString downloads one blob through the CLI into a new directory.
func downloadString(t *testing.T, cli storageCLI, container, name string) string {
	t.Helper()
	dir := t.TempDir()
	cli.mustRun(t, "storage", "download", "-c", container, "--prefix", name, dir)
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStorage_Errors(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t)
	cli := azuriteCLI(az)
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	writeFile(t, file, []byte("x"))

	cli.wantFail(t, "upload source "+filepath.Join(dir, "missing")+" does not exist", "storage", "upload", "-c", "c", file, filepath.Join(dir, "missing"))
	cli.wantFail(t, "--container is required", "storage", "upload", file)
	cli.wantFail(t, `container "nope" does not exist (create it with `+"`kiln storage container create nope`)", "storage", "upload", "-c", "nope", file)
	cli.wantFail(t, `container "nope" does not exist`, "storage", "list", "-c", "nope")
	cli.wantFail(t, `container "nope" does not exist`, "storage", "download", "-c", "nope", filepath.Join(dir, "out"))
	cli.wantFail(t, "invalid --concurrency 0", "storage", "upload", "-c", "c", "--concurrency", "0", file)

	// A wrong key is refused by storage.
	bad := azuriteCLI(az)
	bad.key = "d3Jvbmcta2V5"
	bad.wantFail(t, "refused the account SAS: check the account name and key", "storage", "container", "list")

	// Nothing listening.
	down := azuriteCLI(az)
	down.storageURL = "http://127.0.0.1:9/devstoreaccount1"
	down.wantFail(t, "cannot reach Kiln storage at http://127.0.0.1:9/devstoreaccount1", "storage", "container", "list")
}

func TestStorage_DownloadRefusesEscapingNames(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t)
	cli := azuriteCLI(az)
	for i, tc := range []struct{ name, why string }{
		{"../escape.txt", "the name has a .. segment"},
		{"sub/../../escape.txt", "the name has a .. segment"},
		{"/abs.txt", "the name is absolute"},
	} {
		c := fmt.Sprintf("evil%d", i)
		az.CreateContainer(t, c)
		cc := az.Container(t, c)
		for _, name := range []string{"fine.txt", tc.name} {
			if _, err := cc.NewBlockBlobClient(name).UploadBuffer(context.Background(), []byte("x"), nil); err != nil {
				t.Fatal(err)
			}
		}
		res := cli.mustRun(t, "storage", "list", "-c", c, "-o", "json")
		if !strings.Contains(res.stdout, strconv.Quote(tc.name)[1:len(strconv.Quote(tc.name))-1]) {
			t.Errorf("%s: storage keeps the name as %s", tc.name, res.stdout)
			continue
		}
		dest := filepath.Join(t.TempDir(), "dest")
		cli.wantFail(t, fmt.Sprintf("refusing to download blob %q: %s", tc.name, tc.why), "storage", "download", "-c", c, dest)
		if entries, _ := os.ReadDir(dest); len(entries) != 0 {
			t.Errorf("%s: something was downloaded: %v", tc.name, entries)
		}
	}
}

func TestStorage_URL(t *testing.T) {
	t.Parallel()
	forEachStorage(t, exerciseURLs)
}

func exerciseURLs(t *testing.T, cli storageCLI) {
	cli.mustRun(t, "storage", "container", "create", "pub")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dir", "a b.txt"), []byte("content of dir/a b.txt"))
	writeFile(t, filepath.Join(dir, "z.txt"), []byte("content of z.txt"))
	cli.mustRun(t, "storage", "upload", "-c", "pub", filepath.Join(dir, "dir"), "--prefix", "dir/")
	cli.mustRun(t, "storage", "upload", "-c", "pub", filepath.Join(dir, "z.txt"))

	// A blob URL: a plain GET reads it.
	res := cli.mustRun(t, "storage", "url", "--container", "pub", "--blob", "dir/a b.txt")
	u := strings.TrimSpace(res.stdout)
	base := cli.storageURL
	if base == "" {
		base = cli.kilnURL + "/storage/acct"
	}
	if !strings.HasPrefix(u, base+"/pub/dir/a%20b.txt?") || !strings.Contains(u, "sr=b") || !strings.Contains(u, "sp=r&") {
		t.Errorf("blob URL %q", u)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "content of dir/a b.txt" {
		t.Errorf("GET blob URL: %d %q", resp.StatusCode, body)
	}

	// A container URL (read and list by default): azblob lists with it.
	res = cli.mustRun(t, "storage", "url", "-c", "pub", "-o", "json", "--expiry", "2h")
	var su signedURL
	if err := json.Unmarshal([]byte(res.stdout), &su); err != nil {
		t.Fatalf("url json %q: %v", res.stdout, err)
	}
	if su.Permissions != "rl" || su.Container != "pub" || !strings.Contains(su.URL, "sr=c") {
		t.Errorf("container URL %+v", su)
	}
	list, err := container.NewClientWithNoCredential(su.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	pager := list.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list with container URL: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	if strings.Join(names, ",") != "dir/a b.txt,z.txt" {
		t.Errorf("listed %q", names)
	}
	// Read-only: writing with it is refused.
	if _, err := list.NewBlockBlobClient("new.txt").UploadBuffer(context.Background(), []byte("x"), nil); err == nil {
		t.Error("upload with an rl URL succeeded")
	}

	// With w, an output-files container URL can write.
	res = cli.mustRun(t, "storage", "url", "-c", "pub", "--permissions", "rwl")
	w, _ := container.NewClientWithNoCredential(strings.TrimSpace(res.stdout), nil)
	if _, err := w.NewBlockBlobClient("out.txt").UploadBuffer(context.Background(), []byte("x"), nil); err != nil {
		t.Errorf("upload with an rwl URL: %v", err)
	}

	cli.wantFail(t, `invalid --permissions "rl": a blob takes letters of racwd`, "storage", "url", "-c", "pub", "-b", "z.txt", "--permissions", "rl")
	cli.wantFail(t, `invalid --expiry "soon"`, "storage", "url", "-c", "pub", "--expiry", "soon")
	cli.wantFail(t, "not in the future", "storage", "url", "-c", "pub", "--expiry", "2020-01-01T00:00:00Z")
}
