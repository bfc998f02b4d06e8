package service

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// TestRegenerateAccountKey: a regenerated key replaces the old one at once
// and is in the store, so a restarted service verifies with it.
func TestRegenerateAccountKey(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kiln.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	cfg := Config{Store: sq, Provider: idleProvider{}, AccountURL: func(string) string { return "http://127.0.0.1:8080" }}
	s, err := New(ctx, cfg)
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
	if !persisted || a.PrimaryKey == before.PrimaryKey || a.SecondaryKey != before.SecondaryKey {
		t.Fatalf("got %+v persisted=%v (before %+v)", a, persisted, before)
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

	// A restarted service loads the new key from the store.
	s2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, _ := s2.Account("keys"); got.PrimaryKey != a.PrimaryKey || got.SecondaryKey != a.SecondaryKey {
		t.Fatalf("after a restart: %+v, want the regenerated keys", got)
	}
}
