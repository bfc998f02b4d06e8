package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

// PoolInsert inserts p; store.ErrExists when its id is taken in the account.
func (s *Store) PoolInsert(ctx context.Context, p store.Pool) error {
	res, err := s.ws.poolInsert.ExecContext(ctx, p.Account, p.ID, p.Doc)
	if err != nil {
		return fmt.Errorf("sqlite: pool insert: %w", err)
	}
	return insertResult(res, "pool", p.Account, p.ID)
}

// PoolGet returns the pool id of account.
func (s *Store) PoolGet(ctx context.Context, account, id string) (store.Pool, error) {
	p, err := scanPool(s.rs.poolGet.QueryRowContext(ctx, account, id))
	if errors.Is(err, sql.ErrNoRows) {
		return p, notFound("pool", account, id)
	}
	if err != nil {
		return p, fmt.Errorf("sqlite: pool get: %w", err)
	}
	return p, nil
}

// PoolList returns the pools of account, ordered by id.
func (s *Store) PoolList(ctx context.Context, account string) ([]store.Pool, error) {
	rows, err := s.rs.poolList.QueryContext(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pool list: %w", err)
	}
	return collect(rows, scanPool)
}

func scanPool(r scanner) (store.Pool, error) {
	var p store.Pool
	err := r.Scan(&p.Account, &p.ID, &p.Doc)
	return p, err
}
