package postgres

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/jackc/pgx/v5"
)

// countDeltas gathers the changes a transaction makes to task_counts, so
// that they are written once per (account, job, state) at its end rather
// than once per task. Keys are folded.
type countDeltas map[countKey]countDelta

type countKey struct{ account, jobID, state string }

type countDelta struct{ count, slots int64 }

func (d countDeltas) add(account, jobID, state string, count, slots int64) {
	k := countKey{fold(account), fold(jobID), state}
	c := d[k]
	c.count += count
	c.slots += slots
	d[k] = c
}

// queue adds the upserts of the deltas to b, in key order so that two
// transactions take the rows' locks in the same order.
func (d countDeltas) queue(b *pgx.Batch) {
	keys := make([]countKey, 0, len(d))
	for k, c := range d {
		if c.count != 0 || c.slots != 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b countKey) int {
		return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.jobID, b.jobID), cmp.Compare(a.state, b.state))
	})
	for _, k := range keys {
		c := d[k]
		b.Queue(`INSERT INTO task_counts (account_key, job_key, state, count, slots) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (account_key, job_key, state) DO UPDATE SET
				count = task_counts.count + excluded.count, slots = task_counts.slots + excluded.slots`,
			k.account, k.jobID, k.state, c.count, c.slots)
	}
}

// jobLocks are the jobs whose tasks a transaction writes, each named by
// the 64-bit hash of its folded account and id: the key of its advisory
// lock. Two jobs of one hash share a lock, which costs concurrency only.
type jobLocks map[int64]struct{}

func (l jobLocks) add(account, jobID string) {
	h := fnv.New64a()
	h.Write([]byte(fold(account)))
	h.Write([]byte{0})
	h.Write([]byte(fold(jobID)))
	l[int64(h.Sum64())] = struct{}{}
}

// lock takes the transaction-scoped advisory locks of the jobs, in
// ascending order so that transactions never wait on each other in a cycle.
func (l jobLocks) lock(ctx context.Context, tx pgx.Tx) error {
	if len(l) == 0 {
		return nil
	}
	keys := make([]int64, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// unnest yields the keys in array order, and the aggregate takes each
	// lock in turn.
	if _, err := tx.Exec(ctx, `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`, keys); err != nil {
		return fmt.Errorf("postgres: lock jobs: %w", err)
	}
	return nil
}
