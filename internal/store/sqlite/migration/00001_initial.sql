-- Kiln's initial schema. Every object is keyed by its account; ids are
-- case-insensitive but case-preserving (COLLATE NOCASE), as Azure Batch ids
-- are. Doc holds the object's wire JSON, which the store never interprets.

-- +goose Up
CREATE TABLE accounts (
    name          TEXT    NOT NULL COLLATE NOCASE PRIMARY KEY,
    primary_key   TEXT    NOT NULL,
    secondary_key TEXT    NOT NULL,
    creation_time INTEGER          -- unix nanoseconds, NULL for the zero time
);

CREATE TABLE pools (
    account TEXT NOT NULL COLLATE NOCASE,
    id      TEXT NOT NULL COLLATE NOCASE,
    doc     BLOB,
    PRIMARY KEY (account, id)
);

CREATE TABLE nodes (
    account TEXT NOT NULL COLLATE NOCASE,
    id      TEXT NOT NULL COLLATE NOCASE,
    pool_id TEXT NOT NULL COLLATE NOCASE,
    state   TEXT NOT NULL,
    doc     BLOB,
    PRIMARY KEY (account, id)
);

CREATE INDEX nodes_pool ON nodes (account, pool_id, id);

CREATE TABLE jobs (
    account  TEXT    NOT NULL COLLATE NOCASE,
    id       TEXT    NOT NULL COLLATE NOCASE,
    pool_id  TEXT    NOT NULL COLLATE NOCASE,
    state    TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    doc      BLOB,
    PRIMARY KEY (account, id)
);

-- seq is the rowid: AUTOINCREMENT makes it grow in insert order and never
-- reuse the seq of a deleted task, so it is a stable paging cursor.
CREATE TABLE tasks (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    account    TEXT    NOT NULL COLLATE NOCASE,
    job_id     TEXT    NOT NULL COLLATE NOCASE,
    id         TEXT    NOT NULL COLLATE NOCASE,
    state      TEXT    NOT NULL,
    node_id    TEXT    NOT NULL,
    attempt_id TEXT    NOT NULL,
    slots      INTEGER NOT NULL,
    doc        BLOB
);

-- Key of a task, and TaskGet.
CREATE UNIQUE INDEX tasks_id ON tasks (account, job_id, id);
-- TaskList without a state filter: a range scan in seq order.
CREATE INDEX tasks_seq ON tasks (account, job_id, seq);
-- TaskList with a state filter.
CREATE INDEX tasks_state ON tasks (account, job_id, state, seq);
-- TaskListUnfinished: a partial index holding only the tasks that are not
-- completed, already in (account, job_id, seq) order. The query must repeat
-- the WHERE term verbatim for the planner to use it.
CREATE INDEX tasks_unfinished ON tasks (account, job_id, seq) WHERE state <> 'completed';

-- TaskCounts reads task_counts rather than counting tasks, so that counting
-- a job of a million tasks reads a handful of rows. The store keeps it equal
-- to
--   SELECT account, job_id, state, count(*), sum(slots) FROM tasks GROUP BY 1, 2, 3
-- in each transaction that changes tasks, adding up the changes in Go and
-- writing them once per (account, job, state) at the end. (Triggers did the
-- same at a third of the insert rate.) Rows whose count drops to zero may
-- stay; TaskCounts skips them.
CREATE TABLE task_counts (
    account TEXT    NOT NULL COLLATE NOCASE,
    job_id  TEXT    NOT NULL COLLATE NOCASE,
    state   TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    slots   INTEGER NOT NULL,
    PRIMARY KEY (account, job_id, state)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE task_counts;
DROP TABLE tasks;
DROP TABLE jobs;
DROP TABLE nodes;
DROP TABLE pools;
DROP TABLE accounts;
