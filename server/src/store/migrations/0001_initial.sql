-- Shipshape server schema, version 1.
--
-- Portable on purpose: PostgreSQL runs the same statements except where
-- marked. Timestamps are integer milliseconds since the Unix epoch (UTC) in
-- BIGINT columns: they compare and index as numbers in both databases, and
-- no time zone or text format can drift. Binary values (public keys, token
-- hashes) are lowercase hex in TEXT columns. Check ids and statuses are the
-- lowercase names the API uses.

-- Enrollment and admin tokens; only the SHA-256 of the secret is stored.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'admin')),
    hash        TEXT NOT NULL UNIQUE,
    uses_left   BIGINT,           -- NULL: unlimited
    expires_at  BIGINT,           -- NULL: never
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- One row per enrolled device, carrying its current grade so that the
-- fleet page reads one table.
CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    public_key      TEXT NOT NULL,
    hostname        TEXT NOT NULL,
    os_family       TEXT NOT NULL,
    os_name         TEXT NOT NULL,
    os_version      TEXT,
    hardware_id     TEXT,
    enrolled_at     BIGINT NOT NULL,
    revoked_at      BIGINT,
    last_seen       BIGINT,           -- NULL until the first report
    -- last_seen, or enrolled_at before the first report: the device is
    -- silent when this is older than the stale-after cutoff.
    last_contact    BIGINT NOT NULL,
    -- The grade of the last report (re-graded on policy changes); 'unknown'
    -- before the first report. Silent is derived at query time.
    status          TEXT NOT NULL CHECK (status IN ('leaky', 'unknown', 'compliant')),
    leaking_checks  TEXT NOT NULL,    -- JSON array of check ids, as the device table shows them
    findings_json   TEXT NOT NULL,    -- the server's current findings, JSON array
    last_report_id  TEXT              -- whose facts a policy change re-grades
);
-- The device table lists each status in hostname order straight from this
-- index, and it covers the summary counts (status, last_contact).
CREATE INDEX devices_in_table_order ON devices (status, lower(hostname), hostname, id, last_contact);
-- Lists the silent devices (of any status) in hostname order: a walk over
-- this index, bounded however many devices are silent.
CREATE INDEX devices_by_hostname ON devices (lower(hostname), hostname, id, last_contact);

-- Every stored report, idempotent on the agent's id.
CREATE TABLE reports (
    id                  TEXT PRIMARY KEY,
    device_id           TEXT NOT NULL REFERENCES devices (id),
    received_at         BIGINT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('leaky', 'unknown', 'compliant')),
    leaking_checks      TEXT NOT NULL,
    facts_json          TEXT NOT NULL,
    agent_report_json   TEXT NOT NULL,
    receipt_json        TEXT NOT NULL  -- answered again, byte for byte, to a retry
);
CREATE INDEX reports_by_device ON reports (device_id, received_at);

-- The checks each device leaks on now: the fleet's check filter and its
-- failures-by-check counts.
CREATE TABLE device_leaks (
    device_id   TEXT NOT NULL REFERENCES devices (id),
    check_id    TEXT NOT NULL,
    PRIMARY KEY (device_id, check_id)
);
CREATE INDEX device_leaks_by_check ON device_leaks (check_id, device_id);

-- When each failing check was first seen failing: grace counts from here.
CREATE TABLE grace_clocks (
    device_id       TEXT NOT NULL REFERENCES devices (id),
    check_id        TEXT NOT NULL,
    failing_since   BIGINT NOT NULL,
    PRIMARY KEY (device_id, check_id)
);

-- When each check started and stopped leaking on each device.
CREATE TABLE transitions (
    id          INTEGER PRIMARY KEY,  -- PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    device_id   TEXT NOT NULL REFERENCES devices (id),
    check_id    TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('sprang-leak', 'bailed-out')),
    happened_at BIGINT NOT NULL,
    report_id   TEXT REFERENCES reports (id)  -- NULL: a policy change caused it
);
CREATE INDEX transitions_by_device ON transitions (device_id, happened_at);

-- Every policy ever activated; the newest row is the active one.
CREATE TABLE policies (
    id              INTEGER PRIMARY KEY,  -- PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY
    policy_text     TEXT NOT NULL,
    etag            TEXT NOT NULL,
    activated_at    BIGINT NOT NULL
);

-- Signature nonces seen recently, so a replayed request is refused.
CREATE TABLE nonces (
    device_id   TEXT NOT NULL REFERENCES devices (id),
    nonce       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX nonces_by_age ON nonces (created_at);
