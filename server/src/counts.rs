//! The fleet's counts without counting the fleet, the same for every backend.
//!
//! Backends keep two small tables in step with every write, in the write's
//! own transaction: devices per graded status (`status_counts`) and devices
//! per leaking check (`check_counts`). [`CountChanges`] says what one write
//! changes in them. Silence is not stored (it depends on the time of the
//! read): a backend counts the silent devices with ranges of an index over
//! `last_contact` on the smaller side of the cutoff ([`SilentCount`]), which
//! costs little both on a normal day and after an outage, and
//! [`FleetCounts`] turns the lot into the report's summary and the number of
//! devices a filter matches.

use std::collections::{BTreeMap, BTreeSet};

use shipshape_core::checks::CheckId;
use shipshape_core::wire::DeviceStatus;

use crate::model::{CheckFailures, FleetQuery, FleetSummary, Summary};

/// What a write changes in the maintained counts: devices per status and
/// per leaking check, as differences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountChanges {
    statuses: BTreeMap<&'static str, i64>,
    checks: BTreeMap<&'static str, i64>,
}

impl CountChanges {
    /// A device was enrolled: unknown until its first report.
    pub fn enrolled(&mut self) {
        *self
            .statuses
            .entry(DeviceStatus::Unknown.as_str())
            .or_default() += 1;
    }

    /// A device was graded `after` where it was graded `before`: its status
    /// and its leaking checks.
    pub fn regraded(
        &mut self,
        before: (DeviceStatus, &BTreeSet<CheckId>),
        after: (DeviceStatus, &BTreeSet<CheckId>),
    ) {
        if before.0 != after.0 {
            *self.statuses.entry(before.0.as_str()).or_default() -= 1;
            *self.statuses.entry(after.0.as_str()).or_default() += 1;
        }
        for check in before.1.difference(after.1) {
            *self.checks.entry(check.as_str()).or_default() -= 1;
        }
        for check in after.1.difference(before.1) {
            *self.checks.entry(check.as_str()).or_default() += 1;
        }
    }

    /// The statuses whose count changes, and by how much.
    pub fn statuses(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        nonzero(&self.statuses)
    }

    /// The checks whose count changes, and by how much.
    pub fn checks(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        nonzero(&self.checks)
    }
}

fn nonzero<'a>(
    changes: &'a BTreeMap<&'static str, i64>,
) -> impl Iterator<Item = (&'static str, i64)> + 'a {
    changes
        .iter()
        .filter(|(_, change)| **change != 0)
        .map(|(key, change)| (*key, *change))
}

/// A side of the silence cutoff: the devices heard from since, or the
/// silent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Contacted,
    Silent,
}

/// How many of `total` devices are silent, counting whichever side of the
/// cutoff is smaller: silent devices and contacted ones in turn, each up to
/// 1,024, then 4,096, …, until a side comes in under the cap. It costs about
/// four times the smaller side — little both on a normal day (few silent)
/// and after an outage (nearly all silent). A backend asks [`Self::next`]
/// what to count (up to `cap` devices of a side, a range of an index over
/// the last contact) and gives the count to [`Self::counted`] until that
/// answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentCount {
    total: u64,
    cap: u64,
    side: Side,
}

impl SilentCount {
    pub fn new(total: u64) -> Self {
        SilentCount {
            total,
            cap: 1024,
            side: Side::Silent,
        }
    }

    /// The next count to make: up to `cap` devices of `side`.
    pub fn next(&self) -> (Side, u64) {
        (self.side, self.cap)
    }

    /// Takes the count [`Self::next`] asked for: the silent devices once
    /// it tells.
    pub fn counted(&mut self, devices: u64) -> Option<u64> {
        if devices < self.cap {
            return Some(match self.side {
                Side::Silent => devices,
                Side::Contacted => self.total.saturating_sub(devices),
            });
        }
        match self.side {
            Side::Silent => self.side = Side::Contacted,
            Side::Contacted => {
                self.side = Side::Silent;
                self.cap = self.cap.saturating_mul(4);
            }
        }
        None
    }
}

/// Devices per graded status (never silent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub leaky: u64,
    pub unknown: u64,
    pub compliant: u64,
}

impl StatusCounts {
    /// Adds `count` to `status` (a graded one; silent is ignored).
    pub fn add(&mut self, status: DeviceStatus, count: u64) {
        match status {
            DeviceStatus::Leaky => self.leaky += count,
            DeviceStatus::Unknown => self.unknown += count,
            DeviceStatus::Compliant => self.compliant += count,
            DeviceStatus::Silent => {}
        }
    }

    fn total(&self) -> u64 {
        self.leaky + self.unknown + self.compliant
    }
}

/// What a backend reads to answer [`crate::store::Store::fleet_summary`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Devices per status of their last grade (`status_counts`).
    pub graded: StatusCounts,
    /// Of those, the silent ones: last contact before the cutoff.
    pub silent: StatusCounts,
    /// Devices per leaking check, silent ones included (`check_counts`).
    pub checks: Vec<(String, u64)>,
    /// For the query's check: how many of the devices leaking on it are silent.
    pub silent_on_check: u64,
}

impl FleetCounts {
    /// The summary over the whole fleet, the failures by check, and how
    /// many devices the query's filter matches.
    pub fn summary(&self, query: &FleetQuery) -> FleetSummary {
        let silent = self.silent.total();
        let summary = Summary {
            total: self.graded.total(),
            leaky: self.graded.leaky.saturating_sub(self.silent.leaky),
            silent,
            unknown: self.graded.unknown.saturating_sub(self.silent.unknown),
            compliant: self.graded.compliant.saturating_sub(self.silent.compliant),
        };
        let mut failures_by_check: Vec<CheckFailures> = self
            .checks
            .iter()
            .filter(|(_, devices)| *devices > 0)
            .map(|(check, devices)| CheckFailures {
                check: check.clone(),
                devices: *devices,
            })
            .collect();
        failures_by_check.sort_by(|a, b| b.devices.cmp(&a.devices).then(a.check.cmp(&b.check)));
        let in_group = |group: DeviceStatus| -> u64 {
            match (&query.check, group) {
                (None, DeviceStatus::Leaky) => summary.leaky,
                (None, DeviceStatus::Silent) => summary.silent,
                (None, DeviceStatus::Unknown) => summary.unknown,
                (None, DeviceStatus::Compliant) => summary.compliant,
                // A device that leaks on a check is graded leaky; it shows
                // as silent when it went quiet.
                (Some(check), DeviceStatus::Leaky) => self
                    .checks
                    .iter()
                    .find(|(name, _)| name == check)
                    .map_or(0, |(_, devices)| *devices)
                    .saturating_sub(self.silent_on_check),
                (Some(_), DeviceStatus::Silent) => self.silent_on_check,
                (Some(_), _) => 0,
            }
        };
        let matching = crate::keyset::GROUPS
            .into_iter()
            .filter(|group| query.status.is_none_or(|wanted| wanted == *group))
            .map(in_group)
            .sum();
        FleetSummary {
            summary,
            failures_by_check,
            matching,
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::model::Staleness;

    fn query(status: Option<DeviceStatus>, check: Option<&str>) -> FleetQuery {
        FleetQuery {
            status,
            check: check.map(str::to_owned),
            after: None,
            per_page: 50,
            staleness: Staleness {
                now: Timestamp::UNIX_EPOCH,
                stale_after: SignedDuration::from_hours(48),
            },
        }
    }

    #[test]
    fn silence_is_counted_on_the_smaller_side() {
        for (total, silent) in [
            (0, 0),
            (100, 3),
            (1_000_000, 20_000),
            (1_000_000, 999_990),
            (5_000, 2_500),
        ] {
            let mut counted = 0;
            let mut count = SilentCount::new(total);
            let found = loop {
                let (side, cap) = count.next();
                let all = match side {
                    Side::Silent => silent,
                    Side::Contacted => total - silent,
                };
                let seen = all.min(cap);
                counted += seen;
                if let Some(found) = count.counted(seen) {
                    break found;
                }
            };
            assert_eq!(found, silent, "{silent} of {total}");
            let smaller = silent.min(total - silent);
            assert!(
                counted <= 4 * smaller + 2 * 1024,
                "{silent} of {total}: counted {counted}"
            );
        }
    }

    #[test]
    fn a_new_grade_moves_one_device_between_counts() {
        let mut changes = CountChanges::default();
        changes.enrolled();
        let none = BTreeSet::new();
        let firewall = BTreeSet::from([CheckId::Firewall]);
        let both = BTreeSet::from([CheckId::Firewall, CheckId::SshKeys]);
        changes.regraded(
            (DeviceStatus::Unknown, &none),
            (DeviceStatus::Leaky, &firewall),
        );
        assert_eq!(
            changes.statuses().collect::<Vec<_>>(),
            [("leaky", 1)],
            "enrolled unknown, then leaky"
        );
        changes.regraded(
            (DeviceStatus::Leaky, &firewall),
            (DeviceStatus::Leaky, &both),
        );
        changes.regraded((DeviceStatus::Leaky, &both), (DeviceStatus::Leaky, &both));
        assert_eq!(
            changes.checks().collect::<Vec<_>>(),
            [("firewall", 1), ("ssh-keys", 1)]
        );
        changes.regraded(
            (DeviceStatus::Leaky, &both),
            (DeviceStatus::Compliant, &none),
        );
        assert_eq!(changes.checks().count(), 0);
        assert_eq!(changes.statuses().collect::<Vec<_>>(), [("compliant", 1)]);
    }

    fn counts() -> FleetCounts {
        FleetCounts {
            graded: StatusCounts {
                leaky: 10,
                unknown: 4,
                compliant: 20,
            },
            silent: StatusCounts {
                leaky: 2,
                unknown: 1,
                compliant: 0,
            },
            checks: vec![
                ("firewall".to_owned(), 7),
                ("disk-encryption".to_owned(), 7),
                ("os-updates".to_owned(), 9),
                ("ssh-keys".to_owned(), 0),
            ],
            silent_on_check: 3,
        }
    }

    #[test]
    fn silent_devices_are_taken_from_their_graded_status() {
        let summary = counts().summary(&query(None, None));
        assert_eq!(
            summary.summary,
            Summary {
                total: 34,
                leaky: 8,
                silent: 3,
                unknown: 3,
                compliant: 20
            }
        );
        assert_eq!(summary.matching, 34);
        let failures: Vec<(&str, u64)> = summary
            .failures_by_check
            .iter()
            .map(|failures| (failures.check.as_str(), failures.devices))
            .collect();
        assert_eq!(
            failures,
            [("os-updates", 9), ("disk-encryption", 7), ("firewall", 7)],
            "most-failed first, then by name; none for a check nobody fails"
        );
    }

    #[test]
    fn matching_counts_the_groups_the_filter_keeps() {
        let counts = counts();
        let matching = |status, check| counts.summary(&query(status, check)).matching;
        assert_eq!(matching(Some(DeviceStatus::Silent), None), 3);
        assert_eq!(matching(Some(DeviceStatus::Leaky), None), 8);
        assert_eq!(matching(None, Some("firewall")), 7);
        assert_eq!(matching(Some(DeviceStatus::Leaky), Some("firewall")), 4);
        assert_eq!(matching(Some(DeviceStatus::Silent), Some("firewall")), 3);
        assert_eq!(matching(Some(DeviceStatus::Unknown), Some("firewall")), 0);
    }
}
