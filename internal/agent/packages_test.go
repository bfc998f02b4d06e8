package agent_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/testutil/azurite"
)

// zipEntry is one entry of a test zip: a file (data), a directory (name
// ending in "/") or a symbolic link (link).
type zipEntry struct {
	name string
	mode fs.FileMode
	data string
	link string
}

func makeZip(t *testing.T, entries ...zipEntry) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch {
		case strings.HasSuffix(e.name, "/"):
			h.SetMode(fs.ModeDir | 0o755)
		case e.link != "":
			h.SetMode(fs.ModeSymlink | 0o777)
			e.data = e.link
		default:
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// appEntries are the entries of a well-formed package.
func appEntries(version string) []zipEntry {
	return []zipEntry{
		{name: "bin/"},
		{name: "bin/hello.sh", mode: 0o755, data: "#!/bin/sh\necho hello from \"$1\"\n"},
		{name: "bin/hi", link: "hello.sh"},
		{name: "data/readme.txt", mode: 0o644, data: "read me"},
		{name: "VERSION", mode: 0o644, data: version},
		{name: "empty/"},
	}
}

// applications lists <root>/applications (nothing before the agent made it).
func applications(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "applications"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRun_ApplicationPackages(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	s.mu.Lock()
	s.files["app.zip"] = makeZip(t, appEntries("1.0")...)
	s.mu.Unlock()
	pkg := protocol.Package{ApplicationID: "my-app.Tool", Version: "1.0#b", IsDefault: true, URL: s.srv.URL + "/blobs/app.zip?sig=secret"}

	// Six tasks at once need the same package: it is fetched and
	// extracted once, and every task finds it complete.
	const n = 6
	var ids []string
	for i := range n {
		as := task(fmt.Sprintf("pkg%d", i), `/bin/sh -c '"$AZ_BATCH_APP_PACKAGE_my_app_Tool_1_0_b/bin/hi" "$AZ_BATCH_TASK_ID" && env'`)
		as.Packages = []protocol.Package{pkg}
		ids = append(ids, as.AttemptID)
		s.assign(as)
	}
	var dir string
	for _, id := range ids {
		c := s.waitEvent(id, protocol.EventCompleted)
		if c.Failure != nil || c.ExitCode == nil || *c.ExitCode != 0 {
			t.Fatalf("%s: completed = %+v, failure %+v", id, c, c.Failure)
		}
		env := readEnv(t, filepath.Join(b.taskDir(task(id, "")), "stdout.txt"))
		if env["first"] != "hello from task-"+id {
			t.Errorf("%s: output %q", id, env["first"])
		}
		dir = env["AZ_BATCH_APP_PACKAGE_my_app_Tool_1_0_b"]
		if def := env["AZ_BATCH_APP_PACKAGE_my_app_Tool"]; dir == "" || def != dir {
			t.Errorf("%s: versioned variable %q, default %q", id, dir, def)
		}
	}
	s.mu.Lock()
	fetches := s.fetches["app.zip"]
	s.mu.Unlock()
	if fetches != 1 {
		t.Errorf("the package was fetched %d times, want once", fetches)
	}
	if filepath.Dir(dir) != filepath.Join(b.root, "applications") || !strings.HasPrefix(filepath.Base(dir), "my-app.Tool1.0_b.") {
		t.Errorf("package directory %s, want <root>/applications/my-app.Tool1.0_b.<hash>", dir)
	}
	if names := applications(t, b.root); len(names) != 1 || names[0] != filepath.Base(dir) {
		t.Errorf("applications holds %v, want only the package (no temporary files)", names)
	}
	for name, mode := range map[string]fs.FileMode{"bin/hello.sh": 0o755, "data/readme.txt": 0o644, "VERSION": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", name, err, fi.Mode().Perm(), mode)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin", "hi")); err != nil || target != "hello.sh" {
		t.Errorf("bin/hi links to %q (%v)", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory: %v", err)
	}

	// A later task with the package uses the installed one.
	later := task("pkg-later", "true")
	later.Packages = []protocol.Package{pkg}
	s.assign(later)
	if c := s.waitEvent("pkg-later", protocol.EventCompleted); c.Failure != nil {
		t.Fatalf("later task: %+v", c.Failure)
	}
	s.mu.Lock()
	fetches = s.fetches["app.zip"]
	s.mu.Unlock()
	if fetches != 1 {
		t.Errorf("the package was fetched again (%d fetches)", fetches)
	}
}

func TestRun_ApplicationPackageFailures(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	s := b.server
	evil := func(e zipEntry) string { return makeZip(t, append(appEntries("1"), e)...) }
	zips := map[string]string{
		"notzip":    "this is not a zip file",
		"truncated": makeZip(t, appEntries("1")...)[:200],
		"slip":      evil(zipEntry{name: "../../evil.txt", mode: 0o644, data: "evil"}),
		"slipdeep":  evil(zipEntry{name: "bin/../../../evil.txt", mode: 0o644, data: "evil"}),
		"slipwin":   evil(zipEntry{name: `..\..\evil.txt`, mode: 0o644, data: "evil"}),
		"absolute":  evil(zipEntry{name: "/tmp/evil.txt", mode: 0o644, data: "evil"}),
		"linkout":   evil(zipEntry{name: "bin/evil", link: "../../../evil.txt"}),
		"linkabs":   evil(zipEntry{name: "evil", link: "/etc/passwd"}),
		"duplicate": evil(zipEntry{name: "VERSION", mode: 0o644, data: "again"}),
	}
	s.mu.Lock()
	for name, data := range zips {
		s.files[name+".zip"] = data
	}
	s.mu.Unlock()
	names := append(slices.Sorted(func(yield func(string) bool) {
		for k := range zips {
			if !yield(k) {
				return
			}
		}
	}), "missing")
	for _, name := range names {
		as := task("pf-"+name, "true")
		as.Packages = []protocol.Package{{ApplicationID: "app-" + name, Version: "1", URL: s.srv.URL + "/blobs/" + name + ".zip?sig=secret"}}
		s.assign(as)
	}
	for _, name := range names {
		c := s.waitEvent("pf-"+name, protocol.EventCompleted)
		checkFailure(t, c, agent.CodeApplicationPackageError, protocol.PhasePreProcessing, "app-"+name)
		if c.ExitCode != nil {
			t.Errorf("%s: exit code %d, want none", name, *c.ExitCode)
		}
		s.mu.Lock()
		started := len(s.eventsLocked("pf-"+name, protocol.EventStarted))
		s.mu.Unlock()
		if started != 0 {
			t.Errorf("%s: the task started", name)
		}
	}
	if left := applications(t, b.root); len(left) != 0 {
		t.Errorf("applications holds %v after failed installs, want nothing", left)
	}
	filepath.WalkDir(b.parent, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "evil") {
			t.Errorf("%s was extracted", p)
		}
		return nil
	})
}

func TestRun_PoolApplicationPackages(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t)
	az.CreateContainer(t, "apps")
	putBlob(t, az, "apps", "poolapp/2.zip", []byte(makeZip(t, appEntries("pool 2")...)))
	pkg := protocol.Package{
		ApplicationID: "poolapp",
		Version:       "2",
		URL:           blobURL(az.ContainerSAS(t, "apps", "r", time.Now().Add(time.Hour)), "poolapp/2.zip"),
	}
	b := setup(t, &testOpts{server: func(s *fakeServer) { s.nodePackages = []protocol.Package{pkg} }})
	s := b.server

	// Installed when the node registers, before any task asks.
	eventually(t, "the pool package installed", func() bool {
		names := applications(t, b.root)
		return len(names) == 1 && strings.HasPrefix(names[0], "poolapp2.")
	})
	start := protocol.Assignment{AttemptID: "st", Kind: protocol.KindStartTask, Dir: "startup",
		CommandLine: `/bin/sh -c 'cat "$AZ_BATCH_APP_PACKAGE_poolapp_2/VERSION"; echo; env'`}
	tk := task("pooltask", `/bin/sh -c 'cat "$AZ_BATCH_APP_PACKAGE_poolapp_2/VERSION"; echo; env'`)
	s.assign(start, tk)
	for _, out := range []string{filepath.Join(b.root, "startup", "stdout.txt"), filepath.Join(b.taskDir(tk), "stdout.txt")} {
		id := map[bool]string{true: "st", false: "pooltask"}[strings.Contains(out, "startup")]
		if c := s.waitEvent(id, protocol.EventCompleted); c.Failure != nil || *c.ExitCode != 0 {
			t.Fatalf("%s: %+v", id, c.Failure)
		}
		env := readEnv(t, out)
		if env["first"] != "pool 2" {
			t.Errorf("%s: read %q from the pool package", id, env["first"])
		}
		if _, ok := env["AZ_BATCH_APP_PACKAGE_poolapp"]; ok {
			t.Errorf("%s: AZ_BATCH_APP_PACKAGE_poolapp is set for a version that is not the default", id)
		}
	}
}

// TestRun_StartTaskWaitsForPoolPackages delivers the start task with the
// first sync, while the pool package (slow to download) is still being
// installed: the start task waits for it, and it is fetched once.
func TestRun_StartTaskWaitsForPoolPackages(t *testing.T) {
	t.Parallel()
	start := protocol.Assignment{AttemptID: "st", Kind: protocol.KindStartTask, Dir: "startup",
		CommandLine: `/bin/sh -c 'cat "$AZ_BATCH_APP_PACKAGE_slow_1/VERSION" "$AZ_BATCH_APP_PACKAGE_slow/VERSION"'`}
	b := setup(t, &testOpts{server: func(s *fakeServer) {
		s.files["slow.zip"] = makeZip(t, appEntries("slow1")...)
		s.fileDelay = 500 * time.Millisecond
		s.nodePackages = []protocol.Package{{ApplicationID: "slow", Version: "1", IsDefault: true, URL: s.srv.URL + "/blobs/slow.zip"}}
		s.next.Assignments = []protocol.Assignment{start}
	}})
	s := b.server
	c := s.waitEvent("st", protocol.EventCompleted)
	if c.Failure != nil || c.ExitCode == nil || *c.ExitCode != 0 {
		t.Fatalf("start task: %+v, failure %+v", c, c.Failure)
	}
	if out := readFile(t, filepath.Join(b.root, "startup", "stdout.txt")); out != "slow1slow1" {
		t.Errorf("start task read %q from the package", out)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.fetches["slow.zip"]; n != 1 {
		t.Errorf("the pool package was fetched %d times, want once", n)
	}
}
