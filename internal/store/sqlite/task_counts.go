package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/kilnbatch/kiln/internal/store"
)

// countDeltas gathers the changes a transaction makes to task_counts, so
// that they are written once per (account, job, state) at its end rather
// than once per task.
type countDeltas map[countKey]countDelta

type countKey struct{ account, jobID, state string }

type countDelta struct{ count, slots int64 }

func (d countDeltas) add(account, jobID, state string, count, slots int64) {
	k := countKey{account, jobID, state}
	c := d[k]
	c.count += count
	c.slots += slots
	d[k] = c
}

// flush writes the deltas with stmt, the countAdd statement bound to the
// transaction. Keys that differ only in case are distinct map keys but the
// same task_counts row, which the upsert adds up.
func (d countDeltas) flush(ctx context.Context, stmt *sql.Stmt) error {
	for k, c := range d {
		if c.count == 0 && c.slots == 0 {
			continue
		}
		if _, err := stmt.ExecContext(ctx, k.account, k.jobID, k.state, c.count, c.slots); err != nil {
			return fmt.Errorf("sqlite: task counts: %w", err)
		}
	}
	return nil
}

// taskKey is a task's key folded as COLLATE NOCASE folds it (ASCII letters
// only), so that two keys SQLite deems equal are equal map keys.
type taskKey struct{ account, jobID, id string }

func foldTaskKey(account, jobID, id string) taskKey {
	return taskKey{foldASCII(account), foldASCII(jobID), foldASCII(id)}
}

func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// taskState is what task_counts counts of a task, and its seq.
type taskState struct {
	seq   int64
	state string
	slots int64
}

// taskStates returns the current state of those of the tasks named by
// deletes and upserts that exist, in one query: stmt (taskStates, bound to
// the transaction) joins the keys, passed as a JSON array, to tasks.
func (s *Store) taskStates(ctx context.Context, stmt *sql.Stmt, deletes []store.TaskKey, upserts []store.Task) (map[taskKey]taskState, error) {
	cur := make(map[taskKey]taskState, len(deletes)+len(upserts))
	if len(deletes)+len(upserts) == 0 {
		return cur, nil
	}
	keys := make([][3]string, 0, len(deletes)+len(upserts))
	for _, k := range deletes {
		keys = append(keys, [3]string{k.Account, k.JobID, k.ID})
	}
	for _, t := range upserts {
		keys = append(keys, [3]string{t.Account, t.JobID, t.ID})
	}
	arg, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task states: %w", err)
	}
	rows, err := stmt.QueryContext(ctx, string(arg))
	if err != nil {
		return nil, fmt.Errorf("sqlite: task states: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var account, jobID, id string
		var c taskState
		if err := rows.Scan(&account, &jobID, &id, &c.seq, &c.state, &c.slots); err != nil {
			return nil, fmt.Errorf("sqlite: task states: %w", err)
		}
		cur[foldTaskKey(account, jobID, id)] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: task states: %w", err)
	}
	return cur, nil
}
