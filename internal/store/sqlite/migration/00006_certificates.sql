-- Certificates (Certificate_Add): one row per account, thumbprint algorithm
-- and thumbprint, whose doc the store never interprets.

-- +goose Up
CREATE TABLE certificates (
    account              TEXT NOT NULL COLLATE NOCASE,
    thumbprint_algorithm TEXT NOT NULL COLLATE NOCASE,
    thumbprint           TEXT NOT NULL COLLATE NOCASE,
    doc                  BLOB,
    PRIMARY KEY (account, thumbprint_algorithm, thumbprint)
);

-- +goose Down
DROP TABLE certificates;
