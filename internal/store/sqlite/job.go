package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

// JobInsert inserts j; store.ErrExists when its id is taken in the account.
func (s *Store) JobInsert(ctx context.Context, j store.Job) error {
	res, err := s.ws.jobInsert.ExecContext(ctx, j.Account, j.ID, j.PoolID, j.State, j.Priority, j.Doc)
	if err != nil {
		return fmt.Errorf("sqlite: job insert: %w", err)
	}
	return insertResult(res, "job", j.Account, j.ID)
}

// JobGet returns the job id of account.
func (s *Store) JobGet(ctx context.Context, account, id string) (store.Job, error) {
	j, err := scanJob(s.rs.jobGet.QueryRowContext(ctx, account, id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, notFound("job", account, id)
	}
	if err != nil {
		return j, fmt.Errorf("sqlite: job get: %w", err)
	}
	return j, nil
}

// JobList returns the jobs of account, ordered by id.
func (s *Store) JobList(ctx context.Context, account string) ([]store.Job, error) {
	rows, err := s.rs.jobList.QueryContext(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("sqlite: job list: %w", err)
	}
	return collect(rows, scanJob)
}

func scanJob(r scanner) (store.Job, error) {
	var j store.Job
	err := r.Scan(&j.Account, &j.ID, &j.PoolID, &j.State, &j.Priority, &j.Doc)
	return j, err
}
