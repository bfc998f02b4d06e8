// Package postgres implements store.Store on PostgreSQL, with the pgx v5
// driver and its connection pool.
//
// The schema is the SQLite store's (see migration/), with one difference:
// case-insensitive ids have generated *_key twins (lower(id COLLATE "C"),
// which folds ASCII letters only, as SQLite's NOCASE does) that carry the
// keys and the ordering.
//
// Unlike SQLite, PostgreSQL runs writers concurrently. Every transaction
// that writes tasks first takes a transaction-scoped advisory lock on each
// job whose tasks it writes, in one fixed order: a job's task_counts then
// follow its tasks exactly, and a job's task seqs grow in commit order, so
// that paging by seq misses no task. A transaction that loses a deadlock or
// a serialization conflict anyway is run again.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/kilnbatch/kiln/internal/store"
)

//go:embed migration/*.sql
var migrationFS embed.FS

// TxAttemptsDefault is how many times a transaction that fails with a
// deadlock or a serialization failure is tried before its error is
// returned.
const TxAttemptsDefault = 5

// Store is a store.Store backed by a PostgreSQL database.
type Store struct {
	pool       *pgxpool.Pool
	db         *sql.DB // the pool seen through database/sql, for goose
	migrations *goose.Provider
	// fence is the epoch of the leader lease this store writes under (0:
	// none, writes are not fenced; see lease.go).
	fence atomic.Int64
}

var _ store.Store = (*Store)(nil)

// Open connects to the PostgreSQL database named by dsn (a URL or
// key=value string, as pgx takes), runs migrations up, and returns the
// store. Several processes may Open one database at once: migrations run
// under a session-level advisory lock.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s.db = stdlib.OpenDBFromPool(pool)
	sub, err := fs.Sub(migrationFS, "migration")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	s.migrations, err = goose.NewProvider(goose.DialectPostgres, s.db, sub,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// MigrateUp applies every pending migration.
func (s *Store) MigrateUp(ctx context.Context) error {
	if _, err := s.migrations.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate up: %w", err)
	}
	return nil
}

// MigrateDown rolls back every migration, dropping all of Kiln's tables and
// their rows. The store is unusable until MigrateUp.
func (s *Store) MigrateDown(ctx context.Context) error {
	if _, err := s.migrations.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("postgres: migrate down: %w", err)
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
	}
	s.pool.Close()
	return err
}

// tx runs fn in a transaction, committing when fn returns nil and rolling
// back otherwise. A deadlock or serialization failure runs fn again, up to
// TxAttemptsDefault times in all, so fn must start afresh on each call.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			if err := s.checkFence(ctx, tx); err != nil {
				return err
			}
			return fn(tx)
		})
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if attempt < TxAttemptsDefault && ctx.Err() == nil && errors.As(err, &pgErr) &&
			(pgErr.Code == "40P01" || pgErr.Code == "40001") {
			continue
		}
		return err
	}
}

// fold folds s as the *_key columns do (lower(s COLLATE "C")) and SQLite's
// NOCASE does: ASCII letters only.
func fold(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// insertResult turns the command tag of an INSERT ... ON CONFLICT DO
// NOTHING into store.ErrExists when no row was inserted.
func insertResult(ct pgconn.CommandTag, err error, what string, id ...string) error {
	if err != nil {
		return fmt.Errorf("postgres: %s insert: %w", what, err)
	}
	if ct.RowsAffected() == 0 {
		return exists(what, id...)
	}
	return nil
}

// getResult maps pgx.ErrNoRows to store.ErrNotFound.
func getResult(err error, what string, id ...string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound(what, id...)
	}
	if err != nil {
		return fmt.Errorf("postgres: %s get: %w", what, err)
	}
	return nil
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, s *Store, what string, scan func(pgx.Row) (T, error), q string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", what, err)
	}
	return out, nil
}

// notFound wraps store.ErrNotFound with what was looked for.
func notFound(what string, id ...string) error {
	return fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
}

// exists wraps store.ErrExists with what was inserted.
func exists(what string, id ...string) error {
	return fmt.Errorf("%s %q: %w", what, id, store.ErrExists)
}
