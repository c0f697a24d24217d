//! The reads: tokens, keys, the policy, and the fleet report (its queries
//! and paging are the SQL backends' shared [`fleet`](crate::store::sql::fleet)).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, ToSql, named_params};
use serde::de::DeserializeOwned;
use shipshape_core::Finding;

use super::{Ms, StatusColumn};
use crate::model::{
    CheckFailures, DeviceDetail, DeviceKey, DeviceRow, FleetPage, FleetQuery, ReportSummary,
    Staleness, StoredPolicy, Summary, TokenInfo, Transition,
};
use crate::store::sql::fleet::{
    self, COUNTS, DEVICE_COLUMNS, FAILURES_BY_CHECK, SILENT_LEAKING, leaking_page_sql, page_sql,
};
use crate::store::sql::{
    DEVICE_PAGE_REPORTS, parse_token_kind, parse_transition_kind, shown_status,
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

fn device_row(row: &Row<'_>, staleness: Staleness) -> rusqlite::Result<DeviceRow> {
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

pub(super) fn fleet(connection: &Connection, query: &FleetQuery) -> Result<FleetPage, StoreError> {
    // One snapshot for the counts and the page, so they agree.
    let transaction = connection.unchecked_transaction()?;
    let cutoff = Ms(query.staleness.cutoff());
    let summary = counts(&transaction, cutoff)?;
    let failures_by_check: Vec<CheckFailures> = transaction
        .prepare_cached(FAILURES_BY_CHECK)?
        .query_map([], |row| {
            Ok(CheckFailures {
                check: row.get(0)?,
                devices: count(row, 1)?,
            })
        })?
        .collect::<Result<_, _>>()?;

    let filtered = match &query.check {
        Some(check) => {
            let silent = transaction.prepare_cached(SILENT_LEAKING)?.query_row(
                named_params! { ":check": check, ":cutoff": cutoff },
                |row| count(row, 0),
            )?;
            fleet::leaking_summary(check, &failures_by_check, silent)
        }
        None => summary.clone(),
    };
    let plan = fleet::plan(query, &filtered)?;
    let mut devices = Vec::new();
    for slice in &plan.slices {
        let (limit, offset) = (slice.limit, slice.offset);
        let rows = match (&query.check, slice.group.leaking) {
            (None, _) => transaction
                .prepare_cached(&page_sql(slice.group.devices))?
                .query_map(
                    named_params! { ":cutoff": cutoff, ":limit": limit, ":offset": offset },
                    |row| device_row(row, query.staleness),
                )?
                .collect::<Result<_, _>>()?,
            (Some(check), Some(condition)) => {
                let page = named_params! {
                    ":check": check, ":cutoff": cutoff, ":limit": limit, ":offset": offset,
                };
                leaking_page(&transaction, condition, page, query.staleness)?
            }
            (Some(_), None) => Vec::new(),
        };
        devices.extend(rows);
    }
    Ok(plan.page(query, summary, failures_by_check, devices))
}

/// A page of the devices leaking on a check: their ids from `device_leaks`
/// in table order, then each device by its id, so that the devices skipped
/// to reach the page are never looked up.
fn leaking_page(
    connection: &Connection,
    condition: &str,
    page: &[(&str, &dyn ToSql)],
    staleness: Staleness,
) -> Result<Vec<DeviceRow>, StoreError> {
    let ids: Vec<String> = connection
        .prepare_cached(&leaking_page_sql(condition))?
        .query_map(page, |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut device = connection.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"
    ))?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in &ids {
        rows.push(device.query_row([id], |row| device_row(row, staleness))?);
    }
    Ok(rows)
}

/// Devices per status, over the whole fleet.
fn counts(connection: &Connection, cutoff: Ms) -> Result<Summary, StoreError> {
    Ok(connection.prepare_cached(COUNTS)?.query_row(
        named_params! { ":cutoff": cutoff },
        |row| {
            Ok(Summary {
                total: count(row, 0)?,
                silent: count(row, 1)?,
                leaky: count(row, 2)?,
                unknown: count(row, 3)?,
                compliant: count(row, 4)?,
            })
        },
    )?)
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

fn count(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
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
