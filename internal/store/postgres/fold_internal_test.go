package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"

	pgtest "github.com/kilnbatch/kiln/internal/testutil/postgres"
)

// TestFoldMatchesKeyColumns checks that fold, which the store applies to
// the ids it looks up, folds as the generated *_key columns do: ASCII
// letters only, like SQLite's NOCASE, whatever the database's locale.
func TestFoldMatchesKeyColumns(t *testing.T) {
	t.Parallel()
	conn, err := pgx.Connect(t.Context(), pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for _, s := range []string{"", "abc", "ABC", "Job-1_x:Y", "ÄÖÜ-Straße", "ΣΑΣ", "İstanbul", "mIxEd 123 Ÿ"} {
		var got string
		if err := conn.QueryRow(t.Context(), `SELECT lower($1::text COLLATE "C")`, s).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := fold(s); got != want {
			t.Errorf("lower(%q COLLATE \"C\") = %q, fold = %q", s, got, want)
		}
	}
}
