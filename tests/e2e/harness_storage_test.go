package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// Helpers of the storage tests: every storage access goes through the
// official azblob SDK, which speaks to Kiln storage, Azurite and Azure
// alike.

// storageBase is the blob service URL of the test account's Kiln storage
// (path-style: <server>/storage/<account>).
func (s *Server) storageBase() string { return s.URL + "/storage/" + testAccount }

// storageClient returns an azblob client for the server's storage, with an
// account SAS made from the account key, as `kiln storage` makes it.
func (s *Server) storageClient(t testing.TB) *azblob.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(testAccount, testKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Delete: true, List: true, Add: true, Create: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithNoCredential(s.storageBase()+"/?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// storageSAS signs a container (blob == "") or blob URL of base (a blob
// service URL) with account/key.
func storageSAS(t testing.TB, base, account, key, containerName, blob, perms string, expiry time.Time) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		t.Fatal(err)
	}
	v := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: expiry.UTC(), ContainerName: containerName, BlobName: blob}
	has := func(c string) bool { return strings.Contains(perms, c) }
	if blob == "" {
		v.Permissions = (&sas.ContainerPermissions{Read: has("r"), Add: has("a"), Create: has("c"), Write: has("w"), Delete: has("d"), List: has("l")}).String()
	} else {
		v.Permissions = (&sas.BlobPermissions{Read: has("r"), Add: has("a"), Create: has("c"), Write: has("w"), Delete: has("d")}).String()
	}
	q, err := v.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	u := base + "/" + containerName
	if blob != "" {
		u += "/" + blob
	}
	return u + "?" + q.Encode()
}

// storageUpload puts data as blob name in a container.
func storageUpload(t testing.TB, c *container.Client, name string, data []byte) {
	t.Helper()
	if _, err := c.NewBlockBlobClient(name).UploadBuffer(ctx(t), data, nil); err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
}

// storageDownloadAll reads every blob of a container into a map by name.
func storageDownloadAll(t testing.TB, c *container.Client) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	pager := c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("list blobs: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			resp, err := c.NewBlobClient(*b.Name).DownloadStream(ctx(t), nil)
			if err != nil {
				t.Fatalf("download %s: %v", *b.Name, err)
			}
			data, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", *b.Name, err)
			}
			out[*b.Name] = data
		}
	}
	return out
}

// storageCode is the Azure Storage error code of err ("" if none).
func storageCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// storageRaw does an unsigned request and returns status and body.
func storageRaw(t testing.TB, method, url string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPut {
		req.Header.Set("x-ms-blob-type", "BlockBlob")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// storageFilesUnder lists the regular files under dir (relative paths).
func storageFilesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// storageCtx is a context for long transfers.
func storageCtx(t testing.TB, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

func upper(b []byte) []byte { return bytes.ToUpper(b) }

func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
