package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// largeFileSize is the size of the file of TestStorageLargeFile
// (KILN_E2E_LARGE_MB overrides it, in MiB).
func largeFileSize(t *testing.T) int64 {
	if v := os.Getenv("KILN_E2E_LARGE_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KILN_E2E_LARGE_MB=%q", v)
		}
		return int64(n) << 20
	}
	return 1 << 30
}

// memoryLimit is the most resident memory the server and an agent may use
// while moving the large file.
const memoryLimit = 200 << 20

// TestStorageLargeFile moves a 1 GiB file through Kiln storage: the user
// uploads it, a task downloads it as a resource file and uploads it again as
// an output file, the user downloads the copy. Server and agent must stay
// under 200 MB of resident memory (peak, VmHWM) the whole time.
func TestStorageLargeFile(t *testing.T) {
	size := largeFileSize(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "big.bin")
	sum := writeLargeFile(t, src, size)

	s := StartServer(t, nil)
	sc := s.storageClient(t)
	if _, err := sc.CreateContainer(ctx(t), "big", nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sc.ServiceClient().NewContainerClient("big").NewBlockBlobClient("in/big.bin").UploadFile(storageCtx(t, 10*time.Minute), f,
		&blockblob.UploadFileOptions{BlockSize: 8 << 20, Concurrency: 4})
	f.Close()
	if err != nil {
		t.Fatalf("upload: %v", err)
	}

	s.CreatePool(t, "bigpool", 1, 1, nil)
	s.CreateJob(t, "bigjob", "bigpool", nil)
	out := storageSAS(t, s.storageBase(), testAccount, testKey, "big", "", "rwcl", time.Now().Add(time.Hour))
	taskAdd(t, s, "bigjob", azbatch.CreateTaskContent{
		ID:            to("copy"),
		CommandLine:   to("/bin/sh -c 'ls -l in/big.bin'"),
		ResourceFiles: []azbatch.ResourceFile{{AutoStorageContainerName: to("big"), BlobPrefix: to("in/")}},
		OutputFiles: []azbatch.OutputFile{{FilePattern: to("in/big.bin"),
			Destination:   &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{ContainerURL: to(out), Path: to("out/copy.bin")}},
			UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to(azbatch.OutputFileUploadConditionTaskSuccess)}}},
	})
	task := taskWaitState(t, s, "bigjob", "copy", azbatch.TaskStateCompleted, 10*time.Minute)
	if *task.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Fatalf("copy task: %s", describeTask(task))
	}

	dst := filepath.Join(dir, "copy.bin")
	df, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sc.ServiceClient().NewContainerClient("big").NewBlobClient("out/copy.bin").DownloadFile(storageCtx(t, 10*time.Minute), df,
		&blob.DownloadFileOptions{BlockSize: 8 << 20, Concurrency: 4})
	df.Close()
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if got := fileSHA256(t, dst); got != sum {
		t.Fatalf("the downloaded copy differs from the uploaded file")
	}

	// The node file API streams the same file from the node through the
	// server: whole, and a range at its end.
	resp, err := s.Client.GetTaskFile(storageCtx(t, 10*time.Minute), "bigjob", "copy", "wd/in/big.bin", nil)
	if err != nil {
		t.Fatalf("get task file: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || fmt.Sprintf("%x", h.Sum(nil)) != sum || resp.ContentLength == nil || *resp.ContentLength != size {
		t.Fatalf("task file API: %d bytes (Content-Length %v), %v; same content: %v", n, deref(resp.ContentLength), err, fmt.Sprintf("%x", h.Sum(nil)) == sum)
	}
	tailRange := fmt.Sprintf("bytes=%d-%d", size-16, size-1)
	resp, err = s.Client.GetTaskFile(ctx(t), "bigjob", "copy", "wd/in/big.bin", &azbatch.GetTaskFileOptions{OCPRange: to(tailRange)})
	if err != nil {
		t.Fatalf("get task file range: %v", err)
	}
	tailBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	src16 := make([]byte, 16)
	sf, _ := os.Open(src)
	sf.ReadAt(src16, size-16)
	sf.Close()
	if string(tailBytes) != string(src16) {
		t.Fatalf("range %s of the task file differs from the source", tailRange)
	}

	// Peak memory of the server and of the agent.
	peaks := map[string]int64{"server": peakRSS(t, s.cmd.Process.Pid)}
	for _, pid := range s.poolAgentPIDs() {
		peaks[fmt.Sprintf("agent %d", pid)] = peakRSS(t, pid)
	}
	for who, peak := range peaks {
		t.Logf("%s peak resident memory: %d MB", who, peak>>20)
		if peak > memoryLimit {
			t.Errorf("%s peaked at %d MB of resident memory, limit %d MB", who, peak>>20, memoryLimit>>20)
		}
	}
	if len(peaks) < 2 {
		t.Fatalf("no agent process found")
	}
}

// writeLargeFile writes size bytes that differ in every 8-byte word and
// returns their SHA-256.
func writeLargeFile(t *testing.T, path string, size int64) string {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var word [8]byte
	for i := int64(0); i < size/8; i++ {
		binary.LittleEndian.PutUint64(word[:], uint64(i)*0x9E3779B97F4A7C15)
		w.Write(word[:])
	}
	w.Write(make([]byte, size%8))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func fileSHA256(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// peakRSS reads VmHWM (peak resident set size) of a live process.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM for %d", pid)
	return 0
}
