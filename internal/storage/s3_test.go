package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/kilnbatch/kiln/internal/testutil/versitygw"
)

// openS3Storage opens Kiln storage on a fresh versitygw bucket, with the
// credentials in the AWS environment variables as in production. It sets
// environment variables, so its tests cannot run in parallel.
func openS3Storage(t *testing.T) *Storage {
	t.Helper()
	endpoint, access, secret, bucket := versitygw.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	// Keep the machine's AWS files and instance metadata out of the test.
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	rawURL := "s3://" + bucket + "?endpoint=" + url.QueryEscape(endpoint) +
		"&use_path_style=true&region=us-east-1&disable_https=true"
	s, err := Open(context.Background(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestSDK_S3Bucket runs the azblob SDK against Kiln storage on a real S3
// server.
func TestSDK_S3Bucket(t *testing.T) {
	exerciseSDK(t, openS3Storage(t))
}

// TestGoAPI_S3Bucket drives the Go API against a real S3 server: puts,
// ranges, paging, blocks, deletes.
func TestGoAPI_S3Bucket(t *testing.T) {
	exerciseGoAPI(t, openS3Storage(t))
}

// TestGoAPI_DirectoryBucket is TestGoAPI_S3Bucket on a directory.
func TestGoAPI_DirectoryBucket(t *testing.T) {
	t.Parallel()
	s, _ := openDirStorage(t)
	exerciseGoAPI(t, s)
}

// exerciseGoAPI checks the Go API that the Kiln service uses directly.
func exerciseGoAPI(t *testing.T, s *Storage) {
	ctx := context.Background()
	if _, err := s.Put(ctx, "nowhere", "x", bytes.NewReader(nil), PutOptions{}); !errors.Is(err, ErrContainerNotFound) {
		t.Fatalf("put into a missing container: %v", err)
	}
	if err := s.CreateContainer(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateContainer(ctx, "jobs"); !errors.Is(err, ErrContainerExists) {
		t.Fatalf("second create: %v", err)
	}
	if ok, err := s.ContainerExists(ctx, "jobs"); !ok || err != nil {
		t.Fatalf("exists: %v %v", ok, err)
	}
	cs, err := s.ListContainers(ctx, "j")
	if err != nil || len(cs) != 1 || cs[0].Name != "jobs" || cs[0].LastModified.IsZero() {
		t.Fatalf("containers: %+v %v", cs, err)
	}

	data := randomBytes(300_000, 3)
	info, err := s.Put(ctx, "jobs", "a/data.bin", bytes.NewReader(data), PutOptions{
		ContentType: "application/x-test", CacheControl: "no-cache", Metadata: map[string]string{"Kind": "input"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || info.ETag == "" || info.LastModified.IsZero() {
		t.Fatalf("put info: %+v", info)
	}
	got, err := s.Attributes(ctx, "jobs", "a/data.bin")
	if err != nil || got.ContentType != "application/x-test" || got.CacheControl != "no-cache" || got.Metadata["kind"] != "input" || got.ETag != info.ETag {
		t.Fatalf("attributes: %+v %v", got, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 1}, {1000, 5000}, {299_999, 10}, {300_000, -1}, {5, 0}} {
		rd, err := s.NewReader(ctx, "jobs", "a/data.bin", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rd)
		rd.Close()
		end := int64(len(data))
		if r[1] >= 0 {
			end = min(r[0]+r[1], end)
		}
		if err != nil || !bytes.Equal(b, data[r[0]:end]) || rd.Length != end-r[0] {
			t.Fatalf("range %v: %d bytes (Length %d), %v", r, len(b), rd.Length, err)
		}
	}
	sum := func(b []byte) []byte { h := md5sum(b); return h[:] }
	if _, err := s.Put(ctx, "jobs", "a/bad-md5", bytes.NewReader(data), PutOptions{ContentMD5: sum([]byte("other"))}); !errors.Is(err, ErrMD5Mismatch) {
		t.Fatalf("put with a wrong MD5: %v", err)
	}
	if _, err := s.Attributes(ctx, "jobs", "a/bad-md5"); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("a put with a wrong MD5 left a blob: %v", err)
	}
	if _, err := s.Put(ctx, "jobs", "a/good-md5", bytes.NewReader(data), PutOptions{ContentMD5: sum(data)}); err != nil {
		t.Fatalf("put with the right MD5: %v", err)
	}

	// Blocks, staged out of order and committed in order, one twice.
	blocks := [][]byte{randomBytes(70_000, 4), randomBytes(1, 5), randomBytes(123_456, 6)}
	ids := []string{"YmxvY2stMA==", "YmxvY2stMQ==", "YmxvY2stMg=="}
	for _, i := range []int{2, 0, 1} {
		if err := s.PutBlock(ctx, "jobs", "b/blocks.bin", ids[i], bytes.NewReader(blocks[i]), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutBlock(ctx, "jobs", "b/blocks.bin", "not base64!", bytes.NewReader(nil), nil); !errors.Is(err, ErrInvalidBlockID) {
		t.Fatalf("bad block id: %v", err)
	}
	if _, err := s.CommitBlocks(ctx, "jobs", "b/blocks.bin", []string{ids[0], "bWlzc2luZw=="}, PutOptions{}); !errors.Is(err, ErrInvalidBlockList) {
		t.Fatalf("commit with a missing block: %v", err)
	}
	if _, err := s.Attributes(ctx, "jobs", "b/blocks.bin"); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("a failed commit left a blob: %v", err)
	}
	if _, err := s.CommitBlocks(ctx, "jobs", "b/blocks.bin", []string{ids[0], ids[1], ids[2], ids[1]}, PutOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	want := bytes.Join([][]byte{blocks[0], blocks[1], blocks[2], blocks[1]}, nil)
	rd, err := s.NewReader(ctx, "jobs", "b/blocks.bin", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rd)
	rd.Close()
	if !bytes.Equal(b, want) || rd.Info.ContentType != "text/plain" {
		t.Fatalf("committed blob: %d bytes of type %q, want %d", len(b), rd.Info.ContentType, len(want))
	}
	// Committing discarded the staged blocks.
	if _, err := s.CommitBlocks(ctx, "jobs", "b/blocks.bin", ids[:1], PutOptions{}); !errors.Is(err, ErrInvalidBlockList) {
		t.Fatalf("commit of blocks already committed: %v", err)
	}

	// Paging through hidden keys (staged blocks, markers) never shows them.
	if err := s.PutBlock(ctx, "jobs", "c/pending", ids[0], bytes.NewReader(blocks[0]), nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	marker := ""
	for {
		page, next, err := s.ListBlobs(ctx, "jobs", "", marker, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page {
			names = append(names, b.Name)
		}
		if next == "" {
			break
		}
		marker = next
	}
	wantNames := []string{"a/data.bin", "a/good-md5", "b/blocks.bin"}
	if len(names) != len(wantNames) {
		t.Fatalf("listed %v, want %v", names, wantNames)
	}
	for i := range names {
		if names[i] != wantNames[i] {
			t.Fatalf("listed %v, want %v", names, wantNames)
		}
	}
	if _, _, err := s.ListBlobs(ctx, "jobs", "", "!!", 2); !errors.Is(err, ErrInvalidMarker) {
		t.Fatalf("bad marker: %v", err)
	}
	_, prefixes, _, err := s.ListBlobsHierarchy(ctx, "jobs", "", "/", "", 0)
	if err != nil || len(prefixes) != 2 || prefixes[0] != "a/" || prefixes[1] != "b/" {
		t.Fatalf("prefixes %v, %v", prefixes, err)
	}

	if err := s.DeleteBlob(ctx, "jobs", "a/data.bin"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBlob(ctx, "jobs", "a/data.bin"); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := s.DeleteContainer(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Attributes(ctx, "jobs", "a/good-md5"); !errors.Is(err, ErrContainerNotFound) {
		t.Fatalf("blob of a deleted container: %v", err)
	}
	if err := s.CreateContainer(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	if page, _, err := s.ListBlobs(ctx, "jobs", "", "", 0); err != nil || len(page) != 0 {
		t.Fatalf("recreated container lists %v, %v", page, err)
	}
	// The pending block went with the container.
	if _, err := s.CommitBlocks(ctx, "jobs", "c/pending", ids[:1], PutOptions{}); !errors.Is(err, ErrInvalidBlockList) {
		t.Fatalf("block staged before the container was deleted: %v", err)
	}
}
