package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
	pgtest "github.com/kilnbatch/kiln/internal/testutil/postgres"
)

// TestLeaderFollower runs two servers in this process on one PostgreSQL
// database: the first leads, the second follows and forwards requests; when
// the leader shuts down, the follower takes over and serves what the first
// one stored.
func TestLeaderFollower(t *testing.T) {
	// The helper gives a key=value DSN; --store takes the URL form.
	kv := map[string]string{}
	for _, f := range strings.Fields(pgtest.Start(t)) {
		k, v, _ := strings.Cut(f, "=")
		kv[k] = v
	}
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%s/%s?sslmode=disable", kv["user"], kv["port"], kv["dbname"])
	ctx := t.Context()
	key := base64.StdEncoding.EncodeToString([]byte("kiln-leader-follower-test-key-0123456789"))
	storage := "file://" + t.TempDir()
	start := func() *Server {
		s, err := Start(ctx, Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), AccountName: "acct", AccountKey: key,
			Store: dsn, Storage: storage, Provider: "sim", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := start()
	aDone := false
	defer func() {
		if !aDone {
			a.Shutdown(context.Background())
		}
	}()
	b := start()
	defer b.Shutdown(context.Background())
	if a.Role() != RoleLeader || b.Role() != RoleFollower {
		t.Fatalf("roles %s, %s; want leader, follower", a.Role(), b.Role())
	}
	if b.Creds.AccountName != "acct" || b.Creds.AccountKey != key || b.URL() == a.URL() {
		t.Fatalf("follower credentials %+v", b.Creds)
	}
	info := func(s *Server) LeaderInfo {
		var li LeaderInfo
		resp, err := http.Get(s.URL() + "/healthz/leader")
		if err != nil {
			return li
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(&li)
		return li
	}
	if li := info(b); li.Role != RoleFollower || li.Leader != a.URL() || li.Epoch != 1 {
		t.Fatalf("follower /healthz/leader = %+v", li)
	}
	resp, err := http.Get(b.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Kiln-Role") != RoleFollower {
		t.Fatalf("follower /healthz: %d, role %q", resp.StatusCode, resp.Header.Get("X-Kiln-Role"))
	}

	// A request another server forwarded is not forwarded again (no loops).
	req, _ := http.NewRequest(http.MethodGet, b.URL()+"/jobs?api-version=2024-07-01.20.0", nil)
	req.Header.Set(forwardedHeader, "elsewhere")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("forwarded request to the follower: %v, %v; want 503", resp, err)
	} else {
		resp.Body.Close()
	}

	// A write through the follower lands on the leader.
	cb, err := batchclient.New(b.URL(), "acct", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.CreateJob(ctx, azbatch.CreateJobContent{ID: ptr("viafollower"), PoolInfo: &azbatch.PoolInfo{PoolID: ptr("nopool")}}, nil); err != nil {
		t.Fatalf("CreateJob through the follower: %v", err)
	}
	ca, err := batchclient.New(a.URL(), "acct", key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.GetJob(ctx, "viafollower", nil); err != nil {
		t.Fatalf("the job created through the follower is not on the leader: %v", err)
	}

	// The leader shuts down: it releases the lease, the follower leads.
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	aDone = true
	deadline := time.Now().Add(30 * time.Second)
	for b.Role() != RoleLeader {
		if time.Now().After(deadline) {
			t.Fatal("the follower did not take over")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if li := info(b); li.Role != RoleLeader || li.Leader != b.URL() || li.Epoch != 2 {
		t.Fatalf("new leader /healthz/leader = %+v", li)
	}
	if _, err := cb.GetJob(ctx, "viafollower", nil); err != nil {
		t.Fatalf("GetJob on the new leader: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
