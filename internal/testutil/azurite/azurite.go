// Package azurite runs Azurite, Microsoft's Azure Storage emulator, for tests
// that need a real Azure Blob endpoint: the agent's resource files, output
// files and application packages speak the Azure Blob REST protocol with SAS
// tokens, and so does Azurite, so tests exercise the same code paths as
// against Azure Storage.
//
// Azurite is an npm package pinned in tests/azurite (package.json and
// package-lock.json). Start installs it with `npm ci` the first time (under a
// file lock, since `go test ./...` runs test packages in parallel) and fails
// the test with a clear message when npm is missing: a storage test that
// silently skips would hide a broken feature.
package azurite

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/kilnbatch/kiln/internal/testutil/testproc"
)

// The account every Azurite instance serves, with its published well-known
// key (it is in Azurite's documentation; it protects nothing).
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// startTimeout bounds Azurite's start (it takes about half a second).
const startTimeout = 60 * time.Second

// Azurite is one running Azurite blob service, in memory, on a free loopback
// port. It is killed when the test that started it ends.
type Azurite struct {
	// BlobURL is the account's blob endpoint,
	// http://127.0.0.1:<port>/devstoreaccount1 (path-style, as the
	// emulator wants).
	BlobURL string
	Account string
	Key     string

	cred *service.SharedKeyCredential
}

// Start runs a fresh Azurite blob service for t, installing Azurite first if
// tests/azurite/node_modules is missing.
func Start(t testing.TB) *Azurite {
	t.Helper()
	bin := install(t)
	cred, err := service.NewSharedKeyCredential(Account, Key)
	if err != nil {
		t.Fatalf("azurite: credential: %v", err)
	}
	// A port picked free can be taken before Azurite binds it: try again.
	var lastErr error
	for range 3 {
		port, err := testproc.FreePort()
		if err != nil {
			t.Fatalf("azurite: free port: %v", err)
		}
		if err := run(t, bin, port); err != nil {
			lastErr = err
			continue
		}
		return &Azurite{
			BlobURL: "http://127.0.0.1:" + strconv.Itoa(port) + "/" + Account,
			Account: Account,
			Key:     Key,
			cred:    cred,
		}
	}
	t.Fatalf("azurite: %v", lastErr)
	return nil
}

// ContainerURL is the URL of a container, without a SAS.
func (a *Azurite) ContainerURL(name string) string {
	return a.BlobURL + "/" + url.PathEscape(name)
}

// CreateContainer creates a container (private: only a SAS or the key gets in).
func (a *Azurite) CreateContainer(t testing.TB, name string) {
	t.Helper()
	if _, err := a.Container(t, name).Create(context.Background(), nil); err != nil {
		t.Fatalf("azurite: create container %s: %v", name, err)
	}
}

// Container returns a client for the container signed with the account key,
// for a test to upload, list and read blobs with.
func (a *Azurite) Container(t testing.TB, name string) *container.Client {
	t.Helper()
	cc, err := container.NewClientWithSharedKeyCredential(a.ContainerURL(name), a.cred, nil)
	if err != nil {
		t.Fatalf("azurite: container client: %v", err)
	}
	return cc
}

// ContainerSAS returns the container's URL with a service SAS query that
// grants perms (letters of Azure's container permissions, in any order:
// "r" read, "a" add, "c" create, "w" write, "d" delete, "l" list, ...) until
// expiry. It is what a user would put in storageContainerUrl or an output
// file's containerUrl.
func (a *Azurite) ContainerSAS(t testing.TB, containerName, perms string, expiry time.Time) string {
	t.Helper()
	p, err := parsePermissions(perms)
	if err != nil {
		t.Fatalf("azurite: SAS permissions %q: %v", perms, err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-5 * time.Minute).UTC(),
		ExpiryTime:    expiry.UTC(),
		Permissions:   p.String(),
		ContainerName: containerName,
	}.SignWithSharedKey(a.cred)
	if err != nil {
		t.Fatalf("azurite: sign SAS: %v", err)
	}
	return a.ContainerURL(containerName) + "?" + qp.Encode()
}

// parsePermissions reads container SAS letters; String() then writes them in
// the order the service requires.
func parsePermissions(s string) (sas.ContainerPermissions, error) {
	var p sas.ContainerPermissions
	for _, r := range s {
		switch r {
		case 'r':
			p.Read = true
		case 'a':
			p.Add = true
		case 'c':
			p.Create = true
		case 'w':
			p.Write = true
		case 'd':
			p.Delete = true
		case 'x':
			p.DeletePreviousVersion = true
		case 'l':
			p.List = true
		case 't':
			p.Tag = true
		case 'f':
			p.FilterByTags = true
		case 'm':
			p.Move = true
		case 'e':
			p.Execute = true
		case 'i':
			p.SetImmutabilityPolicy = true
		default:
			return p, fmt.Errorf("unknown permission %q", r)
		}
	}
	return p, nil
}

// run starts Azurite on port and waits until it accepts connections. The
// process gets its own process group, killed whole at t's cleanup.
func run(t testing.TB, bin string, port int) error {
	var out testproc.Output
	cmd := exec.Command(bin,
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--silent", "--loose")
	// Azurite writes nothing it needs to keep; a scratch directory keeps
	// anything it might create out of the source tree.
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	kill := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			return fmt.Errorf("azurite-blob exited before listening on %s: %s", addr, strings.TrimSpace(out.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			kill()
			return fmt.Errorf("azurite-blob did not listen on %s within %v: %s", addr, startTimeout, strings.TrimSpace(out.String()))
		}
	}
	t.Cleanup(kill)
	return nil
}

// installMu serializes installs within one test binary; the file lock
// serializes them across the test binaries `go test ./...` runs at once.
var installMu sync.Mutex

// install returns the azurite-blob executable, running `npm ci` in
// tests/azurite first if it is missing.
func install(t testing.TB) string {
	t.Helper()
	dir := packageDir(t)
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	installMu.Lock()
	defer installMu.Unlock()
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("azurite: install lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("azurite: install lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin // another test binary installed it while we waited
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("azurite: npm is not installed, and the storage tests need Azurite from npm "+
			"(install Node.js 20 with npm; .ci/run does): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("azurite: npm ci in %s: %v\n%s", dir, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("azurite: npm ci succeeded but %s is missing: %v", bin, err)
	}
	return bin
}

// packageDir is tests/azurite of this repository, found from this source
// file so that it does not depend on the test's working directory.
func packageDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("azurite: cannot locate the repository")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "tests", "azurite")
	if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
		t.Fatalf("azurite: %v (tests/azurite/package-lock.json pins Azurite)", err)
	}
	return dir
}
