package sqlite

import (
	"context"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

// AccountStatsList returns every account's lifetime statistics records,
// ordered by account and kind.
func (s *Store) AccountStatsList(ctx context.Context) ([]store.AccountStats, error) {
	rows, err := s.rs.statsList.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: account stats list: %w", err)
	}
	return collect(rows, scanAccountStats)
}

func scanAccountStats(r scanner) (store.AccountStats, error) {
	var a store.AccountStats
	err := r.Scan(&a.Account, &a.Kind, &a.Doc)
	return a, err
}
