-- Lifetime statistics of an account (Job_GetAllLifetimeStatistics,
-- Pool_GetAllLifetimeStatistics): one row per account and kind, whose doc
-- the store never interprets. They outlive the jobs and pools they count.

-- +goose Up
CREATE TABLE account_stats (
    account TEXT NOT NULL COLLATE NOCASE,
    kind    TEXT NOT NULL,
    doc     BLOB,
    PRIMARY KEY (account, kind)
);

-- +goose Down
DROP TABLE account_stats;
