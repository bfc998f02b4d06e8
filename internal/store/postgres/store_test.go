package postgres_test

import (
	"testing"

	"github.com/kilnbatch/kiln/internal/store"
	"github.com/kilnbatch/kiln/internal/store/postgres"
	"github.com/kilnbatch/kiln/internal/store/storetest"
	pgtest "github.com/kilnbatch/kiln/internal/testutil/postgres"
)

var _ storetest.Migrator = (*postgres.Store)(nil)

// TestStore runs the conformance suite against one PostgreSQL server, each
// subtest with a database of its own.
func TestStore(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t)
	storetest.Exercise(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), srv.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}
