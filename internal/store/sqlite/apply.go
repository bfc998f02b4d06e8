package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

// Apply commits w in one transaction: deletes first, then upserts. An
// upsert replaces every column of an existing record but its key (an id's
// case follows the upsert) and, for a task, its Seq; an upsert of a missing
// task inserts it with a new Seq.
func (s *Store) Apply(ctx context.Context, w *store.Writes) error {
	if w == nil || w.Empty() {
		return nil
	}
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		ex := execer{ctx: ctx, tx: tx}
		deltas := make(countDeltas)

		// Deletes.
		for _, p := range w.DeletePools {
			ex.exec(s.ws.poolDelete, "pool delete", p.Account, p.ID)
		}
		for _, n := range w.DeleteNodes {
			ex.exec(s.ws.nodeDelete, "node delete", n.Account, n.ID)
		}
		for _, j := range w.DeleteJobs {
			ex.exec(s.ws.jobDeleteTasks, "job delete tasks", j.Account, j.ID)
			ex.exec(s.ws.countDeleteJob, "job delete task counts", j.Account, j.ID)
			ex.exec(s.ws.jobDelete, "job delete", j.Account, j.ID)
		}
		for _, js := range w.DeleteJobSchedules {
			ex.exec(s.ws.scheduleDelete, "job schedule delete", js.Account, js.ID)
		}
		if ex.err != nil {
			return ex.err
		}

		// The states tasks have now, after the job deletes, to keep
		// task_counts as tasks are deleted, inserted or change state.
		cur, err := s.taskStates(ctx, ex.bind(s.ws.taskStates), w.DeleteTasks, w.Tasks)
		if err != nil {
			return err
		}
		for _, k := range w.DeleteTasks {
			fk := foldTaskKey(k.Account, k.JobID, k.ID)
			if c, ok := cur[fk]; ok {
				ex.exec(s.ws.taskDeleteSeq, "task delete", c.seq)
				deltas.add(fk.account, fk.jobID, c.state, -1, -c.slots)
				delete(cur, fk)
			}
		}

		// Upserts.
		for _, p := range w.Pools {
			ex.exec(s.ws.poolUpsert, "pool upsert", p.Account, p.ID, p.Doc)
		}
		for _, n := range w.Nodes {
			ex.exec(s.ws.nodeUpsert, "node upsert", n.Account, n.ID, n.PoolID, n.State, n.Doc)
		}
		for _, j := range w.Jobs {
			ex.exec(s.ws.jobUpsert, "job upsert", j.Account, j.ID, j.PoolID, j.State, j.Priority, j.Doc)
		}
		for _, js := range w.JobSchedules {
			ex.exec(s.ws.scheduleUpsert, "job schedule upsert", js.Account, js.ID, js.State, js.Doc)
		}
		for _, a := range w.AccountStats {
			ex.exec(s.ws.statsUpsert, "account stats upsert", a.Account, a.Kind, a.Doc)
		}
		applyCertificates(&ex, w) // certificate.go
		for _, t := range w.Tasks {
			fk := foldTaskKey(t.Account, t.JobID, t.ID)
			next := taskState{state: t.State, slots: int64(t.Slots)}
			c, ok := cur[fk]
			if ok {
				// Update in place, keeping seq.
				ex.exec(s.ws.taskUpdateSeq, "task update", t.ID, t.State, t.NodeID, t.AttemptID, t.Slots, t.Result, t.Doc, c.seq)
				next.seq = c.seq
				if c.state != next.state || c.slots != next.slots {
					deltas.add(fk.account, fk.jobID, c.state, -1, -c.slots)
					deltas.add(fk.account, fk.jobID, next.state, 1, next.slots)
				}
			} else {
				// Insert with a new seq.
				res := ex.exec(s.ws.taskInsert, "task insert", t.Account, t.JobID, t.ID, t.State, t.NodeID, t.AttemptID, t.Slots, t.Result, t.Doc)
				if res == nil {
					break
				}
				n, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("sqlite: task upsert: %w", err)
				}
				if n != 1 { // the lookup missed it: cannot happen
					return fmt.Errorf("sqlite: task upsert %q: not found, yet exists", t.ID)
				}
				if next.seq, err = res.LastInsertId(); err != nil {
					return fmt.Errorf("sqlite: task upsert: %w", err)
				}
				deltas.add(fk.account, fk.jobID, next.state, 1, next.slots)
			}
			cur[fk] = next
		}
		if ex.err != nil {
			return ex.err
		}
		return deltas.flush(ctx, ex.bind(s.ws.countAdd))
	})
}

// execer runs statements in a transaction until the first error, binding
// each prepared statement to the transaction once.
type execer struct {
	ctx   context.Context
	tx    *sql.Tx
	bound map[*sql.Stmt]*sql.Stmt
	err   error
}

// bind returns st bound to the transaction.
func (e *execer) bind(st *sql.Stmt) *sql.Stmt {
	txst, ok := e.bound[st]
	if !ok {
		if e.bound == nil {
			e.bound = make(map[*sql.Stmt]*sql.Stmt)
		}
		txst = e.tx.StmtContext(e.ctx, st)
		e.bound[st] = txst
	}
	return txst
}

// exec runs st in the transaction and returns its result, or nil after an
// error, kept in e.err.
func (e *execer) exec(st *sql.Stmt, what string, args ...any) sql.Result {
	if e.err != nil {
		return nil
	}
	res, err := e.bind(st).ExecContext(e.ctx, args...)
	if err != nil {
		e.err = fmt.Errorf("sqlite: %s: %w", what, err)
		return nil
	}
	return res
}

// writeTx runs fn in a transaction on the writer connection, committing
// when fn returns nil and rolling back otherwise.
func (s *Store) writeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}
