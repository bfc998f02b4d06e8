package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kilnbatch/kiln/internal/store"
)

const (
	qJobDeleteTasks  = `DELETE FROM tasks WHERE account_key = $1 AND job_key = $2`
	qJobDeleteCounts = `DELETE FROM task_counts WHERE account_key = $1 AND job_key = $2`
	// The state of those of the tasks whose folded keys are given as three
	// arrays that exist: each key is a lookup in tasks_id.
	qTaskStates = `SELECT t.account_key, t.job_key, t.id_key, t.state, t.slots
		FROM unnest($1::text[], $2::text[], $3::text[]) AS k(a, j, i)
		JOIN tasks AS t ON t.account_key = k.a AND t.job_key = k.j AND t.id_key = k.i`
	qTaskUpdate = `UPDATE tasks SET id = $1, state = $2, node_id = $3, attempt_id = $4, slots = $5, result = $6, doc = $7
		WHERE account_key = $8 AND job_key = $9 AND id_key = $10`
	qTaskDelete = `DELETE FROM tasks WHERE account_key = $1 AND job_key = $2 AND id_key = $3`
)

// Apply commits w in one transaction: deletes first, then upserts. An
// upsert replaces every column of an existing record but its key's account
// (an id's case follows the upsert) and, for a task, its Seq; an upsert of
// a missing task inserts it with a new Seq. The statements go in three
// round trips: the deletes with the task state lookup, then every other
// write, then the commit.
func (s *Store) Apply(ctx context.Context, w *store.Writes) error {
	if w == nil || w.Empty() {
		return nil
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		jobs := make(jobLocks)
		for _, j := range w.DeleteJobs {
			jobs.add(j.Account, j.ID)
		}
		for _, k := range w.DeleteTasks {
			jobs.add(k.Account, k.JobID)
		}
		for _, t := range w.Tasks {
			jobs.add(t.Account, t.JobID)
		}
		if err := jobs.lock(ctx, tx); err != nil {
			return err
		}

		// Deletes, then the states tasks have after them, to keep
		// task_counts as tasks are deleted, inserted or change state.
		b := &pgx.Batch{}
		for _, p := range w.DeletePools {
			b.Queue(qPoolDelete, fold(p.Account), fold(p.ID))
		}
		for _, n := range w.DeleteNodes {
			b.Queue(qNodeDelete, fold(n.Account), fold(n.ID))
		}
		for _, j := range w.DeleteJobs {
			a, id := fold(j.Account), fold(j.ID)
			b.Queue(qJobDeleteTasks, a, id)
			b.Queue(qJobDeleteCounts, a, id)
			b.Queue(qJobDelete, a, id)
		}
		for _, js := range w.DeleteJobSchedules {
			b.Queue(qScheduleDelete, fold(js.Account), fold(js.ID))
		}
		for _, c := range w.DeleteCertificates {
			b.Queue(qCertDelete, fold(c.Account), fold(c.ThumbprintAlgorithm), fold(c.Thumbprint))
		}
		cur := make(map[taskKey]taskState, len(w.DeleteTasks)+len(w.Tasks))
		if len(w.DeleteTasks)+len(w.Tasks) > 0 {
			queueTaskStates(b, cur, w.DeleteTasks, w.Tasks)
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("postgres: apply: %w", err)
		}

		deltas := make(countDeltas)
		b = &pgx.Batch{}
		for _, k := range w.DeleteTasks {
			fk := foldTaskKey(k.Account, k.JobID, k.ID)
			if c, ok := cur[fk]; ok {
				b.Queue(qTaskDelete, fk.account, fk.jobID, fk.id)
				deltas.add(fk.account, fk.jobID, c.state, -1, -c.slots)
				delete(cur, fk)
			}
		}
		// Upserts.
		for _, p := range w.Pools {
			b.Queue(qPoolUpsert, p.Account, p.ID, p.Doc)
		}
		for _, n := range w.Nodes {
			b.Queue(qNodeUpsert, n.Account, n.ID, n.PoolID, n.State, n.Doc)
		}
		for _, j := range w.Jobs {
			b.Queue(qJobUpsert, j.Account, j.ID, j.PoolID, j.State, j.Priority, j.Doc)
		}
		for _, js := range w.JobSchedules {
			b.Queue(qScheduleUpsert, js.Account, js.ID, js.State, js.Doc)
		}
		for _, a := range w.AccountStats {
			b.Queue(qStatsUpsert, a.Account, a.Kind, a.Doc)
		}
		for _, c := range w.Certificates {
			b.Queue(qCertUpsert, c.Account, c.ThumbprintAlgorithm, c.Thumbprint, c.Doc)
		}
		for _, t := range w.Tasks {
			fk := foldTaskKey(t.Account, t.JobID, t.ID)
			next := taskState{state: t.State, slots: int64(t.Slots)}
			if c, ok := cur[fk]; ok {
				// Update in place, keeping seq.
				b.Queue(qTaskUpdate, t.ID, t.State, t.NodeID, t.AttemptID, t.Slots, t.Result, t.Doc,
					fk.account, fk.jobID, fk.id).Exec(expectOne("task update", t.ID))
				if c != next {
					deltas.add(fk.account, fk.jobID, c.state, -1, -c.slots)
					deltas.add(fk.account, fk.jobID, next.state, 1, next.slots)
				}
			} else {
				// Insert with a new seq. The job's lock keeps any other
				// transaction from inserting it meanwhile.
				b.Queue(qTaskInsert, t.Account, t.JobID, t.ID, t.State, t.NodeID, t.AttemptID, t.Slots, t.Result, t.Doc).
					Exec(expectOne("task insert", t.ID))
				deltas.add(fk.account, fk.jobID, next.state, 1, next.slots)
			}
			cur[fk] = next
		}
		deltas.queue(b)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("postgres: apply: %w", err)
		}
		return nil
	})
}

// expectOne returns a batch callback that fails unless the statement
// changed exactly one row.
func expectOne(what, id string) func(pgconn.CommandTag) error {
	return func(ct pgconn.CommandTag) error {
		if n := ct.RowsAffected(); n != 1 {
			return fmt.Errorf("%s %q: %d rows changed, want 1", what, id, n)
		}
		return nil
	}
}

// taskKey is a task's folded key.
type taskKey struct{ account, jobID, id string }

func foldTaskKey(account, jobID, id string) taskKey {
	return taskKey{fold(account), fold(jobID), fold(id)}
}

// taskState is what task_counts counts of a task.
type taskState struct {
	state string
	slots int64
}

// queueTaskStates adds to b the query of the current state of those of the
// tasks named by deletes and upserts that exist, which fills cur.
func queueTaskStates(b *pgx.Batch, cur map[taskKey]taskState, deletes []store.TaskKey, upserts []store.Task) {
	n := len(deletes) + len(upserts)
	accounts, jobs, ids := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	for _, k := range deletes {
		accounts, jobs, ids = append(accounts, fold(k.Account)), append(jobs, fold(k.JobID)), append(ids, fold(k.ID))
	}
	for _, t := range upserts {
		accounts, jobs, ids = append(accounts, fold(t.Account)), append(jobs, fold(t.JobID)), append(ids, fold(t.ID))
	}
	b.Queue(qTaskStates, accounts, jobs, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k taskKey
			var c taskState
			if err := rows.Scan(&k.account, &k.jobID, &k.id, &c.state, &c.slots); err != nil {
				return fmt.Errorf("postgres: task states: %w", err)
			}
			cur[k] = c
		}
		return rows.Err()
	})
}
