//! The fleet report's reads on SQLite: its counts and the pages of its
//! device table, by the shared statements and walk of
//! [`sql::fleet`](crate::store::sql::fleet).

use rusqlite::{Connection, ToSql, named_params};

use super::Ms;
use super::read::{count, device_row};
use crate::counts::{FleetCounts, Side, SilentCount};
use crate::keyset::{GroupRead, Key, PageWalk, first_in_order};
use crate::model::{DevicePage, DeviceRow, FleetQuery, FleetSummary, Staleness};
use crate::store::StoreError;
use crate::store::sql::fleet::{
    CHECK_COUNTS, DEVICE_COLUMNS, Dialect, GRADED, Part, dense_from, group_parts, uses, walk,
    walk_rows,
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
    for status in GRADED {
        let part = Part::Status(status);
        let total = total(&transaction, part)?;
        counts.graded.add(status, total);
        counts
            .silent
            .add(status, silent_in(&transaction, part, total, cutoff)?);
    }
    counts.checks = transaction
        .prepare_cached(CHECK_COUNTS)?
        .query_map([], |row| Ok((row.get(0)?, count(row, 1)?)))?
        .collect::<Result<_, _>>()?;
    if let Some(check) = &query.check {
        let part = Part::Check(check);
        let total = total(&transaction, part)?;
        counts.silent_on_check = silent_in(&transaction, part, total, cutoff)?;
    }
    Ok(counts.summary(query))
}

/// How many devices the part holds (a maintained count).
fn total(connection: &Connection, part: Part<'_>) -> Result<u64, StoreError> {
    Ok(connection
        .prepare_cached(part.total_sql())?
        .query_row(named_params! { ":of": part.of() }, |row| count(row, 0))?)
}

/// How many of the part's `total` devices are silent.
fn silent_in(
    connection: &Connection,
    part: Part<'_>,
    total: u64,
    cutoff: Ms,
) -> Result<u64, StoreError> {
    let mut silent = SilentCount::new(total);
    loop {
        let (side, cap) = silent.next();
        if let Some(silent) = silent.counted(count_up_to(connection, part, side, cap, cutoff)?) {
            return Ok(silent);
        }
    }
}

/// How many of the part's devices are on `side`, up to `cap`.
fn count_up_to(
    connection: &Connection,
    part: Part<'_>,
    side: Side,
    cap: u64,
    cutoff: Ms,
) -> Result<u64, StoreError> {
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    Ok(connection
        .prepare_cached(&part.count_sql(side))?
        .query_row(
            named_params! { ":of": part.of(), ":cutoff": cutoff, ":cap": cap },
            |row| count(row, 0),
        )?)
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
    let mut parts = Vec::new();
    for (part, side) in group_parts(read.group, read.check) {
        parts.push(read_side(
            connection,
            (part, side),
            &read.after,
            read.limit,
            cutoff,
        )?);
    }
    let keys = first_in_order(parts, read.limit);
    let mut device = connection.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"
    ))?;
    let mut rows = Vec::with_capacity(keys.len());
    for key in &keys {
        rows.push(device.query_row([&key.id], |row| device_row(row, staleness))?);
    }
    Ok(rows)
}

/// Up to `limit` keys of the part's devices on `side` after `after`, in
/// table order: walked within its budget, then, if that was not enough,
/// walked on when the side is dense and sorted from the contact index when
/// it is not.
fn read_side(
    connection: &Connection,
    (part, side): (Part<'_>, Side),
    after: &Key,
    limit: u32,
    cutoff: Ms,
) -> Result<Vec<Key>, StoreError> {
    let walked = {
        let mut statement = connection.prepare_cached(&part.walk_sql(Dialect::Sqlite))?;
        let rows = statement.query_map(
            named_params! {
                ":of": part.of(), ":key": after.sort_key, ":hostname": after.hostname,
                ":id": after.id, ":walk": walk_rows(limit),
            },
            |row| Ok((key(row)?, row.get::<_, Ms>(3)?.0.as_millisecond())),
        )?;
        walk(rows, side, cutoff.0.as_millisecond(), limit)?
    };
    let mut keys = walked.keys;
    let Some(last) = walked.stopped_at else {
        return Ok(keys);
    };
    let total = total(connection, part)?;
    let dense_from = dense_from(total);
    let dense = count_up_to(connection, part, side, dense_from, cutoff)? >= dense_from;
    let rest = i64::from(limit) - keys.len() as i64;
    let sql = part.side_sql(Dialect::Sqlite, side, dense);
    let named: [(&str, &dyn ToSql); 6] = [
        (":of", &part.of()),
        (":cutoff", &cutoff),
        (":key", &last.sort_key),
        (":hostname", &last.hostname),
        (":id", &last.id),
        (":limit", &rest),
    ];
    let mut statement = connection.prepare_cached(&sql)?;
    for found in statement.query_map(&*uses(&sql, named), key)? {
        keys.push(found?);
    }
    Ok(keys)
}

/// The key of a row that starts `(sort_key, hostname, id)`.
fn key(row: &rusqlite::Row<'_>) -> rusqlite::Result<Key> {
    Ok(Key {
        sort_key: row.get(0)?,
        hostname: row.get(1)?,
        id: row.get(2)?,
    })
}
