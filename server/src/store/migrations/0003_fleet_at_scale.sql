-- Shipshape server schema, version 3: the fleet views and re-grading stay
-- fast at a million devices.
--
-- 1. A sort key stored beside each hostname. The device table pages by
--    keyset: "the devices after (sort_key, hostname, id)", a range of an
--    index, where version 2 skipped rows with OFFSET (a deep page read every
--    row before it). An index range needs plain columns: a row value does
--    not bound an expression index such as lower(hostname). The key is the
--    hostname with ASCII letters lowercased, which the server computes
--    (`keyset::sort_key`) and SQLite's lower() does too. In PostgreSQL
--    every TEXT column compares bytes (COLLATE "C", see postgres/migrate.rs),
--    so its lower() folds ASCII only as well, and the keys sort alike.
-- 2. The current findings (a few KiB of JSON per device) in a table of their
--    own: a device row shrinks to a few hundred bytes, so the rows a page or
--    the CSV reads are packed a dozen to a page rather than one, and a
--    million of them stay in memory.
-- 3. Counts kept in step with every write, in the write's transaction:
--    devices per status and per leaking check. The summary reads them
--    instead of counting the fleet; silent devices are counted with a range
--    of devices_by_contact, which costs as many rows as there are silent
--    devices.
-- 4. One re-grade per policy, run in batches in the background: where it
--    has come to, so that it resumes after a restart and any server can
--    continue it.

ALTER TABLE devices ADD COLUMN sort_key TEXT NOT NULL DEFAULT '';
UPDATE devices SET sort_key = lower(hostname);
ALTER TABLE device_leaks ADD COLUMN sort_key TEXT NOT NULL DEFAULT '';  -- devices.sort_key
UPDATE device_leaks SET sort_key = lower(hostname);

DROP INDEX devices_in_table_order;
DROP INDEX devices_by_hostname;
DROP INDEX device_leaks_in_table_order;
DROP INDEX device_leaks_by_contact;

-- The leaky, unknown and compliant groups of the device table, each a walk
-- from a key on; last_contact lets the walk pass over silent devices
-- without reading their rows. When many devices of a status are silent,
-- their walk lists them too.
CREATE INDEX devices_in_table_order ON devices (status, sort_key, hostname, id, last_contact);
-- The silent devices of each status: a range below the cutoff. It counts
-- them, and lists them when they are few (their keys sorted).
CREATE INDEX devices_by_contact ON devices (status, last_contact, sort_key, hostname, id);
-- The same two for the devices leaking on a check.
CREATE INDEX device_leaks_in_table_order
    ON device_leaks (check_id, sort_key, hostname, device_id, last_contact);
CREATE INDEX device_leaks_by_contact
    ON device_leaks (check_id, last_contact, sort_key, hostname, device_id);

-- Each device's current findings, as the server graded them.
CREATE TABLE device_findings (
    device_id       TEXT PRIMARY KEY REFERENCES devices (id),
    findings_json   TEXT NOT NULL     -- JSON array
);
INSERT INTO device_findings (device_id, findings_json) SELECT id, findings_json FROM devices;
ALTER TABLE devices DROP COLUMN findings_json;

-- Devices per status of their last grade (silent is derived at read time).
CREATE TABLE status_counts (
    status      TEXT PRIMARY KEY CHECK (status IN ('leaky', 'unknown', 'compliant')),
    devices     BIGINT NOT NULL
);
INSERT INTO status_counts (status, devices)
    SELECT 'leaky', COUNT(*) FROM devices WHERE status = 'leaky';
INSERT INTO status_counts (status, devices)
    SELECT 'unknown', COUNT(*) FROM devices WHERE status = 'unknown';
INSERT INTO status_counts (status, devices)
    SELECT 'compliant', COUNT(*) FROM devices WHERE status = 'compliant';

-- Devices per check they leak on (the rows of device_leaks per check).
CREATE TABLE check_counts (
    check_id    TEXT PRIMARY KEY,
    devices     BIGINT NOT NULL
);
INSERT INTO check_counts (check_id, devices)
    SELECT check_id, COUNT(*) FROM device_leaks GROUP BY check_id;

-- The re-grade of each policy: every device is graded again from its last
-- facts, in batches in id order. A batch is stored with the cursor moved
-- past it, in one transaction.
CREATE TABLE regrades (
    policy_id       BIGINT PRIMARY KEY REFERENCES policies (id),
    after_device    TEXT NOT NULL,      -- the devices up to this id are done ('' for none)
    devices         BIGINT NOT NULL,    -- devices to look at
    done            BIGINT NOT NULL,    -- devices looked at
    changed_status  BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    finished_at     BIGINT,             -- NULL while it runs
    state           TEXT NOT NULL CHECK (state IN ('running', 'done', 'superseded'))
);
-- The active policy was re-graded in full when it was activated (version 2
-- did that at once).
INSERT INTO regrades
    (policy_id, after_device, devices, done, changed_status, started_at, finished_at, state)
    SELECT id, '', 0, 0, 0, activated_at, activated_at, 'done'
    FROM policies WHERE id = (SELECT MAX(id) FROM policies);
