-- A task's executionInfo.result, so that a job's failed tasks are listed
-- through an index instead of by reading every task's document.

-- +goose Up
ALTER TABLE tasks ADD COLUMN result TEXT NOT NULL DEFAULT '';
UPDATE tasks SET result = coalesce(json_extract(doc, '$.executionInfo.result'), '')
    WHERE state = 'completed' AND json_valid(doc);
-- Only tasks with a result are in the index; the query repeats the WHERE
-- term for the planner to use it.
CREATE INDEX tasks_result ON tasks (account, job_id, result, seq) WHERE result <> '';

-- +goose Down
DROP INDEX tasks_result;
ALTER TABLE tasks DROP COLUMN result;
