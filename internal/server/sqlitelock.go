package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// SQLite has no high availability: one server per database file. A second
// `kiln server` on the same file (say, on the same data directory) fails at
// start, instead of two servers scheduling the same tasks. The lock is an
// flock on <database>.lock, held until the process exits; a server
// restarted in the same process takes it over.

var sqliteLocks = struct {
	sync.Mutex
	held map[string]*os.File
}{held: map[string]*os.File{}}

// lockSQLite takes the lock of the SQLite database at path.
func lockSQLite(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	sqliteLocks.Lock()
	defer sqliteLocks.Unlock()
	if _, ok := sqliteLocks.held[abs]; ok {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(abs+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", abs, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("another kiln server uses the SQLite database %s (one server per SQLite database; "+
				"for several servers, use a PostgreSQL --store: docs/high-availability.md)", abs)
		}
		return fmt.Errorf("lock %s: %w", abs, err)
	}
	sqliteLocks.held[abs] = f
	return nil
}
