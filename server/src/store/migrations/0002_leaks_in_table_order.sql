-- Shipshape server schema, version 2: the fleet filtered by a check is read
-- from `device_leaks` alone.
--
-- Version 1 found the devices leaking on a check with `id IN (...)` and then
-- looked each one up in `devices` to learn whether it is silent and where it
-- sorts: one lookup per matching device, 100,000 for a check the whole fleet
-- fails. Each row now carries a copy of its device's hostname and last
-- contact, so the filtered table is a walk over one index in table order and
-- the filtered counts a range of another. The writes keep the copies in step:
-- a report updates them with the device, a new leak copies them from it.
--
-- No copy of the status is needed: a device that leaks on a check is graded
-- leaky (a grade is leaky exactly when a finding leaks), so the rows of a
-- check are its leaky devices, or silent ones when their last contact is
-- past the cutoff.
--
-- The table is rebuilt (create, copy, drop, rename) rather than altered, so
-- that the new columns are NOT NULL without a made-up default; both SQLite
-- and PostgreSQL run these statements as they are.

CREATE TABLE device_leaks_v2 (
    device_id       TEXT NOT NULL REFERENCES devices (id),
    check_id        TEXT NOT NULL,
    hostname        TEXT NOT NULL,    -- devices.hostname
    last_contact    BIGINT NOT NULL,  -- devices.last_contact
    PRIMARY KEY (device_id, check_id)
);

INSERT INTO device_leaks_v2 (device_id, check_id, hostname, last_contact)
SELECT leaks.device_id, leaks.check_id, devices.hostname, devices.last_contact
FROM device_leaks leaks JOIN devices ON devices.id = leaks.device_id;

DROP TABLE device_leaks;
ALTER TABLE device_leaks_v2 RENAME TO device_leaks;

-- The devices leaking on a check in the device table's order (hostname,
-- ignoring ASCII case): the leaky group and the silent group are each this
-- walk, keeping the entries on their side of the cutoff.
CREATE INDEX device_leaks_in_table_order
    ON device_leaks (check_id, lower(hostname), hostname, device_id, last_contact);
-- Failures by check (a count per check) and the silent devices of a check
-- (a range): the narrowest index that serves both.
CREATE INDEX device_leaks_by_contact ON device_leaks (check_id, last_contact);
