package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/postgres"
	pgtest "github.com/kilnbatch/kiln/internal/testutil/postgres"
)

// TestLeaderLease: of two stores on one database one leads; when the
// leader's lock connection is killed, it learns it lost the lease, the
// other takes it over with the next epoch, and the deposed leader, still
// alive, can no longer write.
func TestLeaderLease(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Start(t)
	ctx := t.Context()
	open := func() *postgres.Store {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()

	if _, ok, err := a.CurrentLeader(ctx); err != nil || ok {
		t.Fatalf("CurrentLeader before any leader = %v, %v; want none", ok, err)
	}
	la, err := a.TryLead(ctx, store.Leader{Holder: "a", URL: "http://a", Fingerprint: "SHA256:aa"})
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v; want the lease", la, err)
	}
	if la.Epoch() != 1 {
		t.Errorf("first epoch = %d, want 1", la.Epoch())
	}
	lb, err := b.TryLead(ctx, store.Leader{Holder: "b", URL: "http://b"})
	if err != nil || lb != nil {
		t.Fatalf("b.TryLead while a leads = %v, %v; want nil, nil", lb, err)
	}
	cur, ok, err := b.CurrentLeader(ctx)
	if err != nil || !ok || cur.Holder != "a" || cur.URL != "http://a" || cur.Fingerprint != "SHA256:aa" || cur.Epoch != 1 {
		t.Fatalf("CurrentLeader = %+v, %v, %v; want a at epoch 1", cur, ok, err)
	}
	// The leader writes.
	if err := a.PoolInsert(ctx, store.Pool{Account: "acct", ID: "p1", Doc: []byte(`{}`)}); err != nil {
		t.Fatalf("leader PoolInsert: %v", err)
	}

	// Kill the leader's lock connection, as PostgreSQL does when its
	// process dies.
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = $1`, postgres.LeaderLockKey).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d lock holders, want 1", killed)
	}
	select {
	case <-la.Lost():
	case <-time.After(30 * time.Second):
		t.Fatal("the leader did not notice it lost its lock connection")
	}
	deadline := time.Now().Add(30 * time.Second)
	for lb == nil {
		if time.Now().After(deadline) {
			t.Fatal("b did not take the lease over")
		}
		time.Sleep(100 * time.Millisecond)
		if lb, err = b.TryLead(ctx, store.Leader{Holder: "b", URL: "http://b"}); err != nil {
			t.Fatal(err)
		}
	}
	defer lb.Release()
	if lb.Epoch() != 2 {
		t.Errorf("second epoch = %d, want 2", lb.Epoch())
	}
	if cur, _, _ := a.CurrentLeader(ctx); cur.Holder != "b" || cur.Epoch != 2 {
		t.Errorf("CurrentLeader after takeover = %+v, want b at epoch 2", cur)
	}

	// The deposed leader cannot write, by any path; the new one can.
	w := &store.Writes{Pools: []store.Pool{{Account: "acct", ID: "p2", Doc: []byte(`{}`)}}}
	if err := a.Apply(ctx, w); !errors.Is(err, store.ErrFenced) {
		t.Errorf("deposed Apply = %v, want ErrFenced", err)
	}
	if err := a.PoolInsert(ctx, store.Pool{Account: "acct", ID: "p3", Doc: []byte(`{}`)}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("deposed PoolInsert = %v, want ErrFenced", err)
	}
	if _, err := a.TaskInsert(ctx, []store.Task{{Account: "acct", JobID: "j", ID: "t", State: "active", Doc: []byte(`{}`)}}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("deposed TaskInsert = %v, want ErrFenced", err)
	}
	if err := b.Apply(ctx, w); err != nil {
		t.Errorf("new leader Apply: %v", err)
	}
	if _, err := b.PoolGet(ctx, "acct", "p3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the deposed leader's pool p3 exists (err %v)", err)
	}
}

// TestLeaderLeaseRelease: a released lease is taken at once by the next
// server, and the releasing store's writes are fenced from then on.
func TestLeaderLeaseRelease(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Start(t)
	ctx := t.Context()
	a, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	la, err := a.TryLead(ctx, store.Leader{Holder: "a", URL: "http://a"})
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	if err := la.Release(); err != nil {
		t.Fatal(err)
	}
	lb, err := b.TryLead(ctx, store.Leader{Holder: "b", URL: "http://b"})
	if err != nil || lb == nil {
		t.Fatalf("b.TryLead after a released = %v, %v; want the lease at once", lb, err)
	}
	defer lb.Release()
	if err := a.Apply(ctx, &store.Writes{Pools: []store.Pool{{Account: "x", ID: "p", Doc: []byte(`{}`)}}}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("Apply after release and takeover = %v, want ErrFenced", err)
	}
	// A store that never led writes unfenced.
	c, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.PoolInsert(ctx, store.Pool{Account: "x", ID: "q", Doc: []byte(`{}`)}); err != nil {
		t.Errorf("unfenced PoolInsert: %v", err)
	}
}

// TestLeaderLeaseIdle: a leader that stops checking its lease (a frozen
// host) loses it after LeaseIdleTimeout: PostgreSQL ends the idle lock
// connection and another server takes over.
func TestLeaderLeaseIdle(t *testing.T) {
	// Not parallel: it changes package settings, before the parallel tests
	// run.
	defer func(every, idle time.Duration) {
		postgres.LeaseCheckInterval, postgres.LeaseIdleTimeout = every, idle
	}(postgres.LeaseCheckInterval, postgres.LeaseIdleTimeout)
	postgres.LeaseCheckInterval, postgres.LeaseIdleTimeout = time.Hour, 500*time.Millisecond

	dsn := pgtest.Start(t)
	ctx := t.Context()
	a, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	la, err := a.TryLead(ctx, store.Leader{Holder: "a", URL: "http://a"})
	if err != nil || la == nil {
		t.Fatalf("a.TryLead = %v, %v", la, err)
	}
	defer la.Release()
	postgres.LeaseCheckInterval = time.Second // b's lease checks as usual
	deadline := time.Now().Add(30 * time.Second)
	for {
		lb, err := b.TryLead(ctx, store.Leader{Holder: "b", URL: "http://b"})
		if err != nil {
			t.Fatal(err)
		}
		if lb != nil {
			defer lb.Release()
			if lb.Epoch() != 2 {
				t.Errorf("epoch after the idle leader = %d, want 2", lb.Epoch())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease of a leader that stopped checking was never freed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := a.Apply(ctx, &store.Writes{Pools: []store.Pool{{Account: "x", ID: "p", Doc: []byte(`{}`)}}}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("Apply of the idle leader after takeover = %v, want ErrFenced", err)
	}
}
