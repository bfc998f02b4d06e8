package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kilnbatch/kiln/internal/store"
)

const taskCols = `account, job_id, id, seq, state, node_id, attempt_id, slots, result, doc`

const (
	// seq is left out: the identity column assigns it on insert.
	qTaskInsert = `INSERT INTO tasks (account, job_id, id, state, node_id, attempt_id, slots, result, doc)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING RETURNING seq`
	qTaskGet = `SELECT ` + taskCols + ` FROM tasks WHERE account_key = $1 AND job_key = $2 AND id_key = $3`
	// $4 NULL: no limit.
	qTaskList = `SELECT ` + taskCols + ` FROM tasks
		WHERE account_key = $1 AND job_key = $2 AND seq > $3 ORDER BY seq LIMIT $4`
	qTaskListStates = `SELECT ` + taskCols + ` FROM tasks
		WHERE account_key = $1 AND job_key = $2 AND seq > $3 AND state = ANY($5) ORDER BY seq LIMIT $4`
	// The result <> '' term is tasks_result's, for the planner to use it.
	qTaskListResult = `SELECT ` + taskCols + ` FROM tasks
		WHERE account_key = $1 AND job_key = $2 AND seq > $3 AND result = $5 AND result <> ''
		ORDER BY seq LIMIT $4`
	qTaskListResultStates = `SELECT ` + taskCols + ` FROM tasks
		WHERE account_key = $1 AND job_key = $2 AND seq > $3 AND result = $5 AND result <> ''
			AND state = ANY($6)
		ORDER BY seq LIMIT $4`
	// The WHERE terms repeat the partial indexes' for the planner to use them.
	qTaskListUnfinished = `SELECT ` + taskCols + ` FROM tasks
		WHERE state <> 'completed' ORDER BY account_key, job_key, seq`
	qTaskListUnfinishedPage = `SELECT ` + taskCols + ` FROM tasks
		WHERE state <> 'completed' AND seq > $1 ORDER BY seq LIMIT $2`
	qTaskCounts = `SELECT state, count, slots FROM task_counts
		WHERE account_key = $1 AND job_key = $2 AND count > 0 ORDER BY state`
)

// TaskInsert inserts tasks in one transaction, the statements sent in one
// round trip. It returns, for each task in order, nil or store.ErrExists
// (the id is taken by an existing task or by an earlier task of the same
// batch). Seq is assigned in input order and also written to tasks[i].Seq
// of each task inserted. A non-nil error means nothing was inserted.
func (s *Store) TaskInsert(ctx context.Context, tasks []store.Task) ([]error, error) {
	errs := make([]error, len(tasks))
	if len(tasks) == 0 {
		return errs, nil
	}
	seqs := make([]int64, len(tasks))
	err := s.tx(ctx, func(tx pgx.Tx) error {
		clear(errs)
		clear(seqs)
		jobs := make(jobLocks)
		for _, t := range tasks {
			jobs.add(t.Account, t.JobID)
		}
		if err := jobs.lock(ctx, tx); err != nil {
			return err
		}
		deltas := make(countDeltas)
		b := &pgx.Batch{}
		for i := range tasks {
			t := &tasks[i]
			b.Queue(qTaskInsert, t.Account, t.JobID, t.ID, t.State, t.NodeID, t.AttemptID, t.Slots, t.Result, t.Doc).
				QueryRow(func(r pgx.Row) error {
					err := r.Scan(&seqs[i])
					if errors.Is(err, pgx.ErrNoRows) {
						errs[i] = exists("task", t.Account, t.JobID, t.ID)
						return nil
					}
					if err != nil {
						return fmt.Errorf("postgres: task insert: %w", err)
					}
					deltas.add(t.Account, t.JobID, t.State, 1, int64(t.Slots))
					return nil
				})
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("postgres: task insert: %w", err)
		}
		b = &pgx.Batch{}
		deltas.queue(b)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("postgres: task counts: %w", err)
		}
		return nil
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
	t, err := scanTask(s.pool.QueryRow(ctx, qTaskGet, fold(account), fold(jobID), fold(id)))
	return t, getResult(err, "task", account, jobID, id)
}

// TaskList returns tasks of one job in Seq order.
func (s *Store) TaskList(ctx context.Context, p store.TaskListParams) ([]store.Task, error) {
	var limit *int64
	if p.Limit > 0 {
		l := int64(p.Limit)
		limit = &l
	}
	args := []any{fold(p.Account), fold(p.JobID), p.AfterSeq, limit}
	var q string
	switch {
	case p.Result != "" && len(p.States) > 0:
		q, args = qTaskListResultStates, append(args, p.Result, p.States)
	case p.Result != "":
		q, args = qTaskListResult, append(args, p.Result)
	case len(p.States) > 0:
		q, args = qTaskListStates, append(args, p.States)
	default:
		q = qTaskList
	}
	return list(ctx, s, "task list", scanTask, q, args...)
}

// TaskListUnfinished returns every task not in state completed, ordered by
// account, job and seq.
func (s *Store) TaskListUnfinished(ctx context.Context) ([]store.Task, error) {
	return list(ctx, s, "task list unfinished", scanTask, qTaskListUnfinished)
}

// TaskListUnfinishedPage returns unfinished tasks after afterSeq in seq
// order, at most limit of them (limit <= 0: all).
func (s *Store) TaskListUnfinishedPage(ctx context.Context, afterSeq int64, limit int) ([]store.Task, error) {
	var l *int64
	if limit > 0 {
		n := int64(limit)
		l = &n
	}
	return list(ctx, s, "task list unfinished page", scanTask, qTaskListUnfinishedPage, afterSeq, l)
}

// TaskCounts returns per-state counts and slot sums of one job's tasks,
// ordered by state.
func (s *Store) TaskCounts(ctx context.Context, account, jobID string) ([]store.StateCount, error) {
	return list(ctx, s, "task counts", func(r pgx.Row) (store.StateCount, error) {
		var c store.StateCount
		err := r.Scan(&c.State, &c.Count, &c.Slots)
		return c, err
	}, qTaskCounts, fold(account), fold(jobID))
}

func scanTask(r pgx.Row) (store.Task, error) {
	var t store.Task
	err := r.Scan(&t.Account, &t.JobID, &t.ID, &t.Seq, &t.State, &t.NodeID, &t.AttemptID, &t.Slots, &t.Result, &t.Doc)
	return t, err
}
