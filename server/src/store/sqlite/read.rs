//! The reads: tokens, keys, the policy and its re-grade, devices' states
//! and pages (the fleet's counts and device table are in `fleet.rs`).

use std::collections::HashMap;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row};
use serde::de::DeserializeOwned;
use shipshape_core::Finding;
use shipshape_core::checks::CheckId;
use shipshape_core::wire::DeviceStatus;

use super::write::{regrade_state, token_kind, transition_kind};
use super::{Ms, StatusColumn};
use crate::grade::CheckState;
use crate::model::{
    DeviceDetail, DeviceKey, DeviceRow, DeviceState, LastReport, RegradeProgress, RegradeState,
    ReportSummary, Staleness, StoredPolicy, TokenInfo, TokenKind, Transition, TransitionKind,
};
use crate::store::StoreError;

/// The reports the device page lists.
const DEVICE_PAGE_REPORTS: i64 = 50;

pub(super) fn ping(connection: &Connection) -> Result<(), StoreError> {
    connection.query_row("SELECT COUNT(*) FROM schema_migrations", [], |_| Ok(()))?;
    Ok(())
}

pub(super) fn list_tokens(connection: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let tokens = connection
        .prepare_cached(
            "SELECT id, kind, uses_left, expires_at, created_at, revoked_at
             FROM tokens ORDER BY created_at, id",
        )?
        .query_map([], |row| {
            let kind: String = row.get(1)?;
            let kind = [TokenKind::Enroll, TokenKind::Admin]
                .into_iter()
                .find(|known| token_kind(*known) == kind)
                .ok_or_else(|| unexpected(1, format!("token kind `{kind}`")))?;
            let uses_left: Option<i64> = row.get(2)?;
            Ok(TokenInfo {
                id: row.get(0)?,
                kind,
                uses_left: uses_left.map(|uses| u32::try_from(uses.max(0)).unwrap_or(u32::MAX)),
                expires_at: row.get::<_, Option<Ms>>(3)?.map(|Ms(at)| at),
                created_at: row.get::<_, Ms>(4)?.0,
                revoked_at: row.get::<_, Option<Ms>>(5)?.map(|Ms(at)| at),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(tokens)
}

pub(super) fn is_admin_token(
    connection: &Connection,
    hash: &str,
    now: jiff::Timestamp,
) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT 1 FROM tokens
             WHERE hash = ?1 AND kind = 'admin' AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .exists((hash, Ms(now)))?)
}

pub(super) fn device_key(
    connection: &Connection,
    device_id: &str,
) -> Result<Option<DeviceKey>, StoreError> {
    let key: Option<(String, Option<Ms>)> = connection
        .prepare_cached("SELECT public_key, revoked_at FROM devices WHERE id = ?1")?
        .query_row([device_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((public_key, revoked_at)) = key else {
        return Ok(None);
    };
    let public_key = hex::decode(&public_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| StoreError(format!("the stored key of device {device_id} is damaged")))?;
    Ok(Some(DeviceKey {
        public_key,
        revoked: revoked_at.is_some(),
    }))
}

pub(super) fn active_policy(connection: &Connection) -> Result<Option<StoredPolicy>, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT id, policy_text, etag, activated_at FROM policies ORDER BY id DESC LIMIT 1",
        )?
        .query_row([], |row| {
            Ok(StoredPolicy {
                id: row.get(0)?,
                text: row.get(1)?,
                etag: row.get(2)?,
                activated_at: row.get::<_, Ms>(3)?.0,
            })
        })
        .optional()?)
}

/// The re-grade of the newest policy.
pub(super) fn regrade_progress(
    connection: &Connection,
) -> Result<Option<RegradeProgress>, StoreError> {
    Ok(connection
        .prepare_cached(
            "SELECT policy_id, state, devices, done, changed_status, started_at, finished_at,
                 after_device
             FROM regrades WHERE policy_id = (SELECT MAX(id) FROM policies)",
        )?
        .query_row([], |row| {
            let state: String = row.get(1)?;
            let state = [
                RegradeState::Running,
                RegradeState::Done,
                RegradeState::Superseded,
            ]
            .into_iter()
            .find(|known| regrade_state(*known) == state)
            .ok_or_else(|| unexpected(1, format!("re-grade state `{state}`")))?;
            Ok(RegradeProgress {
                policy_id: row.get(0)?,
                state,
                devices: count(row, 2)?,
                done: count(row, 3)?,
                changed_status: count(row, 4)?,
                started_at: row.get::<_, Ms>(5)?.0,
                finished_at: row.get::<_, Option<Ms>>(6)?.map(|Ms(at)| at),
                after: row.get(7)?,
            })
        })
        .optional()?)
}

/// See [`crate::store::Store::device_states`]: the devices by their primary
/// key, their last facts by theirs, and their clocks and leaks as one range
/// each.
pub(super) fn device_states(
    connection: &Connection,
    after: &str,
    limit: u32,
) -> Result<Vec<DeviceState>, StoreError> {
    let transaction = connection.unchecked_transaction()?;
    let mut states: Vec<DeviceState> = transaction
        .prepare_cached(
            "SELECT d.id, d.hostname, d.status, d.findings_json, d.last_report_id, r.facts_json
             FROM devices d LEFT JOIN reports r ON r.id = d.last_report_id
             WHERE d.id > ?1 ORDER BY d.id LIMIT ?2",
        )?
        .query_map((after, limit), |row| {
            let report_id: Option<String> = row.get(4)?;
            let facts_json: Option<String> = row.get(5)?;
            Ok(DeviceState {
                id: row.get(0)?,
                hostname: row.get(1)?,
                status: row.get::<_, StatusColumn>(2)?.0,
                checks: CheckState::default(),
                findings_json: row.get(3)?,
                last_report: report_id
                    .zip(facts_json)
                    .map(|(id, facts_json)| LastReport { id, facts_json }),
            })
        })?
        .collect::<Result<_, _>>()?;
    let Some(last) = states.last().map(|state| state.id.clone()) else {
        return Ok(states);
    };
    let mut checks: HashMap<String, CheckState> = HashMap::new();
    // Check ids this server does not know (left by a newer one) are ignored.
    let mut clocks = transaction.prepare_cached(
        "SELECT device_id, check_id, failing_since FROM grace_clocks
         WHERE device_id > ?1 AND device_id <= ?2",
    )?;
    let mut rows = clocks.query((after, &last))?;
    while let Some(row) = rows.next()? {
        if let Ok(check) = row.get::<_, String>(1)?.parse::<CheckId>() {
            let Ms(since) = row.get(2)?;
            let device: String = row.get(0)?;
            checks
                .entry(device)
                .or_default()
                .failing_since
                .insert(check, since);
        }
    }
    let mut leaks = transaction.prepare_cached(
        "SELECT device_id, check_id FROM device_leaks WHERE device_id > ?1 AND device_id <= ?2",
    )?;
    let mut rows = leaks.query((after, &last))?;
    while let Some(row) = rows.next()? {
        if let Ok(check) = row.get::<_, String>(1)?.parse::<CheckId>() {
            let device: String = row.get(0)?;
            checks.entry(device).or_default().leaking.insert(check);
        }
    }
    for state in &mut states {
        if let Some(checks) = checks.remove(&state.id) {
            state.checks = checks;
        }
    }
    Ok(states)
}

/// The columns [`device_row`] reads, in its order.
pub(super) const DEVICE_COLUMNS: &str = "id, hostname, os_name, status, leaking_checks, last_seen, \
                              enrolled_at, revoked_at, last_contact";

pub(super) fn device_row(row: &Row<'_>, staleness: Staleness) -> rusqlite::Result<DeviceRow> {
    let StatusColumn(graded) = row.get(3)?;
    let Ms(last_contact) = row.get(8)?;
    Ok(DeviceRow {
        id: row.get(0)?,
        hostname: row.get(1)?,
        os: row.get(2)?,
        status: if last_contact < staleness.cutoff() {
            DeviceStatus::Silent
        } else {
            graded
        },
        failing_checks: row.get::<_, Json<Vec<String>>>(4)?.0,
        last_seen: row.get::<_, Option<Ms>>(5)?.map(|Ms(at)| at),
        enrolled_at: row.get::<_, Ms>(6)?.0,
        revoked: row.get::<_, Option<Ms>>(7)?.is_some(),
    })
}

pub(super) fn device(
    connection: &Connection,
    device_id: &str,
    staleness: Staleness,
) -> Result<Option<DeviceDetail>, StoreError> {
    let transaction = connection.unchecked_transaction()?;
    let found = transaction
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS}, findings_json FROM devices WHERE id = ?1"
        ))?
        .query_row([device_id], |row| {
            Ok((
                device_row(row, staleness)?,
                row.get::<_, Json<Vec<Finding>>>(9)?.0,
            ))
        })
        .optional()?;
    let Some((device, findings)) = found else {
        return Ok(None);
    };
    let transitions = transaction
        .prepare_cached(
            "SELECT check_id, kind, happened_at, report_id FROM transitions
             WHERE device_id = ?1 ORDER BY happened_at DESC, id DESC",
        )?
        .query_map([device_id], |row| {
            let kind: String = row.get(1)?;
            let kind = [TransitionKind::SprangLeak, TransitionKind::BailedOut]
                .into_iter()
                .find(|known| transition_kind(*known) == kind)
                .ok_or_else(|| unexpected(1, format!("transition kind `{kind}`")))?;
            Ok(Transition {
                check: row.get(0)?,
                kind,
                at: row.get::<_, Ms>(2)?.0,
                report_id: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let reports = transaction
        .prepare_cached(
            "SELECT id, received_at, status, leaking_checks FROM reports
             WHERE device_id = ?1 ORDER BY received_at DESC, id DESC LIMIT ?2",
        )?
        .query_map((device_id, DEVICE_PAGE_REPORTS), |row| {
            Ok(ReportSummary {
                id: row.get(0)?,
                received_at: row.get::<_, Ms>(1)?.0,
                status: row.get::<_, StatusColumn>(2)?.0,
                failing_checks: row.get::<_, Json<Vec<String>>>(3)?.0,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(DeviceDetail {
        device,
        findings,
        transitions,
        reports,
    }))
}

pub(super) fn count(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let count: i64 = row.get(index)?;
    u64::try_from(count).map_err(|_| unexpected(index, format!("count {count}")))
}

fn unexpected(index: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("unexpected {what} in the database").into(),
    )
}

/// A column holding JSON.
struct Json<T>(T);

impl<T: DeserializeOwned> FromSql for Json<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?)
            .map(Json)
            .map_err(|error| FromSqlError::Other(error.into()))
    }
}
