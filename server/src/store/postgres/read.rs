//! The reads: tokens, keys, the policy and its re-grade, devices' states,
//! and the fleet report, whose queries are the SQL backends' shared
//! [`fleet`](crate::store::sql::fleet).

use deadpool_postgres::{GenericClient, Transaction};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use shipshape_core::Finding;
use shipshape_core::wire::DeviceStatus;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Client;
use crate::counts::{FleetCounts, Side, SilentCount};
use crate::grade::CheckState;
use crate::keyset::{GroupRead, Key, PageWalk, first_in_order};
use crate::model::{
    CurrentFacts, DeviceDetail, DeviceKey, DevicePage, DeviceRow, DeviceState, FleetQuery,
    FleetSummary, LastReport, RegradeProgress, ReportSummary, Staleness, StoredPolicy, TokenInfo,
    Transition,
};
use crate::store::sql::fleet::{
    CHECK_COUNTS, DEVICE_COLUMNS, Dialect, GRADED, Part, Walker, dense_from, group_parts,
};
use crate::store::sql::regrade::{self, CLOCKS_IN_RANGE, DEVICE_STATES, LEAKS_IN_RANGE};
use crate::store::sql::{
    DEVICE_PAGE_REPORTS, from_millis, parse_token_kind, parse_transition_kind, shown_status,
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

/// See [`crate::store::Store::current_facts`]: one primary-key lookup in each table.
pub(super) async fn current_facts(
    client: &impl GenericClient,
    device_id: &str,
    hash: &str,
) -> Result<Option<CurrentFacts>, StoreError> {
    let named: [(&str, Param<'_>); 1] = [(":device", &device_id)];
    let (sql, params) = numbered(sql::CURRENT_FACTS, &named);
    let statement = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(&statement, &params)
        .await?
        .map(|row| {
            Ok::<_, tokio_postgres::Error>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
        })
        .transpose()?;
    Ok(sql::current_facts(device_id, hash, row))
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
    let mut counts = FleetCounts::default();
    for status in GRADED {
        let part = Part::Status(status);
        let total = total(transaction, part).await?;
        counts.graded.add(status, total);
        let silent = silent_in(transaction, part, total, cutoff).await?;
        counts.silent.add(status, silent);
    }
    let statement = transaction.prepare_cached(CHECK_COUNTS).await?;
    counts.checks = transaction
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, count(row, 1)?)))
        .collect::<Result<_, StoreError>>()?;
    if let Some(check) = &query.check {
        let part = Part::Check(check);
        let total = total(transaction, part).await?;
        counts.silent_on_check = silent_in(transaction, part, total, cutoff).await?;
    }
    Ok(counts.summary(query))
}

/// How many devices the part holds (a maintained count).
async fn total(transaction: &Transaction<'_>, part: Part<'_>) -> Result<u64, StoreError> {
    let rows = query(transaction, part.total_sql(), &[(":of", &part.of())]).await?;
    count_of(&rows)
}

/// How many of the part's `total` devices are silent.
async fn silent_in(
    transaction: &Transaction<'_>,
    part: Part<'_>,
    total: u64,
    cutoff: i64,
) -> Result<u64, StoreError> {
    let mut silent = SilentCount::new(total);
    loop {
        let (side, cap) = silent.next();
        let counted = count_up_to(transaction, part, side, cap, cutoff).await?;
        if let Some(silent) = silent.counted(counted) {
            return Ok(silent);
        }
    }
}

/// How many of the part's devices are on `side`, up to `cap`.
async fn count_up_to(
    transaction: &Transaction<'_>,
    part: Part<'_>,
    side: Side,
    cap: u64,
    cutoff: i64,
) -> Result<u64, StoreError> {
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    let named: [(&str, Param<'_>); 3] = [(":of", &part.of()), (":cutoff", &cutoff), (":cap", &cap)];
    count_of(&query(transaction, &part.count_sql(side), &named).await?)
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

/// The devices of one group's read, in table order: their keys first, then
/// those devices in one query.
async fn group(
    transaction: &Transaction<'_>,
    read: &GroupRead<'_>,
    staleness: Staleness,
) -> Result<Vec<DeviceRow>, StoreError> {
    let cutoff = staleness.cutoff().as_millisecond();
    let mut parts = Vec::new();
    for (part, side) in group_parts(read.group, read.check) {
        parts.push(read_side(transaction, (part, side), &read.after, read.limit, cutoff).await?);
    }
    let keys = first_in_order(parts, read.limit);
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
    // Back in table order (a key per row: positions looked up, not searched).
    let place: std::collections::HashMap<&str, usize> =
        ids.iter().enumerate().map(|(at, id)| (*id, at)).collect();
    rows.sort_by_cached_key(|row| place.get(row.id.as_str()).copied());
    Ok(rows)
}

/// Up to `limit` keys of the part's devices on `side` after `after`, in
/// table order: walked within its budget, then, if that was not enough,
/// walked on when the side is dense and sorted from the contact index when
/// it is not.
async fn read_side(
    transaction: &Transaction<'_>,
    (part, side): (Part<'_>, Side),
    after: &Key,
    limit: u32,
    cutoff: i64,
) -> Result<Vec<Key>, StoreError> {
    // In growing pieces, each from the last key the one before read, as
    // SQLite steps: most walks need little more than their rows, and the
    // budget's worth is not read unless the walk comes to it.
    let sql = part.walk_sql(Dialect::Postgres);
    let mut walker = Walker::new(side, cutoff, limit);
    let mut from = after.clone();
    let mut piece = 2 * u64::from(limit) + 16;
    'walk: loop {
        let want = piece.min(walker.wants());
        let walk_limit = i64::try_from(want).unwrap_or(i64::MAX);
        let named: [(&str, Param<'_>); 5] = [
            (":of", &part.of()),
            (":key", &from.sort_key),
            (":hostname", &from.hostname),
            (":id", &from.id),
            (":walk", &walk_limit),
        ];
        let rows = query(transaction, &sql, &named).await?;
        for row in &rows {
            if walker.push(key(row)?, row.try_get::<_, i64>(3)?) {
                break 'walk;
            }
        }
        match rows.last() {
            Some(last) if rows.len() as u64 == want => from = key(last)?,
            _ => break,
        }
        piece = piece.saturating_mul(4);
    }
    let walked = walker.finish();
    let mut keys = walked.keys;
    let Some(last) = walked.stopped_at else {
        return Ok(keys);
    };
    let total = total(transaction, part).await?;
    let dense_from = dense_from(total);
    let dense = count_up_to(transaction, part, side, dense_from, cutoff).await? >= dense_from;
    let rest = i64::from(limit) - keys.len() as i64;
    let named: [(&str, Param<'_>); 6] = [
        (":of", &part.of()),
        (":cutoff", &cutoff),
        (":key", &last.sort_key),
        (":hostname", &last.hostname),
        (":id", &last.id),
        (":limit", &rest),
    ];
    let sql = part.side_sql(Dialect::Postgres, side, dense);
    for row in query(transaction, &sql, &named).await? {
        keys.push(key(&row)?);
    }
    Ok(keys)
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
fn count_of(rows: &[Row]) -> Result<u64, StoreError> {
    let row = rows
        .first()
        .ok_or_else(|| StoreError("a count returned no row".to_owned()))?;
    count(row, 0)
}

/// The key of a row that starts `(sort_key, hostname, id)`.
fn key(row: &Row) -> Result<Key, StoreError> {
    Ok(Key {
        sort_key: row.try_get(0)?,
        hostname: row.try_get(1)?,
        id: row.try_get(2)?,
    })
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
