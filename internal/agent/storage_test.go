package agent_test

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/kilnbatch/kiln/internal/protocol"
	"github.com/kilnbatch/kiln/internal/testutil/azurite"
)

// Helpers of the tests that run against Azurite (resource files from
// containers, output files, application packages from blob storage).

func putBlob(t *testing.T, az *azurite.Azurite, containerName, name string, data []byte) {
	t.Helper()
	_, err := az.Container(t, containerName).NewBlockBlobClient(name).UploadBuffer(context.Background(), data, nil)
	if err != nil {
		t.Fatalf("upload %s/%s: %v", containerName, name, err)
	}
}

// getBlob returns a blob's content and properties, failing the test if it
// does not exist.
func getBlob(t *testing.T, az *azurite.Azurite, containerName, name string) ([]byte, blob.GetPropertiesResponse) {
	t.Helper()
	bc := az.Container(t, containerName).NewBlobClient(name)
	props, err := bc.GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatalf("blob %s/%s: %v", containerName, name, err)
	}
	resp, err := bc.DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatalf("blob %s/%s: %v", containerName, name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data, props
}

// listBlobs returns the names of a container's blobs with a prefix, sorted.
func listBlobs(t *testing.T, az *azurite.Azurite, containerName, prefix string) []string {
	t.Helper()
	var names []string
	pager := az.Container(t, containerName).NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", containerName, err)
		}
		for _, b := range page.Segment.BlobItems {
			if strings.HasPrefix(*b.Name, prefix) {
				names = append(names, *b.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// blobURL is the URL of a blob of a container URL that carries a SAS.
func blobURL(containerSAS, name string) string {
	base, query, _ := strings.Cut(containerSAS, "?")
	return base + "/" + name + "?" + query
}

// checkFailure checks a completed event's failure.
func checkFailure(t *testing.T, c protocol.Event, code, phase string, mentions ...string) {
	t.Helper()
	f := c.Failure
	if f != nil {
		t.Logf("completed %s: %s: %s", c.AttemptID, f.Code, f.Message)
	}
	if f == nil || f.Category != "usererror" || f.Code != code || f.Phase != phase {
		t.Fatalf("completed %s: failure = %+v, want usererror %s in phase %q", c.AttemptID, f, code, phase)
	}
	for _, m := range mentions {
		if !strings.Contains(f.Message, m) {
			t.Errorf("completed %s: message %q does not mention %q", c.AttemptID, f.Message, m)
		}
	}
	if strings.Contains(f.Message, "sig=") {
		t.Errorf("completed %s: message leaks a SAS signature: %s", c.AttemptID, f.Message)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// emptyDir reports whether dir has no entries.
func emptyDir(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) == 0
}
