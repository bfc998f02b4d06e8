package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kilnbatch/kiln/internal/store"
)

// Column lists, in the order the scan functions read them.
const (
	accountCols  = `name, primary_key, secondary_key, creation_time`
	poolCols     = `account, id, doc`
	nodeCols     = `account, id, pool_id, state, doc`
	jobCols      = `account, id, pool_id, state, priority, doc`
	scheduleCols = `account, id, state, doc`
	statsCols    = `account, kind, doc`
	certCols     = `account, thumbprint_algorithm, thumbprint, doc`
)

// Upserts replace every column but the key's account (an id's case
// follows the upsert), as the SQLite store's do.
const (
	qPoolUpsert = `INSERT INTO pools (` + poolCols + `) VALUES ($1, $2, $3)
		ON CONFLICT (account_key, id_key) DO UPDATE SET id = excluded.id, doc = excluded.doc`
	qPoolDelete = `DELETE FROM pools WHERE account_key = $1 AND id_key = $2`
	qNodeUpsert = `INSERT INTO nodes (` + nodeCols + `) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (account_key, id_key) DO UPDATE SET id = excluded.id, pool_id = excluded.pool_id,
			state = excluded.state, doc = excluded.doc`
	qNodeDelete = `DELETE FROM nodes WHERE account_key = $1 AND id_key = $2`
	qJobUpsert  = `INSERT INTO jobs (` + jobCols + `) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (account_key, id_key) DO UPDATE SET id = excluded.id, pool_id = excluded.pool_id,
			state = excluded.state, priority = excluded.priority, doc = excluded.doc`
	qJobDelete      = `DELETE FROM jobs WHERE account_key = $1 AND id_key = $2`
	qScheduleUpsert = `INSERT INTO job_schedules (` + scheduleCols + `) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_key, id_key) DO UPDATE SET id = excluded.id, state = excluded.state, doc = excluded.doc`
	qScheduleDelete = `DELETE FROM job_schedules WHERE account_key = $1 AND id_key = $2`
	qStatsUpsert    = `INSERT INTO account_stats (` + statsCols + `) VALUES ($1, $2, $3)
		ON CONFLICT (account_key, kind) DO UPDATE SET doc = excluded.doc`
	qCertUpsert = `INSERT INTO certificates (` + certCols + `) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_key, algorithm_key, thumbprint_key) DO UPDATE SET doc = excluded.doc`
	qCertDelete = `DELETE FROM certificates WHERE account_key = $1 AND algorithm_key = $2 AND thumbprint_key = $3`
)

// AccountInsert inserts a; store.ErrExists when its name is taken.
func (s *Store) AccountInsert(ctx context.Context, a store.Account) error {
	var ct *int64
	if !a.CreationTime.IsZero() {
		n := a.CreationTime.UnixNano()
		ct = &n
	}
	tag, err := s.exec(ctx, `INSERT INTO accounts (`+accountCols+`) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, a.Name, a.PrimaryKey, a.SecondaryKey, ct)
	return insertResult(tag, err, "account", a.Name)
}

// AccountUpdate replaces the keys of the account a names.
func (s *Store) AccountUpdate(ctx context.Context, a store.Account) error {
	tag, err := s.exec(ctx, `UPDATE accounts SET primary_key = $1, secondary_key = $2 WHERE name_key = $3`,
		a.PrimaryKey, a.SecondaryKey, fold(a.Name))
	if err != nil {
		return fmt.Errorf("postgres: account update: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("account", a.Name)
	}
	return nil
}

// AccountGet returns the account called name.
func (s *Store) AccountGet(ctx context.Context, name string) (store.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE name_key = $1`, fold(name)))
	return a, getResult(err, "account", name)
}

// AccountList returns every account, ordered by name.
func (s *Store) AccountList(ctx context.Context) ([]store.Account, error) {
	return list(ctx, s, "account list", scanAccount, `SELECT `+accountCols+` FROM accounts ORDER BY name_key`)
}

func scanAccount(r pgx.Row) (store.Account, error) {
	var a store.Account
	var ct *int64
	err := r.Scan(&a.Name, &a.PrimaryKey, &a.SecondaryKey, &ct)
	if ct != nil {
		a.CreationTime = time.Unix(0, *ct).UTC()
	}
	return a, err
}

// PoolInsert inserts p; store.ErrExists when its id is taken in the account.
func (s *Store) PoolInsert(ctx context.Context, p store.Pool) error {
	tag, err := s.exec(ctx, `INSERT INTO pools (`+poolCols+`) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		p.Account, p.ID, p.Doc)
	return insertResult(tag, err, "pool", p.Account, p.ID)
}

// PoolGet returns the pool id of account.
func (s *Store) PoolGet(ctx context.Context, account, id string) (store.Pool, error) {
	p, err := scanPool(s.pool.QueryRow(ctx, `SELECT `+poolCols+` FROM pools WHERE account_key = $1 AND id_key = $2`,
		fold(account), fold(id)))
	return p, getResult(err, "pool", account, id)
}

// PoolList returns the pools of account, ordered by id.
func (s *Store) PoolList(ctx context.Context, account string) ([]store.Pool, error) {
	return list(ctx, s, "pool list", scanPool, `SELECT `+poolCols+` FROM pools WHERE account_key = $1 ORDER BY id_key`,
		fold(account))
}

func scanPool(r pgx.Row) (store.Pool, error) {
	var p store.Pool
	err := r.Scan(&p.Account, &p.ID, &p.Doc)
	return p, err
}

// NodeGet returns the node id of account.
func (s *Store) NodeGet(ctx context.Context, account, id string) (store.Node, error) {
	n, err := scanNode(s.pool.QueryRow(ctx, `SELECT `+nodeCols+` FROM nodes WHERE account_key = $1 AND id_key = $2`,
		fold(account), fold(id)))
	return n, getResult(err, "node", account, id)
}

// NodeListByPool returns the nodes of one pool, ordered by id.
func (s *Store) NodeListByPool(ctx context.Context, account, poolID string) ([]store.Node, error) {
	return list(ctx, s, "node list", scanNode,
		`SELECT `+nodeCols+` FROM nodes WHERE account_key = $1 AND pool_key = $2 ORDER BY id_key`,
		fold(account), fold(poolID))
}

// NodeListAll returns every node, ordered by account and id.
func (s *Store) NodeListAll(ctx context.Context) ([]store.Node, error) {
	return list(ctx, s, "node list", scanNode, `SELECT `+nodeCols+` FROM nodes ORDER BY account_key, id_key`)
}

func scanNode(r pgx.Row) (store.Node, error) {
	var n store.Node
	err := r.Scan(&n.Account, &n.ID, &n.PoolID, &n.State, &n.Doc)
	return n, err
}

// JobInsert inserts j; store.ErrExists when its id is taken in the account.
func (s *Store) JobInsert(ctx context.Context, j store.Job) error {
	tag, err := s.exec(ctx, `INSERT INTO jobs (`+jobCols+`) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
		j.Account, j.ID, j.PoolID, j.State, j.Priority, j.Doc)
	return insertResult(tag, err, "job", j.Account, j.ID)
}

// JobGet returns the job id of account.
func (s *Store) JobGet(ctx context.Context, account, id string) (store.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE account_key = $1 AND id_key = $2`,
		fold(account), fold(id)))
	return j, getResult(err, "job", account, id)
}

// JobList returns the jobs of account, ordered by id.
func (s *Store) JobList(ctx context.Context, account string) ([]store.Job, error) {
	return list(ctx, s, "job list", scanJob, `SELECT `+jobCols+` FROM jobs WHERE account_key = $1 ORDER BY id_key`,
		fold(account))
}

func scanJob(r pgx.Row) (store.Job, error) {
	var j store.Job
	err := r.Scan(&j.Account, &j.ID, &j.PoolID, &j.State, &j.Priority, &j.Doc)
	return j, err
}

// JobScheduleInsert inserts js; store.ErrExists when its id is taken in the
// account.
func (s *Store) JobScheduleInsert(ctx context.Context, js store.JobSchedule) error {
	tag, err := s.exec(ctx, `INSERT INTO job_schedules (`+scheduleCols+`) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		js.Account, js.ID, js.State, js.Doc)
	return insertResult(tag, err, "job schedule", js.Account, js.ID)
}

// JobScheduleGet returns the job schedule id of account.
func (s *Store) JobScheduleGet(ctx context.Context, account, id string) (store.JobSchedule, error) {
	js, err := scanSchedule(s.pool.QueryRow(ctx,
		`SELECT `+scheduleCols+` FROM job_schedules WHERE account_key = $1 AND id_key = $2`, fold(account), fold(id)))
	return js, getResult(err, "job schedule", account, id)
}

// JobScheduleList returns the job schedules of account, ordered by id.
func (s *Store) JobScheduleList(ctx context.Context, account string) ([]store.JobSchedule, error) {
	return list(ctx, s, "job schedule list", scanSchedule,
		`SELECT `+scheduleCols+` FROM job_schedules WHERE account_key = $1 ORDER BY id_key`, fold(account))
}

func scanSchedule(r pgx.Row) (store.JobSchedule, error) {
	var js store.JobSchedule
	err := r.Scan(&js.Account, &js.ID, &js.State, &js.Doc)
	return js, err
}

// AccountStatsList returns every account's lifetime statistics records,
// ordered by account and kind.
func (s *Store) AccountStatsList(ctx context.Context) ([]store.AccountStats, error) {
	return list(ctx, s, "account stats list", func(r pgx.Row) (store.AccountStats, error) {
		var a store.AccountStats
		err := r.Scan(&a.Account, &a.Kind, &a.Doc)
		return a, err
	}, `SELECT `+statsCols+` FROM account_stats ORDER BY account_key, kind`)
}

// CertificateList returns every account's certificates, ordered by
// account, thumbprint algorithm and thumbprint.
func (s *Store) CertificateList(ctx context.Context) ([]store.Certificate, error) {
	return list(ctx, s, "certificate list", func(r pgx.Row) (store.Certificate, error) {
		var c store.Certificate
		err := r.Scan(&c.Account, &c.ThumbprintAlgorithm, &c.Thumbprint, &c.Doc)
		return c, err
	}, `SELECT `+certCols+` FROM certificates ORDER BY account_key, algorithm_key, thumbprint_key`)
}
