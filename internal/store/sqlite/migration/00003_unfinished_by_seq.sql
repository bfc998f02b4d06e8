-- TaskListUnfinishedPage: the unfinished tasks in seq order, for a
-- restarting server to read them a page at a time.

-- +goose Up
CREATE INDEX tasks_unfinished_seq ON tasks (seq) WHERE state <> 'completed';

-- +goose Down
DROP INDEX tasks_unfinished_seq;
