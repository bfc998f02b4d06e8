package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// Column lists, in the order the scan functions read them.
const (
	accountCols  = `name, primary_key, secondary_key, creation_time`
	poolCols     = `account, id, doc`
	nodeCols     = `account, id, pool_id, state, doc`
	jobCols      = `account, id, pool_id, state, priority, doc`
	taskCols     = `account, job_id, id, seq, state, node_id, attempt_id, slots, result, doc`
	scheduleCols = `account, id, state, doc`
	statsCols    = `account, kind, doc`
)

// writeStmts are prepared once on the writer connection and bound to each
// transaction with Tx.StmtContext, which reuses the prepared statement since
// the transaction runs on that same connection.
type writeStmts struct {
	accountInsert *sql.Stmt

	poolInsert *sql.Stmt
	poolUpsert *sql.Stmt
	poolDelete *sql.Stmt

	nodeUpsert *sql.Stmt
	nodeDelete *sql.Stmt

	jobInsert      *sql.Stmt
	jobUpsert      *sql.Stmt
	jobDelete      *sql.Stmt
	jobDeleteTasks *sql.Stmt

	taskInsert    *sql.Stmt
	taskStates    *sql.Stmt
	taskUpdateSeq *sql.Stmt
	taskDeleteSeq *sql.Stmt

	countAdd       *sql.Stmt
	countDeleteJob *sql.Stmt

	scheduleInsert *sql.Stmt
	scheduleUpsert *sql.Stmt
	scheduleDelete *sql.Stmt

	statsUpsert *sql.Stmt
}

func (ws *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	return prepareAll(ctx, db, []stmtDef{
		{&ws.accountInsert, `INSERT INTO accounts (` + accountCols + `) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`},

		{&ws.poolInsert, `INSERT INTO pools (` + poolCols + `) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`},
		{&ws.poolUpsert, `INSERT INTO pools (` + poolCols + `) VALUES (?, ?, ?)
			ON CONFLICT (account, id) DO UPDATE SET id = excluded.id, doc = excluded.doc`},
		{&ws.poolDelete, `DELETE FROM pools WHERE account = ? AND id = ?`},

		{&ws.nodeUpsert, `INSERT INTO nodes (` + nodeCols + `) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account, id) DO UPDATE SET id = excluded.id, pool_id = excluded.pool_id,
				state = excluded.state, doc = excluded.doc`},
		{&ws.nodeDelete, `DELETE FROM nodes WHERE account = ? AND id = ?`},

		{&ws.jobInsert, `INSERT INTO jobs (` + jobCols + `) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`},
		{&ws.jobUpsert, `INSERT INTO jobs (` + jobCols + `) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (account, id) DO UPDATE SET id = excluded.id, pool_id = excluded.pool_id,
				state = excluded.state, priority = excluded.priority, doc = excluded.doc`},
		{&ws.jobDelete, `DELETE FROM jobs WHERE account = ? AND id = ?`},
		{&ws.jobDeleteTasks, `DELETE FROM tasks WHERE account = ? AND job_id = ?`},

		// seq is left out: SQLite assigns it (the rowid) on insert.
		{&ws.taskInsert, `INSERT INTO tasks (account, job_id, id, state, node_id, attempt_id, slots, result, doc)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`},
		// Apply looks up the tasks it changes in one query, then updates
		// (keeping seq) and deletes them by seq, the rowid, which is cheaper
		// than by key; a task upsert of a missing task is a taskInsert.
		{&ws.taskStates, qTaskStates},
		{&ws.taskUpdateSeq, `UPDATE tasks SET id = ?, state = ?, node_id = ?, attempt_id = ?, slots = ?, result = ?, doc = ?
			WHERE seq = ?`},
		{&ws.taskDeleteSeq, `DELETE FROM tasks WHERE seq = ?`},

		{&ws.countAdd, `INSERT INTO task_counts (account, job_id, state, count, slots) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account, job_id, state) DO UPDATE SET
				count = count + excluded.count, slots = slots + excluded.slots`},
		{&ws.countDeleteJob, `DELETE FROM task_counts WHERE account = ? AND job_id = ?`},

		{&ws.scheduleInsert, `INSERT INTO job_schedules (` + scheduleCols + `) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`},
		{&ws.scheduleUpsert, `INSERT INTO job_schedules (` + scheduleCols + `) VALUES (?, ?, ?, ?)
			ON CONFLICT (account, id) DO UPDATE SET id = excluded.id, state = excluded.state, doc = excluded.doc`},
		{&ws.scheduleDelete, `DELETE FROM job_schedules WHERE account = ? AND id = ?`},

		{&ws.statsUpsert, `INSERT INTO account_stats (` + statsCols + `) VALUES (?, ?, ?)
			ON CONFLICT (account, kind) DO UPDATE SET doc = excluded.doc`},
	})
}

func (ws *writeStmts) close() {
	closeAll(ws.accountInsert, ws.poolInsert, ws.poolUpsert, ws.poolDelete,
		ws.nodeUpsert, ws.nodeDelete, ws.jobInsert, ws.jobUpsert, ws.jobDelete,
		ws.jobDeleteTasks, ws.taskInsert, ws.taskStates, ws.taskUpdateSeq, ws.taskDeleteSeq,
		ws.countAdd, ws.countDeleteJob, ws.scheduleInsert, ws.scheduleUpsert, ws.scheduleDelete,
		ws.statsUpsert)
}

// readStmts are prepared on the read pool; database/sql prepares each again
// on every pool connection that runs it.
type readStmts struct {
	accountGet  *sql.Stmt
	accountList *sql.Stmt

	poolGet  *sql.Stmt
	poolList *sql.Stmt

	nodeGet        *sql.Stmt
	nodeListByPool *sql.Stmt
	nodeListAll    *sql.Stmt

	jobGet  *sql.Stmt
	jobList *sql.Stmt

	taskGet                *sql.Stmt
	taskList               *sql.Stmt
	taskListUnfinished     *sql.Stmt
	taskListUnfinishedPage *sql.Stmt
	taskCounts             *sql.Stmt

	scheduleGet  *sql.Stmt
	scheduleList *sql.Stmt

	statsList *sql.Stmt
}

// Read queries. The tasks ones are checked against their intended plans in
// plan_internal_test.go.
const (
	qTaskGet  = `SELECT ` + taskCols + ` FROM tasks WHERE account = ? AND job_id = ? AND id = ?`
	qTaskList = `SELECT ` + taskCols + ` FROM tasks INDEXED BY tasks_seq
		WHERE account = ? AND job_id = ? AND seq > ? ORDER BY seq LIMIT ?`
	// The WHERE term repeats tasks_unfinished's verbatim.
	qTaskListUnfinished = `SELECT ` + taskCols + ` FROM tasks INDEXED BY tasks_unfinished
		WHERE state <> 'completed' ORDER BY account, job_id, seq`
	// The WHERE term repeats tasks_unfinished_seq's verbatim.
	qTaskListUnfinishedPage = `SELECT ` + taskCols + ` FROM tasks INDEXED BY tasks_unfinished_seq
		WHERE state <> 'completed' AND seq > ? ORDER BY seq LIMIT ?`
	qTaskCounts = `SELECT state, count, slots FROM task_counts
		WHERE account = ? AND job_id = ? AND count > 0 ORDER BY state`
	// The seq and state of the tasks whose keys are given as a JSON array of
	// [account, job, id] arrays, for task_counts. The comparisons take the
	// columns' NOCASE collation, so each key is a lookup in tasks_id.
	qTaskStates = `SELECT t.account, t.job_id, t.id, t.seq, t.state, t.slots
		FROM json_each(?) AS k JOIN tasks AS t
		ON t.account = k.value ->> 0 AND t.job_id = k.value ->> 1 AND t.id = k.value ->> 2`
	qNodeListByPool = `SELECT ` + nodeCols + ` FROM nodes WHERE account = ? AND pool_id = ? ORDER BY id`
)

func (rs *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	return prepareAll(ctx, db, []stmtDef{
		{&rs.accountGet, `SELECT ` + accountCols + ` FROM accounts WHERE name = ?`},
		{&rs.accountList, `SELECT ` + accountCols + ` FROM accounts ORDER BY name`},

		{&rs.poolGet, `SELECT ` + poolCols + ` FROM pools WHERE account = ? AND id = ?`},
		{&rs.poolList, `SELECT ` + poolCols + ` FROM pools WHERE account = ? ORDER BY id`},

		{&rs.nodeGet, `SELECT ` + nodeCols + ` FROM nodes WHERE account = ? AND id = ?`},
		{&rs.nodeListByPool, qNodeListByPool},
		{&rs.nodeListAll, `SELECT ` + nodeCols + ` FROM nodes ORDER BY account, id`},

		{&rs.jobGet, `SELECT ` + jobCols + ` FROM jobs WHERE account = ? AND id = ?`},
		{&rs.jobList, `SELECT ` + jobCols + ` FROM jobs WHERE account = ? ORDER BY id`},

		{&rs.taskGet, qTaskGet},
		{&rs.taskList, qTaskList},
		{&rs.taskListUnfinished, qTaskListUnfinished},
		{&rs.taskListUnfinishedPage, qTaskListUnfinishedPage},
		{&rs.taskCounts, qTaskCounts},

		{&rs.scheduleGet, `SELECT ` + scheduleCols + ` FROM job_schedules WHERE account = ? AND id = ?`},
		{&rs.scheduleList, `SELECT ` + scheduleCols + ` FROM job_schedules WHERE account = ? ORDER BY id`},

		{&rs.statsList, `SELECT ` + statsCols + ` FROM account_stats ORDER BY account, kind`},
	})
}

func (rs *readStmts) close() {
	closeAll(rs.accountGet, rs.accountList, rs.poolGet, rs.poolList,
		rs.nodeGet, rs.nodeListByPool, rs.nodeListAll, rs.jobGet, rs.jobList,
		rs.taskGet, rs.taskList, rs.taskListUnfinished, rs.taskListUnfinishedPage, rs.taskCounts,
		rs.scheduleGet, rs.scheduleList, rs.statsList)
}

type stmtDef struct {
	dst   **sql.Stmt
	query string
}

func prepareAll(ctx context.Context, db *sql.DB, defs []stmtDef) error {
	for _, d := range defs {
		st, err := db.PrepareContext(ctx, d.query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", d.query, err)
		}
		*d.dst = st
	}
	return nil
}

func closeAll(stmts ...*sql.Stmt) {
	for _, st := range stmts {
		if st != nil {
			st.Close()
		}
	}
}
