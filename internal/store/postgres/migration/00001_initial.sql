-- Kiln's schema on PostgreSQL: the SQLite store's six migrations in one.
--
-- Ids are case-insensitive but case-preserving, as Azure Batch ids are.
-- SQLite does that with COLLATE NOCASE, which folds ASCII letters only; here
-- each such column has a *_key twin, generated as lower(column COLLATE "C"),
-- which also folds ASCII letters only. Keys, uniqueness, lookups and
-- ordering use the *_key columns (collation "C": byte order, as NOCASE
-- orders); the store folds the values it looks up the same way in Go.
-- Doc holds the object's wire JSON, which the store never interprets.

-- +goose Up
CREATE TABLE accounts (
    name          TEXT   NOT NULL,
    name_key      TEXT   COLLATE "C" GENERATED ALWAYS AS (lower(name COLLATE "C")) STORED PRIMARY KEY,
    primary_key   TEXT   NOT NULL,
    secondary_key TEXT   NOT NULL,
    creation_time BIGINT          -- unix nanoseconds, NULL for the zero time
);

CREATE TABLE pools (
    account     TEXT NOT NULL,
    id          TEXT NOT NULL,
    account_key TEXT COLLATE "C" GENERATED ALWAYS AS (lower(account COLLATE "C")) STORED,
    id_key      TEXT COLLATE "C" GENERATED ALWAYS AS (lower(id COLLATE "C")) STORED,
    doc         BYTEA,
    PRIMARY KEY (account_key, id_key)
);

CREATE TABLE nodes (
    account     TEXT NOT NULL,
    id          TEXT NOT NULL,
    pool_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    account_key TEXT COLLATE "C" GENERATED ALWAYS AS (lower(account COLLATE "C")) STORED,
    id_key      TEXT COLLATE "C" GENERATED ALWAYS AS (lower(id COLLATE "C")) STORED,
    pool_key    TEXT COLLATE "C" GENERATED ALWAYS AS (lower(pool_id COLLATE "C")) STORED,
    doc         BYTEA,
    PRIMARY KEY (account_key, id_key)
);

CREATE INDEX nodes_pool ON nodes (account_key, pool_key, id_key);

CREATE TABLE jobs (
    account     TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    pool_id     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    priority    INTEGER NOT NULL,
    account_key TEXT COLLATE "C" GENERATED ALWAYS AS (lower(account COLLATE "C")) STORED,
    id_key      TEXT COLLATE "C" GENERATED ALWAYS AS (lower(id COLLATE "C")) STORED,
    doc         BYTEA,
    PRIMARY KEY (account_key, id_key)
);

-- seq comes from an identity sequence: it grows in insert order and never
-- reuses the seq of a deleted task, so it is a stable paging cursor. The
-- store takes a per-job lock in every transaction that writes a job's
-- tasks, so a job's seqs also grow in commit order.
CREATE TABLE tasks (
    seq         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account     TEXT    NOT NULL,
    job_id      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    node_id     TEXT    NOT NULL,
    attempt_id  TEXT    NOT NULL,
    slots       INTEGER NOT NULL,
    result      TEXT    NOT NULL DEFAULT '',
    account_key TEXT COLLATE "C" GENERATED ALWAYS AS (lower(account COLLATE "C")) STORED,
    job_key     TEXT COLLATE "C" GENERATED ALWAYS AS (lower(job_id COLLATE "C")) STORED,
    id_key      TEXT COLLATE "C" GENERATED ALWAYS AS (lower(id COLLATE "C")) STORED,
    doc         BYTEA
);

-- Key of a task, and TaskGet.
CREATE UNIQUE INDEX tasks_id ON tasks (account_key, job_key, id_key);
-- TaskList without a state filter: a range scan in seq order.
CREATE INDEX tasks_seq ON tasks (account_key, job_key, seq);
-- TaskList with a state filter.
CREATE INDEX tasks_state ON tasks (account_key, job_key, state, seq);
-- TaskListUnfinished: only the tasks that are not completed, in
-- (account, job, seq) order.
CREATE INDEX tasks_unfinished ON tasks (account_key, job_key, seq) WHERE state <> 'completed';
-- TaskListUnfinishedPage: the unfinished tasks in seq order.
CREATE INDEX tasks_unfinished_seq ON tasks (seq) WHERE state <> 'completed';
-- TaskList with a result filter: only tasks with a result.
CREATE INDEX tasks_result ON tasks (account_key, job_key, result, seq) WHERE result <> '';

-- TaskCounts reads task_counts rather than counting tasks. The store keeps
-- it equal to
--   SELECT account_key, job_key, state, count(*), sum(slots) FROM tasks GROUP BY 1, 2, 3
-- in each transaction that changes tasks, adding up the changes in Go and
-- writing them once per (account, job, state) at the end. Rows whose count
-- drops to zero may stay; TaskCounts skips them.
CREATE TABLE task_counts (
    account_key TEXT   COLLATE "C" NOT NULL,
    job_key     TEXT   COLLATE "C" NOT NULL,
    state       TEXT   COLLATE "C" NOT NULL,
    count       BIGINT NOT NULL,
    slots       BIGINT NOT NULL,
    PRIMARY KEY (account_key, job_key, state)
);

CREATE TABLE job_schedules (
    account     TEXT NOT NULL,
    id          TEXT NOT NULL,
    state       TEXT NOT NULL,
    account_key TEXT COLLATE "C" GENERATED ALWAYS AS (lower(account COLLATE "C")) STORED,
    id_key      TEXT COLLATE "C" GENERATED ALWAYS AS (lower(id COLLATE "C")) STORED,
    doc         BYTEA,
    PRIMARY KEY (account_key, id_key)
);

CREATE TABLE account_stats (
    account     TEXT NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    account_key TEXT COLLATE "C" GENERATED ALWAYS AS (lower(account COLLATE "C")) STORED,
    doc         BYTEA,
    PRIMARY KEY (account_key, kind)
);

CREATE TABLE certificates (
    account              TEXT NOT NULL,
    thumbprint_algorithm TEXT NOT NULL,
    thumbprint           TEXT NOT NULL,
    account_key          TEXT COLLATE "C" GENERATED ALWAYS AS (lower(account COLLATE "C")) STORED,
    algorithm_key        TEXT COLLATE "C" GENERATED ALWAYS AS (lower(thumbprint_algorithm COLLATE "C")) STORED,
    thumbprint_key       TEXT COLLATE "C" GENERATED ALWAYS AS (lower(thumbprint COLLATE "C")) STORED,
    doc                  BYTEA,
    PRIMARY KEY (account_key, algorithm_key, thumbprint_key)
);

-- +goose Down
DROP TABLE certificates;
DROP TABLE account_stats;
DROP TABLE job_schedules;
DROP TABLE task_counts;
DROP TABLE tasks;
DROP TABLE jobs;
DROP TABLE nodes;
DROP TABLE pools;
DROP TABLE accounts;
