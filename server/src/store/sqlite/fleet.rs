//! The fleet report's reads: its counts and the pages of its device table.
//!
//! The counts come from `status_counts` and `check_counts`, kept in step by
//! the writes, less the silent devices, which are a range of
//! `devices_by_contact` (or `device_leaks_by_contact`) below the cutoff: the
//! cost grows with the number of silent devices, never with the fleet.
//!
//! A page is walked group by group ([`PageWalk`]), each group a range of an
//! index in table order that starts after the cursor's key, so the first
//! page and the ten-thousandth cost the same:
//!
//! - leaky, unknown, compliant: `devices_in_table_order` from
//!   `(status, key)` on, passing over the silent devices in the index;
//! - silent: when few devices are silent, their keys from the range of
//!   `devices_by_contact`, sorted; when many are, the three status walks
//!   merged, keeping the silent ones;
//! - leaking on a check: the same over `device_leaks`, which carries each
//!   leaking device's key and last contact. Only the devices on the page are
//!   then looked up.
//!
//! A device is silent when its last contact (its last report, or its
//! enrollment before the first one) is older than the cutoff; otherwise it
//! has the status of its last grade, and a device that never reported is
//! unknown. Failures by check count every device whose last grade leaks on
//! the check, silent ones included: they match the device table filtered by
//! that check.

use rusqlite::{Connection, ToSql, named_params};
use shipshape_core::wire::DeviceStatus;

use super::read::{DEVICE_COLUMNS, count, device_row};
use super::{Ms, StatusColumn};
use crate::counts::{FleetCounts, StatusCounts};
use crate::keyset::{GroupRead, PageWalk};
use crate::model::{DevicePage, DeviceRow, FleetQuery, FleetSummary, Staleness};
use crate::store::StoreError;

/// Past this many silent devices, the silent group is read by walking the
/// table order rather than by sorting all of their keys.
pub(super) const MANY_SILENT: i64 = 10_000;

/// How many devices are silent, counted up to [`MANY_SILENT`].
pub(super) const SILENT_UP_TO: &str = "SELECT COUNT(*) FROM (
     SELECT 1 FROM devices WHERE last_contact < :cutoff LIMIT :many)";
/// How many devices leaking on `:check` are silent, up to [`MANY_SILENT`].
pub(super) const SILENT_LEAKING_UP_TO: &str = "SELECT COUNT(*) FROM (
     SELECT 1 FROM device_leaks
     WHERE check_id = :check AND last_contact < :cutoff LIMIT :many)";

/// The silent devices by the status of their last grade: a range of
/// `devices_by_contact` (`+status` keeps the planner off an index that only
/// saves the grouping).
pub(super) const SILENT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM devices
     WHERE last_contact < :cutoff GROUP BY +status";
/// How many devices leaking on `:check` are silent.
pub(super) const SILENT_LEAKING: &str = "SELECT COUNT(*) FROM device_leaks
     WHERE check_id = :check AND last_contact < :cutoff";

/// The key condition every group read shares: after the cursor's key.
const AFTER: &str = "(sort_key, hostname, id) > (:key, :hostname, :id)";
const LEAK_AFTER: &str = "(sort_key, hostname, device_id) > (:key, :hostname, :id)";

/// A page of a graded group (`:status`): its devices that are not silent.
pub(super) fn graded_group_sql() -> String {
    format!(
        "SELECT {DEVICE_COLUMNS} FROM devices
         WHERE status = :status AND last_contact >= :cutoff AND {AFTER}
         ORDER BY sort_key, hostname, id LIMIT :limit"
    )
}

/// The ids of a page of silent devices, when they are few: their keys in a
/// range of `devices_by_contact`, sorted.
pub(super) fn few_silent_sql() -> String {
    format!(
        "SELECT id FROM devices INDEXED BY devices_by_contact
         WHERE last_contact < :cutoff AND {AFTER}
         ORDER BY sort_key, hostname, id LIMIT :limit"
    )
}

/// The ids of a page of silent devices, when they are many: the walks of
/// the three graded groups, merged in table order.
pub(super) fn many_silent_sql() -> String {
    let walk = |status: &str| {
        format!(
            "SELECT id, sort_key, hostname FROM devices
             WHERE status = '{status}' AND last_contact < :cutoff AND {AFTER}"
        )
    };
    // A compound SELECT, not a subquery: SQLite merges its ordered arms
    // (a subquery would be sorted whole).
    format!(
        "{} UNION ALL {} UNION ALL {} ORDER BY sort_key, hostname, id LIMIT :limit",
        walk("leaky"),
        walk("unknown"),
        walk("compliant")
    )
}

/// The ids of a page of the devices leaking on `:check` whose last contact
/// `contact` keeps, walked in table order.
pub(super) fn leaking_walk_sql(contact: &str) -> String {
    format!(
        "SELECT device_id FROM device_leaks INDEXED BY device_leaks_in_table_order
         WHERE check_id = :check AND last_contact {contact} :cutoff AND {LEAK_AFTER}
         ORDER BY sort_key, hostname, device_id LIMIT :limit"
    )
}

/// The ids of a page of the silent devices leaking on `:check`, when they
/// are few: a range of `device_leaks_by_contact`, sorted.
pub(super) fn few_silent_leaking_sql() -> String {
    format!(
        "SELECT device_id FROM device_leaks INDEXED BY device_leaks_by_contact
         WHERE check_id = :check AND last_contact < :cutoff AND {LEAK_AFTER}
         ORDER BY sort_key, hostname, device_id LIMIT :limit"
    )
}

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
    counts.graded = statuses("SELECT status, devices FROM status_counts", &[])?;
    counts.silent = statuses(SILENT_BY_STATUS, named_params! { ":cutoff": cutoff })?;
    counts.checks = transaction
        .prepare_cached("SELECT check_id, devices FROM check_counts")?
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
    let (key, hostname, id) = (&read.after.sort_key, &read.after.hostname, &read.after.id);
    let limit = i64::from(read.limit);
    let silent = read.group == DeviceStatus::Silent;
    let ids: Vec<String> = match (read.check, silent) {
        (None, false) => {
            let status = StatusColumn(read.group);
            return Ok(connection
                .prepare_cached(&graded_group_sql())?
                .query_map(
                    named_params! {
                        ":status": status, ":cutoff": cutoff, ":key": key,
                        ":hostname": hostname, ":id": id, ":limit": limit,
                    },
                    |row| device_row(row, staleness),
                )?
                .collect::<Result<_, _>>()?);
        }
        (None, true) => {
            let many: i64 = connection.prepare_cached(SILENT_UP_TO)?.query_row(
                named_params! { ":cutoff": cutoff, ":many": MANY_SILENT },
                |row| row.get(0),
            )?;
            let sql = if many >= MANY_SILENT {
                many_silent_sql()
            } else {
                few_silent_sql()
            };
            ids(
                connection,
                &sql,
                named_params! {
                    ":cutoff": cutoff, ":key": key, ":hostname": hostname, ":id": id,
                    ":limit": limit,
                },
            )?
        }
        (Some(check), false) => ids(
            connection,
            &leaking_walk_sql(">="),
            named_params! {
                ":check": check, ":cutoff": cutoff, ":key": key, ":hostname": hostname,
                ":id": id, ":limit": limit,
            },
        )?,
        (Some(check), true) => {
            let many: i64 = connection.prepare_cached(SILENT_LEAKING_UP_TO)?.query_row(
                named_params! { ":check": check, ":cutoff": cutoff, ":many": MANY_SILENT },
                |row| row.get(0),
            )?;
            let sql = if many >= MANY_SILENT {
                leaking_walk_sql("<")
            } else {
                few_silent_leaking_sql()
            };
            ids(
                connection,
                &sql,
                named_params! {
                    ":check": check, ":cutoff": cutoff, ":key": key, ":hostname": hostname,
                    ":id": id, ":limit": limit,
                },
            )?
        }
    };
    let mut device = connection.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"
    ))?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in &ids {
        rows.push(device.query_row([id], |row| device_row(row, staleness))?);
    }
    Ok(rows)
}

fn ids(
    connection: &Connection,
    sql: &str,
    params: &[(&str, &dyn ToSql)],
) -> Result<Vec<String>, StoreError> {
    Ok(connection
        .prepare_cached(sql)?
        .query_map(params, |row| row.get(0))?
        .collect::<Result<_, _>>()?)
}
