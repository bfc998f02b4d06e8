-- Job schedules. Like jobs, keyed by account and a case-insensitive,
-- case-preserving id; doc holds the service's document, which the store never
-- interprets. The jobs a schedule creates are ordinary rows of jobs (ids
-- "<schedule>:job-<n>"), so no column links them here.

-- +goose Up
CREATE TABLE job_schedules (
    account TEXT NOT NULL COLLATE NOCASE,
    id      TEXT NOT NULL COLLATE NOCASE,
    state   TEXT NOT NULL,
    doc     BLOB,
    PRIMARY KEY (account, id)
);

-- +goose Down
DROP TABLE job_schedules;
