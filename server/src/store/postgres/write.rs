//! The writes. Those of several statements run in the caller's transaction
//! and lock what they depend on first (see the module above); the others
//! are one statement each.

use deadpool_postgres::{GenericClient, Transaction};
use jiff::Timestamp;
use shipshape_core::checks::CheckId;

use super::migrate::POLICY_LOCK;
use super::read::{self, Param, numbered, status, time};
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
    EnrollToken, PreparedReport, etag, leaking_json, new_device_id, new_token_info, to_json,
    token_kind, transition_kind, whole_millis,
};
use crate::store::{ActivePolicy, Recorded, StoreError, sql};

/// Stores a report and the device's new grade; see
/// [`crate::store::Store::record_report`]. The caller commits when it is
/// stored (or was before), and rolls back otherwise.
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
    let statement = transaction.prepare_cached(sql::ACTIVE_POLICY_ID).await?;
    let newest: Option<i64> = transaction.query_one(&statement, &[]).await?.try_get(0)?;
    if newest.is_some_and(|newest| newest > policy.stored.id) {
        return Ok(Recorded::PolicyOutdated);
    }
    let policy = &policy.policy;
    // Every report of this device, through any replica, waits here for the
    // one before it to commit, and then sees all it stored.
    let lock = transaction
        .prepare_cached("SELECT status FROM devices WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    let Some(device) = transaction.query_opt(&lock, &[&report.device_id]).await? else {
        return Err(StoreError(format!(
            "device {} is not enrolled",
            report.device_id
        )));
    };
    let before = status(&device, 0)?;
    let statement = transaction
        .prepare_cached("SELECT device_id, receipt_json FROM reports WHERE id = $1")
        .await?;
    let existing: Option<(String, String)> = transaction
        .query_opt(&statement, &[&report.id])
        .await?
        .map(|row| Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?;
    if existing
        .as_ref()
        .is_some_and(|(owner, _)| *owner != report.device_id)
    {
        return Ok(Recorded::IdTakenByAnotherDevice);
    }
    if !insert_nonce(
        transaction,
        &report.device_id,
        &report.nonce,
        report.received_at,
    )
    .await?
    {
        return Ok(Recorded::ReplayedNonce);
    }
    if let Some((_, receipt)) = existing {
        return report.stored_receipt(&receipt).map(Recorded::AlreadyStored);
    }

    let previous = check_state(transaction, &report.device_id).await?;
    let grade = grade(policy, &report.facts, report.received_at, &previous);
    let receipt = report.receipt(&grade);
    let leaking = leaking_json(&grade)?;
    let received_at = report.received_at.as_millisecond();
    let statement = transaction
        .prepare_cached(
            "INSERT INTO reports (id, device_id, received_at, status, leaking_checks,
                 facts_json, agent_report_json, receipt_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let inserted = transaction
        .execute(
            &statement,
            &[
                &report.id,
                &report.device_id,
                &received_at,
                &grade.status.as_str(),
                &leaking,
                &report.facts_json,
                &report.agent_report_json,
                &to_json("receipt", &receipt)?,
            ],
        )
        .await?;
    if inserted == 0 {
        // Another device's report took the id since it was looked up.
        return Ok(Recorded::IdTakenByAnotherDevice);
    }
    let host = &report.facts.host;
    let key = sort_key(&host.hostname);
    let statement = transaction
        .prepare_cached(
            "UPDATE devices SET hostname = $2, sort_key = $11, os_family = $3, os_name = $4,
                 os_version = $5, hardware_id = COALESCE($6, hardware_id), last_seen = $7,
                 last_contact = $7, status = $8, leaking_checks = $9, last_report_id = $10
             WHERE id = $1",
        )
        .await?;
    transaction
        .execute(
            &statement,
            &[
                &report.device_id,
                &host.hostname,
                &host.os.family.as_str(),
                &host.os.name,
                &host.os.version,
                &host.hardware_id,
                &received_at,
                &grade.status.as_str(),
                &leaking,
                &report.id,
                &key,
            ],
        )
        .await?;
    save_findings(
        transaction,
        &report.device_id,
        &to_json("findings", &grade.findings)?,
    )
    .await?;
    // The fleet filtered by a check reads these copies instead of the device.
    let statement = transaction
        .prepare_cached(
            "UPDATE device_leaks SET hostname = $2, sort_key = $3, last_contact = $4
             WHERE device_id = $1",
        )
        .await?;
    transaction
        .execute(
            &statement,
            &[&report.device_id, &host.hostname, &key, &received_at],
        )
        .await?;
    save_state(
        transaction,
        &report.device_id,
        &previous,
        &grade,
        report.received_at,
        Some(&report.id),
    )
    .await?;
    let mut counts = CountChanges::default();
    counts.regraded(
        (before, &previous.leaking),
        (grade.status, &grade.state.leaking),
    );
    apply_counts(transaction, &counts, count_shard(&report.device_id)).await?;
    Ok(Recorded::Stored(receipt))
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

/// The device's failing-since clocks and leaking checks. Check ids this
/// server does not know (left by a newer version) are ignored.
async fn check_state(
    transaction: &Transaction<'_>,
    device_id: &str,
) -> Result<CheckState, StoreError> {
    let mut state = CheckState::default();
    let statement = transaction
        .prepare_cached("SELECT check_id, failing_since FROM grace_clocks WHERE device_id = $1")
        .await?;
    for row in transaction.query(&statement, &[&device_id]).await? {
        let check: String = row.try_get(0)?;
        if let Ok(check) = check.parse::<CheckId>() {
            state.failing_since.insert(check, time(&row, 1)?);
        }
    }
    let statement = transaction
        .prepare_cached("SELECT check_id FROM device_leaks WHERE device_id = $1")
        .await?;
    for row in transaction.query(&statement, &[&device_id]).await? {
        let check: String = row.try_get(0)?;
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
async fn save_state(
    transaction: &Transaction<'_>,
    device_id: &str,
    previous: &CheckState,
    grade: &Grade,
    at: Timestamp,
    report_id: Option<&str>,
) -> Result<(), StoreError> {
    if previous.failing_since != grade.state.failing_since {
        let statement = transaction
            .prepare_cached("DELETE FROM grace_clocks WHERE device_id = $1")
            .await?;
        transaction.execute(&statement, &[&device_id]).await?;
        let insert = transaction
            .prepare_cached(
                "INSERT INTO grace_clocks (device_id, check_id, failing_since) VALUES ($1, $2, $3)",
            )
            .await?;
        for (check, since) in &grade.state.failing_since {
            transaction
                .execute(
                    &insert,
                    &[&device_id, &check.as_str(), &since.as_millisecond()],
                )
                .await?;
        }
    }
    if previous.leaking != grade.state.leaking {
        let statement = transaction
            .prepare_cached("DELETE FROM device_leaks WHERE device_id = $1")
            .await?;
        transaction.execute(&statement, &[&device_id]).await?;
        // With the device's hostname and last contact, as the device row
        // holds them by now.
        let insert = transaction
            .prepare_cached(
                "INSERT INTO device_leaks (device_id, check_id, hostname, sort_key, last_contact)
                 SELECT id, $2, hostname, sort_key, last_contact FROM devices WHERE id = $1",
            )
            .await?;
        for check in &grade.state.leaking {
            transaction
                .execute(&insert, &[&device_id, &check.as_str()])
                .await?;
        }
    }
    let insert = transaction
        .prepare_cached(
            "INSERT INTO transitions (device_id, check_id, kind, happened_at, report_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    for (check, kind) in &grade.transitions {
        transaction
            .execute(
                &insert,
                &[
                    &device_id,
                    &check.as_str(),
                    &transition_kind(*kind),
                    &at.as_millisecond(),
                    &report_id,
                ],
            )
            .await?;
    }
    Ok(())
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
            .map(crate::store::sql::from_millis)
            .transpose()?,
        revoked: row.try_get::<_, Option<i64>>(4)?.is_some(),
    };
    if let Some(refusal) = token.refusal(device.enrolled_at) {
        return Ok(Err(refusal));
    }
    let statement = transaction
        .prepare_cached(
            "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left IS NOT NULL",
        )
        .await?;
    transaction.execute(&statement, &[&token.id]).await?;
    let id = new_device_id();
    let host = &device.host;
    let enrolled_at = whole_millis(device.enrolled_at).as_millisecond();
    let statement = transaction
        .prepare_cached(
            "INSERT INTO devices (id, public_key, hostname, sort_key, os_family, os_name,
                 os_version, hardware_id, enrolled_at, last_contact, status, leaking_checks)
             VALUES ($1, $2, $3, $9, $4, $5, $6, $7, $8, $8, 'unknown', '[]')",
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
            ],
        )
        .await?;
    let statement = transaction
        .prepare_cached("INSERT INTO device_findings (device_id, findings_json) VALUES ($1, '[]')")
        .await?;
    transaction.execute(&statement, &[&id]).await?;
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
/// same batch one does and the other finds the cursor moved on; each
/// device's row is locked by its update, so no report of it interleaves.
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
    let mut counts = CountChanges::default();
    let mut changed_status: i64 = 0;
    let update = transaction
        .prepare_cached(
            "UPDATE devices SET status = $3, leaking_checks = $4
             WHERE id = $1 AND last_report_id = $2",
        )
        .await?;
    for change in &batch.changes {
        let updated = transaction
            .execute(
                &update,
                &[
                    &change.device_id,
                    &change.report_id,
                    &change.grade.status.as_str(),
                    &leaking_json(&change.grade)?,
                ],
            )
            .await?;
        // None when a newer report came in meanwhile: it was graded by this
        // policy already.
        if updated == 0 {
            continue;
        }
        save_findings(transaction, &change.device_id, &change.findings_json).await?;
        save_state(
            transaction,
            &change.device_id,
            &change.previous,
            &change.grade,
            at,
            None,
        )
        .await?;
        counts.regraded(
            (change.before, &change.previous.leaking),
            (change.grade.status, &change.grade.state.leaking),
        );
        if change.before != change.grade.status {
            changed_status += 1;
        }
    }
    // The whole batch's changes in the shard of the device it starts after.
    apply_counts(transaction, &counts, count_shard(&batch.from)).await?;
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

/// Replaces a device's current findings (a JSON array).
async fn save_findings(
    transaction: &Transaction<'_>,
    device_id: &str,
    json: &str,
) -> Result<(), StoreError> {
    let statement = transaction
        .prepare_cached("UPDATE device_findings SET findings_json = $2 WHERE device_id = $1")
        .await?;
    transaction
        .execute(&statement, &[&device_id, &json])
        .await?;
    Ok(())
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
