// Package sqlite implements store.Store on SQLite, with the pure Go driver
// modernc.org/sqlite.
//
// The database runs in WAL mode. Every write goes through one connection (a
// *sql.DB limited to one open connection), so writers queue in database/sql
// instead of contending for SQLite's lock, while reads use a separate pool of
// read-only connections and never wait behind a write.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"runtime"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/kilnbatch/kiln/internal/store"
)

//go:embed migration/*.sql
var migrationFS embed.FS

// The read pool has GOMAXPROCS connections, but at least ReadConnsMin, so
// that a long read (a large TaskListUnfinished) does not hold up the others,
// and at most ReadConnsMax.
const (
	ReadConnsMin = 4
	ReadConnsMax = 8
)

// BusyTimeoutDefault is how long, in milliseconds, a connection waits for a
// lock held by another connection (another process, or a checkpoint) before
// failing with SQLITE_BUSY.
const BusyTimeoutDefault = 10000

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	w          *sql.DB // the one writer connection
	r          *sql.DB // read-only pool
	migrations *goose.Provider
	ckpt       *checkpointer
	ws         writeStmts
	rs         readStmts
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path, runs
// migrations up, and returns the store. Path is a file name; ":memory:" is
// not supported since readers and the writer are separate connections.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s := &Store{}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	// The writer goes first: it creates the file and switches it to WAL,
	// which read-only connections cannot do.
	s.w, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.w.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}

	sub, err := fs.Sub(migrationFS, "migration")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.migrations, err = goose.NewProvider(goose.DialectSQLite3, s.w, sub,
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		return nil, err
	}

	n := min(max(runtime.GOMAXPROCS(0), ReadConnsMin), ReadConnsMax)
	s.r, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	s.r.SetConnMaxLifetime(0)
	s.r.SetConnMaxIdleTime(0)
	if err := s.r.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open %s read-only: %w", abs, err)
	}

	if err := s.ws.prepare(ctx, s.w); err != nil {
		return nil, err
	}
	if err := s.rs.prepare(ctx, s.r); err != nil {
		return nil, err
	}
	if err := s.startCheckpointer(abs); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// dsn returns the modernc.org/sqlite data source name for the database file
// at abs. Pragmas are given as _pragma parameters so that every connection
// database/sql opens gets them.
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeoutDefault))
	q.Add("_pragma", "foreign_keys(0)")
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		// mode=ro is SQLite's own URI parameter: the connection is opened
		// read-only. journal_mode is persistent in the file, and was set
		// by the writer.
		q.Set("mode", "ro")
		q.Add("_pragma", "cache_size(-16000)") // KiB
		q.Set("_query_only", "1")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "cache_size(-64000)") // KiB
		// Commits never checkpoint: the checkpointer does it in the
		// background (see checkpoint.go), so no write waits for an fsync.
		q.Add("_pragma", "wal_autocheckpoint(0)")
		// BEGIN IMMEDIATE: a write transaction takes the write lock at
		// once rather than upgrading from a read lock, which could fail.
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// MigrateUp applies every pending migration.
func (s *Store) MigrateUp(ctx context.Context) error {
	if _, err := s.migrations.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate up: %w", err)
	}
	return nil
}

// MigrateDown rolls back every migration, dropping all of Kiln's tables and
// their rows. The store is unusable until MigrateUp.
func (s *Store) MigrateDown(ctx context.Context) error {
	if _, err := s.migrations.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("sqlite: migrate down: %w", err)
	}
	return nil
}

// Close closes the database. Readers close first so that the writer, the
// last connection, checkpoints the WAL into the database file.
func (s *Store) Close() error {
	var errs []error
	s.stopCheckpointer()
	s.rs.close()
	s.ws.close()
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// notFound wraps store.ErrNotFound with what was looked for.
func notFound(what string, id ...string) error {
	return fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
}

// exists wraps store.ErrExists with what was inserted.
func exists(what string, id ...string) error {
	return fmt.Errorf("%s %q: %w", what, id, store.ErrExists)
}
