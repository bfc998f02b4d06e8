package postgres

import (
	"context"
	"fmt"
)

// AccountDelete removes the account called name with its lifetime
// statistics and certificate records; store.ErrNotFound when there is no
// such account. The caller (service.DeleteAccount) refuses accounts that
// still have pools, jobs or job schedules.
func (s *Store) AccountDelete(ctx context.Context, name string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: account delete: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, q := range []string{`DELETE FROM account_stats WHERE account_key = $1`, `DELETE FROM certificates WHERE account_key = $1`} {
		if _, err := tx.Exec(ctx, q, fold(name)); err != nil {
			return fmt.Errorf("postgres: account delete: %w", err)
		}
	}
	tag, err := tx.Exec(ctx, `DELETE FROM accounts WHERE name_key = $1`, fold(name))
	if err != nil {
		return fmt.Errorf("postgres: account delete: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("account", name)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: account delete: %w", err)
	}
	return nil
}
