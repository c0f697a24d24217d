//! The fleet report's queries: its counts and the pages of its device table,
//! the same SQL for both backends but for the planner hints of [`Dialect`].
//!
//! The counts come from `status_counts` and `check_counts`, kept in step by
//! the writes, each count the sum of its shards' rows. Silence depends on
//! the time of the read, so the silent devices are counted: a range of
//! `devices_by_contact` (per status) or of `device_leaks_by_contact` (per
//! check) on the smaller side of the cutoff ([`crate::counts::SilentCount`]),
//! which is little on a normal day (few are silent) and after an outage
//! (nearly all are).
//!
//! A page is walked group by group ([`crate::keyset::PageWalk`]), each group
//! read in table order after the cursor's key, so the first page and the
//! ten-thousandth cost the same. A group is a [`Part`] (a status's devices,
//! or the devices leaking on a check) on one [`Side`] of the cutoff — the
//! silent group is the silent sides of the three statuses, merged. A part
//! is read by walking its index in table order (`devices_in_table_order`,
//! `device_leaks_in_table_order`), passing over the devices on the other
//! side of the cutoff, for at most [`WALK_BUDGET`] entries a row ([`walk`]).
//! A walk that runs out of budget goes on only when the side holds one in
//! [`DENSE_FROM_ONE_IN`] of the part's devices or more; otherwise its
//! devices are few, and their keys come sorted from their range of the
//! contact index. Only the devices on the page are then looked up.
//!
//! A device is silent when its last contact (its last report, or its
//! enrollment before the first one) is older than the cutoff; otherwise it
//! has the status of its last grade, and a device that never reported is
//! unknown. Failures by check count every device whose last grade leaks on
//! the check, silent ones included: they match the device table filtered by
//! that check.
//!
//! The statements name their parameters (`:of`, `:cutoff`, `:key`,
//! `:hostname`, `:id`, `:limit`, `:walk`, `:cap`); SQLite binds them by
//! name, PostgreSQL numbers them. A backend binds the names a statement
//! uses ([`uses`]).

use shipshape_core::wire::DeviceStatus;

use crate::counts::Side;
use crate::keyset::Key;

/// Where the two dialects differ in these reads: SQLite's planner takes
/// hints that PostgreSQL has no syntax for (nor needs: it weighs the
/// indexes by their statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `INDEXED BY index`, where the dialect can insist on an index.
    fn indexed_by(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!("INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }
}

/// The parameter names of the fleet's statements: those `sql` uses.
pub(in crate::store) fn uses<'a, T>(
    sql: &str,
    named: impl IntoIterator<Item = (&'a str, T)>,
) -> Vec<(&'a str, T)> {
    named
        .into_iter()
        .filter(|(name, _)| sql.contains(name))
        .collect()
}

/// The columns of `devices` a table row reads, in this order.
pub(in crate::store) const DEVICE_COLUMNS: &str = "id, hostname, os_name, status, \
     leaking_checks, last_seen, enrolled_at, revoked_at, last_contact";

/// Devices per leaking check: the sum of each check's shards.
/// (PostgreSQL sums BIGINTs as NUMERIC: the cast brings it back.)
pub(in crate::store) const CHECK_COUNTS: &str =
    "SELECT check_id, CAST(SUM(devices) AS BIGINT) FROM check_counts GROUP BY check_id";

/// The graded statuses, whose silent sides make the silent group.
pub(in crate::store) const GRADED: [DeviceStatus; 3] = [
    DeviceStatus::Leaky,
    DeviceStatus::Unknown,
    DeviceStatus::Compliant,
];

/// How many index entries a walk may pass over per row it is to return
/// before it asks whether its side is dense enough to walk.
pub(in crate::store) const WALK_BUDGET: u64 = 20;

/// A side whose devices are fewer than one in this many of its part's is
/// read from the contact index and sorted rather than walked.
pub(in crate::store) const DENSE_FROM_ONE_IN: u64 = 20;

/// The devices a read is about: a status's, or those leaking on a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Part<'a> {
    Status(DeviceStatus),
    Check(&'a str),
}

impl<'a> Part<'a> {
    /// What `:of` binds: the status or the check id.
    pub(in crate::store) fn of(self) -> &'a str {
        match self {
            Part::Status(status) => status.as_str(),
            Part::Check(check) => check,
        }
    }

    /// The table, the condition that picks the part, and its id column.
    fn source(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Part::Status(_) => ("devices", "status = :of", "id"),
            Part::Check(_) => ("device_leaks", "check_id = :of", "device_id"),
        }
    }

    fn indexes(self) -> (&'static str, &'static str) {
        match self {
            Part::Status(_) => ("devices_in_table_order", "devices_by_contact"),
            Part::Check(_) => ("device_leaks_in_table_order", "device_leaks_by_contact"),
        }
    }

    /// Its devices after `(:key, :hostname, :id)` in table order, with
    /// their last contact, up to `:walk` ([`walk_rows`]): a walk.
    pub(in crate::store) fn walk_sql(self, dialect: Dialect) -> String {
        let (table, of, id) = self.source();
        let (in_order, _) = self.indexes();
        format!(
            "SELECT sort_key, hostname, {id}, last_contact FROM {table} {}
             WHERE {of} AND (sort_key, hostname, {id}) > (:key, :hostname, :id)
             ORDER BY sort_key, hostname, {id} LIMIT :walk",
            dialect.indexed_by(in_order)
        )
    }

    /// Up to `:limit` of its devices on `side` after the key, in table
    /// order: walked (`dense`), or sorted from their range of the contact
    /// index.
    pub(in crate::store) fn side_sql(self, dialect: Dialect, side: Side, dense: bool) -> String {
        let (table, of, id) = self.source();
        let (in_order, by_contact) = self.indexes();
        let index = if dense { in_order } else { by_contact };
        format!(
            "SELECT sort_key, hostname, {id} FROM {table} {}
             WHERE {of} AND last_contact {} :cutoff
               AND (sort_key, hostname, {id}) > (:key, :hostname, :id)
             ORDER BY sort_key, hostname, {id} LIMIT :limit",
            dialect.indexed_by(index),
            op(side)
        )
    }

    /// How many of its devices are on `side`, up to `:cap`: a range of the
    /// contact index.
    pub(in crate::store) fn count_sql(self, side: Side) -> String {
        let (table, of, _) = self.source();
        format!(
            "SELECT COUNT(*) FROM (
                 SELECT 1 FROM {table} WHERE {of} AND last_contact {} :cutoff LIMIT :cap
             ) AS counted",
            op(side)
        )
    }

    /// How many devices it holds (a maintained count: the sum of its shards).
    pub(in crate::store) fn total_sql(self) -> &'static str {
        match self {
            Part::Status(_) => {
                "SELECT CAST(COALESCE(SUM(devices), 0) AS BIGINT) FROM status_counts
                 WHERE status = :of"
            }
            Part::Check(_) => {
                "SELECT CAST(COALESCE(SUM(devices), 0) AS BIGINT) FROM check_counts
                 WHERE check_id = :of"
            }
        }
    }
}

fn op(side: Side) -> &'static str {
    match side {
        Side::Contacted => ">=",
        Side::Silent => "<",
    }
}

/// The parts and sides of a group's read, in the order [`walk`] reads them:
/// the silent group is the silent side of every graded status.
pub(in crate::store) fn group_parts<'a>(
    group: DeviceStatus,
    check: Option<&'a str>,
) -> Vec<(Part<'a>, Side)> {
    match (check, group) {
        (None, DeviceStatus::Silent) => GRADED
            .into_iter()
            .map(|status| (Part::Status(status), Side::Silent))
            .collect(),
        (None, status) => vec![(Part::Status(status), Side::Contacted)],
        (Some(check), DeviceStatus::Silent) => vec![(Part::Check(check), Side::Silent)],
        (Some(check), _) => vec![(Part::Check(check), Side::Contacted)],
    }
}

/// How many rows a walk for `limit` rows may read (`:walk`): the rows it
/// is to return and its budget of the other side's.
pub(in crate::store) fn walk_rows(limit: u32) -> i64 {
    i64::try_from(budget(limit) + u64::from(limit)).unwrap_or(i64::MAX)
}

fn budget(limit: u32) -> u64 {
    WALK_BUDGET * u64::from(limit) + 1000
}

/// What a walk found: its side's keys, in table order, and where it
/// stopped when it passed over its budget of the other side's devices
/// before it found `limit` of them (`None`: it has them, or the part ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct Walked {
    pub keys: Vec<Key>,
    pub stopped_at: Option<Key>,
}

/// Walks the rows of [`Part::walk_sql`], `(key, last contact in ms)`,
/// keeping those on `side` of `cutoff` (ms).
pub(in crate::store) fn walk<E>(
    rows: impl IntoIterator<Item = Result<(Key, i64), E>>,
    side: Side,
    cutoff: i64,
    limit: u32,
) -> Result<Walked, E> {
    let mut walker = Walker::new(side, cutoff, limit);
    for row in rows {
        let (key, contact) = row?;
        if walker.push(key, contact) {
            break;
        }
    }
    Ok(walker.finish())
}

/// A walk fed row by row, for a backend that fetches the rows of
/// [`Part::walk_sql`] in pieces ([`Walker::wants`] says how many more it
/// can take).
#[derive(Debug)]
pub(in crate::store) struct Walker {
    side: Side,
    cutoff: i64,
    limit: u32,
    budget: u64,
    passed: u64,
    walked: Walked,
}

impl Walker {
    pub(in crate::store) fn new(side: Side, cutoff: i64, limit: u32) -> Self {
        Walker {
            side,
            cutoff,
            limit,
            budget: budget(limit),
            passed: 0,
            walked: Walked {
                keys: Vec::new(),
                stopped_at: None,
            },
        }
    }

    /// Takes the next row; `true` once the walk is over (it has its rows, or
    /// passed over its budget).
    pub(in crate::store) fn push(&mut self, key: Key, contact: i64) -> bool {
        if (contact < self.cutoff) == (self.side == Side::Silent) {
            self.walked.keys.push(key);
            self.walked.keys.len() == self.limit as usize
        } else {
            self.passed += 1;
            if self.passed == self.budget {
                self.walked.stopped_at = Some(key);
            }
            self.passed == self.budget
        }
    }

    /// The most rows the walk can still take.
    pub(in crate::store) fn wants(&self) -> u64 {
        (u64::from(self.limit) - self.walked.keys.len() as u64) + (self.budget - self.passed)
    }

    pub(in crate::store) fn finish(self) -> Walked {
        self.walked
    }
}

/// How many devices of a side among the part's `total` make it dense
/// enough to walk on: one in [`DENSE_FROM_ONE_IN`] (at least one). Bound
/// as `:cap` to count them.
pub(in crate::store) fn dense_from(total: u64) -> u64 {
    total / DENSE_FROM_ONE_IN + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Key {
        Key {
            sort_key: format!("host-{n:03}"),
            hostname: format!("host-{n:03}"),
            id: n.to_string(),
        }
    }

    /// Rows of a walk: device `n` silent when `silent(n)`.
    fn rows(devices: u32, silent: impl Fn(u32) -> bool) -> Vec<Result<(Key, i64), ()>> {
        (0..devices)
            .map(|n| Ok((key(n), if silent(n) { 10 } else { 100 })))
            .collect()
    }

    #[test]
    fn a_walk_keeps_its_side_within_its_budget() {
        // Every other device silent: a page of each side at once.
        let walked = walk(rows(100, |n| n % 2 == 0), Side::Silent, 50, 10).unwrap();
        assert_eq!(walked.keys, (0..10).map(|n| key(2 * n)).collect::<Vec<_>>());
        assert_eq!(walked.stopped_at, None);
        let walked = walk(rows(100, |n| n % 2 == 0), Side::Contacted, 50, 10).unwrap();
        assert_eq!(walked.keys[0], key(1));
        // The part ends before the page is full.
        let walked = walk(rows(5, |_| true), Side::Silent, 50, 10).unwrap();
        assert_eq!((walked.keys.len(), walked.stopped_at), (5, None));
        // One silent device past more than the budget of contacted ones:
        // the walk stops at the last one it passed over.
        let limit = 2;
        let passable = u32::try_from(budget(limit)).unwrap();
        let walked = walk(rows(passable + 10, |n| n == 0), Side::Silent, 50, limit).unwrap();
        assert_eq!(walked.keys, [key(0)]);
        assert_eq!(walked.stopped_at, Some(key(passable)));
        assert!(walk_rows(limit) > i64::from(passable));
        // Fed in pieces: it says how many more rows it can take.
        let mut walker = Walker::new(Side::Silent, 50, 2);
        assert_eq!(walker.wants(), budget(2) + 2);
        assert!(!walker.push(key(0), 100));
        assert!(!walker.push(key(1), 10));
        assert_eq!(walker.wants(), budget(2));
        assert!(walker.push(key(2), 10));
        assert_eq!(walker.finish().keys, [key(1), key(2)]);
        assert_eq!(dense_from(10_000), 501);
    }

    #[test]
    fn a_group_is_read_in_parts() {
        use DeviceStatus::{Leaky, Silent};
        assert_eq!(
            group_parts(Silent, None),
            GRADED
                .map(|status| (Part::Status(status), Side::Silent))
                .to_vec()
        );
        assert_eq!(
            group_parts(Leaky, Some("firewall")),
            [(Part::Check("firewall"), Side::Contacted)]
        );
        assert_eq!(Part::Check("firewall").of(), "firewall");
        assert_eq!(Part::Status(Leaky).of(), "leaky");
    }

    #[test]
    fn postgres_reads_carry_no_sqlite_hints() {
        let part = Part::Status(DeviceStatus::Leaky);
        for sql in [
            part.walk_sql(Dialect::Postgres),
            part.side_sql(Dialect::Postgres, Side::Silent, true),
            part.side_sql(Dialect::Postgres, Side::Silent, false),
        ] {
            assert!(!sql.contains("INDEXED BY"), "{sql}");
        }
        assert!(
            part.side_sql(Dialect::Sqlite, Side::Silent, false)
                .contains("INDEXED BY devices_by_contact")
        );
    }

    #[test]
    fn only_the_names_a_statement_uses_are_bound() {
        let named = [(":of", 1), (":cutoff", 2), (":limit", 3), (":cap", 4)];
        let sql = Part::Check("firewall").count_sql(Side::Silent);
        let bound: Vec<&str> = uses(&sql, named)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(bound, [":of", ":cutoff", ":cap"]);
    }
}
