package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAccounts checks on a directory that each account's storage is a world of its own:
// views do not share containers, a SAS reaches only the account it was
// signed for, and deleting an account deletes only its storage.
func TestAccounts(t *testing.T) {
	t.Parallel()
	s, _ := openDirStorage(t)
	exerciseAccounts(t, s)
}

// TestAccounts_S3Bucket is TestAccounts on a real S3 server, where an
// account is a key prefix of the bucket.
func TestAccounts_S3Bucket(t *testing.T) {
	exerciseAccounts(t, openS3Storage(t))
}

func exerciseAccounts(t *testing.T, s *Storage) {
	ctx := context.Background()
	if _, err := s.Account(ctx, "../x"); !errors.Is(err, ErrInvalidAccount) {
		t.Fatalf("bad account name: %v", err)
	}
	a, err := s.Account(ctx, "accta")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Account(ctx, "ACCTB")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Account(ctx, "AcctA"); again != a {
		t.Fatal("views are not cached by lower-case name")
	}
	if err := a.CreateContainer(ctx, "box"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, "box", "f.txt", strings.NewReader("a's"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.ContainerExists(ctx, "box"); ok {
		t.Fatal("B sees A's container")
	}
	if l, _ := b.ListContainers(ctx, ""); len(l) != 0 {
		t.Fatalf("B lists %v", l)
	}
	if err := b.CreateContainer(ctx, "box"); err != nil {
		t.Fatalf("B's own container of the same name: %v", err)
	}

	keyA, keyB := bytes.Repeat([]byte("a-key-0123456789"), 4), bytes.Repeat([]byte("b-key-0123456789"), 4)
	keys := func(account string) ([][]byte, bool) {
		switch account {
		case "accta":
			return [][]byte{keyA}, true
		case "acctb":
			return [][]byte{keyB}, true
		}
		return nil, false
	}
	mux := http.NewServeMux()
	mux.Handle("/storage/", http.StripPrefix("/storage", s.AccountsHandler(keys)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			return resp.StatusCode, string(body)
		}
		return resp.StatusCode, resp.Header.Get("x-ms-error-code")
	}
	hour := time.Now().Add(time.Hour)
	sa, sb := Signer{Account: "accta", Key: keyA}, Signer{Account: "acctb", Key: keyB}
	baseA, baseB := srv.URL+"/storage/accta", srv.URL+"/storage/acctb"
	if st, body := get(sa.BlobURL(baseA, "box", "f.txt", "r", hour)); st != 200 || body != "a's" {
		t.Fatalf("A reads its blob: %d %s", st, body)
	}
	for name, u := range map[string]string{
		"B's SAS at A's address":     sb.BlobURL(baseA, "box", "f.txt", "r", hour),
		"signed as A with B's key":   Signer{Account: "accta", Key: keyB}.BlobURL(baseA, "box", "f.txt", "r", hour),
		"B's account SAS listing A":  strings.Replace(sb.ServiceURL(baseA, "rl", "sco", hour), "/?", "/?comp=list&", 1),
		"an unknown account":         Signer{Account: "nosuch", Key: keyB}.BlobURL(srv.URL+"/storage/nosuch", "box", "f.txt", "r", hour),
		"an invalid account segment": srv.URL + "/storage/a..b/box/f.txt?" + sasQuery(sb.BlobURL(baseB, "box", "f.txt", "r", hour)),
	} {
		if st, code := get(u); st != http.StatusForbidden || code != "AuthenticationFailed" {
			t.Errorf("%s: %d %s, want 403 AuthenticationFailed", name, st, code)
		}
	}
	if st, code := get(sb.BlobURL(baseB, "box", "f.txt", "r", hour)); st != http.StatusNotFound || code != "BlobNotFound" {
		t.Errorf("A's blob name in B's container: %d %s", st, code)
	}
	if st, code := get(srv.URL + "/storage/"); st != http.StatusBadRequest || code != "InvalidUri" {
		t.Errorf("no account in the path: %d %s", st, code)
	}
	// Listing B's containers shows B's endpoint and only B's container.
	st, body := get(strings.Replace(sb.ServiceURL(baseB, "rl", "sco", hour), "/?", "/?comp=list&", 1))
	if st != 200 || !strings.Contains(body, baseB+"/") || strings.Count(body, "<Name>") != 1 {
		t.Errorf("B's container list: %d %s", st, body)
	}

	if err := s.DeleteAccount(ctx, "acctb"); err != nil {
		t.Fatal(err)
	}
	b, _ = s.Account(ctx, "acctb")
	if ok, _ := b.ContainerExists(ctx, "box"); ok {
		t.Fatal("B's container outlives B")
	}
	if ok, _ := a.ContainerExists(ctx, "box"); !ok {
		t.Fatal("deleting B deleted A's container")
	}
}
