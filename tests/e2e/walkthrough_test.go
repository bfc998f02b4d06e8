package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeBlock returns the shell block of README.md between the markers
// <!-- name:start ...--> and <!-- name:end -->.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "<!-- "+name+":start")
	end := strings.Index(s, "<!-- "+name+":end -->")
	if start < 0 || end < start {
		t.Fatalf("README.md has no %s markers", name)
	}
	block := s[start:end]
	block = block[strings.Index(block, "```sh")+len("```sh"):]
	return block[:strings.LastIndex(block, "```")]
}

// TestReadmeWalkthrough runs the README's CLI walk-through, as written,
// against a real server.
func TestReadmeWalkthrough(t *testing.T) {
	s := StartServer(t, nil)
	work := t.TempDir()
	if err := os.Symlink(kilnBin, filepath.Join(work, "kiln")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeBlock(t, "walkthrough"))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "KILN_DATA_DIR="+s.DataDir, "KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walk-through failed: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`hello from task1 on tvmps_[0-9a-f]+_d`).Match(out) {
		t.Fatalf("walk-through output lacks task1's stdout:\n%s", out)
	}
	if !strings.Contains(string(out), "task20") {
		t.Fatalf("task list lacks task20:\n%s", out)
	}
}

// TestReadmeStorageWalkthrough runs the README's storage workflow (upload,
// application package, tasks with resource and output files, download) as
// written against a real server.
func TestReadmeStorageWalkthrough(t *testing.T) {
	s := StartServer(t, nil)
	work := t.TempDir()
	if err := os.Symlink(kilnBin, filepath.Join(work, "kiln")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeBlock(t, "storage-walkthrough"))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "KILN_DATA_DIR="+s.DataDir, "KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("storage walk-through failed: %v\n%s", err, out)
	}
	if !strings.HasSuffix(string(out), "INPUT NUMBER 1\nINPUT NUMBER 2\nINPUT NUMBER 3\n") {
		t.Fatalf("storage walk-through output does not end with the three results:\n%s", out)
	}
	for i := 1; i <= 3; i++ {
		b, err := os.ReadFile(filepath.Join(work, "results", "out"+strconv.Itoa(i)+".txt"))
		if err != nil || string(b) != "INPUT NUMBER "+strconv.Itoa(i)+"\n" {
			t.Fatalf("downloaded result %d: %q, %v", i, b, err)
		}
	}
}

// TestQuickstartExample runs examples/quickstart (the README's Go SDK
// walk-through) against a real server.
func TestQuickstartExample(t *testing.T) {
	s := StartServer(t, nil)
	cmd := exec.Command("go", "run", "./examples/quickstart")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "KILN_DATA_DIR="+s.DataDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart failed: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`task1 says: hello from task1 on tvmps_`).Match(out) {
		t.Fatalf("quickstart output:\n%s", out)
	}
}
