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
//! - silent: the silent devices of each status, merged in table order. When
//!   few of a status's devices are silent, their keys come from a range of
//!   `devices_by_contact` below the cutoff and are sorted; when they are a
//!   good share (one in [`WALK_SILENT_FROM_ONE_IN`] or more), the status's
//!   walk keeps them, and finds a page's worth quickly;
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
//! `:key`, `:hostname`, `:id`, `:limit`, `:cap`); SQLite binds them by
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

/// The silent devices of a status (or check) are walked in table order
/// rather than sorted when at least one in this many of its devices is silent.
pub(in crate::store) const WALK_SILENT_FROM_ONE_IN: i64 = 20;

/// How many silent devices among `devices` make walking them pay: one in
/// [`WALK_SILENT_FROM_ONE_IN`] (at least one). Bound as `:cap`.
pub(in crate::store) fn walk_from(devices: i64) -> i64 {
    devices / WALK_SILENT_FROM_ONE_IN + 1
}

/// How many devices are of `:status` (maintained).
pub(in crate::store) const STATUS_DEVICES: &str =
    "SELECT devices FROM status_counts WHERE status = :status";
/// How many devices leak on `:check` (maintained).
pub(in crate::store) const CHECK_DEVICES: &str =
    "SELECT COALESCE(MAX(devices), 0) FROM check_counts WHERE check_id = :check";

/// How many devices of `:status` are silent, counted up to `:cap`.
pub(in crate::store) const SILENT_UP_TO: &str = "SELECT COUNT(*) FROM (
     SELECT 1 FROM devices WHERE status = :status AND last_contact < :cutoff LIMIT :cap) AS silent";
/// How many devices leaking on `:check` are silent, up to `:cap`.
pub(in crate::store) const SILENT_LEAKING_UP_TO: &str = "SELECT COUNT(*) FROM (
     SELECT 1 FROM device_leaks
     WHERE check_id = :check AND last_contact < :cutoff LIMIT :cap) AS silent";

/// Devices per status of their last grade.
pub(in crate::store) const STATUS_COUNTS: &str = "SELECT status, devices FROM status_counts";
/// Devices per leaking check.
pub(in crate::store) const CHECK_COUNTS: &str = "SELECT check_id, devices FROM check_counts";

/// The silent devices by the status of their last grade: a range of
/// `devices_by_contact` per status.
pub(in crate::store) const SILENT_BY_STATUS: &str = "SELECT status, COUNT(*) FROM devices
     WHERE status IN ('leaky', 'unknown', 'compliant') AND last_contact < :cutoff
     GROUP BY status";

/// How many devices leaking on `:check` are silent.
pub(in crate::store) const SILENT_LEAKING: &str = "SELECT COUNT(*) FROM device_leaks
     WHERE check_id = :check AND last_contact < :cutoff";

/// The key condition every group read shares: after the cursor's key.
const AFTER: &str = "(sort_key, hostname, id) > (:key, :hostname, :id)";
const LEAK_AFTER: &str = "(sort_key, hostname, device_id) > (:key, :hostname, :id)";

/// A page of a graded group (`:status`): its devices that are not silent.
pub(in crate::store) fn graded_group_sql(dialect: Dialect) -> String {
    format!(
        "SELECT {DEVICE_COLUMNS} FROM devices {}
         WHERE status = :status AND last_contact >= :cutoff AND {AFTER}
         ORDER BY sort_key, hostname, id LIMIT :limit",
        dialect.indexed_by("devices_in_table_order")
    )
}

/// The keys of the silent devices of `:status` after the cursor, in table
/// order: sorted from their range of `devices_by_contact` (`few`), or kept
/// from the status's walk.
pub(in crate::store) fn silent_sql(dialect: Dialect, few: bool) -> String {
    let index = if few {
        "devices_by_contact"
    } else {
        "devices_in_table_order"
    };
    format!(
        "SELECT sort_key, hostname, id FROM devices {}
         WHERE status = :status AND last_contact < :cutoff AND {AFTER}
         ORDER BY sort_key, hostname, id LIMIT :limit",
        dialect.indexed_by(index)
    )
}

/// The keys of the devices leaking on `:check` after the cursor whose last
/// contact `contact` keeps, in table order: walked, or (`few`, for the
/// silent ones) sorted from their range of `device_leaks_by_contact`.
pub(in crate::store) fn leaking_sql(dialect: Dialect, contact: &str, few: bool) -> String {
    let index = if few {
        "device_leaks_by_contact"
    } else {
        "device_leaks_in_table_order"
    };
    format!(
        "SELECT sort_key, hostname, device_id FROM device_leaks {}
         WHERE check_id = :check AND last_contact {contact} :cutoff AND {LEAK_AFTER}
         ORDER BY sort_key, hostname, device_id LIMIT :limit",
        dialect.indexed_by(index)
    )
}

/// How a group's read is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) enum GroupSql {
    /// One statement reads the rows ([`DEVICE_COLUMNS`]).
    Rows(String),
    /// One statement reads the keys on the page, in table order; each
    /// device is then looked up.
    Keys(String),
    /// The keys come in parts, one per status of `parts` (bound as
    /// `:status`), merged in table order ([`crate::keyset::first_in_order`]).
    /// For each part: `devices` counts its devices, `silent_up_to` its silent
    /// ones up to `:cap` ([`walk_from`]); a part with none is passed over,
    /// the others listed by `keys(few)`, `few` when they are under the cap.
    Silent(SilentParts),
}

/// The reads of a silent group, part by part (see [`GroupSql::Silent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct SilentParts {
    pub dialect: Dialect,
    pub check: bool,
    pub parts: Vec<DeviceStatus>,
    pub devices: &'static str,
    pub silent_up_to: &'static str,
}

impl SilentParts {
    /// The statement listing a part's silent keys.
    pub(in crate::store) fn keys(&self, few: bool) -> String {
        if self.check {
            leaking_sql(self.dialect, "<", few)
        } else {
            silent_sql(self.dialect, few)
        }
    }
}

/// The statements of a group's read.
pub(in crate::store) fn group_sql(dialect: Dialect, read: &GroupRead<'_>) -> GroupSql {
    use DeviceStatus::{Compliant, Leaky, Silent, Unknown};
    match (read.check, read.group == Silent) {
        (None, false) => GroupSql::Rows(graded_group_sql(dialect)),
        (Some(_), false) => GroupSql::Keys(leaking_sql(dialect, ">=", false)),
        (None, true) => GroupSql::Silent(SilentParts {
            dialect,
            check: false,
            parts: vec![Leaky, Unknown, Compliant],
            devices: STATUS_DEVICES,
            silent_up_to: SILENT_UP_TO,
        }),
        (Some(_), true) => GroupSql::Silent(SilentParts {
            dialect,
            check: true,
            parts: vec![Silent],
            devices: CHECK_DEVICES,
            silent_up_to: SILENT_LEAKING_UP_TO,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyset::Key;

    fn read(group: DeviceStatus, check: Option<&str>) -> GroupRead<'_> {
        GroupRead {
            group,
            check,
            after: Key::start(),
            limit: 10,
        }
    }

    #[test]
    fn a_silent_group_is_read_per_status_by_how_many_are_silent() {
        use DeviceStatus::{Compliant, Leaky, Silent, Unknown};
        let sqlite = Dialect::Sqlite;
        assert_eq!(
            group_sql(sqlite, &read(Leaky, None)),
            GroupSql::Rows(graded_group_sql(sqlite))
        );
        assert_eq!(
            group_sql(sqlite, &read(Leaky, Some("firewall"))),
            GroupSql::Keys(leaking_sql(sqlite, ">=", false))
        );
        let GroupSql::Silent(parts) = group_sql(sqlite, &read(Silent, None)) else {
            panic!("the silent group is read in parts");
        };
        assert_eq!(parts.parts, [Leaky, Unknown, Compliant]);
        assert_eq!(parts.silent_up_to, SILENT_UP_TO);
        assert!(parts.keys(true).contains("INDEXED BY devices_by_contact"));
        assert!(
            parts
                .keys(false)
                .contains("INDEXED BY devices_in_table_order")
        );
        let GroupSql::Silent(parts) = group_sql(sqlite, &read(Silent, Some("firewall"))) else {
            panic!("the silent group is read in parts");
        };
        assert_eq!(parts.devices, CHECK_DEVICES);
        assert_eq!(parts.keys(true), leaking_sql(sqlite, "<", true));
        // Walked from one silent device in twenty on.
        assert_eq!(walk_from(0), 1);
        assert_eq!(walk_from(10_000), 501);
    }

    #[test]
    fn postgres_reads_carry_no_sqlite_hints() {
        let postgres = Dialect::Postgres;
        for sql in [
            graded_group_sql(postgres),
            silent_sql(postgres, true),
            silent_sql(postgres, false),
            leaking_sql(postgres, "<", true),
            leaking_sql(postgres, ">=", false),
        ] {
            assert!(!sql.contains("INDEXED BY"), "{sql}");
        }
        assert!(silent_sql(Dialect::Sqlite, true).contains("INDEXED BY devices_by_contact"));
    }

    #[test]
    fn only_the_names_a_statement_uses_are_bound() {
        let named = [(":check", 1), (":cutoff", 2), (":limit", 3), (":cap", 4)];
        let bound: Vec<&str> = uses(SILENT_LEAKING_UP_TO, named)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(bound, [":check", ":cutoff", ":cap"]);
    }
}
