package service

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// keyStore records AccountUpdate calls, as a store that can persist keys.
type keyStore struct {
	store.Store
	updated []store.Account
}

func (k *keyStore) AccountUpdate(_ context.Context, a store.Account) error {
	k.updated = append(k.updated, a)
	return nil
}

func TestRegenerateAccountKey(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	for _, persist := range []bool{false, true} {
		var st store.Store = sq
		ks := &keyStore{Store: sq}
		if persist {
			st = ks
		}
		s, err := New(ctx, Config{Store: st, Provider: idleProvider{}, AccountURL: func(string) string { return "http://127.0.0.1:8080" }})
		if err != nil {
			t.Fatal(err)
		}
		before, err := s.EnsureAccount(ctx, "keys", "")
		if err != nil {
			t.Fatal(err)
		}
		oldKeys, _ := s.AccountKeys("KEYS")
		a, persisted, err := s.RegenerateAccountKey(ctx, "keys", "Primary")
		if err != nil {
			t.Fatal(err)
		}
		if persisted != persist || a.PrimaryKey == before.PrimaryKey || a.SecondaryKey != before.SecondaryKey {
			t.Fatalf("persist=%v: got %+v persisted=%v (before %+v)", persist, a, persisted, before)
		}
		if persist && (len(ks.updated) != 1 || ks.updated[0].PrimaryKey != a.PrimaryKey) {
			t.Fatalf("store updates %+v", ks.updated)
		}
		newKeys, _ := s.AccountKeys("keys")
		if string(newKeys[0]) == string(oldKeys[0]) || string(newKeys[1]) != string(oldKeys[1]) {
			t.Fatal("AccountKeys did not follow the new primary")
		}
		if got, _ := s.Account("keys"); got.PrimaryKey != a.PrimaryKey {
			t.Fatalf("Account: %+v", got)
		}
		if _, _, err := s.RegenerateAccountKey(ctx, "keys", "tertiary"); err == nil {
			t.Fatal("tertiary accepted")
		}
		if _, _, err := s.RegenerateAccountKey(ctx, "nobody", "primary"); err == nil {
			t.Fatal("unknown account accepted")
		}
		s.Close()
	}
}
