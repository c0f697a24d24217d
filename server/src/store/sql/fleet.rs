//! The fleet report's queries: its counts and the pages of its device table,
//! the same SQL for both backends but for the planner hints of [`Dialect`].
//!
//! The counts come from `status_counts` and `check_counts`, kept in step by
//! the writes, less the silent devices, which are a range of
//! `devices_by_contact` (or `device_leaks_by_contact`) below the cutoff: the
//! cost grows with the number of silent devices, never with the fleet
//! ([`crate::counts`] assembles them).
//!
//! A page is walked group by group ([`crate::keyset::PageWalk`]), each group
//! a range of an index in table order that starts after the cursor's key,
//! so the first page and the ten-thousandth cost the same:
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
//!
//! The statements name their parameters (`:cutoff`, `:check`, `:status`,
//! `:key`, `:hostname`, `:id`, `:limit`, `:many`); SQLite binds them by
//! name, PostgreSQL numbers them. A backend binds the names a statement
//! uses ([`uses`]).

use shipshape_core::wire::DeviceStatus;

use crate::keyset::GroupRead;

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

    /// `column`, kept off the indexes that only save grouping by it
    /// (SQLite's unary `+`).
    fn unindexed(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("+{column}"),
            Dialect::Postgres => column.to_owned(),
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

/// Past this many silent devices, the silent group is read by walking the
/// table order rather than by sorting all of their keys.
pub(in crate::store) const MANY_SILENT: i64 = 10_000;

/// How many devices are silent, counted up to [`MANY_SILENT`].
pub(in crate::store) const SILENT_UP_TO: &str = "SELECT COUNT(*) FROM (
     SELECT 1 FROM devices WHERE last_contact < :cutoff LIMIT :many) AS silent";
/// How many devices leaking on `:check` are silent, up to [`MANY_SILENT`].
pub(in crate::store) const SILENT_LEAKING_UP_TO: &str = "SELECT COUNT(*) FROM (
     SELECT 1 FROM device_leaks
     WHERE check_id = :check AND last_contact < :cutoff LIMIT :many) AS silent";

/// Devices per status of their last grade.
pub(in crate::store) const STATUS_COUNTS: &str = "SELECT status, devices FROM status_counts";
/// Devices per leaking check.
pub(in crate::store) const CHECK_COUNTS: &str = "SELECT check_id, devices FROM check_counts";

/// The silent devices by the status of their last grade: a range of
/// `devices_by_contact`.
pub(in crate::store) fn silent_by_status_sql(dialect: Dialect) -> String {
    format!(
        "SELECT status, COUNT(*) FROM devices WHERE last_contact < :cutoff GROUP BY {}",
        dialect.unindexed("status")
    )
}

/// How many devices leaking on `:check` are silent.
pub(in crate::store) const SILENT_LEAKING: &str = "SELECT COUNT(*) FROM device_leaks
     WHERE check_id = :check AND last_contact < :cutoff";

/// The key condition every group read shares: after the cursor's key.
const AFTER: &str = "(sort_key, hostname, id) > (:key, :hostname, :id)";
const LEAK_AFTER: &str = "(sort_key, hostname, device_id) > (:key, :hostname, :id)";

/// A page of a graded group (`:status`): its devices that are not silent.
pub(in crate::store) fn graded_group_sql() -> String {
    format!(
        "SELECT {DEVICE_COLUMNS} FROM devices
         WHERE status = :status AND last_contact >= :cutoff AND {AFTER}
         ORDER BY sort_key, hostname, id LIMIT :limit"
    )
}

/// The ids of a page of silent devices, when they are few: their keys in a
/// range of `devices_by_contact`, sorted.
pub(in crate::store) fn few_silent_sql(dialect: Dialect) -> String {
    format!(
        "SELECT id FROM devices {}
         WHERE last_contact < :cutoff AND {AFTER}
         ORDER BY sort_key, hostname, id LIMIT :limit",
        dialect.indexed_by("devices_by_contact")
    )
}

/// The ids of a page of silent devices, when they are many: the walks of
/// the three graded groups, merged in table order.
pub(in crate::store) fn many_silent_sql(dialect: Dialect) -> String {
    let walk = |status: &str| {
        let walk = format!(
            "SELECT id, sort_key, hostname FROM devices
             WHERE status = '{status}' AND last_contact < :cutoff AND {AFTER}"
        );
        match dialect {
            // A compound SELECT of plain arms, not a subquery: SQLite
            // merges its ordered arms (a subquery would be sorted whole).
            Dialect::Sqlite => walk,
            // PostgreSQL merges arms that are each in order and limited;
            // plain arms it would append and sort.
            Dialect::Postgres => {
                format!("({walk} ORDER BY sort_key, hostname, id LIMIT :limit)")
            }
        }
    };
    format!(
        "{} UNION ALL {} UNION ALL {} ORDER BY sort_key, hostname, id LIMIT :limit",
        walk("leaky"),
        walk("unknown"),
        walk("compliant")
    )
}

/// The ids of a page of the devices leaking on `:check` whose last contact
/// `contact` keeps, walked in table order.
pub(in crate::store) fn leaking_walk_sql(dialect: Dialect, contact: &str) -> String {
    format!(
        "SELECT device_id FROM device_leaks {}
         WHERE check_id = :check AND last_contact {contact} :cutoff AND {LEAK_AFTER}
         ORDER BY sort_key, hostname, device_id LIMIT :limit",
        dialect.indexed_by("device_leaks_in_table_order")
    )
}

/// The ids of a page of the silent devices leaking on `:check`, when they
/// are few: a range of `device_leaks_by_contact`, sorted.
pub(in crate::store) fn few_silent_leaking_sql(dialect: Dialect) -> String {
    format!(
        "SELECT device_id FROM device_leaks {}
         WHERE check_id = :check AND last_contact < :cutoff AND {LEAK_AFTER}
         ORDER BY sort_key, hostname, device_id LIMIT :limit",
        dialect.indexed_by("device_leaks_by_contact")
    )
}

/// How a group's read is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) enum GroupSql {
    /// One statement reads the rows ([`DEVICE_COLUMNS`]).
    Rows(String),
    /// One statement reads the ids on the page, in table order; each
    /// device is then looked up.
    Ids(String),
}

/// The count a silent group's read needs first, up to [`MANY_SILENT`]
/// (`:many`): how it is read depends on how many devices are silent.
pub(in crate::store) fn silent_count_sql(read: &GroupRead<'_>) -> Option<&'static str> {
    match (read.group, read.check) {
        (DeviceStatus::Silent, None) => Some(SILENT_UP_TO),
        (DeviceStatus::Silent, Some(_)) => Some(SILENT_LEAKING_UP_TO),
        _ => None,
    }
}

/// The statement of a group's read, given the [`silent_count_sql`] it
/// needed (0 for a group that needs none).
pub(in crate::store) fn group_sql(dialect: Dialect, read: &GroupRead<'_>, silent: i64) -> GroupSql {
    let many = silent >= MANY_SILENT;
    match (read.check, read.group == DeviceStatus::Silent) {
        (None, false) => GroupSql::Rows(graded_group_sql()),
        (None, true) if many => GroupSql::Ids(many_silent_sql(dialect)),
        (None, true) => GroupSql::Ids(few_silent_sql(dialect)),
        (Some(_), false) => GroupSql::Ids(leaking_walk_sql(dialect, ">=")),
        (Some(_), true) if many => GroupSql::Ids(leaking_walk_sql(dialect, "<")),
        (Some(_), true) => GroupSql::Ids(few_silent_leaking_sql(dialect)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyset::After;

    fn read(group: DeviceStatus, check: Option<&str>) -> GroupRead<'_> {
        GroupRead {
            group,
            check,
            after: After {
                sort_key: String::new(),
                hostname: String::new(),
                id: String::new(),
            },
            limit: 10,
        }
    }

    #[test]
    fn a_silent_group_is_read_by_how_many_are_silent() {
        use DeviceStatus::{Leaky, Silent};
        let sqlite = Dialect::Sqlite;
        assert_eq!(silent_count_sql(&read(Leaky, None)), None);
        assert_eq!(silent_count_sql(&read(Silent, None)), Some(SILENT_UP_TO));
        assert_eq!(
            group_sql(sqlite, &read(Silent, None), MANY_SILENT - 1),
            GroupSql::Ids(few_silent_sql(sqlite))
        );
        assert_eq!(
            group_sql(sqlite, &read(Silent, None), MANY_SILENT),
            GroupSql::Ids(many_silent_sql(sqlite))
        );
        assert_eq!(
            group_sql(sqlite, &read(Silent, Some("firewall")), MANY_SILENT),
            GroupSql::Ids(leaking_walk_sql(sqlite, "<"))
        );
        assert_eq!(
            group_sql(sqlite, &read(Leaky, None), 0),
            GroupSql::Rows(graded_group_sql())
        );
    }

    #[test]
    fn postgres_reads_carry_no_sqlite_hints() {
        let postgres = Dialect::Postgres;
        for sql in [
            few_silent_sql(postgres),
            leaking_walk_sql(postgres, "<"),
            few_silent_leaking_sql(postgres),
            silent_by_status_sql(postgres),
        ] {
            assert!(!sql.contains("INDEXED BY") && !sql.contains('+'), "{sql}");
        }
        assert!(few_silent_sql(Dialect::Sqlite).contains("INDEXED BY devices_by_contact"));
    }

    #[test]
    fn only_the_names_a_statement_uses_are_bound() {
        let named = [(":check", 1), (":cutoff", 2), (":limit", 3), (":many", 4)];
        let bound: Vec<&str> = uses(SILENT_LEAKING, named)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(bound, [":check", ":cutoff"]);
    }
}
