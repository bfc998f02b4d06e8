-- The leader lease of highly available servers (see lease.go and
-- docs/high-availability.md): one row, the server that leads now (or led
-- last), its URL and the epoch every write of a leader is fenced by. The
-- lease itself is a session-level advisory lock; this row records who holds
-- it.

-- +goose Up
CREATE TABLE leader_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    epoch       BIGINT  NOT NULL,
    since       BIGINT  NOT NULL -- unix nanoseconds
);

-- +goose Down
DROP TABLE leader_lease;
