//! The fleet report's reads on SQLite: its counts and the pages of its
//! device table, by the shared statements and walk of
//! [`sql::fleet`](crate::store::sql::fleet).

use rusqlite::{Connection, ToSql, named_params};

use super::read::{count, device_row};
use super::{Ms, StatusColumn};
use crate::counts::{FleetCounts, StatusCounts};
use crate::keyset::{GroupRead, PageWalk};
use crate::model::{DevicePage, DeviceRow, FleetQuery, FleetSummary, Staleness};
use crate::store::StoreError;
use crate::store::sql::fleet::{
    CHECK_COUNTS, DEVICE_COLUMNS, Dialect, GroupSql, MANY_SILENT, SILENT_LEAKING, STATUS_COUNTS,
    group_sql, silent_by_status_sql, silent_count_sql, uses,
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
    counts.silent = statuses(
        &silent_by_status_sql(Dialect::Sqlite),
        named_params! { ":cutoff": cutoff },
    )?;
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
    let status = StatusColumn(read.group);
    let limit = i64::from(read.limit);
    let named: [(&str, &dyn ToSql); 8] = [
        (":status", &status),
        (":check", &read.check),
        (":cutoff", &cutoff),
        (":key", &read.after.sort_key),
        (":hostname", &read.after.hostname),
        (":id", &read.after.id),
        (":limit", &limit),
        (":many", &MANY_SILENT),
    ];
    let silent = match silent_count_sql(read) {
        Some(sql) => connection
            .prepare_cached(sql)?
            .query_row(&*uses(sql, named), |row| row.get(0))?,
        None => 0,
    };
    let sql = match group_sql(Dialect::Sqlite, read, silent) {
        GroupSql::Rows(sql) => {
            return Ok(connection
                .prepare_cached(&sql)?
                .query_map(&*uses(&sql, named), |row| device_row(row, staleness))?
                .collect::<Result<_, _>>()?);
        }
        GroupSql::Ids(sql) => sql,
    };
    let ids: Vec<String> = connection
        .prepare_cached(&sql)?
        .query_map(&*uses(&sql, named), |row| row.get(0))?
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
