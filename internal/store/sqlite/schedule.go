package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

// JobScheduleInsert inserts js; store.ErrExists when its id is taken in the
// account.
func (s *Store) JobScheduleInsert(ctx context.Context, js store.JobSchedule) error {
	res, err := s.ws.scheduleInsert.ExecContext(ctx, js.Account, js.ID, js.State, js.Doc)
	if err != nil {
		return fmt.Errorf("sqlite: job schedule insert: %w", err)
	}
	return insertResult(res, "job schedule", js.Account, js.ID)
}

// JobScheduleGet returns the job schedule id of account.
func (s *Store) JobScheduleGet(ctx context.Context, account, id string) (store.JobSchedule, error) {
	js, err := scanJobSchedule(s.rs.scheduleGet.QueryRowContext(ctx, account, id))
	if errors.Is(err, sql.ErrNoRows) {
		return js, notFound("job schedule", account, id)
	}
	if err != nil {
		return js, fmt.Errorf("sqlite: job schedule get: %w", err)
	}
	return js, nil
}

// JobScheduleList returns the job schedules of account, ordered by id.
func (s *Store) JobScheduleList(ctx context.Context, account string) ([]store.JobSchedule, error) {
	rows, err := s.rs.scheduleList.QueryContext(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("sqlite: job schedule list: %w", err)
	}
	return collect(rows, scanJobSchedule)
}

func scanJobSchedule(r scanner) (store.JobSchedule, error) {
	var js store.JobSchedule
	err := r.Scan(&js.Account, &js.ID, &js.State, &js.Doc)
	return js, err
}
