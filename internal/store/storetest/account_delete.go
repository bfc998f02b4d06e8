package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
)

// AccountDeleter is a store that can delete accounts (service.DeleteAccount
// uses it; both of Kiln's stores are).
type AccountDeleter interface {
	store.Store
	AccountDelete(ctx context.Context, name string) error
}

// ExerciseAccountDelete checks AccountDelete: the account, its lifetime
// statistics and certificate records go (case-insensitively), another
// account's stay, and a missing account is store.ErrNotFound.
func ExerciseAccountDelete(t *testing.T, s AccountDeleter) {
	t.Helper()
	ctx := t.Context()
	for _, name := range []string{"gone", "kept"} {
		if err := s.AccountInsert(ctx, store.Account{Name: name, PrimaryKey: "cA==", SecondaryKey: "cw=="}); err != nil {
			t.Fatal(err)
		}
	}
	w := &store.Writes{
		AccountStats: []store.AccountStats{accountStats("gone", "jobs"), accountStats("kept", "jobs")},
		Certificates: []store.Certificate{
			{Account: "gone", ThumbprintAlgorithm: "sha1", Thumbprint: "aa", Doc: []byte(`{}`)},
			{Account: "kept", ThumbprintAlgorithm: "sha1", Thumbprint: "aa", Doc: []byte(`{}`)},
		},
	}
	if err := s.Apply(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.AccountDelete(ctx, "GONE"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.AccountGet(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := s.AccountDelete(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	accts, err := s.AccountList(ctx)
	if err != nil || len(accts) != 1 || accts[0].Name != "kept" {
		t.Fatalf("accounts after delete: %+v %v", accts, err)
	}
	stats, err := s.AccountStatsList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	requireAccountStats(t, stats, accountStats("kept", "jobs"))
	certs, err := s.CertificateList(ctx)
	if err != nil || len(certs) != 1 || certs[0].Account != "kept" {
		t.Fatalf("certificates after delete: %+v %v", certs, err)
	}
	// The name is free again.
	if err := s.AccountInsert(ctx, store.Account{Name: "gone", PrimaryKey: "cA==", SecondaryKey: "cw=="}); err != nil {
		t.Fatalf("insert after delete: %v", err)
	}
}
