//! The writes. Those of several statements run in the caller's transaction
//! and lock what they depend on first (see the module above); the others
//! are one statement each.

use std::collections::HashSet;

use deadpool_postgres::{GenericClient, Transaction};
use jiff::Timestamp;
use shipshape_core::checks::CheckId;

use super::migrate::POLICY_LOCK;
use super::read::{self, Param, numbered, status};
use crate::counts::CountChanges;
use crate::grade::{CheckState, Grade, grade};
use crate::keyset::sort_key;
use crate::model::{
    DeviceRegrade, EnrollRefusal, NewDevice, NewToken, RegradeBatch, RegradeProgress, RegradeState,
    StoredPolicy, TokenInfo,
};
use crate::store::sql::regrade::{
    self, CHANGE_CHECK_COUNT, CHANGE_STATUS_COUNT, DEVICES_TO_REGRADE, SUPERSEDE,
};
use crate::store::sql::{
    EnrollToken, PreparedReport, etag, from_millis, leaking_json, new_device_id, new_token_info,
    to_json, token_kind, transition_kind, whole_millis,
};
use crate::store::{ActivePolicy, Recorded, StoreError};

/// Stores a report and the device's new grade; see
/// [`crate::store::Store::record_report`]. The caller commits when it is
/// stored (or was before), and rolls back otherwise. A report that changes
/// no leak, clock or status is four statements: the policy lock, the device
/// lock, what the device stored before, and the writes.
pub(super) async fn record_report(
    transaction: &Transaction<'_>,
    report: &PreparedReport,
    policy: &ActivePolicy,
) -> Result<Recorded, StoreError> {
    // Shared with every other report, exclusive to an activation: a policy
    // activated meanwhile waits for this report to commit, and one
    // activated before is seen. So the new policy's re-grade, which begins
    // after its activation commits, finds every report graded by the old
    // one already stored.
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock_shared($1, hashtext(current_schema()))",
            &[&POLICY_LOCK],
        )
        .await?;
    // Every report of this device, through any replica, waits here for the
    // one before it to commit, and then sees all it stored. The newest
    // policy is read in the snapshot of this statement, taken after the
    // lock above: one activated before that lock is seen.
    let lock = transaction
        .prepare_cached(
            "SELECT status, (SELECT MAX(id) FROM policies) FROM devices WHERE id = $1
             FOR NO KEY UPDATE",
        )
        .await?;
    let Some(device) = transaction.query_opt(&lock, &[&report.device_id]).await? else {
        return Err(StoreError(format!(
            "device {} is not enrolled",
            report.device_id
        )));
    };
    let newest: Option<i64> = device.try_get(1)?;
    if newest.is_some_and(|newest| newest > policy.stored.id) {
        return Ok(Recorded::PolicyOutdated);
    }
    let policy = &policy.policy;
    let before = status(&device, 0)?;
    let seen = seen_before(transaction, report).await?;
    if seen
        .owner
        .as_ref()
        .is_some_and(|owner| *owner != report.device_id)
    {
        return Ok(Recorded::IdTakenByAnotherDevice);
    }
    if !seen.nonce_is_new {
        return Ok(Recorded::ReplayedNonce);
    }
    if let Some(receipt) = seen.receipt {
        return report.stored_receipt(&receipt).map(Recorded::AlreadyStored);
    }

    let previous = seen.previous;
    let grade = grade(policy, &report.facts, report.received_at, &previous);
    let receipt = report.receipt(&grade);
    let leaking = leaking_json(&grade)?;
    let received_at = report.received_at.as_millisecond();
    let host = &report.facts.host;
    let key = sort_key(&host.hostname);
    // The report, the device's row and findings, and the copies of its
    // hostname and last contact that the fleet filtered by a check reads
    // (`device_leaks`): one statement.
    let statement = transaction
        .prepare_cached(
            "WITH report AS (
                 INSERT INTO reports (id, device_id, received_at, status, leaking_checks,
                     facts_json, facts_from, agent_report_json, receipt_json)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING 1
             ), device AS (
                 UPDATE devices SET hostname = $10, sort_key = $11, os_family = $12,
                     os_name = $13, os_version = $14, hardware_id = COALESCE($15, hardware_id),
                     last_seen = $3, last_contact = $3, status = $4, leaking_checks = $5,
                     last_report_id = $1, facts_report_id = $17, facts_hash = $18
                 WHERE id = $2
             ), findings AS (
                 UPDATE device_findings SET findings_json = $16
                 WHERE device_id = $2 AND findings_json <> $16
             ), copies AS (
                 UPDATE device_leaks SET hostname = $10, sort_key = $11, last_contact = $3
                 WHERE device_id = $2
             )
             SELECT COUNT(*) FROM report",
        )
        .await?;
    let inserted: i64 = transaction
        .query_one(
            &statement,
            &[
                &report.id,
                &report.device_id,
                &received_at,
                &grade.status.as_str(),
                &leaking,
                &report.facts_json,
                &report.facts_from(),
                &report.agent_report_json,
                &to_json("receipt", &receipt)?,
                &host.hostname,
                &key,
                &host.os.family.as_str(),
                &host.os.name,
                &host.os.version,
                &host.hardware_id,
                &to_json("findings", &grade.findings)?,
                &report.facts_origin.report_id,
                &report.facts_origin.hash,
            ],
        )
        .await?
        .try_get(0)?;
    if inserted == 0 {
        // Another device's report took the id since it was looked up.
        return Ok(Recorded::IdTakenByAnotherDevice);
    }
    let mut states = StateChanges::default();
    states.add(&report.device_id, &previous, &grade);
    states
        .save(transaction, report.received_at, Some(&report.id))
        .await?;
    let mut counts = CountChanges::default();
    counts.regraded(
        (before, &previous.leaking),
        (grade.status, &grade.state.leaking),
    );
    apply_counts(transaction, &counts, count_shard(&report.device_id)).await?;
    Ok(Recorded::Stored(receipt))
}

/// What a device stored before a report of it, read once its row is locked.
#[derive(Debug)]
struct SeenBefore {
    /// Whether the report's nonce was new (it is recorded now).
    nonce_is_new: bool,
    /// The device that stored a report of this id, if one did.
    owner: Option<String>,
    /// That report's receipt.
    receipt: Option<String>,
    /// The device's grace clocks and leaking checks.
    previous: CheckState,
}

/// Records the report's nonce and reads whether a report of its id was
/// stored, and by which device, and the device's grace clocks and leaks:
/// one statement. Check ids this server does not know (left by a newer
/// version) are ignored.
async fn seen_before(
    transaction: &Transaction<'_>,
    report: &PreparedReport,
) -> Result<SeenBefore, StoreError> {
    // Concurrent inserts of one nonce wait for each other: one inserts, the
    // others find it. The clocks' two arrays come from one scan, in one order.
    let statement = transaction
        .prepare_cached(
            "WITH nonce AS (
                 INSERT INTO nonces (device_id, nonce, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING
                 RETURNING 1
             )
             SELECT EXISTS (SELECT 1 FROM nonce),
                 (SELECT device_id FROM reports WHERE id = $4),
                 (SELECT receipt_json FROM reports WHERE id = $4),
                 clocks.checks, clocks.since, leaks.checks
             FROM (SELECT array_agg(check_id) AS checks, array_agg(failing_since) AS since
                   FROM grace_clocks WHERE device_id = $1) AS clocks,
                  (SELECT array_agg(check_id) AS checks
                   FROM device_leaks WHERE device_id = $1) AS leaks",
        )
        .await?;
    let row = transaction
        .query_one(
            &statement,
            &[
                &report.device_id,
                &report.nonce,
                &report.received_at.as_millisecond(),
                &report.id,
            ],
        )
        .await?;
    let mut previous = CheckState::default();
    let clocks: Vec<String> = row.try_get::<_, Option<_>>(3)?.unwrap_or_default();
    let since: Vec<i64> = row.try_get::<_, Option<_>>(4)?.unwrap_or_default();
    for (check, since) in clocks.iter().zip(since) {
        if let Ok(check) = check.parse::<CheckId>() {
            previous.failing_since.insert(check, from_millis(since)?);
        }
    }
    let leaks: Vec<String> = row.try_get::<_, Option<_>>(5)?.unwrap_or_default();
    previous.leaking = leaks
        .iter()
        .filter_map(|check| check.parse().ok())
        .collect();
    Ok(SeenBefore {
        nonce_is_new: row.try_get(0)?,
        owner: row.try_get(1)?,
        receipt: row.try_get(2)?,
        previous,
    })
}

/// `false` when the device already used this nonce.
pub(super) async fn record_nonce(
    client: &impl GenericClient,
    device_id: &str,
    nonce: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached("SELECT 1 FROM devices WHERE id = $1")
        .await?;
    if client.query_opt(&statement, &[&device_id]).await?.is_none() {
        return Err(StoreError(format!("device {device_id} is not enrolled")));
    }
    insert_nonce(client, device_id, nonce, whole_millis(now)).await
}

/// Concurrent inserts of one nonce wait for each other: one inserts, the
/// others find it.
async fn insert_nonce(
    client: &impl GenericClient,
    device_id: &str,
    nonce: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO nonces (device_id, nonce, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    let inserted = client
        .execute(&statement, &[&device_id, &nonce, &now.as_millisecond()])
        .await?;
    Ok(inserted == 1)
}

/// What writes change in devices' grace clocks, leaks and transitions,
/// gathered so that each table takes a statement or two however many
/// devices there are: a device's clocks (or leaks) are replaced when they
/// changed, its transitions added.
#[derive(Debug, Default)]
struct StateChanges<'a> {
    /// Devices whose clocks are replaced, and their new clocks: device,
    /// check, failing since (ms).
    clocks_of: Vec<&'a str>,
    clocks: (Vec<&'a str>, Vec<&'static str>, Vec<i64>),
    /// Devices whose leaks are replaced, and their new leaks: device, check.
    leaks_of: Vec<&'a str>,
    leaks: (Vec<&'a str>, Vec<&'static str>),
    /// Device, check, kind.
    transitions: (Vec<&'a str>, Vec<&'static str>, Vec<&'static str>),
}

impl<'a> StateChanges<'a> {
    /// What changes for `device_id` between `previous` and `grade`.
    fn add(&mut self, device_id: &'a str, previous: &CheckState, grade: &Grade) {
        if previous.failing_since != grade.state.failing_since {
            self.clocks_of.push(device_id);
            for (check, since) in &grade.state.failing_since {
                self.clocks.0.push(device_id);
                self.clocks.1.push(check.as_str());
                self.clocks.2.push(since.as_millisecond());
            }
        }
        if previous.leaking != grade.state.leaking {
            self.leaks_of.push(device_id);
            for check in &grade.state.leaking {
                self.leaks.0.push(device_id);
                self.leaks.1.push(check.as_str());
            }
        }
        for (check, kind) in &grade.transitions {
            self.transitions.0.push(device_id);
            self.transitions.1.push(check.as_str());
            self.transitions.2.push(transition_kind(*kind));
        }
    }

    /// Persists them, the transitions as happened at `at` (caused by
    /// `report_id`, or by a policy change). Called once the devices' rows
    /// are up to date: new leaks copy their hostname and last contact.
    async fn save(
        &self,
        transaction: &Transaction<'_>,
        at: Timestamp,
        report_id: Option<&str>,
    ) -> Result<(), StoreError> {
        if !self.clocks_of.is_empty() {
            let statement = transaction
                .prepare_cached("DELETE FROM grace_clocks WHERE device_id = ANY($1)")
                .await?;
            transaction.execute(&statement, &[&self.clocks_of]).await?;
        }
        if !self.clocks.0.is_empty() {
            let statement = transaction
                .prepare_cached(
                    "INSERT INTO grace_clocks (device_id, check_id, failing_since)
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])",
                )
                .await?;
            let (devices, checks, since) = &self.clocks;
            transaction
                .execute(&statement, &[devices, checks, since])
                .await?;
        }
        if !self.leaks_of.is_empty() {
            let statement = transaction
                .prepare_cached("DELETE FROM device_leaks WHERE device_id = ANY($1)")
                .await?;
            transaction.execute(&statement, &[&self.leaks_of]).await?;
        }
        if !self.leaks.0.is_empty() {
            // With the device's hostname and last contact, as its row holds
            // them by now.
            let statement = transaction
                .prepare_cached(
                    "INSERT INTO device_leaks (device_id, check_id, hostname, sort_key, last_contact)
                     SELECT d.id, c.check_id, d.hostname, d.sort_key, d.last_contact
                     FROM unnest($1::text[], $2::text[]) AS c (device_id, check_id)
                     JOIN devices d ON d.id = c.device_id",
                )
                .await?;
            let (devices, checks) = &self.leaks;
            transaction.execute(&statement, &[devices, checks]).await?;
        }
        if !self.transitions.0.is_empty() {
            let statement = transaction
                .prepare_cached(
                    "INSERT INTO transitions (device_id, check_id, kind, happened_at, report_id)
                     SELECT c.device_id, c.check_id, c.kind, $4::bigint, $5::text
                     FROM unnest($1::text[], $2::text[], $3::text[]) AS c (device_id, check_id, kind)",
                )
                .await?;
            let (devices, checks, kinds) = &self.transitions;
            transaction
                .execute(
                    &statement,
                    &[devices, checks, kinds, &at.as_millisecond(), &report_id],
                )
                .await?;
        }
        Ok(())
    }
}

/// Consumes one use of the token and creates the device; see
/// [`crate::store::Store::enroll`]. The token's row stays locked until the
/// caller commits, so two enrollments never spend the same use.
pub(super) async fn enroll(
    transaction: &Transaction<'_>,
    token_hash: &str,
    device: &NewDevice,
) -> Result<Result<String, EnrollRefusal>, StoreError> {
    let statement = transaction
        .prepare_cached(
            "SELECT id, kind, uses_left, expires_at, revoked_at FROM tokens WHERE hash = $1
             FOR UPDATE",
        )
        .await?;
    let Some(row) = transaction.query_opt(&statement, &[&token_hash]).await? else {
        return Ok(Err(EnrollRefusal::UnknownToken));
    };
    let token = EnrollToken {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        uses_left: row.try_get(2)?,
        expires_at: row
            .try_get::<_, Option<i64>>(3)?
            .map(from_millis)
            .transpose()?,
        revoked: row.try_get::<_, Option<i64>>(4)?.is_some(),
    };
    if let Some(refusal) = token.refusal(device.enrolled_at) {
        return Ok(Err(refusal));
    }
    let id = new_device_id();
    let host = &device.host;
    let enrolled_at = whole_millis(device.enrolled_at).as_millisecond();
    // A use of the token spent, the device and its (no) findings: one statement.
    let statement = transaction
        .prepare_cached(
            "WITH spent AS (
                 UPDATE tokens SET uses_left = uses_left - 1
                 WHERE id = $10 AND uses_left IS NOT NULL
             ), device AS (
                 INSERT INTO devices (id, public_key, hostname, sort_key, os_family, os_name,
                     os_version, hardware_id, enrolled_at, last_contact, status, leaking_checks)
                 VALUES ($1, $2, $3, $9, $4, $5, $6, $7, $8, $8, 'unknown', '[]')
             )
             INSERT INTO device_findings (device_id, findings_json) VALUES ($1, '[]')",
        )
        .await?;
    transaction
        .execute(
            &statement,
            &[
                &id,
                &hex::encode(device.public_key),
                &host.hostname,
                &host.os.family.as_str(),
                &host.os.name,
                &host.os.version,
                &host.hardware_id,
                &enrolled_at,
                &sort_key(&host.hostname),
                &token.id,
            ],
        )
        .await?;
    let mut counts = CountChanges::default();
    counts.enrolled();
    apply_counts(transaction, &counts, count_shard(&id)).await?;
    Ok(Ok(id))
}

pub(super) async fn create_token(
    client: &impl GenericClient,
    token: &NewToken,
) -> Result<TokenInfo, StoreError> {
    let info = new_token_info(token)?;
    let statement = client
        .prepare_cached(
            "INSERT INTO tokens (id, kind, hash, uses_left, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &info.id,
                &token_kind(info.kind),
                &hex::encode(token.hash),
                &info.uses_left.map(i64::from),
                &info.expires_at.map(|at| at.as_millisecond()),
                &info.created_at.as_millisecond(),
            ],
        )
        .await?;
    Ok(info)
}

/// What can be revoked.
#[derive(Debug, Clone, Copy)]
pub(super) enum Revocable {
    Token,
    Device,
}

/// Revokes a token or a device; `false` when there is no such one.
/// Revoking twice keeps the first time.
pub(super) async fn revoke(
    client: &impl GenericClient,
    what: Revocable,
    id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let sql = match what {
        Revocable::Token => "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
        Revocable::Device => {
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1"
        }
    };
    let statement = client.prepare_cached(sql).await?;
    let changed = client
        .execute(&statement, &[&id, &now.as_millisecond()])
        .await?;
    Ok(changed == 1)
}

/// Stores the policy and starts its re-grade; see
/// [`crate::store::Store::activate_policy`]. One activation at a time
/// across replicas (an advisory lock).
pub(super) async fn activate_policy(
    transaction: &Transaction<'_>,
    text: &str,
    now: Timestamp,
) -> Result<(StoredPolicy, RegradeProgress), StoreError> {
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&POLICY_LOCK],
        )
        .await?;
    if let Some(active) = read::active_policy(transaction).await?
        && active.text == text
        && let Some(progress) = read::regrade_progress(transaction).await?
    {
        return Ok((active, progress));
    }
    let now = whole_millis(now);
    let etag = etag(text);
    let statement = transaction
        .prepare_cached(
            "INSERT INTO policies (policy_text, etag, activated_at) VALUES ($1, $2, $3)
             RETURNING id",
        )
        .await?;
    let id: i64 = transaction
        .query_one(&statement, &[&text, &etag, &now.as_millisecond()])
        .await?
        .try_get(0)?;
    let at = now.as_millisecond();
    let (sql, params) = numbered(SUPERSEDE, &[(":at", &at)]);
    let statement = transaction.prepare_cached(&sql).await?;
    transaction.execute(&statement, &params).await?;
    let statement = transaction.prepare_cached(DEVICES_TO_REGRADE).await?;
    let devices: i64 = transaction.query_one(&statement, &[]).await?.try_get(0)?;
    // With no device there is nothing to re-grade: done at once.
    let (state, finished_at) = if devices == 0 {
        (RegradeState::Done, Some(at))
    } else {
        (RegradeState::Running, None)
    };
    let statement = transaction
        .prepare_cached(
            "INSERT INTO regrades (policy_id, after_device, devices, done, changed_status,
                 started_at, finished_at, state)
             VALUES ($1, '', $2, 0, 0, $3, $4, $5)",
        )
        .await?;
    transaction
        .execute(
            &statement,
            &[
                &id,
                &devices,
                &at,
                &finished_at,
                &regrade::state_column(state),
            ],
        )
        .await?;
    let stored = StoredPolicy {
        id,
        text: text.to_owned(),
        etag,
        activated_at: now,
    };
    let progress = read::regrade_progress(transaction)
        .await?
        .ok_or_else(|| StoreError("the re-grade just started is not stored".to_owned()))?;
    Ok((stored, progress))
}

/// Stores a batch of a re-grade; see [`crate::store::Store::save_regrade`].
/// The re-grade's row is locked first, so that of two replicas storing the
/// same batch one does and the other finds the cursor moved on; then the
/// rows of the batch's devices, in id order, so that no report of them
/// interleaves. However many devices it holds, a batch is a dozen
/// statements or so: one per table (two where rows are replaced) and one
/// per count that changes.
pub(super) async fn save_regrade(
    transaction: &Transaction<'_>,
    batch: &RegradeBatch,
) -> Result<Option<RegradeProgress>, StoreError> {
    let statement = transaction
        .prepare_cached(
            "SELECT state, after_device FROM regrades WHERE policy_id = $1
               AND policy_id = (SELECT MAX(id) FROM policies)
             FOR UPDATE",
        )
        .await?;
    let Some(row) = transaction
        .query_opt(&statement, &[&batch.policy_id])
        .await?
    else {
        return Ok(None);
    };
    let state: String = row.try_get(0)?;
    let after: String = row.try_get(1)?;
    if regrade::parse_state(&state) != Some(RegradeState::Running) || after != batch.from {
        return Ok(None);
    }
    let at = whole_millis(batch.at);
    let updated = update_regraded(transaction, &batch.changes).await?;
    // Left out: the devices a newer report came in for meanwhile, graded by
    // this policy already.
    let stored: Vec<&DeviceRegrade> = batch
        .changes
        .iter()
        .filter(|change| updated.contains(change.device_id.as_str()))
        .collect();
    let mut changed_status: i64 = 0;
    if !stored.is_empty() {
        let statement = transaction
            .prepare_cached(
                "UPDATE device_findings f SET findings_json = c.findings_json
                 FROM unnest($1::text[], $2::text[]) AS c (device_id, findings_json)
                 WHERE f.device_id = c.device_id AND f.findings_json <> c.findings_json",
            )
            .await?;
        let devices: Vec<&str> = stored
            .iter()
            .map(|change| change.device_id.as_str())
            .collect();
        let findings: Vec<&str> = stored
            .iter()
            .map(|change| change.findings_json.as_str())
            .collect();
        transaction
            .execute(&statement, &[&devices, &findings])
            .await?;
        let mut states = StateChanges::default();
        let mut counts = CountChanges::default();
        for change in &stored {
            states.add(&change.device_id, &change.previous, &change.grade);
            counts.regraded(
                (change.before, &change.previous.leaking),
                (change.grade.status, &change.grade.state.leaking),
            );
            if change.before != change.grade.status {
                changed_status += 1;
            }
        }
        states.save(transaction, at, None).await?;
        // The whole batch's changes in the shard of the device it starts after.
        apply_counts(transaction, &counts, count_shard(&batch.from)).await?;
    }
    let (after, state, finished_at) = match &batch.through {
        Some(through) => (through.as_str(), RegradeState::Running, None),
        None => (
            batch.from.as_str(),
            RegradeState::Done,
            Some(at.as_millisecond()),
        ),
    };
    let visited = i64::try_from(batch.visited)
        .map_err(|_| StoreError(format!("{} devices is past what SQL counts", batch.visited)))?;
    let statement = transaction
        .prepare_cached(
            "UPDATE regrades SET after_device = $2, done = done + $3,
                 devices = GREATEST(devices, done + $3), changed_status = changed_status + $4,
                 state = $5, finished_at = $6
             WHERE policy_id = $1",
        )
        .await?;
    transaction
        .execute(
            &statement,
            &[
                &batch.policy_id,
                &after,
                &visited,
                &changed_status,
                &regrade::state_column(state),
                &finished_at,
            ],
        )
        .await?;
    read::regrade_progress(transaction).await
}

/// Locks the rows of the devices `changes` grade again, in id order, and
/// sets the new status and leaking checks of those whose last report is
/// still the one graded, where they changed (a row rewritten to the same
/// values would still cost a new version and its index entries). Answers
/// those devices: two statements.
async fn update_regraded(
    transaction: &Transaction<'_>,
    changes: &[DeviceRegrade],
) -> Result<HashSet<String>, StoreError> {
    if changes.is_empty() {
        return Ok(HashSet::new());
    }
    let devices: Vec<&str> = changes
        .iter()
        .map(|change| change.device_id.as_str())
        .collect();
    let reports: Vec<&str> = changes
        .iter()
        .map(|change| change.report_id.as_str())
        .collect();
    // A row a report updated meanwhile is read again once that report
    // commits, and left out when its last report is another.
    let lock = transaction
        .prepare_cached(
            "SELECT d.id FROM devices d
             JOIN unnest($1::text[], $2::text[]) AS c (id, report_id)
                 ON d.id = c.id AND d.last_report_id = c.report_id
             ORDER BY d.id
             FOR NO KEY UPDATE OF d",
        )
        .await?;
    let current = transaction
        .query(&lock, &[&devices, &reports])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<HashSet<String>, _>>()?;
    let mut devices = Vec::new();
    let mut statuses = Vec::new();
    let mut leaking = Vec::new();
    for change in changes {
        if current.contains(&change.device_id) {
            devices.push(change.device_id.as_str());
            statuses.push(change.grade.status.as_str());
            leaking.push(leaking_json(&change.grade)?);
        }
    }
    if devices.is_empty() {
        return Ok(current);
    }
    let update = transaction
        .prepare_cached(
            "UPDATE devices d SET status = c.status, leaking_checks = c.leaking_checks
             FROM unnest($1::text[], $2::text[], $3::text[]) AS c (id, status, leaking_checks)
             WHERE d.id = c.id
               AND (d.status <> c.status OR d.leaking_checks <> c.leaking_checks)",
        )
        .await?;
    transaction
        .execute(&update, &[&devices, &statuses, &leaking])
        .await?;
    Ok(current)
}

/// The shards each maintained count is spread over (`shard` of
/// `status_counts` and `check_counts`): concurrent writes of different
/// devices mostly add to different rows, so they seldom wait for each
/// other's commit.
const COUNT_SHARDS: u32 = 16;

/// The shard of the maintained counts a write about `device_id` adds to:
/// FNV-1a of the id, so that every replica picks the same one for a device.
fn count_shard(device_id: &str) -> i16 {
    let hash = device_id.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    (hash % COUNT_SHARDS) as i16
}

/// Applies what a write changed to `status_counts` and `check_counts`, in
/// the write's transaction, in shard `shard`. Their rows are updated in one
/// order (statuses, then checks, each by name), so two writes never wait
/// for each other in a circle.
async fn apply_counts(
    transaction: &Transaction<'_>,
    counts: &CountChanges,
    shard: i16,
) -> Result<(), StoreError> {
    for (status, change) in counts.statuses() {
        let named: [(&str, Param<'_>); 3] = [
            (":status", &status),
            (":shard", &shard),
            (":change", &change),
        ];
        let (sql, params) = numbered(CHANGE_STATUS_COUNT, &named);
        let statement = transaction.prepare_cached(&sql).await?;
        transaction.execute(&statement, &params).await?;
    }
    for (check, change) in counts.checks() {
        let named: [(&str, Param<'_>); 3] =
            [(":check", &check), (":shard", &shard), (":change", &change)];
        let (sql, params) = numbered(CHANGE_CHECK_COUNT, &named);
        let statement = transaction.prepare_cached(&sql).await?;
        transaction.execute(&statement, &params).await?;
    }
    Ok(())
}
