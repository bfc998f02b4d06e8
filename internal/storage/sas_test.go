package storage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// TestSAS_HTTP checks what the handler lets each kind of SAS do, through
// the azblob SDK.
func TestSAS_HTTP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := openDirStorage(t)
	base, _ := serve(t, s)
	for _, c := range []string{"alpha", "beta"} {
		if err := s.CreateContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, c, "x", strings.NewReader("content of "+c), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	hour := time.Now().Add(time.Hour)
	read := func(sasURL, name string) error {
		_, err := containerClient(t, sasURL).NewBlobClient(name).DownloadStream(ctx, nil)
		return err
	}
	write := func(sasURL, name string) error {
		_, err := containerClient(t, sasURL).NewBlockBlobClient(name).UploadBuffer(ctx, []byte("new"), nil)
		return err
	}

	t.Run("ContainerSASReadsAndWrites", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "racwdl", hour)
		if err := read(u, "x"); err != nil {
			t.Fatal(err)
		}
		if err := write(u, "written"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "racwdl", time.Now().Add(-time.Minute))
		wantCode(t, read(u, "x"), http.StatusForbidden, "AuthenticationFailed")
	})
	t.Run("ForgedSignature", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "r", hour)
		q, _ := url.ParseQuery(sasQuery(u))
		sig := []byte(q.Get("sig"))
		sig[3] ^= 1
		q.Set("sig", string(sig))
		wantCode(t, read(withQuery(t, u, q), "x"), http.StatusForbidden, "AuthenticationFailed")
	})
	t.Run("RaisedPermissions", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "r", hour)
		wantCode(t, write(strings.Replace(u, "sp=r", "sp=rw", 1), "y"), http.StatusForbidden, "AuthenticationFailed")
	})
	t.Run("LaterExpiry", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "r", time.Now().Add(-time.Minute))
		q, _ := url.ParseQuery(sasQuery(u))
		q.Set("se", hour.UTC().Format(sas.TimeFormat))
		wantCode(t, read(withQuery(t, u, q), "x"), http.StatusForbidden, "AuthenticationFailed")
	})
	t.Run("OtherKey", func(t *testing.T) {
		other := Signer{Account: testSigner.Account, Key: bytes.Repeat([]byte("k"), 64)}
		wantCode(t, read(other.ContainerURL(base, "alpha", "r", hour), "x"), http.StatusForbidden, "AuthenticationFailed")
	})
	t.Run("OtherAccount", func(t *testing.T) {
		other := Signer{Account: "someoneelse", Key: testSigner.Key}
		wantCode(t, read(other.ContainerURL(base, "alpha", "r", hour), "x"), http.StatusForbidden, "AuthenticationFailed")
	})
	t.Run("NoSAS", func(t *testing.T) {
		status, code, _ := do(t, http.MethodGet, base+"/alpha/x", nil, nil)
		if status != http.StatusForbidden || code != "AuthenticationFailed" {
			t.Fatalf("no SAS: %d %s", status, code)
		}
	})
	t.Run("ReadOnlyCannotWrite", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "rl", hour)
		if err := read(u, "x"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, write(u, "y"), http.StatusForbidden, "AuthorizationPermissionMismatch")
		_, err := containerClient(t, u).NewBlobClient("x").Delete(ctx, nil)
		wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
	})
	t.Run("WriteOnlyCannotReadOrList", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "w", hour)
		wantCode(t, read(u, "x"), http.StatusForbidden, "AuthorizationPermissionMismatch")
		_, err := containerClient(t, u).NewListBlobsFlatPager(nil).NextPage(ctx)
		wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
	})
	t.Run("CreateOnlyCannotOverwrite", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "c", hour)
		if err := write(u, "created-once"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, write(u, "created-once"), http.StatusForbidden, "AuthorizationPermissionMismatch")
	})
	t.Run("ContainerSASCoversOnlyItsContainer", func(t *testing.T) {
		u := testSigner.ContainerURL(base, "alpha", "racwdl", hour)
		onBeta := withPath(t, u, "/storage/beta")
		wantCode(t, read(onBeta, "x"), http.StatusForbidden, "AuthenticationFailed")
		wantCode(t, write(onBeta, "y"), http.StatusForbidden, "AuthenticationFailed")
		// Nor can it delete or create containers, its own included: that
		// takes an account SAS.
		_, err := containerClient(t, u).Delete(ctx, nil)
		wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
		_, err = containerClient(t, testSigner.ContainerURL(base, "delta", "racwdl", hour)).Create(ctx, nil)
		wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
	})
	t.Run("BlobSASCoversOnlyItsBlob", func(t *testing.T) {
		u := testSigner.BlobURL(base, "alpha", "x", "r", hour)
		bc, err := blob.NewClientWithNoCredential(u, &blob.ClientOptions{ClientOptions: noRetry})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := bc.DownloadStream(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		q := sasQuery(u)
		for path, code := range map[string]string{
			"/storage/alpha/written": "AuthenticationFailed",
			"/storage/beta/x":        "AuthenticationFailed",
		} {
			status, got, _ := do(t, http.MethodGet, withPath(t, u, path)+"&"+q, nil, nil)
			if status != http.StatusForbidden || got != code {
				t.Errorf("blob SAS of alpha/x on %s: %d %s, want 403 %s", path, status, got, code)
			}
		}
		status, got, _ := do(t, http.MethodGet, withPath(t, u, "/storage/alpha")+"&restype=container&comp=list", nil, nil)
		if status != http.StatusForbidden || got != "AuthorizationResourceTypeMismatch" {
			t.Errorf("blob SAS listing its container: %d %s", status, got)
		}
	})
	t.Run("AccountSASResourceTypes", func(t *testing.T) {
		objectsOnly := serviceClient(t, base, "rwdlac", "o")
		_, err := objectsOnly.CreateContainer(ctx, "gamma", nil)
		wantCode(t, err, http.StatusForbidden, "AuthorizationResourceTypeMismatch")
		_, err = objectsOnly.NewListContainersPager(nil).NextPage(ctx)
		wantCode(t, err, http.StatusForbidden, "AuthorizationResourceTypeMismatch")
		// But it reads blobs.
		resp, err := objectsOnly.NewContainerClient("alpha").NewBlobClient("x").DownloadStream(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		readOnly := serviceClient(t, base, "r", "sco")
		_, err = readOnly.NewListContainersPager(nil).NextPage(ctx)
		wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
		_, err = readOnly.CreateContainer(ctx, "gamma", nil)
		wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
	})
}

// TestVerify_TokenFormats checks tokens as the azblob sas package and other
// SDKs write them.
func TestVerify_TokenFormats(t *testing.T) {
	t.Parallel()
	cred, err := azblob.NewSharedKeyCredential(testSigner.Account, base64.StdEncoding.EncodeToString(testSigner.Key))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sign := func(v sas.BlobSignatureValues) url.Values {
		t.Helper()
		qp, err := v.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := url.ParseQuery(qp.Encode())
		return q
	}
	ok := func(name string, q url.Values, container, blob string, need Permission) {
		t.Helper()
		if err := testSigner.Verify(q, container, blob, need); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	fail := func(name string, q url.Values, container, blob string, need Permission, want error) {
		t.Helper()
		if err := testSigner.Verify(q, container, blob, need); !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", name, err, want)
		}
	}

	full := sign(sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, StartTime: now.Add(-time.Hour), ExpiryTime: now.Add(time.Hour),
		Permissions: "racwdl", ContainerName: "c",
		IPRange:      sas.IPRange{Start: net.ParseIP("10.0.0.1"), End: net.ParseIP("10.0.0.9")},
		CacheControl: "no-cache", ContentDisposition: "attachment", ContentType: "text/plain",
	})
	ok("all optional fields", full, "c", "a/b", PermWrite)
	ok("HTTPS only", sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPS, ExpiryTime: now.Add(time.Hour), Permissions: "r", ContainerName: "c"}), "c", "b", PermRead)
	ok("start within clock skew", sign(sas.BlobSignatureValues{StartTime: now.Add(2 * time.Minute), ExpiryTime: now.Add(time.Hour), Permissions: "r", ContainerName: "c"}), "c", "b", PermRead)
	fail("start in the future", sign(sas.BlobSignatureValues{StartTime: now.Add(10 * time.Minute), ExpiryTime: now.Add(time.Hour), Permissions: "r", ContainerName: "c"}), "c", "b", PermRead, ErrAuthenticationFailed)
	fail("expired", sign(sas.BlobSignatureValues{ExpiryTime: now.Add(-time.Second), Permissions: "r", ContainerName: "c"}), "c", "b", PermRead, ErrAuthenticationFailed)
	blobSAS := sign(sas.BlobSignatureValues{ExpiryTime: now.Add(time.Hour), Permissions: "rw", ContainerName: "c", BlobName: "dir/file.txt"})
	ok("blob SAS", blobSAS, "c", "dir/file.txt", PermWrite)
	fail("blob SAS on another blob", blobSAS, "c", "dir/other.txt", PermRead, ErrAuthenticationFailed)
	fail("blob SAS on its container", blobSAS, "c", "", PermRead, ErrResourceTypeMismatch)
	fail("blob SAS needing delete", blobSAS, "c", "dir/file.txt", PermDelete, ErrPermissionMismatch)
	fail("snapshot SAS", sign(sas.BlobSignatureValues{ExpiryTime: now.Add(time.Hour), Permissions: "r", ContainerName: "c", BlobName: "b", SnapshotTime: now}), "c", "b", PermRead, ErrAuthenticationFailed)
	fail("stored access policy", sign(sas.BlobSignatureValues{Identifier: "policy", ContainerName: "c"}), "c", "b", PermRead, ErrAuthenticationFailed)
	fail("container SAS on the account", full, "", "", PermList, ErrResourceTypeMismatch)

	acct := func(v sas.AccountSignatureValues) url.Values {
		t.Helper()
		qp, err := v.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := url.ParseQuery(qp.Encode())
		return q
	}
	a := acct(sas.AccountSignatureValues{ExpiryTime: now.Add(time.Hour), Permissions: "rl", ResourceTypes: "sc", Protocol: sas.ProtocolHTTPS})
	ok("account SAS lists containers", a, "", "", PermList)
	ok("account SAS lists blobs", a, "c", "", PermList)
	fail("account SAS without objects", a, "c", "b", PermRead, ErrResourceTypeMismatch)
	fail("account SAS without create", a, "c", "", PermCreate, ErrPermissionMismatch)

	// Tokens other SDKs write: permission letters in another order, dates
	// without a time, older signed versions. Signed here by hand from
	// Azure's documented strings-to-sign.
	hand := func(toSign string, q url.Values) url.Values {
		mac := hmac.New(sha256.New, testSigner.Key)
		mac.Write([]byte(toSign))
		q.Set("sig", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		return q
	}
	q := url.Values{"sv": {"2019-12-12"}, "sr": {"c"}, "sp": {"wr"}, "se": {"2099-01-01"}}
	ok("sv 2019-12-12, sp wr, date-only expiry",
		hand("wr\n\n2099-01-01\n/blob/kilntest/c\n\n\n\n2019-12-12\nc\n\n\n\n\n\n", q), "c", "x", PermWrite)
	q = url.Values{"sv": {"2017-11-09"}, "sr": {"b"}, "sp": {"r"}, "se": {"2099-01-01T00:00Z"}}
	ok("sv 2017-11-09 (no signed resource in the string)",
		hand("r\n\n2099-01-01T00:00Z\n/blob/kilntest/c/x\n\n\n\n2017-11-09\n\n\n\n\n", q), "c", "x", PermRead)
	q = url.Values{"sv": {"2019-02-02"}, "ss": {"bf"}, "srt": {"sco"}, "sp": {"lr"}, "se": {"2099-01-01"}, "spr": {"https"}}
	ok("account SAS sv 2019-02-02",
		hand("kilntest\nlr\nbf\nsco\n\n2099-01-01\n\nhttps\n2019-02-02\n", q), "", "", PermList)
	q = url.Values{"sv": {"2020-12-06"}, "ss": {"q"}, "srt": {"sco"}, "sp": {"r"}, "se": {"2099-01-01"}}
	fail("account SAS for the queue service",
		hand("kilntest\nr\nq\nsco\n\n2099-01-01\n\n\n2020-12-06\n\n", q), "c", "b", PermRead, ErrAuthenticationFailed)
	q = url.Values{"sv": {"2020-12-06"}, "sr": {"c"}, "sp": {"r"}}
	fail("no expiry", hand("r\n\n\n/blob/kilntest/c\n\n\n\n2020-12-06\nc\n\n\n\n\n\n\n", q), "c", "b", PermRead, ErrAuthenticationFailed)
	q = url.Values{"sv": {"2014-02-14"}, "sr": {"c"}, "sp": {"r"}, "se": {"2099-01-01"}, "sig": {"x"}}
	fail("too old a version", q, "c", "b", PermRead, ErrAuthenticationFailed)
}

// TestSignerURLs checks the URLs Signer hands out.
func TestSignerURLs(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour)
	// azblob's ParseURL takes the first path segment of an IP host for the
	// account name, so it understands Kiln URLs of that form.
	u := testSigner.BlobURL("http://127.0.0.1:8080/storage/", "c", "dir/a b+c.txt", "r", exp)
	if !strings.HasPrefix(u, "http://127.0.0.1:8080/storage/c/dir/a%20b+c.txt?") {
		t.Errorf("BlobURL = %s", u)
	}
	parts, err := blob.ParseURL(u)
	if err != nil || parts.ContainerName != "c" || parts.BlobName != "dir/a b+c.txt" {
		t.Errorf("azblob parses %s as %+v, %v", u, parts, err)
	}
	q, _ := url.ParseQuery(sasQuery(u))
	if err := testSigner.Verify(q, "c", "dir/a b+c.txt", PermRead); err != nil {
		t.Error(err)
	}
	if u := testSigner.ContainerURL("http://h/storage", "c", "rl", exp); !strings.HasPrefix(u, "http://h/storage/c?") || !strings.Contains(u, "sr=c") {
		t.Errorf("ContainerURL = %s", u)
	}
	if u := testSigner.ServiceURL("http://h/storage", "rl", "sc", exp); !strings.HasPrefix(u, "http://h/storage/?") || !strings.Contains(u, "ss=b") {
		t.Errorf("ServiceURL = %s", u)
	}
}
