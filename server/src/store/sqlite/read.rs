//! The reads: tokens, keys, the policy, and the fleet report.
//!
//! The fleet page is computed in SQL — counts by aggregate over an index,
//! and the page read group by group (leaky, silent, unknown, compliant) in
//! the order an index already keeps, by `LIMIT`/`OFFSET` — so nothing is
//! sorted and nothing loaded into Rust beyond the page, for 100,000 devices. A device is silent when its
//! last contact (its last report, or its enrollment before the first one) is
//! older than the cutoff; otherwise it has the status of its last grade, and
//! a device that never reported is unknown. Failures by check count every
//! device whose last grade leaks on the check, silent ones included: they
//! match the device table filtered by that check.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, ToSql};
use serde::de::DeserializeOwned;
use shipshape_core::Finding;
use shipshape_core::wire::DeviceStatus;

use super::write::{token_kind, transition_kind};
use super::{Ms, StatusColumn};
use crate::model::{
    CheckFailures, DeviceDetail, DeviceKey, DeviceRow, FleetPage, FleetQuery, ReportSummary,
    Staleness, StoredPolicy, Summary, TokenInfo, TokenKind, Transition, TransitionKind,
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

/// The columns [`device_row`] reads, in its order.
const DEVICE_COLUMNS: &str = "id, hostname, os_name, status, leaking_checks, last_seen, \
                              enrolled_at, revoked_at, last_contact";

fn device_row(row: &Row<'_>, staleness: Staleness) -> rusqlite::Result<DeviceRow> {
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

/// The device table's groups, in its order, and which devices each holds.
/// Within a group, devices are listed by hostname (ignoring ASCII case),
/// which the `devices_in_table_order` index serves without sorting.
const GROUPS: [(DeviceStatus, &str); 4] = [
    (
        DeviceStatus::Leaky,
        "status = 'leaky' AND last_contact >= :cutoff",
    ),
    (DeviceStatus::Silent, "last_contact < :cutoff"),
    (
        DeviceStatus::Unknown,
        "status = 'unknown' AND last_contact >= :cutoff",
    ),
    (
        DeviceStatus::Compliant,
        "status = 'compliant' AND last_contact >= :cutoff",
    ),
];

/// Keeps only devices that leak on `:check`.
const FAILING_CHECK: &str = "id IN (SELECT device_id FROM device_leaks WHERE check_id = :check)";

pub(super) fn fleet(connection: &Connection, query: &FleetQuery) -> Result<FleetPage, StoreError> {
    // One snapshot for the counts and the page, so they agree.
    let transaction = connection.unchecked_transaction()?;
    let cutoff = Ms(query.staleness.cutoff());
    let summary = counts(&transaction, cutoff, None)?;
    let failures_by_check = transaction
        .prepare_cached(
            "SELECT check_id, COUNT(*) FROM device_leaks
             GROUP BY check_id ORDER BY COUNT(*) DESC, check_id",
        )?
        .query_map([], |row| {
            Ok(CheckFailures {
                check: row.get(0)?,
                devices: count(row, 1)?,
            })
        })?
        .collect::<Result<_, _>>()?;

    let filtered = match &query.check {
        Some(check) => counts(&transaction, cutoff, Some(check))?,
        None => summary.clone(),
    };
    let groups: Vec<(&str, u64)> = GROUPS
        .iter()
        .filter(|(status, _)| query.status.is_none_or(|wanted| wanted == *status))
        .map(|&(status, condition)| {
            let size = match status {
                DeviceStatus::Leaky => filtered.leaky,
                DeviceStatus::Silent => filtered.silent,
                DeviceStatus::Unknown => filtered.unknown,
                DeviceStatus::Compliant => filtered.compliant,
            };
            (condition, size)
        })
        .collect();
    let matching = groups.iter().map(|(_, size)| size).sum();

    // The page may span groups: take from each what falls on the page.
    let page = query.page.max(1);
    let mut skip = u64::from(page - 1) * u64::from(query.per_page);
    let mut wanted = u64::from(query.per_page);
    let mut devices = Vec::new();
    for (condition, size) in groups {
        if wanted == 0 {
            break;
        }
        if skip >= size {
            skip -= size;
            continue;
        }
        let take = wanted.min(size - skip);
        let filter = match query.check {
            Some(_) => format!("{condition} AND {FAILING_CHECK}"),
            None => condition.to_owned(),
        };
        let (limit, offset) = (as_sql(take)?, as_sql(skip)?);
        let mut parameters: Vec<(&str, &dyn ToSql)> = vec![
            (":cutoff", &cutoff),
            (":limit", &limit),
            (":offset", &offset),
        ];
        if let Some(check) = &query.check {
            parameters.push((":check", check));
        }
        let rows: Vec<DeviceRow> = transaction
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE {filter}
                 ORDER BY lower(hostname), hostname, id LIMIT :limit OFFSET :offset"
            ))?
            .query_map(parameters.as_slice(), |row| {
                device_row(row, query.staleness)
            })?
            .collect::<Result<_, _>>()?;
        wanted -= take;
        skip = 0;
        devices.extend(rows);
    }
    Ok(FleetPage {
        summary,
        failures_by_check,
        devices,
        page,
        per_page: query.per_page,
        matching,
    })
}

/// Devices per status, of the whole fleet or of those failing `check`.
fn counts(connection: &Connection, cutoff: Ms, check: Option<&str>) -> Result<Summary, StoreError> {
    let filter = match check {
        Some(_) => format!("WHERE {FAILING_CHECK}"),
        None => String::new(),
    };
    let mut parameters: Vec<(&str, &dyn ToSql)> = vec![(":cutoff", &cutoff)];
    if let Some(check) = &check {
        parameters.push((":check", check));
    }
    Ok(connection
        .prepare_cached(&format!(
            "SELECT COUNT(*),
                 COALESCE(SUM(CASE WHEN last_contact < :cutoff THEN 1 ELSE 0 END), 0),
                 COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'leaky' THEN 1 ELSE 0 END), 0),
                 COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'unknown' THEN 1 ELSE 0 END), 0),
                 COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'compliant' THEN 1 ELSE 0 END), 0)
             FROM devices {filter}"
        ))?
        .query_row(parameters.as_slice(), |row| {
            Ok(Summary {
                total: count(row, 0)?,
                silent: count(row, 1)?,
                leaky: count(row, 2)?,
                unknown: count(row, 3)?,
                compliant: count(row, 4)?,
            })
        })?)
}

fn as_sql(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count).map_err(|_| StoreError(format!("{count} rows is past what SQL can page")))
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
