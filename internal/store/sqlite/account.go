package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kilnbatch/kiln/internal/store"
)

// AccountInsert inserts a; store.ErrExists when its name is taken.
func (s *Store) AccountInsert(ctx context.Context, a store.Account) error {
	var ct sql.NullInt64
	if !a.CreationTime.IsZero() {
		ct = sql.NullInt64{Int64: a.CreationTime.UnixNano(), Valid: true}
	}
	res, err := s.ws.accountInsert.ExecContext(ctx, a.Name, a.PrimaryKey, a.SecondaryKey, ct)
	if err != nil {
		return fmt.Errorf("sqlite: account insert: %w", err)
	}
	return insertResult(res, "account", a.Name)
}

// AccountGet returns the account called name.
func (s *Store) AccountGet(ctx context.Context, name string) (store.Account, error) {
	a, err := scanAccount(s.rs.accountGet.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, notFound("account", name)
	}
	if err != nil {
		return a, fmt.Errorf("sqlite: account get: %w", err)
	}
	return a, nil
}

// AccountList returns every account, ordered by name.
func (s *Store) AccountList(ctx context.Context) ([]store.Account, error) {
	rows, err := s.rs.accountList.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: account list: %w", err)
	}
	return collect(rows, scanAccount)
}

func scanAccount(r scanner) (store.Account, error) {
	var a store.Account
	var ct sql.NullInt64
	err := r.Scan(&a.Name, &a.PrimaryKey, &a.SecondaryKey, &ct)
	if ct.Valid {
		a.CreationTime = time.Unix(0, ct.Int64).UTC()
	}
	return a, err
}
