package sqlite

import (
	"context"
	"fmt"
)

// AccountDelete removes the account called name with its lifetime
// statistics and certificate records; store.ErrNotFound when there is no
// such account. The caller (service.DeleteAccount) refuses accounts that
// still have pools, jobs or job schedules.
func (s *Store) AccountDelete(ctx context.Context, name string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: account delete: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM account_stats WHERE account = ?`, `DELETE FROM certificates WHERE account = ?`} {
		if _, err := tx.ExecContext(ctx, q, name); err != nil {
			return fmt.Errorf("sqlite: account delete: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite: account delete: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return notFound("account", name)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: account delete: %w", err)
	}
	return nil
}
