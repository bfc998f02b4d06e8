package postgres_test

import (
	"testing"

	"github.com/kilnbatch/kiln/internal/store/postgres"
	"github.com/kilnbatch/kiln/internal/store/storetest"
	pgtest "github.com/kilnbatch/kiln/internal/testutil/postgres"
)

func TestAccountDelete(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t)
	s, err := postgres.Open(t.Context(), srv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	storetest.ExerciseAccountDelete(t, s)
}
