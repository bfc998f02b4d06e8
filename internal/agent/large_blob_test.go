package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/testutil/azurite"
)

// TestRun_ResourceFileLargeBlobMemory downloads a 1 GiB blob as a resource
// file and checks that the agent streams it: the process's peak resident
// memory grows by far less than the blob. The test is not parallel, so that
// nothing else runs in the process while the peak is measured (parallel
// tests wait until every sequential one has finished).
func TestRun_ResourceFileLargeBlobMemory(t *testing.T) {
	const (
		size = 1 << 30
		// limit is the growth of the peak RSS allowed while downloading:
		// the agent's budget for a 1 GiB blob is 200 MB in all.
		limit = 150 << 20
	)
	az := azurite.Start(t)
	az.CreateContainer(t, "big")
	ctx := context.Background()
	start := time.Now()
	sum := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), sum)
	_, err := az.Container(t, "big").NewBlockBlobClient("data/big.bin").UploadStream(ctx, src,
		&blockblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 2})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	want := sum.Sum(nil)
	t.Logf("uploaded 1 GiB in %v", time.Since(start).Round(time.Millisecond))

	b := setup(t, nil)
	s := b.server
	s.waitFor("registration", func() bool { return len(s.registers) > 0 })
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS(t)
	base := memStatus(t, "VmHWM")

	start = time.Now()
	as := task("big", "true")
	as.ResourceFiles = []protocol.ResourceFile{{ContainerURL: az.ContainerSAS(t, "big", "rl", time.Now().Add(time.Hour)), BlobPrefix: "data/"}}
	s.assign(as)
	c := s.waitEvent("big", protocol.EventCompleted)
	peak := memStatus(t, "VmHWM")
	t.Logf("downloaded 1 GiB in %v; peak RSS %d MiB, %d MiB above the %d MiB before",
		time.Since(start).Round(time.Millisecond), peak>>20, (peak-base)>>20, base>>20)
	if c.Failure != nil || c.ExitCode == nil || *c.ExitCode != 0 {
		t.Fatalf("completed = %+v", c.Failure)
	}
	if peak-base > limit {
		t.Errorf("peak RSS grew by %d MiB while downloading 1 GiB, want at most %d MiB", (peak-base)>>20, limit>>20)
	}

	f, err := os.Open(filepath.Join(b.taskDir(as), "wd", "data", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := sha256.New()
	if n, err := io.Copy(got, f); err != nil || n != size {
		t.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
	}
	if !bytes.Equal(got.Sum(nil), want) {
		t.Fatal("the downloaded file differs from the blob")
	}
}

// resetPeakRSS resets the process's VmHWM to its current RSS (Linux:
// writing 5 to /proc/self/clear_refs).
func resetPeakRSS(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak RSS: %v", err)
	}
}

// memStatus returns a size field of /proc/self/status in bytes.
func memStatus(t *testing.T, field string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
