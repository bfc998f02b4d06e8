package server

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/postgres"
	"github.com/kilnbatch/kiln/internal/store/sqlite"
)

// openStore opens the record cfg.Store names: PostgreSQL for a postgres://
// or postgresql:// DSN, otherwise SQLite (cfg.Store as the database path, or
// DataDir/kiln.db by default).
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if strings.HasPrefix(cfg.Store, "postgres://") || strings.HasPrefix(cfg.Store, "postgresql://") {
		return postgres.Open(ctx, cfg.Store)
	}
	path := cfg.Store
	if path == "" {
		path = filepath.Join(cfg.DataDir, "kiln.db")
	}
	if err := lockSQLite(path); err != nil { // one server per SQLite file (sqlitelock.go)
		return nil, err
	}
	return sqlite.Open(ctx, path)
}
