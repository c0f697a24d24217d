//! The reads: tokens, keys, the policy, and the fleet report.
//!
//! The fleet page is computed in SQL — counts by aggregate over an index,
//! and the page read group by group (leaky, silent, unknown, compliant) in
//! the order an index already keeps, by `LIMIT`/`OFFSET` — so nothing is
//! sorted and nothing loaded into Rust beyond the page, for 100,000 devices.
//! Filtered by a check, the same groups are walks over `device_leaks`, whose
//! rows carry what the filter needs (the hostname and the last contact), and
//! only the devices on the page are looked up. A device is silent when its
//! last contact (its last report, or its enrollment before the first one) is
//! older than the cutoff; otherwise it has the status of its last grade, and
//! a device that never reported is unknown. Failures by check count every
//! device whose last grade leaks on the check, silent ones included: they
//! match the device table filtered by that check.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, ToSql, named_params};
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

/// One group of the device table, and where its devices are found.
pub(super) struct Group {
    pub(super) status: DeviceStatus,
    /// Its devices, as a condition on `devices`.
    pub(super) devices: &'static str,
    /// Its devices leaking on `:check`, as a condition on that check's rows
    /// of `device_leaks`. `None` for the groups that never hold one: a
    /// device that leaks on a check is graded leaky (or silent, once its
    /// last contact is past the cutoff).
    pub(super) leaking: Option<&'static str>,
}

/// The device table's groups, in its order. Within a group, devices are
/// listed by hostname (ignoring ASCII case), which an index already keeps:
/// `devices_in_table_order` per status, `devices_by_hostname` for the silent
/// ones, and `device_leaks_in_table_order` for those leaking on a check.
pub(super) const GROUPS: [Group; 4] = [
    Group {
        status: DeviceStatus::Leaky,
        devices: "status = 'leaky' AND last_contact >= :cutoff",
        leaking: Some("last_contact >= :cutoff"),
    },
    Group {
        status: DeviceStatus::Silent,
        devices: "last_contact < :cutoff",
        leaking: Some("last_contact < :cutoff"),
    },
    Group {
        status: DeviceStatus::Unknown,
        devices: "status = 'unknown' AND last_contact >= :cutoff",
        leaking: None,
    },
    Group {
        status: DeviceStatus::Compliant,
        devices: "status = 'compliant' AND last_contact >= :cutoff",
        leaking: None,
    },
];

/// A page of the devices the condition on `devices` keeps.
pub(super) fn page_sql(condition: &str) -> String {
    format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE {condition}
         ORDER BY lower(hostname), hostname, id LIMIT :limit OFFSET :offset"
    )
}

/// The ids on a page of the devices leaking on `:check` whose rows of
/// `device_leaks` the condition keeps.
pub(super) fn leaking_page_sql(condition: &str) -> String {
    format!(
        "SELECT device_id FROM device_leaks WHERE check_id = :check AND {condition}
         ORDER BY lower(hostname), hostname, device_id LIMIT :limit OFFSET :offset"
    )
}

/// How many of the devices leaking on `:check` are silent.
pub(super) const SILENT_LEAKING: &str =
    "SELECT COUNT(*) FROM device_leaks WHERE check_id = :check AND last_contact < :cutoff";

pub(super) fn fleet(connection: &Connection, query: &FleetQuery) -> Result<FleetPage, StoreError> {
    // One snapshot for the counts and the page, so they agree.
    let transaction = connection.unchecked_transaction()?;
    let cutoff = Ms(query.staleness.cutoff());
    let summary = counts(&transaction, cutoff)?;
    let failures_by_check: Vec<CheckFailures> = transaction
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
        Some(check) => leaking_counts(&transaction, cutoff, check, &failures_by_check)?,
        None => summary.clone(),
    };
    let groups: Vec<(&Group, u64)> = GROUPS
        .iter()
        .filter(|group| query.status.is_none_or(|wanted| wanted == group.status))
        .map(|group| {
            let size = match group.status {
                DeviceStatus::Leaky => filtered.leaky,
                DeviceStatus::Silent => filtered.silent,
                DeviceStatus::Unknown => filtered.unknown,
                DeviceStatus::Compliant => filtered.compliant,
            };
            (group, size)
        })
        .collect();
    let matching = groups.iter().map(|(_, size)| size).sum();

    // The page may span groups: take from each what falls on the page.
    let page = query.page.max(1);
    let mut skip = u64::from(page - 1) * u64::from(query.per_page);
    let mut wanted = u64::from(query.per_page);
    let mut devices = Vec::new();
    for (group, size) in groups {
        if wanted == 0 {
            break;
        }
        if skip >= size {
            skip -= size;
            continue;
        }
        let take = wanted.min(size - skip);
        let (limit, offset) = (as_sql(take)?, as_sql(skip)?);
        let rows = match &query.check {
            None => transaction
                .prepare_cached(&page_sql(group.devices))?
                .query_map(
                    named_params! { ":cutoff": cutoff, ":limit": limit, ":offset": offset },
                    |row| device_row(row, query.staleness),
                )?
                .collect::<Result<_, _>>()?,
            Some(check) => match group.leaking {
                Some(condition) => {
                    let page = named_params! {
                        ":check": check, ":cutoff": cutoff, ":limit": limit, ":offset": offset,
                    };
                    leaking_page(&transaction, condition, page, query.staleness)?
                }
                None => Vec::new(),
            },
        };
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
    Ok(connection
        .prepare_cached(
            "SELECT COUNT(*),
                 COALESCE(SUM(CASE WHEN last_contact < :cutoff THEN 1 ELSE 0 END), 0),
                 COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'leaky' THEN 1 ELSE 0 END), 0),
                 COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'unknown' THEN 1 ELSE 0 END), 0),
                 COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'compliant' THEN 1 ELSE 0 END), 0)
             FROM devices",
        )?
        .query_row(named_params! { ":cutoff": cutoff }, |row| {
            Ok(Summary {
                total: count(row, 0)?,
                silent: count(row, 1)?,
                leaky: count(row, 2)?,
                unknown: count(row, 3)?,
                compliant: count(row, 4)?,
            })
        })?)
}

/// Devices per status among those leaking on `check`: all of them, as
/// `failures` counted them, less the silent ones (a range of an index),
/// are leaky — see [`Group::leaking`].
fn leaking_counts(
    connection: &Connection,
    cutoff: Ms,
    check: &str,
    failures: &[CheckFailures],
) -> Result<Summary, StoreError> {
    let total = failures
        .iter()
        .find(|failures| failures.check == check)
        .map_or(0, |failures| failures.devices);
    let silent = connection.prepare_cached(SILENT_LEAKING)?.query_row(
        named_params! { ":check": check, ":cutoff": cutoff },
        |row| count(row, 0),
    )?;
    Ok(Summary {
        total,
        silent,
        leaky: total.saturating_sub(silent),
        unknown: 0,
        compliant: 0,
    })
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
