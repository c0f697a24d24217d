//! The reads: tokens, keys, the policy and its re-grade, devices' states,
//! and the fleet report, whose queries are the SQL backends' shared
//! [`fleet`](crate::store::sql::fleet).

use deadpool_postgres::{GenericClient, Transaction};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use shipshape_core::wire::DeviceStatus;
use shipshape_core::{Facts, Finding};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Client;
use crate::counts::{FleetCounts, StatusCounts};
use crate::grade::CheckState;
use crate::keyset::{GroupRead, Key, PageWalk, first_in_order};
use crate::model::{
    DeviceDetail, DeviceKey, DevicePage, DeviceRow, DeviceState, FleetQuery, FleetSummary,
    LastReport, RegradeProgress, ReportSummary, Staleness, StoredPolicy, TokenInfo, Transition,
};
use crate::store::sql::fleet::{
    CHECK_COUNTS, DEVICE_COLUMNS, Dialect, GroupSql, SILENT_BY_STATUS, SILENT_LEAKING,
    STATUS_COUNTS, group_sql, walk_from,
};
use crate::store::sql::regrade::{self, CLOCKS_IN_RANGE, DEVICE_STATES, LEAKS_IN_RANGE};
use crate::store::sql::{
    DEVICE_PAGE_REPORTS, from_millis, parse_token_kind, parse_transition_kind, readable_facts,
    shown_status,
};
use crate::store::{StoreError, sql};

/// A statement parameter.
pub(super) type Param<'a> = &'a (dyn ToSql + Sync);

/// A read-only transaction on one snapshot, so that what one page shows
/// (counts and rows, a device and its history) agrees.
pub(super) async fn snapshot(client: &mut Client) -> Result<Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// A shared statement, whose parameters are named (`:cutoff`), for
/// PostgreSQL: each name it uses becomes `$1`, `$2`, … in the order of
/// `named`, and its value the parameter of that number. Names it does not
/// use are left out: PostgreSQL must know the type of every parameter.
pub(super) fn numbered<'a>(sql: &str, named: &[(&str, Param<'a>)]) -> (String, Vec<Param<'a>>) {
    let mut sql = sql.to_owned();
    let mut params = Vec::new();
    for (name, value) in named {
        if sql.contains(name) {
            params.push(*value);
            sql = sql.replace(name, &format!("${}", params.len()));
        }
    }
    (sql, params)
}

pub(super) async fn ping(client: &impl GenericClient) -> Result<(), StoreError> {
    client
        .query_one("SELECT COUNT(*) FROM schema_migrations", &[])
        .await?;
    Ok(())
}

pub(super) async fn list_tokens(client: &impl GenericClient) -> Result<Vec<TokenInfo>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT id, kind, uses_left, expires_at, created_at, revoked_at
             FROM tokens ORDER BY created_at, id",
        )
        .await?;
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| {
            let kind: String = row.try_get(1)?;
            let uses_left: Option<i64> = row.try_get(2)?;
            Ok(TokenInfo {
                id: row.try_get(0)?,
                kind: parse_token_kind(&kind).ok_or_else(|| {
                    StoreError(format!("unexpected token kind `{kind}` in the database"))
                })?,
                uses_left: uses_left.map(|uses| u32::try_from(uses.max(0)).unwrap_or(u32::MAX)),
                expires_at: optional_time(row, 3)?,
                created_at: time(row, 4)?,
                revoked_at: optional_time(row, 5)?,
            })
        })
        .collect()
}

pub(super) async fn is_admin_token(
    client: &impl GenericClient,
    hash: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT 1 FROM tokens
             WHERE hash = $1 AND kind = 'admin' AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)",
        )
        .await?;
    Ok(client
        .query_opt(&statement, &[&hash, &now.as_millisecond()])
        .await?
        .is_some())
}

pub(super) async fn device_key(
    client: &impl GenericClient,
    device_id: &str,
) -> Result<Option<DeviceKey>, StoreError> {
    let statement = client
        .prepare_cached("SELECT public_key, revoked_at FROM devices WHERE id = $1")
        .await?;
    let Some(row) = client.query_opt(&statement, &[&device_id]).await? else {
        return Ok(None);
    };
    let public_key: String = row.try_get(0)?;
    let revoked = row.try_get::<_, Option<i64>>(1)?.is_some();
    sql::device_key(device_id, &public_key, revoked).map(Some)
}

/// See [`crate::store::Store::last_facts`]: one primary-key lookup in each table.
pub(super) async fn last_facts(
    client: &impl GenericClient,
    device_id: &str,
) -> Result<Option<Facts>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT r.facts_json FROM devices d JOIN reports r ON r.id = d.last_report_id
             WHERE d.id = $1",
        )
        .await?;
    let json: Option<String> = match client.query_opt(&statement, &[&device_id]).await? {
        Some(row) => row.try_get(0)?,
        None => None,
    };
    Ok(readable_facts(device_id, json.as_deref()))
}

pub(super) async fn active_policy(
    client: &impl GenericClient,
) -> Result<Option<StoredPolicy>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT id, policy_text, etag, activated_at FROM policies ORDER BY id DESC LIMIT 1",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[]).await? else {
        return Ok(None);
    };
    Ok(Some(StoredPolicy {
        id: row.try_get(0)?,
        text: row.try_get(1)?,
        etag: row.try_get(2)?,
        activated_at: time(&row, 3)?,
    }))
}

/// A row of [`DEVICE_COLUMNS`].
fn device_row(row: &Row, staleness: Staleness) -> Result<DeviceRow, StoreError> {
    let id: String = row.try_get(0)?;
    Ok(DeviceRow {
        hostname: row.try_get(1)?,
        os: row.try_get(2)?,
        status: shown_status(status(row, 3)?, time(row, 8)?, staleness),
        failing_checks: json(row, 4, &id)?,
        last_seen: optional_time(row, 5)?,
        enrolled_at: time(row, 6)?,
        revoked: row.try_get::<_, Option<i64>>(7)?.is_some(),
        id,
    })
}

pub(super) async fn active_policy_id(
    client: &impl GenericClient,
) -> Result<Option<i64>, StoreError> {
    let statement = client.prepare_cached(sql::ACTIVE_POLICY_ID).await?;
    Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
}

/// The re-grade of the newest policy.
pub(super) async fn regrade_progress(
    client: &impl GenericClient,
) -> Result<Option<RegradeProgress>, StoreError> {
    let statement = client.prepare_cached(regrade::PROGRESS).await?;
    let Some(row) = client.query_opt(&statement, &[]).await? else {
        return Ok(None);
    };
    let state: String = row.try_get(1)?;
    Ok(Some(RegradeProgress {
        policy_id: row.try_get(0)?,
        state: regrade::parse_state(&state).ok_or_else(|| {
            StoreError(format!(
                "unexpected re-grade state `{state}` in the database"
            ))
        })?,
        devices: count(&row, 2)?,
        done: count(&row, 3)?,
        changed_status: count(&row, 4)?,
        started_at: time(&row, 5)?,
        finished_at: optional_time(&row, 6)?,
        after: row.try_get(7)?,
    }))
}

/// See [`crate::store::Store::device_states`]: the devices by their primary
/// key, their last facts by theirs, and their clocks and leaks as one range
/// each.
pub(super) async fn device_states(
    transaction: &Transaction<'_>,
    after: &str,
    limit: u32,
) -> Result<Vec<DeviceState>, StoreError> {
    let limit = i64::from(limit);
    let (sql, params) = numbered(DEVICE_STATES, &[(":after", &after), (":limit", &limit)]);
    let statement = transaction.prepare_cached(&sql).await?;
    let mut states = transaction
        .query(&statement, &params)
        .await?
        .iter()
        .map(|row| {
            let report_id: Option<String> = row.try_get(4)?;
            let facts_json: Option<String> = row.try_get(5)?;
            Ok(DeviceState {
                id: row.try_get(0)?,
                hostname: row.try_get(1)?,
                status: status(row, 2)?,
                checks: CheckState::default(),
                findings_json: row.try_get(3)?,
                last_report: report_id
                    .zip(facts_json)
                    .map(|(id, facts_json)| LastReport { id, facts_json }),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let Some(last) = states.last().map(|state| state.id.clone()) else {
        return Ok(states);
    };
    let range: [(&str, Param<'_>); 2] = [(":after", &after), (":last", &last)];
    let (sql, params) = numbered(CLOCKS_IN_RANGE, &range);
    let statement = transaction.prepare_cached(&sql).await?;
    let clocks = transaction
        .query(&statement, &params)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, time(row, 2)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let (sql, params) = numbered(LEAKS_IN_RANGE, &range);
    let statement = transaction.prepare_cached(&sql).await?;
    let leaks = transaction
        .query(&statement, &params)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    regrade::attach_checks(&mut states, clocks, leaks);
    Ok(states)
}

/// See [`crate::store::Store::fleet_summary`], in one snapshot.
pub(super) async fn fleet_summary(
    transaction: &Transaction<'_>,
    query: &FleetQuery,
) -> Result<FleetSummary, StoreError> {
    let cutoff = query.staleness.cutoff().as_millisecond();
    let mut counts = FleetCounts {
        graded: status_counts(transaction, STATUS_COUNTS, &[]).await?,
        ..FleetCounts::default()
    };
    let (sql, params) = numbered(SILENT_BY_STATUS, &[(":cutoff", &cutoff)]);
    counts.silent = status_counts(transaction, &sql, &params).await?;
    let statement = transaction.prepare_cached(CHECK_COUNTS).await?;
    counts.checks = transaction
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, count(row, 1)?)))
        .collect::<Result<_, StoreError>>()?;
    if let Some(check) = &query.check {
        let (sql, params) = numbered(SILENT_LEAKING, &[(":check", check), (":cutoff", &cutoff)]);
        let statement = transaction.prepare_cached(&sql).await?;
        counts.silent_on_check = count(&transaction.query_one(&statement, &params).await?, 0)?;
    }
    Ok(counts.summary(query))
}

/// Devices per status, read by `sql` as (status, count) rows.
async fn status_counts(
    transaction: &Transaction<'_>,
    sql: &str,
    params: &[Param<'_>],
) -> Result<StatusCounts, StoreError> {
    let statement = transaction.prepare_cached(sql).await?;
    let mut counts = StatusCounts::default();
    for row in transaction.query(&statement, params).await? {
        counts.add(status(&row, 0)?, count(&row, 1)?);
    }
    Ok(counts)
}

/// See [`crate::store::Store::fleet_devices`], in one snapshot.
pub(super) async fn fleet_devices(
    transaction: &Transaction<'_>,
    query: &FleetQuery,
) -> Result<DevicePage, StoreError> {
    let mut walk = PageWalk::new(query);
    while let Some(read) = walk.next_read() {
        let rows = group(transaction, &read, query.staleness).await?;
        walk.push(rows);
    }
    Ok(walk.finish())
}

/// The devices of one group's read, in table order: read whole, or their
/// keys first and then those devices in one query.
async fn group(
    transaction: &Transaction<'_>,
    read: &GroupRead<'_>,
    staleness: Staleness,
) -> Result<Vec<DeviceRow>, StoreError> {
    let cutoff = staleness.cutoff().as_millisecond();
    let limit = i64::from(read.limit);
    let group = read.group.as_str();
    let keys: Vec<Key> = match group_sql(Dialect::Postgres, read) {
        GroupSql::Rows(sql) => {
            let named = named(read, &cutoff, &limit, &group, &0);
            return query(transaction, &sql, &named)
                .await?
                .iter()
                .map(|row| device_row(row, staleness))
                .collect();
        }
        GroupSql::Keys(sql) => {
            let named = named(read, &cutoff, &limit, &group, &0);
            keys(&query(transaction, &sql, &named).await?)?
        }
        GroupSql::Silent(silent) => {
            let mut parts = Vec::new();
            for status in &silent.parts {
                let status = status.as_str();
                let devices = named(read, &cutoff, &limit, &status, &0);
                let devices = query(transaction, silent.devices, &devices).await?;
                let cap = walk_from(count_of(&devices)?);
                let named = named(read, &cutoff, &limit, &status, &cap);
                let silent_ones =
                    count_of(&query(transaction, silent.silent_up_to, &named).await?)?;
                if silent_ones == 0 {
                    continue;
                }
                let sql = silent.keys(silent_ones < cap);
                parts.push(keys(&query(transaction, &sql, &named).await?)?);
            }
            first_in_order(parts, read.limit)
        }
    };
    let ids: Vec<&str> = keys.iter().map(|key| key.id.as_str()).collect();
    let statement = transaction
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ANY($1)"
        ))
        .await?;
    let mut rows: Vec<DeviceRow> = transaction
        .query(&statement, &[&ids])
        .await?
        .iter()
        .map(|row| device_row(row, staleness))
        .collect::<Result<_, _>>()?;
    rows.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
    Ok(rows)
}

/// Every name a group's statements bind, with its value.
fn named<'a>(
    read: &'a GroupRead<'_>,
    cutoff: &'a i64,
    limit: &'a i64,
    status: &'a &'static str,
    cap: &'a i64,
) -> [(&'static str, Param<'a>); 8] {
    [
        (":status", status),
        (":check", &read.check),
        (":cutoff", cutoff),
        (":key", &read.after.sort_key),
        (":hostname", &read.after.hostname),
        (":id", &read.after.id),
        (":limit", limit),
        (":cap", cap),
    ]
}

/// The rows of a statement with named parameters.
async fn query(
    transaction: &Transaction<'_>,
    sql: &str,
    named: &[(&str, Param<'_>)],
) -> Result<Vec<Row>, StoreError> {
    let (sql, params) = numbered(sql, named);
    let statement = transaction.prepare_cached(&sql).await?;
    Ok(transaction.query(&statement, &params).await?)
}

/// The count a one-row, one-column read returns.
fn count_of(rows: &[Row]) -> Result<i64, StoreError> {
    let row = rows
        .first()
        .ok_or_else(|| StoreError("a count returned no row".to_owned()))?;
    Ok(row.try_get(0)?)
}

/// The keys a read in table order returns: `(sort_key, hostname, id)` rows.
fn keys(rows: &[Row]) -> Result<Vec<Key>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(Key {
                sort_key: row.try_get(0)?,
                hostname: row.try_get(1)?,
                id: row.try_get(2)?,
            })
        })
        .collect()
}

pub(super) async fn device(
    transaction: &Transaction<'_>,
    device_id: &str,
    staleness: Staleness,
) -> Result<Option<DeviceDetail>, StoreError> {
    let statement = transaction
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS}, f.findings_json
             FROM devices JOIN device_findings f ON f.device_id = devices.id WHERE id = $1"
        ))
        .await?;
    let Some(row) = transaction.query_opt(&statement, &[&device_id]).await? else {
        return Ok(None);
    };
    let device = device_row(&row, staleness)?;
    let findings: Vec<Finding> = json(&row, 9, device_id)?;
    let statement = transaction
        .prepare_cached(
            "SELECT check_id, kind, happened_at, report_id FROM transitions
             WHERE device_id = $1 ORDER BY happened_at DESC, id DESC",
        )
        .await?;
    let transitions = transaction
        .query(&statement, &[&device_id])
        .await?
        .iter()
        .map(|row| {
            let kind: String = row.try_get(1)?;
            Ok(Transition {
                check: row.try_get(0)?,
                kind: parse_transition_kind(&kind).ok_or_else(|| {
                    StoreError(format!(
                        "unexpected transition kind `{kind}` in the database"
                    ))
                })?,
                at: time(row, 2)?,
                report_id: row.try_get(3)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let statement = transaction
        .prepare_cached(
            "SELECT id, received_at, status, leaking_checks FROM reports
             WHERE device_id = $1 ORDER BY received_at DESC, id DESC LIMIT $2",
        )
        .await?;
    let reports = transaction
        .query(&statement, &[&device_id, &DEVICE_PAGE_REPORTS])
        .await?
        .iter()
        .map(|row| {
            Ok(ReportSummary {
                id: row.try_get(0)?,
                received_at: time(row, 1)?,
                status: status(row, 2)?,
                failing_checks: json(row, 3, device_id)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(DeviceDetail {
        device,
        findings,
        transitions,
        reports,
    }))
}

fn count(row: &Row, index: usize) -> Result<u64, StoreError> {
    let count: i64 = row.try_get(index)?;
    u64::try_from(count)
        .map_err(|_| StoreError(format!("unexpected count {count} in the database")))
}

pub(super) fn time(row: &Row, index: usize) -> Result<Timestamp, StoreError> {
    from_millis(row.try_get(index)?)
}

fn optional_time(row: &Row, index: usize) -> Result<Option<Timestamp>, StoreError> {
    row.try_get::<_, Option<i64>>(index)?
        .map(from_millis)
        .transpose()
}

pub(super) fn status(row: &Row, index: usize) -> Result<DeviceStatus, StoreError> {
    let status: String = row.try_get(index)?;
    status.parse().map_err(|message: String| {
        StoreError(format!("unexpected status in the database: {message}"))
    })
}

/// A column of JSON, of device `device_id`.
fn json<T: DeserializeOwned>(row: &Row, index: usize, device_id: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(index)?;
    serde_json::from_str(&text).map_err(|error| {
        StoreError(format!(
            "unreadable JSON in column {} of device {device_id}: {error}",
            row.columns()[index].name()
        ))
    })
}
