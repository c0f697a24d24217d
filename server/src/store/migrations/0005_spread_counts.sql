-- Shipshape server schema: each maintained count spread over several rows.
--
-- The counts of version 3 had one row per status and one per check, and
-- every write that changes a count updated that row in its transaction. On
-- PostgreSQL the row stays locked until the write commits, so concurrent
-- enrollments and status-changing reports waited for each other there, then
-- each for its own fsync: they committed one at a time.
--
-- A count is now the sum of its rows, one per shard. On PostgreSQL a write
-- adds to the shard its device's id picks (a stable hash, see
-- postgres/write.rs; a re-grade's batch adds all its changes to one shard),
-- so concurrent writes of different devices mostly lock different rows;
-- SQLite's single writer adds to shard 0. A shard's row appears with the
-- first write to it (an upsert). Alone a row means nothing, and may be
-- negative (a device counted in shard 0 before this version leaves its own
-- shard); the sums are exact, and a read sums a few dozen rows at most.
--
-- The tables are rebuilt (create, copy into shard 0, drop, rename), so
-- that the shard is part of the primary key; both SQLite and PostgreSQL
-- run these statements as they are.

CREATE TABLE status_counts_spread (
    status      TEXT NOT NULL CHECK (status IN ('leaky', 'unknown', 'compliant')),
    shard       SMALLINT NOT NULL,
    devices     BIGINT NOT NULL,
    PRIMARY KEY (status, shard)
);
INSERT INTO status_counts_spread (status, shard, devices)
    SELECT status, 0, devices FROM status_counts;
DROP TABLE status_counts;
ALTER TABLE status_counts_spread RENAME TO status_counts;

CREATE TABLE check_counts_spread (
    check_id    TEXT NOT NULL,
    shard       SMALLINT NOT NULL,
    devices     BIGINT NOT NULL,
    PRIMARY KEY (check_id, shard)
);
INSERT INTO check_counts_spread (check_id, shard, devices)
    SELECT check_id, 0, devices FROM check_counts;
DROP TABLE check_counts;
ALTER TABLE check_counts_spread RENAME TO check_counts;
