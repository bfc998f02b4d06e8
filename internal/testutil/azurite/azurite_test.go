package azurite_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/kilnbatch/kiln/internal/testutil/azurite"
)

func TestAzurite(t *testing.T) {
	az := azurite.Start(t)
	ctx := context.Background()
	az.CreateContainer(t, "box")

	// A SAS that grants create and write can upload, one that grants read
	// and list can read, and one without write cannot upload.
	rw, err := container.NewClientWithNoCredential(az.ContainerSAS(t, "box", "cw", time.Now().Add(time.Hour)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.NewBlockBlobClient("dir/a.txt").UploadBuffer(ctx, []byte("hello"), nil); err != nil {
		t.Fatalf("upload with a write SAS: %v", err)
	}
	ro, err := container.NewClientWithNoCredential(az.ContainerSAS(t, "box", "lr", time.Now().Add(time.Hour)), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ro.NewBlockBlobClient("b.txt").UploadBuffer(ctx, []byte("no"), nil)
	if !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
		t.Fatalf("upload with a read SAS: %v, want AuthorizationPermissionMismatch", err)
	}
	pager := ro.NewListBlobsFlatPager(nil)
	var names []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list with a list SAS: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	if len(names) != 1 || names[0] != "dir/a.txt" {
		t.Fatalf("listed %v", names)
	}
	resp, err := ro.NewBlobClient("dir/a.txt").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, []byte("hello")) {
		t.Fatalf("read %q", body)
	}

	expired := az.ContainerSAS(t, "box", "rl", time.Now().Add(-time.Minute))
	ec, _ := container.NewClientWithNoCredential(expired, nil)
	if _, err := ec.NewBlobClient("dir/a.txt").DownloadStream(ctx, nil); err == nil {
		t.Fatal("expired SAS was accepted")
	}
}
