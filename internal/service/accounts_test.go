package service

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// TestAccountsCreateDelete: names follow Azure's rule, a taken name is a
// conflict, a job keeps its account from being deleted, and a deleted
// account is gone from memory and from the store (a restarted service does
// not know it).
func TestAccountsCreateDelete(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kiln.db")
	open := func() *Service {
		sq, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sq.Close() })
		s, err := New(ctx, Config{Store: sq, Provider: idleProvider{}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	code := func(err error) string {
		var be *batch.Error
		if errors.As(err, &be) {
			return be.Code
		}
		return ""
	}
	for _, bad := range []string{"", "ab", "Team1", "team-1", "team_1", "abcdefghijklmnopqrstuvwxy"} {
		if _, err := s.CreateAccount(ctx, bad, ""); code(err) != "InvalidPropertyValue" {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if _, err := s.CreateAccount(ctx, "team1", "not base64!"); code(err) != "InvalidPropertyValue" {
		t.Errorf("bad key: %v", err)
	}
	a, err := s.CreateAccount(ctx, "team1", "a2V5")
	if err != nil || a.PrimaryKey != "a2V5" || a.SecondaryKey == "" {
		t.Fatalf("create: %+v %v", a, err)
	}
	if _, err := s.CreateAccount(ctx, "team1", ""); code(err) != "AccountAlreadyExists" {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := s.JobAdd(ctx, "team1", &azbatch.CreateJobContent{ID: ptr("j"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("p")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "team1"); code(err) != "AccountNotEmpty" {
		t.Fatalf("delete with a job: %v", err)
	}
	if err := s.JobDelete(ctx, "team1", "j", Conditions{}); err != nil {
		t.Fatal(err)
	}
	// A job without tasks goes at once or by the background loop.
	s.Start()
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.DeleteAccount(ctx, "TEAM1")
		if err == nil {
			break
		}
		if code(err) != "AccountNotEmpty" || time.Now().After(deadline) {
			t.Fatalf("delete after the job: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := s.AccountKeys("team1"); ok {
		t.Fatal("a deleted account's keys still verify")
	}
	if err := s.DeleteAccount(ctx, "nosuch"); code(err) != "AccountNotFound" {
		t.Errorf("delete a missing account: %v", err)
	}
	s.Close()
	for _, a := range open().Accounts() {
		if a.Name == "team1" {
			t.Fatal("a restarted service still has the deleted account")
		}
	}
}
