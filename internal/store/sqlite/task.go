package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/kilnbatch/kiln/internal/store"
)

// TaskInsert inserts tasks in one transaction with one prepared statement.
// It returns, for each task in order, nil or store.ErrExists (the id is taken
// by an existing task or by an earlier task of the same batch). Seq is
// assigned in input order and also written to tasks[i].Seq of each task
// inserted. A non-nil error means nothing was inserted.
func (s *Store) TaskInsert(ctx context.Context, tasks []store.Task) ([]error, error) {
	errs := make([]error, len(tasks))
	if len(tasks) == 0 {
		return errs, nil
	}
	seqs := make([]int64, len(tasks))
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		deltas := make(countDeltas)
		st := tx.StmtContext(ctx, s.ws.taskInsert)
		for i := range tasks {
			t := &tasks[i]
			res, err := st.ExecContext(ctx, t.Account, t.JobID, t.ID, t.State, t.NodeID, t.AttemptID, t.Slots, t.Result, t.Doc)
			if err != nil {
				return fmt.Errorf("sqlite: task insert: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("sqlite: task insert: %w", err)
			}
			if n == 0 {
				errs[i] = exists("task", t.Account, t.JobID, t.ID)
				continue
			}
			if seqs[i], err = res.LastInsertId(); err != nil {
				return fmt.Errorf("sqlite: task insert: %w", err)
			}
			deltas.add(t.Account, t.JobID, t.State, 1, int64(t.Slots))
		}
		return deltas.flush(ctx, tx.StmtContext(ctx, s.ws.countAdd))
	})
	if err != nil {
		return nil, err
	}
	for i, seq := range seqs {
		if errs[i] == nil {
			tasks[i].Seq = seq
		}
	}
	return errs, nil
}

// TaskGet returns one task.
func (s *Store) TaskGet(ctx context.Context, account, jobID, id string) (store.Task, error) {
	t, err := scanTask(s.rs.taskGet.QueryRowContext(ctx, account, jobID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, notFound("task", account, jobID, id)
	}
	if err != nil {
		return t, fmt.Errorf("sqlite: task get: %w", err)
	}
	return t, nil
}

// TaskList returns tasks of one job in Seq order.
func (s *Store) TaskList(ctx context.Context, p store.TaskListParams) ([]store.Task, error) {
	limit := int64(p.Limit)
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var rows *sql.Rows
	var err error
	switch {
	case p.Result != "":
		q, args := taskListResultQuery(p, limit)
		rows, err = s.r.QueryContext(ctx, q, args...)
	case len(p.States) == 0:
		rows, err = s.rs.taskList.QueryContext(ctx, p.Account, p.JobID, p.AfterSeq, limit)
	default:
		q, args := taskListStatesQuery(p, limit)
		rows, err = s.r.QueryContext(ctx, q, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: task list: %w", err)
	}
	return collect(rows, scanTask)
}

// taskListResultQuery builds TaskList's query for a result filter: a range
// scan of tasks_result, which holds only tasks that have a result.
func taskListResultQuery(p store.TaskListParams, limit int64) (string, []any) {
	q := `SELECT ` + taskCols + ` FROM tasks INDEXED BY tasks_result
		WHERE account = ? AND job_id = ? AND result = ? AND seq > ? AND result <> ''`
	args := []any{p.Account, p.JobID, p.Result, p.AfterSeq}
	if len(p.States) > 0 {
		q += ` AND state IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(p.States)), ", ") + `)`
		for _, st := range p.States {
			args = append(args, st)
		}
	}
	return q + ` ORDER BY seq LIMIT ?`, append(args, limit)
}

// taskListStatesQuery builds TaskList's query for a state filter. With one
// state it is a range scan of tasks_state in seq order; with several SQLite
// walks tasks_state once per state and sorts the matches.
func taskListStatesQuery(p store.TaskListParams, limit int64) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, len(p.States)+4)
	args = append(args, p.Account, p.JobID, p.AfterSeq)
	b.WriteString(`SELECT ` + taskCols + ` FROM tasks
		WHERE account = ? AND job_id = ? AND seq > ? AND state IN (`)
	for i, st := range p.States {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('?')
		args = append(args, st)
	}
	b.WriteString(`) ORDER BY seq LIMIT ?`)
	args = append(args, limit)
	return b.String(), args
}

// TaskListUnfinished returns every task not in state completed, ordered by
// account, job and seq.
func (s *Store) TaskListUnfinished(ctx context.Context) ([]store.Task, error) {
	rows, err := s.rs.taskListUnfinished.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task list unfinished: %w", err)
	}
	return collect(rows, scanTask)
}

// TaskCounts returns per-state counts and slot sums of one job's tasks,
// ordered by state.
func (s *Store) TaskCounts(ctx context.Context, account, jobID string) ([]store.StateCount, error) {
	rows, err := s.rs.taskCounts.QueryContext(ctx, account, jobID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task counts: %w", err)
	}
	return collect(rows, func(r scanner) (store.StateCount, error) {
		var c store.StateCount
		err := r.Scan(&c.State, &c.Count, &c.Slots)
		return c, err
	})
}

func scanTask(r scanner) (store.Task, error) {
	var t store.Task
	err := r.Scan(&t.Account, &t.JobID, &t.ID, &t.Seq, &t.State, &t.NodeID, &t.AttemptID, &t.Slots, &t.Result, &t.Doc)
	return t, err
}

// TaskListUnfinishedPage returns unfinished tasks after afterSeq in seq
// order, at most limit of them (limit <= 0: all).
func (s *Store) TaskListUnfinishedPage(ctx context.Context, afterSeq int64, limit int) ([]store.Task, error) {
	l := int64(limit)
	if l <= 0 {
		l = -1
	}
	rows, err := s.rs.taskListUnfinishedPage.QueryContext(ctx, afterSeq, l)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task list unfinished page: %w", err)
	}
	return collect(rows, scanTask)
}
