package agent_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kilnbatch/kiln/internal/agent"
	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/testutil/azurite"
)

func TestRun_ResourceFilesFromContainers(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t)
	az.CreateContainer(t, "inputs")
	for name, data := range map[string]string{
		"data/a.txt":           "A",
		"data/sub/b.txt":       "B",
		"data/sub/deep/run.sh": "#!/bin/sh\necho ran-from-blob\n",
		"database.txt":         "not under data/",
		"other/x.txt":          "X",
		"marker/":              "",
	} {
		putBlob(t, az, "inputs", name, []byte(data))
	}
	hour := time.Now().Add(time.Hour)
	inputs := az.ContainerSAS(t, "inputs", "rl", hour)
	b := setup(t, nil)
	s := b.server

	t.Run("PrefixFilePathAndMode", func(t *testing.T) {
		as := task("rc1", "in/data/sub/deep/run.sh")
		as.ResourceFiles = []protocol.ResourceFile{
			{ContainerURL: inputs, BlobPrefix: "data/", FilePath: "in", FileMode: "0750"},
			{ContainerURL: inputs, BlobPrefix: "other/"},
			{ContainerURL: inputs, BlobPrefix: "no-such-prefix/", FilePath: "none"},
			{ContainerURL: inputs, FilePath: "all/"},
		}
		s.assign(as)
		c := s.waitEvent("rc1", protocol.EventCompleted)
		if c.Failure != nil || c.ExitCode == nil || *c.ExitCode != 0 {
			t.Fatalf("completed = %+v (failure %+v)", c, c.Failure)
		}
		if out := readFile(t, filepath.Join(b.taskDir(as), "stdout.txt")); out != "ran-from-blob\n" {
			t.Errorf("stdout = %q", out)
		}
		wd := filepath.Join(b.taskDir(as), "wd")
		want := map[string]struct {
			data string
			mode os.FileMode
		}{
			"in/data/a.txt":           {"A", 0o750},
			"in/data/sub/b.txt":       {"B", 0o750},
			"in/data/sub/deep/run.sh": {"#!/bin/sh\necho ran-from-blob\n", 0o750},
			"other/x.txt":             {"X", 0o770},
			"all/data/a.txt":          {"A", 0o770},
			"all/database.txt":        {"not under data/", 0o770},
			"all/other/x.txt":         {"X", 0o770},
		}
		for name, w := range want {
			fi, err := os.Stat(filepath.Join(wd, name))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if got := readFile(t, filepath.Join(wd, name)); got != w.data || fi.Mode().Perm() != w.mode {
				t.Errorf("%s = %q mode %v, want %q mode %v", name, got, fi.Mode().Perm(), w.data, w.mode)
			}
		}
		for _, name := range []string{"in/database.txt", "database.txt", "in/other", "none"} {
			if _, err := os.Stat(filepath.Join(wd, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists (%v): outside the prefix", name, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(wd, "all", "marker")); err != nil || !fi.IsDir() {
			t.Errorf("directory marker blob: %v", err)
		}
	})

	t.Run("BlobNamesLeavingTheDirectory", func(t *testing.T) {
		for i, name := range []string{"../escape.txt", "sub/../../escape.txt", "./escape.txt", "/escape.txt"} {
			container := "evil" + string(rune('a'+i))
			az.CreateContainer(t, container)
			putBlob(t, az, container, "fine.txt", []byte("fine"))
			putBlob(t, az, container, name, []byte("escaped"))
			as := task("rc-evil-"+container, "true")
			as.ResourceFiles = []protocol.ResourceFile{{ContainerURL: az.ContainerSAS(t, container, "rl", hour), FilePath: "d"}}
			s.assign(as)
			c := s.waitEvent(as.AttemptID, protocol.EventCompleted)
			checkFailure(t, c, agent.CodeBlobDownloadMiscError, protocol.PhasePreProcessing, name)
			for _, dir := range []string{b.parent, b.root, b.taskDir(as), filepath.Join(b.taskDir(as), "wd")} {
				if _, err := os.Stat(filepath.Join(dir, "escape.txt")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: escape.txt written to %s", name, dir)
				}
			}
		}
	})

	t.Run("SymlinkOutOfTheWorkingDirectory", func(t *testing.T) {
		az.CreateContainer(t, "links")
		putBlob(t, az, "links", "link/pwned.txt", []byte("pwned"))
		outside := filepath.Join(b.parent, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		as := task("rc-link", "true")
		as.ResourceFiles = []protocol.ResourceFile{{ContainerURL: az.ContainerSAS(t, "links", "rl", hour)}}
		// A previous attempt of the task left a link to outside in wd.
		wd := filepath.Join(b.taskDir(as), "wd")
		if err := os.MkdirAll(wd, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(wd, "link")); err != nil {
			t.Fatal(err)
		}
		s.assign(as)
		c := s.waitEvent(as.AttemptID, protocol.EventCompleted)
		if c.Failure == nil || (c.Failure.Code != agent.CodeResourceDirectoryCreateFailed && c.Failure.Code != agent.CodeResourceFileCreateFailed) {
			t.Fatalf("failure = %+v, want the directory or file creation refused", c.Failure)
		}
		checkFailure(t, c, c.Failure.Code, protocol.PhasePreProcessing, "link/pwned.txt")
		if !emptyDir(t, outside) {
			t.Fatal("a blob was written through the link, outside the working directory")
		}
	})

	t.Run("AccessDeniedAndNotFound", func(t *testing.T) {
		cases := []struct {
			id   string
			rf   protocol.ResourceFile
			code string
		}{
			// A SAS that reads but cannot list the container.
			{"rc-nolist", protocol.ResourceFile{ContainerURL: az.ContainerSAS(t, "inputs", "r", hour)}, agent.CodeBlobAccessDenied},
			{"rc-expired", protocol.ResourceFile{ContainerURL: az.ContainerSAS(t, "inputs", "rl", time.Now().Add(-time.Minute))}, agent.CodeBlobAccessDenied},
			{"rc-nocontainer", protocol.ResourceFile{ContainerURL: az.ContainerSAS(t, "nosuchcontainer", "rl", hour)}, agent.CodeBlobNotFound},
			{"rc-http404", protocol.ResourceFile{URL: blobURL(inputs, "data/missing.txt"), FilePath: "m.txt"}, agent.CodeBlobNotFound},
			{"rc-http403", protocol.ResourceFile{URL: blobURL(az.ContainerSAS(t, "inputs", "l", hour), "data/a.txt"), FilePath: "a.txt"}, agent.CodeBlobAccessDenied},
		}
		for _, tc := range cases {
			as := task(tc.id, "true")
			as.ResourceFiles = []protocol.ResourceFile{tc.rf}
			s.assign(as)
		}
		for _, tc := range cases {
			c := s.waitEvent(tc.id, protocol.EventCompleted)
			what := az.BlobURL
			checkFailure(t, c, tc.code, protocol.PhasePreProcessing, what)
			if c.ExitCode != nil {
				t.Errorf("%s: exit code %d, want none", tc.id, *c.ExitCode)
			}
		}
	})

	t.Run("HTTPURLOfABlob", func(t *testing.T) {
		as := task("rc-http", "cat a.txt")
		as.ResourceFiles = []protocol.ResourceFile{{URL: blobURL(inputs, "data/a.txt"), FilePath: "a.txt"}}
		s.assign(as)
		if c := s.waitEvent(as.AttemptID, protocol.EventCompleted); c.Failure != nil || *c.ExitCode != 0 {
			t.Fatalf("completed = %+v", c.Failure)
		}
		if out := readFile(t, filepath.Join(b.taskDir(as), "stdout.txt")); !strings.HasPrefix(out, "A") {
			t.Errorf("stdout = %q", out)
		}
	})
}
