package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// TestHandler_Protocol checks answers the SDK test does not reach: the
// error shape, unsupported operations, bad inputs, range forms.
func TestHandler_Protocol(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openDirStorage(t)
	base, _ := serve(t, s)
	if err := s.CreateContainer(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	content := []byte("0123456789abcdefghij")
	if _, err := s.Put(ctx, "box", "f.txt", bytes.NewReader(content), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	cq := sasQuery(testSigner.ContainerURL(base, "box", "racwdl", hour))
	aq := sasQuery(testSigner.ServiceURL(base, "racwdl", "sco", hour))
	blobURL := func(name, extra string) string { return base + "/box/" + name + "?" + cq + extra }

	t.Run("ErrorShape", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, blobURL("missing", ""), nil)
		req.Header.Set("x-ms-version", "2021-08-06")
		req.Header.Set("x-ms-client-request-id", "client-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e xmlError
		if err := xml.Unmarshal(body, &e); err != nil {
			t.Fatalf("error body %q: %v", body, err)
		}
		h := resp.Header
		if resp.StatusCode != 404 || e.Code != "BlobNotFound" || h.Get("x-ms-error-code") != "BlobNotFound" ||
			!strings.HasPrefix(string(body), "<?xml") || h.Get("Content-Type") != "application/xml" ||
			h.Get("x-ms-version") != "2021-08-06" || h.Get("x-ms-client-request-id") != "client-1" ||
			h.Get("x-ms-request-id") == "" || !strings.Contains(e.Message, "RequestId:"+h.Get("x-ms-request-id")) {
			t.Fatalf("error answer %d %v %q", resp.StatusCode, h, body)
		}
		head, _ := http.NewRequest(http.MethodHead, blobURL("missing", ""), nil)
		resp, err = http.DefaultClient.Do(head)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || resp.Header.Get("x-ms-error-code") != "BlobNotFound" {
			t.Fatalf("HEAD of a missing blob: %d %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("Unsupported", func(t *testing.T) {
		copyFrom := map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-copy-source": "http://example.com/src"}
		for _, tc := range []struct {
			method, url string
			header      map[string]string
			code        string
		}{
			{http.MethodPut, blobURL("f.txt", "&comp=metadata"), nil, "NotImplemented"},
			{http.MethodGet, blobURL("f.txt", "&comp=blocklist"), nil, "NotImplemented"},
			{http.MethodPost, blobURL("f.txt", ""), nil, "NotImplemented"},
			{http.MethodPut, base + "/box?" + aq + "&restype=container&comp=acl", nil, "NotImplemented"},
			{http.MethodGet, base + "/?" + aq + "&restype=service&comp=properties", nil, "NotImplemented"},
			{http.MethodGet, base + "/box?" + cq, nil, "InvalidUri"},
			{http.MethodPut, blobURL("copied", ""), copyFrom, "NotImplemented"},
			{http.MethodPut, blobURL("copied", "&comp=block&blockid=QUFBQQ=="), copyFrom, "NotImplemented"},
		} {
			status, code, _ := do(t, tc.method, tc.url, nil, tc.header)
			if code != tc.code || (status != http.StatusNotImplemented && status != http.StatusBadRequest) {
				t.Errorf("%s %s: %d %s, want %s", tc.method, tc.url, status, code, tc.code)
			}
		}
		if _, err := s.Attributes(ctx, "box", "copied"); !errors.Is(err, ErrBlobNotFound) {
			t.Errorf("a copy request wrote a blob: %v", err)
		}
	})

	t.Run("BadInputs", func(t *testing.T) {
		blockList := func(body string) (int, string) {
			status, code, _ := do(t, http.MethodPut, blobURL("bl", "&comp=blocklist"), strings.NewReader(body), nil)
			return status, code
		}
		for body, code := range map[string]string{
			`<BlockList><Committed>QUFBQQ==</Committed></BlockList>`: "InvalidBlockList",
			`<BlockList><Latest>QUFBQQ==</Latest></BlockList>`:       "InvalidBlockList",
			`<BlockList><Latest>not base64</Latest></BlockList>`:     "InvalidBlockList",
			`<BlockList><Latest>QUFBQQ==`:                            "InvalidBlockList",
			`<Blocks/>`:                                              "InvalidBlockList",
			``:                                                       "InvalidBlockList",
		} {
			if status, got := blockList(body); status != 400 || got != code {
				t.Errorf("block list %q: %d %s, want 400 %s", body, status, got, code)
			}
		}
		for _, tc := range []struct {
			method, url string
			header      map[string]string
			status      int
			code        string
		}{
			{http.MethodPut, blobURL("n", ""), nil, 400, "MissingRequiredHeader"},
			{http.MethodPut, blobURL("n", ""), map[string]string{"x-ms-blob-type": "AppendBlob"}, 400, "InvalidHeaderValue"},
			{http.MethodPut, blobURL("n", ""), map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-structured-body": "XSM/1.0; properties=crc64"}, 400, "UnsupportedHeader"},
			{http.MethodPut, blobURL("n", ""), map[string]string{"x-ms-blob-type": "BlockBlob", "Content-MD5": "nope"}, 400, "InvalidMd5"},
			{http.MethodPut, blobURL("n", ""), map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-blob-content-type": "not a type"}, 400, "InvalidHeaderValue"},
			{http.MethodPut, blobURL("n", ""), map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-meta-bad-name": "v"}, 400, "InvalidHeaderValue"},
			{http.MethodPut, blobURL("n", ""), map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-encryption-key": "a2V5"}, 400, "UnsupportedHeader"},
			{http.MethodPut, blobURL("n", "&comp=block"), nil, 400, "MissingRequiredQueryParameter"},
			{http.MethodPut, blobURL("n", "&comp=block&blockid=%21%21"), nil, 400, "InvalidQueryParameterValue"},
			{http.MethodGet, base + "/box?" + cq + "&restype=container&comp=list&maxresults=0", nil, 400, "OutOfRangeQueryParameterValue"},
			{http.MethodGet, base + "/box?" + cq + "&restype=container&comp=list&marker=%21", nil, 400, "InvalidQueryParameterValue"},
			{http.MethodGet, base + "/box?" + cq + "&restype=container&comp=list&startFrom=x", nil, 400, "UnsupportedQueryParameter"},
			{http.MethodGet, base + "/box?" + cq + "&restype=container&comp=list&prefix=%zz", nil, 400, "InvalidQueryParameterValue"},
		} {
			status, code, _ := do(t, tc.method, tc.url, strings.NewReader("data"), tc.header)
			if status != tc.status || code != tc.code {
				t.Errorf("%s %s %v: %d %s, want %d %s", tc.method, tc.url, tc.header, status, code, tc.status, tc.code)
			}
		}
		if _, err := s.Attributes(ctx, "box", "n"); err == nil {
			t.Error("a refused put left a blob")
		}
	})

	t.Run("MD5", func(t *testing.T) {
		bb := containerClient(t, base+"/box?"+cq).NewBlockBlobClient("md5")
		data := []byte("checked content")
		good := md5.Sum(data)
		bad := md5.Sum([]byte("other"))
		_, err := bb.Upload(ctx, nopSeekCloser(data), &blockblob.UploadOptions{TransactionalValidation: blob.TransferValidationTypeMD5(bad[:])})
		wantCode(t, err, 400, "Md5Mismatch")
		if _, err := bb.Upload(ctx, nopSeekCloser(data), &blockblob.UploadOptions{TransactionalValidation: blob.TransferValidationTypeMD5(good[:])}); err != nil {
			t.Fatal(err)
		}
		_, err = bb.StageBlock(ctx, "QUFBQQ==", nopSeekCloser(data), &blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeMD5(bad[:])})
		wantCode(t, err, 400, "Md5Mismatch")
		p, err := bb.GetProperties(ctx, nil)
		if err != nil || !bytes.Equal(p.ContentMD5, good[:]) {
			t.Fatalf("Content-MD5 of the blob: %x, %v", p.ContentMD5, err)
		}
	})

	t.Run("Ranges", func(t *testing.T) {
		for _, tc := range []struct {
			header map[string]string
			status int
			body   string
		}{
			{map[string]string{"Range": "bytes=-5"}, 206, "fghij"},
			{map[string]string{"Range": "bytes=18-"}, 206, "ij"},
			{map[string]string{"Range": "bytes=0-2", "x-ms-range": "bytes=3-4"}, 206, "34"},
			{map[string]string{"Range": "bytes=0-1,4-5"}, 200, string(content)},
			{map[string]string{"Range": "bytes=5-2"}, 200, string(content)},
			{map[string]string{"Range": "items=0-1"}, 200, string(content)},
			{map[string]string{"Range": "bytes=20-"}, 416, ""},
			{map[string]string{"Range": "bytes=-0"}, 416, ""},
		} {
			status, _, body := do(t, http.MethodGet, blobURL("f.txt", ""), nil, tc.header)
			if status != tc.status || (tc.status != 416 && string(body) != tc.body) {
				t.Errorf("%v: %d %q, want %d %q", tc.header, status, body, tc.status, tc.body)
			}
		}
	})

	t.Run("ServiceEndpoint", func(t *testing.T) {
		_, _, body := do(t, http.MethodGet, base+"/box?"+cq+"&restype=container&comp=list", nil, nil)
		var l blobList
		if err := xml.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
		if l.ServiceEndpoint != base+"/" || l.ContainerName != "box" {
			t.Fatalf("ServiceEndpoint %q ContainerName %q, want %q box", l.ServiceEndpoint, l.ContainerName, base+"/")
		}
	})

	t.Run("TruncatedUploadWritesNothing", func(t *testing.T) {
		send := func(name string, sent int) {
			u, _ := url.Parse(blobURL(name, ""))
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 100000\r\n\r\n%s", u.RequestURI(), u.Host, strings.Repeat("x", sent))
			time.Sleep(50 * time.Millisecond)
			conn.Close()
		}
		send("whole", 100000)
		send("cut", 5000)
		// The handler sees the body end early as soon as the connection
		// closes; give it a moment, then no blob may exist.
		time.Sleep(300 * time.Millisecond)
		if _, err := s.Attributes(ctx, "box", "cut"); !errors.Is(err, ErrBlobNotFound) {
			t.Fatalf("after a truncated upload: %v, want ErrBlobNotFound", err)
		}
		if info, err := s.Attributes(ctx, "box", "whole"); err != nil || info.Size != 100000 {
			t.Fatalf("the same upload sent whole: %+v, %v", info, err)
		}
	})
}

// nopSeekCloser wraps bytes for SDK calls that take an io.ReadSeekCloser.
func nopSeekCloser(b []byte) io.ReadSeekCloser {
	return struct {
		io.ReadSeeker
		io.Closer
	}{bytes.NewReader(b), io.NopCloser(nil)}
}
