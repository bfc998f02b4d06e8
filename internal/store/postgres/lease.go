package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kilnbatch/kiln/internal/store"
)

// LeaderLockKey is the key of the session-level advisory lock that is the
// leader lease. (goose's migration lock uses another key.)
const LeaderLockKey int64 = 0x6b696c6e_6c656164 // "klnlead"

// LeaseCheckInterval is how often a leader checks that its lock connection
// is alive and the lease row still names its epoch.
var LeaseCheckInterval = time.Second

// LeaseIdleTimeout bounds how long the lock survives a leader that stops
// checking (its host froze or lost the network): PostgreSQL ends the lock
// connection once it has been idle that long (idle_session_timeout,
// PostgreSQL 14 and later), and probes it with TCP keepalives, so that a
// follower takes over without waiting for the operating system's TCP
// timeouts (hours).
var LeaseIdleTimeout = 5 * time.Second

var _ store.Elector = (*Store)(nil)

const (
	qLeaseTake = `INSERT INTO leader_lease (id, holder, url, fingerprint, epoch, since) VALUES (1, $1, $2, $3, 1, $4)
		ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, url = excluded.url,
			fingerprint = excluded.fingerprint, epoch = leader_lease.epoch + 1, since = excluded.since
		RETURNING epoch`
	qLeaseGet   = `SELECT holder, url, fingerprint, epoch, since FROM leader_lease WHERE id = 1`
	qLeaseFence = `SELECT epoch FROM leader_lease WHERE id = 1 FOR SHARE`
)

// fenceLost is the fence of a store whose lease was lost: no epoch matches.
const fenceLost = -1

// TryLead takes the leader lease (store.Elector): the advisory lock
// LeaderLockKey on a connection of its own, which PostgreSQL frees the
// moment that connection ends (a killed leader's included), then the lease
// row with the next epoch. From then on every write of s is fenced by that
// epoch.
//
// Taking the row waits for the writes of a deposed leader still in flight
// (they hold it FOR SHARE); any later write of that leader finds the new
// epoch and fails with store.ErrFenced.
func (s *Store) TryLead(ctx context.Context, me store.Leader) (store.Lease, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: lease connection: %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, LeaderLockKey).Scan(&got); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("postgres: leader lock: %w", err)
	}
	if !got {
		conn.Close(ctx)
		return nil, nil
	}
	// Best effort: older servers lack idle_session_timeout, and unix
	// sockets have no keepalives.
	for _, set := range []string{
		fmt.Sprintf("SET idle_session_timeout = %d", LeaseIdleTimeout.Milliseconds()),
		"SET tcp_keepalives_idle = 2", "SET tcp_keepalives_interval = 1", "SET tcp_keepalives_count = 3",
	} {
		_, _ = conn.Exec(ctx, set)
	}
	since := time.Now()
	if me.Since.IsZero() {
		me.Since = since
	}
	var epoch int64
	if err := conn.QueryRow(ctx, qLeaseTake, me.Holder, me.URL, me.Fingerprint, me.Since.UnixNano()).Scan(&epoch); err != nil {
		conn.Close(context.WithoutCancel(ctx)) // frees the lock
		return nil, fmt.Errorf("postgres: take leader lease: %w", err)
	}
	s.fence.Store(epoch)
	l := &lease{s: s, conn: conn, epoch: epoch, every: LeaseCheckInterval,
		lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.watch()
	return l, nil
}

// CurrentLeader returns the lease row (store.Elector).
func (s *Store) CurrentLeader(ctx context.Context) (store.Leader, bool, error) {
	var l store.Leader
	var since int64
	err := s.pool.QueryRow(ctx, qLeaseGet).Scan(&l.Holder, &l.URL, &l.Fingerprint, &l.Epoch, &since)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Leader{}, false, nil
	}
	if err != nil {
		return store.Leader{}, false, fmt.Errorf("postgres: leader lease: %w", err)
	}
	l.Since = time.Unix(0, since).UTC()
	return l, true, nil
}

// lease is a held leader lease: the connection holding the lock.
type lease struct {
	s        *Store
	conn     *pgx.Conn // used by watch only, until done
	epoch    int64
	every    time.Duration // check interval
	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func (l *lease) Epoch() int64          { return l.epoch }
func (l *lease) Lost() <-chan struct{} { return l.lost }

// Release frees the lock and ends the lock connection. The store's writes
// stay fenced by the released epoch: they fail once another server leads.
func (l *lease) Release() error {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	return nil
}

// watch checks the lock connection every LeaseCheckInterval; when it fails,
// or the lease row names another epoch, the lease is lost: the store's
// writes are fenced at once and Lost is closed.
func (l *lease) watch() {
	defer close(l.done)
	defer l.conn.Close(context.Background())
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			// Unlock before closing: the lock is free when Release
			// returns, not when the backend gets round to exiting.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, LeaderLockKey)
			cancel()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var epoch int64
		err := l.conn.QueryRow(ctx, `SELECT epoch FROM leader_lease WHERE id = 1`).Scan(&epoch)
		cancel()
		if err == nil && epoch == l.epoch {
			continue
		}
		l.s.fence.Store(fenceLost)
		l.lostOnce.Do(func() { close(l.lost) })
		return
	}
}

// checkFence fails with store.ErrFenced unless the lease row still has the
// epoch s leads with; it holds the row FOR SHARE until tx ends, so that no
// other server takes the lease before tx commits. A store that never led
// writes unfenced.
func (s *Store) checkFence(ctx context.Context, tx pgx.Tx) error {
	want := s.fence.Load()
	if want == 0 {
		return nil
	}
	var epoch int64
	err := tx.QueryRow(ctx, qLeaseFence).Scan(&epoch)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: check leader lease: %w", err)
	}
	if err != nil || epoch != want {
		return store.ErrFenced
	}
	return nil
}

// exec runs one writing statement, fenced like every transaction.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if s.fence.Load() == 0 {
		return s.pool.Exec(ctx, sql, args...)
	}
	var tag pgconn.CommandTag
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		tag, err = tx.Exec(ctx, sql, args...)
		return err
	})
	return tag, err
}
