package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeBlock returns the shell block of README.md between the walkthrough
// markers.
func readmeBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "<!-- walkthrough:start")
	end := strings.Index(s, "<!-- walkthrough:end -->")
	if start < 0 || end < start {
		t.Fatal("README.md has no walkthrough markers")
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
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeBlock(t))
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
