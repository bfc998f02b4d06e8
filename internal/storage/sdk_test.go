package storage

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// TestSDK_DirectoryBucket runs the azblob SDK against Kiln storage on a
// directory.
func TestSDK_DirectoryBucket(t *testing.T) {
	t.Parallel()
	s, _ := openDirStorage(t)
	exerciseSDK(t, s)
}

// exerciseSDK drives every supported operation through the official azblob
// SDK, as the agent and the CLI do, and checks the bytes and properties
// that come back. The S3 test runs it too.
func exerciseSDK(t *testing.T, s *Storage) {
	ctx := context.Background()
	base, ops := serve(t, s)
	svc := serviceClient(t, base, "rwdlac", "sco")

	// Containers, with an account SAS.
	if _, err := svc.CreateContainer(ctx, "data", nil); err != nil {
		t.Fatal(err)
	}
	_, err := svc.CreateContainer(ctx, "data", nil)
	wantCode(t, err, http.StatusConflict, "ContainerAlreadyExists")
	for _, name := range []string{"other", "data-2"} {
		if _, err := svc.CreateContainer(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	var containers []string
	pages := 0
	pager := svc.NewListContainersPager(&service.ListContainersOptions{Prefix: to.Ptr("data"), MaxResults: to.Ptr[int32](1)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, c := range page.ContainerItems {
			containers = append(containers, *c.Name)
			if c.Properties == nil || c.Properties.LastModified == nil || c.Properties.ETag == nil {
				t.Errorf("container %s has no properties", *c.Name)
			}
		}
	}
	if want := []string{"data", "data-2"}; !slices.Equal(containers, want) || pages != 2 {
		t.Fatalf("containers = %v in %d pages, want %v in 2", containers, pages, want)
	}

	// Blobs, with a container SAS as Kiln hands out.
	cc := containerClient(t, testSigner.ContainerURL(base, "data", "racwdl", time.Now().Add(time.Hour)))
	props, err := cc.GetProperties(ctx, nil)
	if err != nil || props.ETag == nil || props.LastModified == nil {
		t.Fatalf("container properties: %+v, %v", props, err)
	}

	small := []byte("hello, kiln\n")
	_, err = cc.NewBlockBlobClient("in/small.txt").UploadBuffer(ctx, small, &blockblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain"), BlobContentLanguage: to.Ptr("en")},
		Metadata:    map[string]*string{"Owner": to.Ptr("kiln")},
	})
	if err != nil {
		t.Fatal(err)
	}

	// A stream of more than two 4 MiB blocks goes as Put Block + Put Block List.
	big := randomBytes(10<<20+123, 1)
	_, err = cc.NewBlockBlobClient("in/big.bin").UploadStream(ctx, bytes.NewReader(big), &blockblob.UploadStreamOptions{
		BlockSize: 4 << 20, Concurrency: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := ops.count("PUT block"); n != 3 {
		t.Errorf("Put Block requests = %d, want 3", n)
	}
	if n := ops.count("PUT blocklist"); n != 1 {
		t.Errorf("Put Block List requests = %d, want 1", n)
	}

	// UploadFile, and an empty blob.
	file := filepath.Join(t.TempDir(), "upload.bin")
	fileData := randomBytes(5<<20+7, 2)
	if err := os.WriteFile(file, fileData, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cc.NewBlockBlobClient("out/file.bin").UploadFile(ctx, f, &blockblob.UploadFileOptions{BlockSize: 4 << 20})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("out/empty").UploadBuffer(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		name := "out/n" + string(rune('a'+i))
		if _, err := cc.NewBlockBlobClient(name).UploadBuffer(ctx, []byte(name), nil); err != nil {
			t.Fatal(err)
		}
	}

	// Listing, flat with paging, and by prefix.
	all := []string{"in/big.bin", "in/small.txt", "out/empty", "out/file.bin", "out/na", "out/nb", "out/nc"}
	if got := listNames(t, cc, "", 2); !slices.Equal(got, all) {
		t.Fatalf("blobs = %v, want %v", got, all)
	}
	if got := listNames(t, cc, "out/n", 2); !slices.Equal(got, []string{"out/na", "out/nb", "out/nc"}) {
		t.Fatalf("blobs under out/n = %v", got)
	}
	var blobSeen bool
	lp := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr("in/small"), Include: container.ListBlobsInclude{Metadata: true}})
	for lp.More() {
		page, err := lp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			blobSeen = true
			p := b.Properties
			if *p.ContentLength != int64(len(small)) || *p.ContentType != "text/plain" || p.ETag == nil || p.LastModified == nil ||
				*p.BlobType != blob.BlobTypeBlockBlob || b.Metadata["owner"] == nil || *b.Metadata["owner"] != "kiln" {
				t.Errorf("listed small.txt: %+v metadata %v", p, b.Metadata)
			}
		}
	}
	if !blobSeen {
		t.Fatal("small.txt not listed")
	}
	hp := cc.NewListBlobsHierarchyPager("/", nil)
	var prefixes []string
	for hp.More() {
		page, err := hp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Segment.BlobPrefixes {
			prefixes = append(prefixes, *p.Name)
		}
		if len(page.Segment.BlobItems) != 0 {
			t.Errorf("hierarchy listing at the root has blobs %v", page.Segment.BlobItems)
		}
	}
	if !slices.Equal(prefixes, []string{"in/", "out/"}) {
		t.Errorf("prefixes = %v, want [in/ out/]", prefixes)
	}

	// Downloads: whole files in parallel ranges, streams, ranges.
	for name, want := range map[string][]byte{"in/big.bin": big, "out/file.bin": fileData, "out/empty": {}, "in/small.txt": small} {
		dst, err := os.Create(filepath.Join(t.TempDir(), "download"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := cc.NewBlobClient(name).DownloadFile(ctx, dst, &blob.DownloadFileOptions{BlockSize: 4 << 20, Concurrency: 3})
		dst.Close()
		if err != nil {
			t.Fatalf("download %s: %v", name, err)
		}
		got, _ := os.ReadFile(dst.Name())
		if n != int64(len(want)) || !bytes.Equal(got, want) {
			t.Fatalf("download %s: %d bytes, differ from the %d uploaded", name, n, len(want))
		}
	}
	bc := cc.NewBlobClient("in/big.bin")
	for _, r := range []blob.HTTPRange{{Offset: 0, Count: 1}, {Offset: 4<<20 - 5, Count: 10}, {Offset: int64(len(big)) - 100}, {Offset: 100, Count: int64(len(big))}} {
		resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: r})
		if err != nil {
			t.Fatalf("range %+v: %v", r, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		end := int64(len(big))
		if r.Count > 0 {
			end = min(r.Offset+r.Count, end)
		}
		if err != nil || !bytes.Equal(got, big[r.Offset:end]) {
			t.Fatalf("range %+v: %d bytes, %v; want %d bytes", r, len(got), err, end-r.Offset)
		}
		if resp.ContentRange == nil {
			t.Errorf("range %+v: no Content-Range", r)
		}
	}
	resp, err := cc.NewBlobClient("out/empty").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(resp.Body); len(got) != 0 || *resp.ContentLength != 0 {
		t.Fatalf("empty blob: %d bytes, Content-Length %d", len(got), *resp.ContentLength)
	}
	resp.Body.Close()
	resp, err = cc.NewBlobClient("in/small.txt").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, small) || *resp.ContentType != "text/plain" || *resp.ContentLanguage != "en" || resp.ContentMD5 == nil {
		t.Fatalf("small.txt: %q type %v md5 %v", got, resp.ContentType, resp.ContentMD5)
	}

	// Properties and conditions.
	p, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *p.ContentLength != int64(len(big)) || *p.BlobType != blob.BlobTypeBlockBlob || p.ETag == nil || p.LastModified == nil || p.CreationTime == nil {
		t.Fatalf("properties of big.bin: %+v", p)
	}
	later := p.LastModified.Add(time.Second)
	_, err = bc.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfModifiedSince: &later}}})
	wantCode(t, err, http.StatusNotModified, "ConditionNotMet")
	ds, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: p.ETag}}})
	if err != nil || ds.ErrorCode == nil || *ds.ErrorCode != "ConditionNotMet" {
		t.Fatalf("download with If-None-Match of the current ETag: %v, %v", ds.ErrorCode, err)
	}
	earlier := p.LastModified.Add(-time.Hour)
	if _, err := bc.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfModifiedSince: &earlier, IfMatch: p.ETag}}}); err != nil {
		t.Fatalf("matching conditions: %v", err)
	}
	_, err = bc.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(azcore.ETag(`"nope"`))}}})
	wantCode(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	_, err = cc.NewBlockBlobClient("in/small.txt").UploadBuffer(ctx, []byte("x"), &blockblob.UploadBufferOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETag("*"))}}})
	wantCode(t, err, http.StatusConflict, "BlobAlreadyExists")

	// Missing things.
	_, err = cc.NewBlobClient("in/missing").GetProperties(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	_, err = cc.NewBlobClient("in/missing").DownloadStream(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	_, err = bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: int64(len(big))}})
	wantCode(t, err, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")

	// Deletes.
	if _, err := bc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = bc.GetProperties(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	_, err = bc.Delete(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	if _, err := svc.DeleteContainer(ctx, "data", nil); err != nil {
		t.Fatal(err)
	}
	_, err = cc.GetProperties(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "ContainerNotFound")
	_, err = cc.NewBlobClient("in/small.txt").DownloadStream(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "ContainerNotFound")
	_, err = cc.NewBlockBlobClient("x").UploadBuffer(ctx, []byte("x"), nil)
	wantCode(t, err, http.StatusNotFound, "ContainerNotFound")
	// A container created again under the same name is empty.
	if _, err := svc.CreateContainer(ctx, "data", nil); err != nil {
		t.Fatal(err)
	}
	if got := listNames(t, cc, "", 0); len(got) != 0 {
		t.Fatalf("recreated container has blobs %v", got)
	}
}

// listNames lists blob names through the flat pager, max per page.
func listNames(t *testing.T, cc *container.Client, prefix string, max int32) []string {
	t.Helper()
	opts := &container.ListBlobsFlatOptions{}
	if prefix != "" {
		opts.Prefix = &prefix
	}
	if max > 0 {
		opts.MaxResults = &max
	}
	var names []string
	pager := cc.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if max > 0 && len(page.Segment.BlobItems) > int(max) {
			t.Fatalf("page of %d blobs, more than maxresults %d", len(page.Segment.BlobItems), max)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	return names
}
