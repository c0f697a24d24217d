//! The fleet report's queries and how a page is cut from its groups.
//!
//! The fleet page is computed in SQL — counts by aggregate over an index,
//! and the page read group by group (leaky, silent, unknown, compliant) in
//! the order an index already keeps, by `LIMIT`/`OFFSET` — so nothing is
//! sorted and nothing loaded beyond the page, for 100,000 devices.
//! Filtered by a check, the same groups are walks over `device_leaks`, whose
//! rows carry what the filter needs (the hostname and the last contact), and
//! only the devices on the page are looked up. A device is silent when its
//! last contact (its last report, or its enrollment before the first one) is
//! older than the cutoff; otherwise it has the status of its last grade, and
//! a device that never reported is unknown. Failures by check count every
//! device whose last grade leaks on the check, silent ones included: they
//! match the device table filtered by that check.
//!
//! The statements name their parameters (`:cutoff`, `:check`, `:limit`,
//! `:offset`); SQLite binds them by name, PostgreSQL numbers them.

use shipshape_core::wire::DeviceStatus;

use crate::model::{CheckFailures, DeviceRow, FleetPage, FleetQuery, Summary};
use crate::store::StoreError;

/// The columns of `devices` a table row reads, in this order.
pub(in crate::store) const DEVICE_COLUMNS: &str = "id, hostname, os_name, status, \
     leaking_checks, last_seen, enrolled_at, revoked_at, last_contact";

/// Devices per status over the whole fleet, in [`Summary`]'s order: total,
/// silent, leaky, unknown, compliant.
pub(in crate::store) const COUNTS: &str = "SELECT COUNT(*),
     COALESCE(SUM(CASE WHEN last_contact < :cutoff THEN 1 ELSE 0 END), 0),
     COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'leaky' THEN 1 ELSE 0 END), 0),
     COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'unknown' THEN 1 ELSE 0 END), 0),
     COALESCE(SUM(CASE WHEN last_contact >= :cutoff AND status = 'compliant' THEN 1 ELSE 0 END), 0)
 FROM devices";

/// Devices per leaking check, most-failed first.
pub(in crate::store) const FAILURES_BY_CHECK: &str = "SELECT check_id, COUNT(*) FROM device_leaks
 GROUP BY check_id ORDER BY COUNT(*) DESC, check_id";

/// How many of the devices leaking on `:check` are silent.
pub(in crate::store) const SILENT_LEAKING: &str =
    "SELECT COUNT(*) FROM device_leaks WHERE check_id = :check AND last_contact < :cutoff";

/// One group of the device table, and where its devices are found.
#[derive(Debug)]
pub(in crate::store) struct Group {
    pub(in crate::store) status: DeviceStatus,
    /// Its devices, as a condition on `devices`.
    pub(in crate::store) devices: &'static str,
    /// Its devices leaking on `:check`, as a condition on that check's rows
    /// of `device_leaks`. `None` for the groups that never hold one: a
    /// device that leaks on a check is graded leaky (or silent, once its
    /// last contact is past the cutoff).
    pub(in crate::store) leaking: Option<&'static str>,
}

/// The device table's groups, in its order. Within a group, devices are
/// listed by hostname (ignoring ASCII case), which an index already keeps:
/// `devices_in_table_order` per status, `devices_by_hostname` for the silent
/// ones, and `device_leaks_in_table_order` for those leaking on a check.
pub(in crate::store) const GROUPS: [Group; 4] = [
    Group {
        status: DeviceStatus::Leaky,
        devices: "status = 'leaky' AND last_contact >= :cutoff",
        leaking: Some("last_contact >= :cutoff"),
    },
    Group {
        status: DeviceStatus::Silent,
        devices: "last_contact < :cutoff",
        leaking: Some("last_contact < :cutoff"),
    },
    Group {
        status: DeviceStatus::Unknown,
        devices: "status = 'unknown' AND last_contact >= :cutoff",
        leaking: None,
    },
    Group {
        status: DeviceStatus::Compliant,
        devices: "status = 'compliant' AND last_contact >= :cutoff",
        leaking: None,
    },
];

/// A page of the devices the condition on `devices` keeps.
pub(in crate::store) fn page_sql(condition: &str) -> String {
    format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE {condition}
         ORDER BY lower(hostname), hostname, id LIMIT :limit OFFSET :offset"
    )
}

/// The ids on a page of the devices leaking on `:check` whose rows of
/// `device_leaks` the condition keeps.
pub(in crate::store) fn leaking_page_sql(condition: &str) -> String {
    format!(
        "SELECT device_id FROM device_leaks WHERE check_id = :check AND {condition}
         ORDER BY lower(hostname), hostname, device_id LIMIT :limit OFFSET :offset"
    )
}

/// Devices per status among those leaking on `check`: all of them, as
/// `failures` counted them, less the `silent` ones, are leaky — see
/// [`Group::leaking`].
pub(in crate::store) fn leaking_summary(
    check: &str,
    failures: &[CheckFailures],
    silent: u64,
) -> Summary {
    let total = failures
        .iter()
        .find(|failures| failures.check == check)
        .map_or(0, |failures| failures.devices);
    Summary {
        total,
        silent,
        leaky: total.saturating_sub(silent),
        unknown: 0,
        compliant: 0,
    }
}

/// The rows of one group that fall on the page.
#[derive(Debug)]
pub(in crate::store) struct Slice {
    pub(in crate::store) group: &'static Group,
    pub(in crate::store) limit: i64,
    pub(in crate::store) offset: i64,
}

/// Where a page's rows come from.
#[derive(Debug)]
pub(in crate::store) struct Plan {
    /// How many devices match the query, over all pages.
    pub(in crate::store) matching: u64,
    /// The groups' rows on the page, in table order.
    pub(in crate::store) slices: Vec<Slice>,
}

impl Plan {
    /// The page: the fleet's `summary` and `failures`, and the `devices`
    /// read for the slices.
    pub(in crate::store) fn page(
        &self,
        query: &FleetQuery,
        summary: Summary,
        failures_by_check: Vec<CheckFailures>,
        devices: Vec<DeviceRow>,
    ) -> FleetPage {
        FleetPage {
            summary,
            failures_by_check,
            devices,
            page: query.page.max(1),
            per_page: query.per_page,
            matching: self.matching,
        }
    }
}

/// Cuts the query's page from the groups it keeps, given how many devices
/// of each status match (`filtered`): the page may span groups, and takes
/// from each what falls on it.
pub(in crate::store) fn plan(query: &FleetQuery, filtered: &Summary) -> Result<Plan, StoreError> {
    let groups: Vec<(&'static Group, u64)> = GROUPS
        .iter()
        .filter(|group| query.status.is_none_or(|wanted| wanted == group.status))
        .map(|group| {
            let size = match group.status {
                DeviceStatus::Leaky => filtered.leaky,
                DeviceStatus::Silent => filtered.silent,
                DeviceStatus::Unknown => filtered.unknown,
                DeviceStatus::Compliant => filtered.compliant,
            };
            (group, size)
        })
        .collect();
    let matching = groups.iter().map(|(_, size)| size).sum();
    let mut skip = u64::from(query.page.max(1) - 1) * u64::from(query.per_page);
    let mut wanted = u64::from(query.per_page);
    let mut slices = Vec::new();
    for (group, size) in groups {
        if wanted == 0 {
            break;
        }
        if skip >= size {
            skip -= size;
            continue;
        }
        let take = wanted.min(size - skip);
        slices.push(Slice {
            group,
            limit: as_sql(take)?,
            offset: as_sql(skip)?,
        });
        wanted -= take;
        skip = 0;
    }
    Ok(Plan { matching, slices })
}

fn as_sql(count: u64) -> Result<i64, StoreError> {
    i64::try_from(count).map_err(|_| StoreError(format!("{count} rows is past what SQL can page")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::query;

    fn summary(leaky: u64, silent: u64, unknown: u64, compliant: u64) -> Summary {
        Summary {
            total: leaky + silent + unknown + compliant,
            leaky,
            silent,
            unknown,
            compliant,
        }
    }

    fn cut(
        status: Option<DeviceStatus>,
        page: u32,
        per_page: u32,
    ) -> (u64, Vec<(DeviceStatus, i64, i64)>) {
        let query = FleetQuery {
            status,
            page,
            per_page,
            ..query(crate::store::tests::t0())
        };
        let plan = plan(&query, &summary(3, 0, 2, 4)).unwrap();
        let slices = plan
            .slices
            .iter()
            .map(|slice| (slice.group.status, slice.limit, slice.offset))
            .collect();
        (plan.matching, slices)
    }

    #[test]
    fn a_page_takes_from_each_group_what_falls_on_it() {
        use DeviceStatus::{Compliant, Leaky, Unknown};
        assert_eq!(cut(None, 1, 4), (9, vec![(Leaky, 3, 0), (Unknown, 1, 0)]));
        assert_eq!(
            cut(None, 2, 4),
            (9, vec![(Unknown, 1, 1), (Compliant, 3, 0)]),
            "the empty silent group is passed over"
        );
        assert_eq!(cut(None, 3, 4), (9, vec![(Compliant, 1, 3)]));
        assert_eq!(cut(None, 4, 4), (9, vec![]));
        assert_eq!(cut(Some(Compliant), 2, 3), (4, vec![(Compliant, 1, 3)]));
        assert_eq!(cut(None, 0, 2), cut(None, 1, 2), "page 0 is the first");
    }
}
