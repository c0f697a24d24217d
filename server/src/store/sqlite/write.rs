//! The writes, each the body of one savepoint on the writer's connection.

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension};
use shipshape_core::checks::CheckId;
use shipshape_core::wire::Receipt;
use shipshape_core::{Facts, Policy};

use super::{Ms, StatusColumn, etag, read};
use crate::counts::CountChanges;
use crate::grade::{CheckState, Grade, grade};
use crate::keyset::sort_key;
use crate::model::{
    EnrollRefusal, IncomingReport, NewDevice, NewToken, RegradeBatch, RegradeProgress,
    RegradeState, StoredPolicy, TokenInfo, TokenKind, TransitionKind,
};
use crate::store::{Recorded, StoreError};

/// How long a nonce is remembered. A signature's `created` may be up to
/// 5 minutes off either way, so a request stays replayable for at most
/// 10 minutes after the server first saw it; 15 leaves a margin.
pub(super) const NONCE_MEMORY: SignedDuration = SignedDuration::from_mins(15);

/// A report with its JSON serialized ahead of the writer thread.
#[derive(Debug)]
pub(super) struct PreparedReport {
    id: String,
    device_id: String,
    /// Whole milliseconds, as the database keeps it and the receipt repeats it.
    pub(super) received_at: Timestamp,
    nonce: String,
    facts: Facts,
    facts_json: String,
    agent_report_json: String,
}

impl PreparedReport {
    pub(super) fn new(report: IncomingReport) -> Result<Self, StoreError> {
        let json = |what: &str, error: serde_json::Error| {
            StoreError(format!(
                "could not serialize the {what} of report {}: {error}",
                report.submission.id
            ))
        };
        let facts_json = serde_json::to_string(&report.submission.facts)
            .map_err(|error| json("facts", error))?;
        let agent_report_json = serde_json::to_string(&report.submission.report)
            .map_err(|error| json("agent's findings", error))?;
        Ok(PreparedReport {
            received_at: Ms::truncate(report.received_at),
            nonce: report.nonce,
            facts_json,
            agent_report_json,
            id: report.submission.id,
            device_id: report.device_id,
            facts: report.submission.facts,
        })
    }
}

/// Stores a report and the device's new grade; see [`crate::store::Store::record_report`].
pub(super) fn record_report(
    connection: &Connection,
    report: &PreparedReport,
    policy: &Policy,
) -> Result<Recorded, StoreError> {
    let Some(StatusColumn(before)) = connection
        .prepare_cached("SELECT status FROM devices WHERE id = ?1")?
        .query_row([&report.device_id], |row| row.get(0))
        .optional()?
    else {
        return Err(StoreError(format!(
            "device {} is not enrolled",
            report.device_id
        )));
    };
    let existing: Option<(String, String)> = connection
        .prepare_cached("SELECT device_id, receipt_json FROM reports WHERE id = ?1")?
        .query_row([&report.id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if existing
        .as_ref()
        .is_some_and(|(owner, _)| *owner != report.device_id)
    {
        return Ok(Recorded::IdTakenByAnotherDevice);
    }
    if !insert_nonce(
        connection,
        &report.device_id,
        &report.nonce,
        report.received_at,
    )? {
        return Ok(Recorded::ReplayedNonce);
    }
    if let Some((_, receipt)) = existing {
        return serde_json::from_str(&receipt)
            .map(Recorded::AlreadyStored)
            .map_err(|error| {
                StoreError(format!(
                    "the stored receipt of report {} is unreadable: {error}",
                    report.id
                ))
            });
    }

    let previous = check_state(connection, &report.device_id)?;
    let grade = grade(policy, &report.facts, report.received_at, &previous);
    let receipt = Receipt {
        report_id: report.id.clone(),
        device_id: report.device_id.clone(),
        received_at: report.received_at,
        status: grade.status,
        findings: grade.findings.clone(),
    };
    let receipt_json = to_json("receipt", &receipt)?;
    let leaking = leaking_json(&grade)?;
    let host = &report.facts.host;
    let key = sort_key(&host.hostname);
    connection
        .prepare_cached(
            "UPDATE devices SET hostname = ?2, sort_key = ?12, os_family = ?3, os_name = ?4,
                 os_version = ?5, hardware_id = COALESCE(?6, hardware_id), last_seen = ?7,
                 last_contact = ?7, status = ?8, leaking_checks = ?9, findings_json = ?10,
                 last_report_id = ?11
             WHERE id = ?1",
        )?
        .execute((
            &report.device_id,
            &host.hostname,
            host.os.family.as_str(),
            &host.os.name,
            &host.os.version,
            &host.hardware_id,
            Ms(report.received_at),
            StatusColumn(grade.status),
            &leaking,
            to_json("findings", &grade.findings)?,
            &report.id,
            &key,
        ))?;
    // The fleet filtered by a check reads these copies instead of the device.
    connection
        .prepare_cached(
            "UPDATE device_leaks SET hostname = ?2, sort_key = ?3, last_contact = ?4
             WHERE device_id = ?1",
        )?
        .execute((
            &report.device_id,
            &host.hostname,
            &key,
            Ms(report.received_at),
        ))?;
    connection
        .prepare_cached(
            "INSERT INTO reports (id, device_id, received_at, status, leaking_checks,
                 facts_json, agent_report_json, receipt_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute((
            &report.id,
            &report.device_id,
            Ms(report.received_at),
            StatusColumn(grade.status),
            &leaking,
            &report.facts_json,
            &report.agent_report_json,
            &receipt_json,
        ))?;
    save_state(
        connection,
        &report.device_id,
        &previous,
        &grade,
        report.received_at,
        Some(&report.id),
    )?;
    let mut counts = CountChanges::default();
    counts.regraded(
        (before, &previous.leaking),
        (grade.status, &grade.state.leaking),
    );
    apply_counts(connection, &counts)?;
    Ok(Recorded::Stored(receipt))
}

/// `false` when the device already used this nonce.
pub(super) fn record_nonce(
    connection: &Connection,
    device_id: &str,
    nonce: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    if !device_exists(connection, device_id)? {
        return Err(StoreError(format!("device {device_id} is not enrolled")));
    }
    insert_nonce(connection, device_id, nonce, Ms::truncate(now))
}

fn insert_nonce(
    connection: &Connection,
    device_id: &str,
    nonce: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO nonces (device_id, nonce, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute((device_id, nonce, Ms(now)))?;
    Ok(inserted == 1)
}

fn device_exists(connection: &Connection, device_id: &str) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached("SELECT 1 FROM devices WHERE id = ?1")?
        .exists([device_id])?)
}

/// The device's failing-since clocks and leaking checks. Check ids this
/// server does not know (left by a newer version) are ignored.
fn check_state(connection: &Connection, device_id: &str) -> Result<CheckState, StoreError> {
    let mut state = CheckState::default();
    let mut clocks = connection
        .prepare_cached("SELECT check_id, failing_since FROM grace_clocks WHERE device_id = ?1")?;
    let mut rows = clocks.query([device_id])?;
    while let Some(row) = rows.next()? {
        let check: String = row.get(0)?;
        let Ms(since) = row.get(1)?;
        if let Ok(check) = check.parse::<CheckId>() {
            state.failing_since.insert(check, since);
        }
    }
    let mut leaks =
        connection.prepare_cached("SELECT check_id FROM device_leaks WHERE device_id = ?1")?;
    let mut rows = leaks.query([device_id])?;
    while let Some(row) = rows.next()? {
        let check: String = row.get(0)?;
        if let Ok(check) = check.parse::<CheckId>() {
            state.leaking.insert(check);
        }
    }
    Ok(state)
}

/// Persists what changed between `previous` and `grade`: clocks, leaks and
/// the transitions (caused by `report_id`, or by a policy change). Called
/// once the device row is up to date: new leaks copy its hostname and last
/// contact.
fn save_state(
    connection: &Connection,
    device_id: &str,
    previous: &CheckState,
    grade: &Grade,
    at: Timestamp,
    report_id: Option<&str>,
) -> Result<(), StoreError> {
    if previous.failing_since != grade.state.failing_since {
        connection
            .prepare_cached("DELETE FROM grace_clocks WHERE device_id = ?1")?
            .execute([device_id])?;
        let mut insert = connection.prepare_cached(
            "INSERT INTO grace_clocks (device_id, check_id, failing_since) VALUES (?1, ?2, ?3)",
        )?;
        for (check, since) in &grade.state.failing_since {
            insert.execute((device_id, check.as_str(), Ms(*since)))?;
        }
    }
    if previous.leaking != grade.state.leaking {
        connection
            .prepare_cached("DELETE FROM device_leaks WHERE device_id = ?1")?
            .execute([device_id])?;
        // With the device's hostname and last contact, as the device row
        // holds them by now.
        let mut insert = connection.prepare_cached(
            "INSERT INTO device_leaks (device_id, check_id, hostname, sort_key, last_contact)
             SELECT id, ?2, hostname, sort_key, last_contact FROM devices WHERE id = ?1",
        )?;
        for check in &grade.state.leaking {
            insert.execute((device_id, check.as_str()))?;
        }
    }
    let mut insert = connection.prepare_cached(
        "INSERT INTO transitions (device_id, check_id, kind, happened_at, report_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (check, kind) in &grade.transitions {
        insert.execute((
            device_id,
            check.as_str(),
            transition_kind(*kind),
            Ms(at),
            report_id,
        ))?;
    }
    Ok(())
}

/// Consumes one use of the token and creates the device; see [`crate::store::Store::enroll`].
pub(super) fn enroll(
    connection: &Connection,
    token_hash: &str,
    device: &NewDevice,
) -> Result<Result<String, EnrollRefusal>, StoreError> {
    let token = connection
        .prepare_cached(
            "SELECT id, kind, uses_left, expires_at, revoked_at FROM tokens WHERE hash = ?1",
        )?
        .query_row([token_hash], |row| {
            Ok(EnrollToken {
                id: row.get(0)?,
                kind: row.get(1)?,
                uses_left: row.get(2)?,
                expires_at: row.get(3)?,
                revoked_at: row.get(4)?,
            })
        })
        .optional()?;
    let Some(token) = token else {
        return Ok(Err(EnrollRefusal::UnknownToken));
    };
    if token.kind != token_kind(TokenKind::Enroll) {
        return Ok(Err(EnrollRefusal::UnknownToken));
    }
    if token.revoked_at.is_some() {
        return Ok(Err(EnrollRefusal::Revoked));
    }
    if token
        .expires_at
        .is_some_and(|Ms(expires)| expires <= device.enrolled_at)
    {
        return Ok(Err(EnrollRefusal::Expired));
    }
    if token.uses_left.is_some_and(|uses| uses <= 0) {
        return Ok(Err(EnrollRefusal::UsedUp));
    }
    connection
        .prepare_cached(
            "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ?1 AND uses_left IS NOT NULL",
        )?
        .execute([&token.id])?;
    let id = uuid::Uuid::now_v7().to_string();
    let host = &device.host;
    let enrolled_at = Ms(Ms::truncate(device.enrolled_at));
    connection
        .prepare_cached(
            "INSERT INTO devices (id, public_key, hostname, sort_key, os_family, os_name,
                 os_version, hardware_id, enrolled_at, last_contact, status, leaking_checks,
                 findings_json)
             VALUES (?1, ?2, ?3, ?9, ?4, ?5, ?6, ?7, ?8, ?8, 'unknown', '[]', '[]')",
        )?
        .execute((
            &id,
            hex::encode(device.public_key),
            &host.hostname,
            host.os.family.as_str(),
            &host.os.name,
            &host.os.version,
            &host.hardware_id,
            enrolled_at,
            sort_key(&host.hostname),
        ))?;
    let mut counts = CountChanges::default();
    counts.enrolled();
    apply_counts(connection, &counts)?;
    Ok(Ok(id))
}

/// A token as enrollment checks it.
struct EnrollToken {
    id: String,
    kind: String,
    uses_left: Option<i64>,
    expires_at: Option<Ms>,
    revoked_at: Option<Ms>,
}

pub(super) fn create_token(
    connection: &Connection,
    token: &NewToken,
) -> Result<TokenInfo, StoreError> {
    let mut id = [0u8; 6];
    getrandom::fill(&mut id)
        .map_err(|error| StoreError(format!("no randomness for a token id: {error}")))?;
    let info = TokenInfo {
        id: hex::encode(id),
        kind: token.kind,
        uses_left: token.uses,
        expires_at: token.expires_at.map(Ms::truncate),
        created_at: Ms::truncate(token.created_at),
        revoked_at: None,
    };
    connection
        .prepare_cached(
            "INSERT INTO tokens (id, kind, hash, uses_left, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute((
            &info.id,
            token_kind(info.kind),
            hex::encode(token.hash),
            info.uses_left,
            info.expires_at.map(Ms),
            Ms(info.created_at),
        ))?;
    Ok(info)
}

/// Revoking twice keeps the first time.
pub(super) fn revoke_token(
    connection: &Connection,
    id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let changed = connection
        .prepare_cached("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1")?
        .execute((id, Ms(now)))?;
    Ok(changed == 1)
}

/// Revoking twice keeps the first time.
pub(super) fn revoke_device(
    connection: &Connection,
    id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let changed = connection
        .prepare_cached("UPDATE devices SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1")?
        .execute((id, Ms(now)))?;
    Ok(changed == 1)
}

/// Stores the policy and starts its re-grade; see
/// [`crate::store::Store::activate_policy`].
pub(super) fn activate_policy(
    connection: &Connection,
    text: &str,
    now: Timestamp,
) -> Result<(StoredPolicy, RegradeProgress), StoreError> {
    if let Some(active) = read::active_policy(connection)?
        && active.text == text
        && let Some(progress) = read::regrade_progress(connection)?
    {
        return Ok((active, progress));
    }
    let now = Ms::truncate(now);
    let etag = etag(text);
    let id: i64 = connection
        .prepare_cached(
            "INSERT INTO policies (policy_text, etag, activated_at) VALUES (?1, ?2, ?3)
             RETURNING id",
        )?
        .query_row((text, &etag, Ms(now)), |row| row.get(0))?;
    connection
        .prepare_cached(
            "UPDATE regrades SET state = 'superseded', finished_at = ?1 WHERE state = 'running'",
        )?
        .execute([Ms(now)])?;
    let devices: i64 = connection
        .prepare_cached("SELECT COALESCE(SUM(devices), 0) FROM status_counts")?
        .query_row([], |row| row.get(0))?;
    // With no device there is nothing to re-grade: done at once.
    let (state, finished_at) = if devices == 0 {
        (RegradeState::Done, Some(Ms(now)))
    } else {
        (RegradeState::Running, None)
    };
    connection
        .prepare_cached(
            "INSERT INTO regrades (policy_id, after_device, devices, done, changed_status,
                 started_at, finished_at, state)
             VALUES (?1, '', ?2, 0, 0, ?3, ?4, ?5)",
        )?
        .execute((id, devices, Ms(now), finished_at, regrade_state(state)))?;
    let stored = StoredPolicy {
        id,
        text: text.to_owned(),
        etag,
        activated_at: now,
    };
    let progress = read::regrade_progress(connection)?
        .ok_or_else(|| StoreError("the re-grade just started is not stored".to_owned()))?;
    Ok((stored, progress))
}

/// Stores a batch of a re-grade; see [`crate::store::Store::save_regrade`].
pub(super) fn save_regrade(
    connection: &Connection,
    batch: &RegradeBatch,
) -> Result<Option<RegradeProgress>, StoreError> {
    let Some(progress) = read::regrade_progress(connection)? else {
        return Ok(None);
    };
    if progress.policy_id != batch.policy_id
        || progress.state != RegradeState::Running
        || progress.after != batch.from
    {
        return Ok(None);
    }
    let at = Ms::truncate(batch.at);
    let mut counts = CountChanges::default();
    let mut changed_status = 0;
    for change in &batch.changes {
        let updated = connection
            .prepare_cached(
                "UPDATE devices SET status = ?3, leaking_checks = ?4, findings_json = ?5
                 WHERE id = ?1 AND last_report_id = ?2",
            )?
            .execute((
                &change.device_id,
                &change.report_id,
                StatusColumn(change.grade.status),
                leaking_json(&change.grade)?,
                &change.findings_json,
            ))?;
        // None when a newer report came in meanwhile: it was graded by this
        // policy already.
        if updated == 0 {
            continue;
        }
        save_state(
            connection,
            &change.device_id,
            &change.previous,
            &change.grade,
            at,
            None,
        )?;
        counts.regraded(
            (change.before, &change.previous.leaking),
            (change.grade.status, &change.grade.state.leaking),
        );
        if change.before != change.grade.status {
            changed_status += 1;
        }
    }
    apply_counts(connection, &counts)?;
    let (after, state, finished_at) = match &batch.through {
        Some(through) => (through.as_str(), RegradeState::Running, None),
        None => (batch.from.as_str(), RegradeState::Done, Some(Ms(at))),
    };
    connection
        .prepare_cached(
            "UPDATE regrades SET after_device = ?2, done = done + ?3,
                 devices = MAX(devices, done + ?3), changed_status = changed_status + ?4,
                 state = ?5, finished_at = ?6
             WHERE policy_id = ?1",
        )?
        .execute((
            batch.policy_id,
            after,
            as_count(batch.visited)?,
            changed_status,
            regrade_state(state),
            finished_at,
        ))?;
    read::regrade_progress(connection)
}

/// Applies what a write changed to `status_counts` and `check_counts`.
fn apply_counts(connection: &Connection, counts: &CountChanges) -> Result<(), StoreError> {
    for (status, change) in counts.statuses() {
        connection
            .prepare_cached("UPDATE status_counts SET devices = devices + ?2 WHERE status = ?1")?
            .execute((status, change))?;
    }
    for (check, change) in counts.checks() {
        connection
            .prepare_cached(
                "INSERT INTO check_counts (check_id, devices) VALUES (?1, ?2)
                 ON CONFLICT (check_id) DO UPDATE SET devices = check_counts.devices + ?2",
            )?
            .execute((check, change))?;
    }
    Ok(())
}

fn as_count(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count).map_err(|_| StoreError(format!("{count} devices is past what SQL counts")))
}

pub(super) fn regrade_state(state: RegradeState) -> &'static str {
    match state {
        RegradeState::Running => "running",
        RegradeState::Done => "done",
        RegradeState::Superseded => "superseded",
    }
}

/// The leaking checks as the `leaking_checks` columns hold them.
fn leaking_json(grade: &Grade) -> Result<String, StoreError> {
    let checks: Vec<&str> = grade
        .state
        .leaking
        .iter()
        .map(|check| check.as_str())
        .collect();
    to_json("leaking checks", &checks)
}

fn to_json(what: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError(format!("could not serialize the {what}: {error}")))
}

pub(super) fn token_kind(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Enroll => "enroll",
        TokenKind::Admin => "admin",
    }
}

pub(super) fn transition_kind(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::SprangLeak => "sprang-leak",
        TransitionKind::BailedOut => "bailed-out",
    }
}
