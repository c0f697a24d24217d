//! The fleet report's reads on SQLite: its counts and the pages of its
//! device table, by the shared statements and walk of
//! [`sql::fleet`](crate::store::sql::fleet).

use rusqlite::{Connection, ToSql, named_params};

use super::read::{count, device_row};
use super::{Ms, StatusColumn};
use crate::counts::{FleetCounts, StatusCounts};
use crate::keyset::{GroupRead, Key, PageWalk, first_in_order};
use crate::model::{DevicePage, DeviceRow, FleetQuery, FleetSummary, Staleness};
use crate::store::StoreError;
use crate::store::sql::fleet::{
    CHECK_COUNTS, DEVICE_COLUMNS, Dialect, GroupSql, SILENT_BY_STATUS, SILENT_LEAKING,
    STATUS_COUNTS, group_sql, uses, walk_from,
};

/// See [`crate::store::Store::fleet_summary`].
pub(super) fn summary(
    connection: &Connection,
    query: &FleetQuery,
) -> Result<FleetSummary, StoreError> {
    // One snapshot for all the counts, so they agree.
    let transaction = connection.unchecked_transaction()?;
    let cutoff = Ms(query.staleness.cutoff());
    let mut counts = FleetCounts::default();
    let statuses = |sql: &str, params: &[(&str, &dyn ToSql)]| -> Result<StatusCounts, StoreError> {
        let mut counts = StatusCounts::default();
        let mut statement = transaction.prepare_cached(sql)?;
        let mut rows = statement.query(params)?;
        while let Some(row) = rows.next()? {
            let StatusColumn(status) = row.get(0)?;
            counts.add(status, count(row, 1)?);
        }
        Ok(counts)
    };
    counts.graded = statuses(STATUS_COUNTS, &[])?;
    counts.silent = statuses(SILENT_BY_STATUS, named_params! { ":cutoff": cutoff })?;
    counts.checks = transaction
        .prepare_cached(CHECK_COUNTS)?
        .query_map([], |row| Ok((row.get(0)?, count(row, 1)?)))?
        .collect::<Result<_, _>>()?;
    if let Some(check) = &query.check {
        counts.silent_on_check = transaction.prepare_cached(SILENT_LEAKING)?.query_row(
            named_params! { ":check": check, ":cutoff": cutoff },
            |row| count(row, 0),
        )?;
    }
    Ok(counts.summary(query))
}

/// See [`crate::store::Store::fleet_devices`].
pub(super) fn devices(
    connection: &Connection,
    query: &FleetQuery,
) -> Result<DevicePage, StoreError> {
    let transaction = connection.unchecked_transaction()?;
    let mut walk = PageWalk::new(query);
    while let Some(read) = walk.next_read() {
        let rows = group(&transaction, &read, query.staleness)?;
        walk.push(rows);
    }
    Ok(walk.finish())
}

/// The devices of one group's read, in table order.
fn group(
    connection: &Connection,
    read: &GroupRead<'_>,
    staleness: Staleness,
) -> Result<Vec<DeviceRow>, StoreError> {
    let cutoff = Ms(staleness.cutoff());
    let limit = i64::from(read.limit);
    let group = StatusColumn(read.group);
    let keys: Vec<Key> = match group_sql(Dialect::Sqlite, read) {
        GroupSql::Rows(sql) => {
            let named = named(read, &cutoff, &limit, &group, &0);
            return Ok(connection
                .prepare_cached(&sql)?
                .query_map(&*uses(&sql, named), |row| device_row(row, staleness))?
                .collect::<Result<_, _>>()?);
        }
        GroupSql::Keys(sql) => {
            let named = named(read, &cutoff, &limit, &group, &0);
            keys(connection, &sql, &uses(&sql, named))?
        }
        GroupSql::Silent(silent) => {
            let mut parts = Vec::new();
            for status in &silent.parts {
                let status = StatusColumn(*status);
                let one = |sql: &str, cap: i64| -> Result<i64, StoreError> {
                    Ok(connection.prepare_cached(sql)?.query_row(
                        &*uses(sql, named(read, &cutoff, &limit, &status, &cap)),
                        |row| row.get(0),
                    )?)
                };
                let cap = walk_from(one(silent.devices, 0)?);
                let silent_ones = one(silent.silent_up_to, cap)?;
                if silent_ones == 0 {
                    continue;
                }
                let sql = silent.keys(silent_ones < cap);
                let named = named(read, &cutoff, &limit, &status, &cap);
                parts.push(keys(connection, &sql, &uses(&sql, named))?);
            }
            first_in_order(parts, read.limit)
        }
    };
    let mut device = connection.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"
    ))?;
    let mut rows = Vec::with_capacity(keys.len());
    for key in &keys {
        rows.push(device.query_row([&key.id], |row| device_row(row, staleness))?);
    }
    Ok(rows)
}

/// Every name a group's statements bind, with its value.
fn named<'a>(
    read: &'a GroupRead<'_>,
    cutoff: &'a Ms,
    limit: &'a i64,
    status: &'a StatusColumn,
    cap: &'a i64,
) -> [(&'static str, &'a dyn ToSql); 8] {
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

/// The keys a read in table order returns: `(sort_key, hostname, id)` rows.
fn keys(
    connection: &Connection,
    sql: &str,
    params: &[(&str, &dyn ToSql)],
) -> Result<Vec<Key>, StoreError> {
    Ok(connection
        .prepare_cached(sql)?
        .query_map(params, |row| {
            Ok(Key {
                sort_key: row.get(0)?,
                hostname: row.get(1)?,
                id: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}
