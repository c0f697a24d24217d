//! The writes, each the body of one savepoint on the writer's connection.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, named_params};
use shipshape_core::Policy;
use shipshape_core::checks::CheckId;

use super::{Ms, StatusColumn, read};
use crate::counts::CountChanges;
use crate::grade::{CheckState, Grade, grade};
use crate::keyset::sort_key;
use crate::model::{
    EnrollRefusal, NewDevice, NewToken, RegradeBatch, RegradeProgress, RegradeState, StoredPolicy,
    TokenInfo,
};
use crate::store::sql::regrade::{
    self, CHANGE_CHECK_COUNT, CHANGE_STATUS_COUNT, DEVICES_TO_REGRADE, SUPERSEDE,
};
use crate::store::sql::{
    ACTIVE_POLICY_ID, EnrollToken, PreparedReport, etag, leaking_json, new_device_id,
    new_token_info, to_json, token_kind, transition_kind, whole_millis,
};
use crate::store::{Recorded, StoreError};

/// Stores a report and the device's new grade; see [`crate::store::Store::record_report`].
pub(super) fn record_report(
    connection: &Connection,
    report: &PreparedReport,
    policy: &Policy,
    policy_id: i64,
) -> Result<Recorded, StoreError> {
    // The writer stores policies too: none can be activated between this
    // and the report's commit.
    let newest: Option<i64> = connection
        .prepare_cached(ACTIVE_POLICY_ID)?
        .query_row([], |row| row.get(0))?;
    if newest.is_some_and(|newest| newest > policy_id) {
        return Ok(Recorded::PolicyOutdated);
    }
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
        return report.stored_receipt(&receipt).map(Recorded::AlreadyStored);
    }

    let previous = check_state(connection, &report.device_id)?;
    let grade = grade(policy, &report.facts, report.received_at, &previous);
    let receipt = report.receipt(&grade);
    let receipt_json = to_json("receipt", &receipt)?;
    let leaking = leaking_json(&grade)?;
    let host = &report.facts.host;
    let key = sort_key(&host.hostname);
    connection
        .prepare_cached(
            "UPDATE devices SET hostname = ?2, sort_key = ?11, os_family = ?3, os_name = ?4,
                 os_version = ?5, hardware_id = COALESCE(?6, hardware_id), last_seen = ?7,
                 last_contact = ?7, status = ?8, leaking_checks = ?9, last_report_id = ?10,
                 facts_report_id = ?12, facts_hash = ?13
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
            &report.id,
            &key,
            &report.facts_origin.report_id,
            &report.facts_origin.hash,
        ))?;
    save_findings(
        connection,
        &report.device_id,
        &to_json("findings", &grade.findings)?,
    )?;
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
                 facts_json, facts_from, agent_report_json, receipt_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute((
            &report.id,
            &report.device_id,
            Ms(report.received_at),
            StatusColumn(grade.status),
            &leaking,
            &report.facts_json,
            report.facts_from(),
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
    insert_nonce(connection, device_id, nonce, whole_millis(now))
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
                expires_at: row.get::<_, Option<Ms>>(3)?.map(|Ms(at)| at),
                revoked: row.get::<_, Option<Ms>>(4)?.is_some(),
            })
        })
        .optional()?;
    let Some(token) = token else {
        return Ok(Err(EnrollRefusal::UnknownToken));
    };
    if let Some(refusal) = token.refusal(device.enrolled_at) {
        return Ok(Err(refusal));
    }
    connection
        .prepare_cached(
            "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ?1 AND uses_left IS NOT NULL",
        )?
        .execute([&token.id])?;
    let id = new_device_id();
    let host = &device.host;
    let enrolled_at = Ms(whole_millis(device.enrolled_at));
    connection
        .prepare_cached(
            "INSERT INTO devices (id, public_key, hostname, sort_key, os_family, os_name,
                 os_version, hardware_id, enrolled_at, last_contact, status, leaking_checks)
             VALUES (?1, ?2, ?3, ?9, ?4, ?5, ?6, ?7, ?8, ?8, 'unknown', '[]')",
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
    connection
        .prepare_cached("INSERT INTO device_findings (device_id, findings_json) VALUES (?1, '[]')")?
        .execute([&id])?;
    let mut counts = CountChanges::default();
    counts.enrolled();
    apply_counts(connection, &counts)?;
    Ok(Ok(id))
}

pub(super) fn create_token(
    connection: &Connection,
    token: &NewToken,
) -> Result<TokenInfo, StoreError> {
    let info = new_token_info(token)?;
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
    let now = whole_millis(now);
    let etag = etag(text);
    let id: i64 = connection
        .prepare_cached(
            "INSERT INTO policies (policy_text, etag, activated_at) VALUES (?1, ?2, ?3)
             RETURNING id",
        )?
        .query_row((text, &etag, Ms(now)), |row| row.get(0))?;
    connection
        .prepare_cached(SUPERSEDE)?
        .execute(named_params! { ":at": Ms(now) })?;
    let devices: i64 = connection
        .prepare_cached(DEVICES_TO_REGRADE)?
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
        .execute((
            id,
            devices,
            Ms(now),
            finished_at,
            regrade::state_column(state),
        ))?;
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
    let at = whole_millis(batch.at);
    let mut counts = CountChanges::default();
    let mut changed_status = 0;
    for change in &batch.changes {
        // The status only when it changes: setting it rewrites the device's
        // entries in two indexes, even to the same value.
        let update = if change.before == change.grade.status {
            "UPDATE devices SET leaking_checks = ?4
             WHERE id = ?1 AND last_report_id = ?2 AND status = ?3"
        } else {
            "UPDATE devices SET status = ?3, leaking_checks = ?4
             WHERE id = ?1 AND last_report_id = ?2"
        };
        let updated = connection.prepare_cached(update)?.execute((
            &change.device_id,
            &change.report_id,
            StatusColumn(change.grade.status),
            leaking_json(&change.grade)?,
        ))?;
        // None when a newer report came in meanwhile: it was graded by this
        // policy already.
        if updated == 0 {
            continue;
        }
        save_findings(connection, &change.device_id, &change.findings_json)?;
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
            regrade::state_column(state),
            finished_at,
        ))?;
    read::regrade_progress(connection)
}

/// Replaces a device's current findings (a JSON array). Most reports find
/// them unchanged: then nothing is written.
fn save_findings(connection: &Connection, device_id: &str, json: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE device_findings SET findings_json = ?2
             WHERE device_id = ?1 AND findings_json <> ?2",
        )?
        .execute((device_id, json))?;
    Ok(())
}

/// Applies what a write changed to `status_counts` and `check_counts`, in
/// shard 0: with one writer no two writes wait on a count's row.
fn apply_counts(connection: &Connection, counts: &CountChanges) -> Result<(), StoreError> {
    for (status, change) in counts.statuses() {
        connection
            .prepare_cached(CHANGE_STATUS_COUNT)?
            .execute(named_params! { ":status": status, ":shard": 0, ":change": change })?;
    }
    for (check, change) in counts.checks() {
        connection
            .prepare_cached(CHANGE_CHECK_COUNT)?
            .execute(named_params! { ":check": check, ":shard": 0, ":change": change })?;
    }
    Ok(())
}

fn as_count(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count).map_err(|_| StoreError(format!("{count} devices is past what SQL counts")))
}
