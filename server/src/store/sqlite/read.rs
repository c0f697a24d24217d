//! The reads: tokens, keys, the policy and its re-grade, devices' states
//! and pages (the fleet's counts and device table are in `fleet.rs`).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, named_params};
use serde::de::DeserializeOwned;
use shipshape_core::Finding;

use super::{Ms, StatusColumn};
use crate::grade::CheckState;
use crate::model::{
    DeviceDetail, DeviceKey, DeviceRow, DeviceState, LastReport, RegradeProgress, ReportSummary,
    Staleness, StoredPolicy, TokenInfo, Transition,
};
use crate::store::sql::fleet::DEVICE_COLUMNS;
use crate::store::sql::regrade::{self, CLOCKS_IN_RANGE, DEVICE_STATES, LEAKS_IN_RANGE};
use crate::store::sql::{
    ACTIVE_POLICY_ID, DEVICE_PAGE_REPORTS, parse_token_kind, parse_transition_kind, shown_status,
};
use crate::store::{StoreError, sql};

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
            let kind = parse_token_kind(&kind)
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
    sql::device_key(device_id, &public_key, revoked_at.is_some()).map(Some)
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

pub(super) fn active_policy_id(connection: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(connection
        .prepare_cached(ACTIVE_POLICY_ID)?
        .query_row([], |row| row.get(0))?)
}

/// The re-grade of the newest policy.
pub(super) fn regrade_progress(
    connection: &Connection,
) -> Result<Option<RegradeProgress>, StoreError> {
    Ok(connection
        .prepare_cached(regrade::PROGRESS)?
        .query_row([], |row| {
            let state: String = row.get(1)?;
            let state = regrade::parse_state(&state)
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
        .prepare_cached(DEVICE_STATES)?
        .query_map(named_params! { ":after": after, ":limit": limit }, |row| {
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
    let range = named_params! { ":after": after, ":last": last };
    let clocks: Vec<(String, String, jiff::Timestamp)> = transaction
        .prepare_cached(CLOCKS_IN_RANGE)?
        .query_map(range, |row| {
            Ok((row.get(0)?, row.get(1)?, row.get::<_, Ms>(2)?.0))
        })?
        .collect::<Result<_, _>>()?;
    let leaks: Vec<(String, String)> = transaction
        .prepare_cached(LEAKS_IN_RANGE)?
        .query_map(range, |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    regrade::attach_checks(&mut states, clocks, leaks);
    Ok(states)
}

/// A row of [`DEVICE_COLUMNS`].
pub(super) fn device_row(row: &Row<'_>, staleness: Staleness) -> rusqlite::Result<DeviceRow> {
    let StatusColumn(graded) = row.get(3)?;
    let Ms(last_contact) = row.get(8)?;
    Ok(DeviceRow {
        id: row.get(0)?,
        hostname: row.get(1)?,
        os: row.get(2)?,
        status: shown_status(graded, last_contact, staleness),
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
            "SELECT {DEVICE_COLUMNS}, f.findings_json
             FROM devices JOIN device_findings f ON f.device_id = devices.id WHERE id = ?1"
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
            let kind = parse_transition_kind(&kind)
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
