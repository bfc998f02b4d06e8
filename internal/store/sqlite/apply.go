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

		// Deletes.
		for _, p := range w.DeletePools {
			ex.exec(s.ws.poolDelete, "pool delete", p.Account, p.ID)
		}
		for _, n := range w.DeleteNodes {
			ex.exec(s.ws.nodeDelete, "node delete", n.Account, n.ID)
		}
		for _, j := range w.DeleteJobs {
			ex.exec(s.ws.jobDeleteTasks, "job delete tasks", j.Account, j.ID)
			ex.exec(s.ws.jobDelete, "job delete", j.Account, j.ID)
		}
		for _, k := range w.DeleteTasks {
			ex.exec(s.ws.taskDelete, "task delete", k.Account, k.JobID, k.ID)
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
		for _, t := range w.Tasks {
			ex.exec(s.ws.taskUpsert, "task upsert", t.Account, t.JobID, t.ID, t.State, t.NodeID, t.AttemptID, t.Slots, t.Doc)
		}
		return ex.err
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

func (e *execer) exec(st *sql.Stmt, what string, args ...any) {
	if e.err != nil {
		return
	}
	txst, ok := e.bound[st]
	if !ok {
		if e.bound == nil {
			e.bound = make(map[*sql.Stmt]*sql.Stmt)
		}
		txst = e.tx.StmtContext(e.ctx, st)
		e.bound[st] = txst
	}
	if _, err := txst.ExecContext(e.ctx, args...); err != nil {
		e.err = fmt.Errorf("sqlite: %s: %w", what, err)
	}
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
