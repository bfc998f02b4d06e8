package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"time"
)

// CheckpointIntervalDefault is how often the checkpointer copies the WAL
// into the database file.
const CheckpointIntervalDefault = 500 * time.Millisecond

// checkpointer copies the write-ahead log into the database file from its
// own connection, off the write path. With SQLite's automatic checkpoints a
// commit now and then runs the checkpoint itself, fsyncs included, while
// holding the write lock; a PASSIVE checkpoint on another connection runs
// alongside readers and writers and never blocks them.
type checkpointer struct {
	db   *sql.DB
	stop chan struct{}
	wg   sync.WaitGroup
}

func (s *Store) startCheckpointer(abs string) error {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeoutDefault))
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, stop: make(chan struct{})}
	s.ckpt = c
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(CheckpointIntervalDefault)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				// Errors (SQLITE_BUSY while another checkpoint runs) only
				// postpone the copy to the next tick.
				_, _ = db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	}()
	return nil
}

func (s *Store) stopCheckpointer() {
	if s.ckpt == nil {
		return
	}
	close(s.ckpt.stop)
	s.ckpt.wg.Wait()
	s.ckpt.db.Close()
	s.ckpt = nil
}
