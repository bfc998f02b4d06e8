package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMemory_LargeTransfer streams 1 GiB up (Put Blob), 256 MiB up in two
// blocks (Put Block, Put Block List) and both down (Get Blob) through the
// handler, with a client that streams too, and checks that the process
// never holds more than a few tens of MiB: nothing buffers whole blobs.
// KILN_STORAGE_MEMTEST_MIB changes the 1 GiB.
func TestMemory_LargeTransfer(t *testing.T) {
	// Not parallel: the heap it watches is the whole test process's.
	size := int64(1 << 30)
	if v := os.Getenv("KILN_STORAGE_MEMTEST_MIB"); v != "" {
		mib, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		size = int64(mib) << 20
	}
	ctx := context.Background()
	s, _ := openDirStorage(t)
	base, _ := serve(t, s)
	if err := s.CreateContainer(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	q := sasQuery(testSigner.ContainerURL(base, "big", "racwdl", time.Now().Add(time.Hour)))

	runtime.GC()
	peak := watchMemory(t)

	start := time.Now()
	upSum := put(t, base+"/big/one?"+q, size, 7, map[string]string{"x-ms-blob-type": "BlockBlob"})
	if got := get(t, base+"/big/one?"+q, size); got != upSum {
		t.Fatal("the 1 GiB blob came back different")
	}
	up := time.Since(start)

	half := int64(128 << 20)
	h := sha256.New()
	for i, id := range []string{"QkxPQ0stMQ==", "QkxPQ0stMg=="} {
		body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), half), h)
		req, _ := http.NewRequest(http.MethodPut, base+"/big/two?"+q+"&comp=block&blockid="+id, body)
		req.ContentLength = half
		send(t, req, http.StatusCreated)
	}
	list := `<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QkxPQ0stMQ==</Latest><Uncommitted>QkxPQ0stMg==</Uncommitted></BlockList>`
	req, _ := http.NewRequest(http.MethodPut, base+"/big/two?"+q+"&comp=blocklist", strings.NewReader(list))
	send(t, req, http.StatusCreated)
	if got := get(t, base+"/big/two?"+q, 2*half); got != fmt.Sprintf("%x", h.Sum(nil)) {
		t.Fatal("the blob committed from blocks came back different")
	}

	heap, rss := peak()
	t.Logf("1 GiB up and down in %v; 256 MiB in blocks up and down; peak heap %d MiB, peak RSS %d MiB", up.Round(time.Millisecond), heap>>20, rss>>20)
	if heap > 64<<20 {
		t.Errorf("peak heap in use %d MiB, want well below 200 MiB (under 64)", heap>>20)
	}
	if rss > 150<<20 {
		t.Errorf("peak RSS %d MiB, want well below 200 MiB (under 150)", rss>>20)
	}
}

// put streams size pseudo-random bytes to rawURL and returns their SHA-256.
func put(t *testing.T, rawURL string, size int64, seed byte, header map[string]string) string {
	t.Helper()
	h := sha256.New()
	body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{seed}), size), h)
	req, err := http.NewRequest(http.MethodPut, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	for k, v := range header {
		req.Header.Set(k, v)
	}
	send(t, req, http.StatusCreated)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// get streams a blob and returns its SHA-256.
func get(t *testing.T, rawURL string, size int64) string {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		t.Fatalf("GET: %d, Content-Length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, size)
	}
	h := sha256.New()
	if n, err := io.Copy(h, resp.Body); err != nil || n != size {
		t.Fatalf("GET read %d bytes: %v", n, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func send(t *testing.T, req *http.Request, want int) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
}

// watchMemory samples the heap in use and the resident set every 10 ms
// until the returned function is called, which returns the peaks.
func watchMemory(t *testing.T) func() (heap, rss uint64) {
	var mu sync.Mutex
	var peakHeap, peakRSS uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		r := residentBytes()
		mu.Lock()
		peakHeap = max(peakHeap, m.HeapInuse)
		peakRSS = max(peakRSS, r)
		mu.Unlock()
	}
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	stop := func() (uint64, uint64) {
		close(done)
		<-stopped
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peakHeap, peakRSS
	}
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			stop()
		}
	})
	return stop
}

// residentBytes is the process's resident set (VmRSS) on Linux, 0
// elsewhere.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
