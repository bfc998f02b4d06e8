package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kilnbatch/kiln/internal/testutil/postgres"
)

func TestStart(t *testing.T) {
	dsn := postgres.Start(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT 1 + 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("1 + 1 = %d", n)
	}
}
