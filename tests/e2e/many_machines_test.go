package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/kilnbatch/kiln/internal/provider/local"
	"github.com/kilnbatch/kiln/internal/testutil/netns"
)

// TestReadmeManyMachines runs the README's "Running on many machines"
// walk-through as written: the server block on this machine (HTTPS,
// PostgreSQL, a pool of joining agents), the `kiln agent` command that
// `kiln pool join-token` printed on two network hosts (namespaces with their
// own addresses, internal/testutil/netns), then the job block. Only the
// values the README asks the reader to set (HOST, KILN_STORE) and the port
// are replaced, and each agent gets its own --root-dir because the two
// "machines" share one file system.
func TestReadmeManyMachines(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Fatal(err)
	}
	hosts := []*netns.Host{netns.New(t), netns.New(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dsn := postgresURL(t)

	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(kilnBin, filepath.Join(bin, "kiln")); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "KILN_DATA_DIR="+filepath.Join(work, "data"),
		"KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=", "KILN_SERVER_FINGERPRINT=", "KILN_STORE=")
	run := func(name, script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = work, env
		// The server the block starts in the background stays in this
		// process group: killed when the test ends.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.CombinedOutput()
		pgid := cmd.Process.Pid
		t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(work, "server.log"))
			t.Fatalf("README block %s failed: %v\n%s\nserver.log:\n%s", name, err, out, tail(string(b), 4000))
		}
		return string(out)
	}

	server := readmeBlock(t, "many-machines-server")
	for _, set := range []struct{ re, repl string }{
		{`(?m)^HOST=.*$`, "HOST=" + hosts[0].RootIP},
		{`(?m)^export KILN_STORE=.*$`, "export KILN_STORE='" + dsn + "'"},
		{`:8080\b`, ":" + port},
	} {
		re := regexp.MustCompile(set.re)
		if !re.MatchString(server) {
			t.Fatalf("the README's server block has no %s", set.re)
		}
		server = re.ReplaceAllLiteralString(server, set.repl)
	}
	out := run("many-machines-server", server)
	m := regexp.MustCompile(`(?m)^\s*(kiln agent --server .*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kiln pool join-token printed no kiln agent command:\n%s", out)
	}
	agentCmd := strings.Fields(m[1])
	if !strings.Contains(m[1], "https://"+hosts[0].RootIP+":"+port) || !strings.Contains(m[1], "--server-fingerprint SHA256:") {
		t.Fatalf("the agent command does not name the server's HTTPS URL and fingerprint: %s", m[1])
	}
	for i, h := range hosts {
		root := filepath.Join(work, fmt.Sprintf("machine%d", i))
		args := append(append([]string{}, agentCmd[1:]...), "--root-dir", root)
		cmd := h.Command(filepath.Join(bin, "kiln"), args...)
		logf, err := os.Create(root + ".log")
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		pid := cmd.Process.Pid
		go cmd.Wait()
		t.Cleanup(func() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			local.KillSession(pid)
			if t.Failed() {
				b, _ := os.ReadFile(root + ".log")
				t.Logf("agent on %s log:\n%s", h.Name, tail(string(b), 3000))
			}
		})
	}
	// `kiln job wait` in the job block waits for the tasks; the nodes join
	// meanwhile (tasks wait for them as they would on a resizing pool).
	out = run("many-machines-job", readmeBlock(t, "many-machines-job"))
	last := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if !strings.Contains(last, hosts[0].IP) && !strings.Contains(last, hosts[1].IP) {
		t.Fatalf("task t1's stdout %q is not the address of a node machine (%s, %s); output:\n%s", last, hosts[0].IP, hosts[1].IP, out)
	}
}
