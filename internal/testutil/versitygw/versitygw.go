// Package versitygw starts a real S3-compatible server for tests: the
// Versity S3 Gateway (versitygw) with its posix backend, which keeps
// buckets as directories. Tests of S3-backed code then talk S3 to a real
// server, not to a mock.
package versitygw

import (
	"fmt"
	"github.com/kilnbatch/kiln/internal/testutil/testproc"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// InstallCommand installs the versitygw version the tests are written for.
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Credentials of the gateway's root account.
const (
	AccessKey = "kilntestaccess"
	SecretKey = "kilntestsecret0123456789"
)

// Bucket is the bucket Start creates.
const Bucket = "kiln-test"

// Binary returns the path of the versitygw binary: $KILN_VERSITYGW, else
// versitygw in $(go env GOPATH)/bin.
func Binary() string {
	if p := os.Getenv("KILN_VERSITYGW"); p != "" {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		gopath = strings.TrimSpace(string(out))
	}
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	gopath, _, _ = strings.Cut(gopath, string(os.PathListSeparator))
	return filepath.Join(gopath, "bin", "versitygw")
}

// Start runs versitygw on a free 127.0.0.1 port with the posix backend in a
// temporary directory holding one empty bucket, waits until it answers,
// and stops it when the test ends. endpoint is like "http://127.0.0.1:port".
// A missing binary fails the test with the command that installs it.
func Start(t testing.TB) (endpoint, accessKey, secretKey, bucket string) {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("versitygw not found at %s (set KILN_VERSITYGW to its path, or install it: %s): %v", bin, InstallCommand, err)
	}
	root := t.TempDir()
	// The posix backend serves each directory of its root as a bucket.
	if err := os.Mkdir(filepath.Join(root, Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 { // another process may take the port between probe and start
		endpoint, err := start(t, bin, root)
		if err == nil {
			return endpoint, AccessKey, SecretKey, Bucket
		}
		lastErr = err
	}
	t.Fatalf("start versitygw: %v", lastErr)
	return "", "", "", ""
}

// start launches one gateway and waits for it to answer.
func start(t testing.TB, bin, root string) (string, error) {
	port, err := testproc.FreePort()
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--port", addr, "--access", AccessKey, "--secret", SecretKey, "--quiet", "posix", root)
	out := &testproc.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	endpoint := "http://" + addr
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for stop
			stop()
			return "", fmt.Errorf("versitygw exited (%v): %s", err, out.String())
		default:
		}
		// Any answer, 403 for an unsigned request included, means it serves.
		if resp, err := client.Get(endpoint + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("versitygw did not answer on %s within 15s: %s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	return endpoint, nil
}
