-- Shipshape server schema, version 4: a heartbeat stores no copy of the
-- facts it repeats.
--
-- A heartbeat says "my facts are still those with this hash". Version 3
-- stored it as a report row with the facts copied in full (about 6 KiB of
-- JSON), so a heartbeat cost the database as much as a full report. Now
-- the facts are kept once, in the full report that brought them:
--
-- 1. Each device names the report holding its current facts and their
--    SHA-256 (as the agent computes it): a heartbeat is checked against the
--    hash without reading or hashing the facts, and re-grading reads the
--    facts through this id.
-- 2. A heartbeat's report row has empty facts and names the report whose
--    facts it repeats, so every report's facts can still be found.
--
-- Devices graded before this version have no hash yet: their first
-- heartbeat hashes the stored facts (as version 3 did every time).

ALTER TABLE devices ADD COLUMN facts_report_id TEXT;  -- NULL until the first report
ALTER TABLE devices ADD COLUMN facts_hash TEXT;       -- NULL until hashed
UPDATE devices SET facts_report_id = last_report_id;

ALTER TABLE reports ADD COLUMN facts_from TEXT;       -- NULL: the facts are in this row
