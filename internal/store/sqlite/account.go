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

// AccountUpdate replaces the keys of the account a names.
func (s *Store) AccountUpdate(ctx context.Context, a store.Account) error {
	res, err := s.w.ExecContext(ctx, `UPDATE accounts SET primary_key = ?, secondary_key = ? WHERE name = ?`,
		a.PrimaryKey, a.SecondaryKey, a.Name)
	if err != nil {
		return fmt.Errorf("sqlite: account update: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return notFound("account", a.Name)
	}
	return nil
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
