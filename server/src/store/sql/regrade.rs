//! The statements of re-grading and of the maintained counts that both
//! backends run, and how their columns read. The statements name their
//! parameters (`:after`, `:limit`, `:last`, `:status`, `:check`,
//! `:shard`, `:change`); SQLite binds them by name, PostgreSQL numbers them.
//!
//! Each maintained count is spread over rows, one per shard (schema
//! `0005_spread_counts.sql`), so that concurrent writes on PostgreSQL lock
//! different rows: a write adds to one shard, a read sums them.

use std::collections::HashMap;

use jiff::Timestamp;
use shipshape_core::checks::CheckId;

use crate::grade::CheckState;
use crate::model::{DeviceState, RegradeState};

/// The re-grade of the newest policy: policy id, state, devices, done,
/// changed status, started at, finished at, the cursor.
pub(in crate::store) const PROGRESS: &str = "SELECT policy_id, state, devices, done,
     changed_status, started_at, finished_at, after_device
 FROM regrades WHERE policy_id = (SELECT MAX(id) FROM policies)";

/// Marks an unfinished re-grade superseded, at `:at`.
pub(in crate::store) const SUPERSEDE: &str =
    "UPDATE regrades SET state = 'superseded', finished_at = :at WHERE state = 'running'";

/// Devices a new re-grade has to look at: every graded device.
/// (PostgreSQL sums BIGINTs as NUMERIC: the cast brings it back.)
pub(in crate::store) const DEVICES_TO_REGRADE: &str =
    "SELECT CAST(COALESCE(SUM(devices), 0) AS BIGINT) FROM status_counts";

/// Up to `:limit` devices after `:after`, in id order: id, hostname,
/// status, findings, last report id, its facts. The findings' bound repeats
/// the devices' one: without it PostgreSQL may merge the two tables from
/// the first device on, reading every device before the cursor each batch.
pub(in crate::store) const DEVICE_STATES: &str = "SELECT d.id, d.hostname, d.status,
     f.findings_json, d.last_report_id, r.facts_json
 FROM devices d
 JOIN device_findings f ON f.device_id = d.id
 LEFT JOIN reports r ON r.id = d.facts_report_id
 WHERE d.id > :after AND f.device_id > :after ORDER BY d.id LIMIT :limit";

/// The grace clocks of the devices after `:after` up to `:last`.
pub(in crate::store) const CLOCKS_IN_RANGE: &str = "SELECT device_id, check_id, failing_since
 FROM grace_clocks WHERE device_id > :after AND device_id <= :last";

/// The leaks of the devices after `:after` up to `:last`.
pub(in crate::store) const LEAKS_IN_RANGE: &str =
    "SELECT device_id, check_id FROM device_leaks WHERE device_id > :after AND device_id <= :last";

/// Adds `:change` to the devices of `:status` in shard `:shard` of its
/// count (a count is the sum of its shards' rows).
pub(in crate::store) const CHANGE_STATUS_COUNT: &str =
    "INSERT INTO status_counts (status, shard, devices) VALUES (:status, :shard, :change)
 ON CONFLICT (status, shard) DO UPDATE SET devices = status_counts.devices + excluded.devices";

/// Adds `:change` to the devices leaking on `:check` in shard `:shard` of
/// its count.
pub(in crate::store) const CHANGE_CHECK_COUNT: &str =
    "INSERT INTO check_counts (check_id, shard, devices) VALUES (:check, :shard, :change)
 ON CONFLICT (check_id, shard) DO UPDATE SET devices = check_counts.devices + excluded.devices";

/// A re-grade state as the `regrades.state` column holds it.
pub(in crate::store) fn state_column(state: RegradeState) -> &'static str {
    match state {
        RegradeState::Running => "running",
        RegradeState::Done => "done",
        RegradeState::Superseded => "superseded",
    }
}

/// The re-grade state a `regrades.state` column names.
pub(in crate::store) fn parse_state(column: &str) -> Option<RegradeState> {
    [
        RegradeState::Running,
        RegradeState::Done,
        RegradeState::Superseded,
    ]
    .into_iter()
    .find(|state| state_column(*state) == column)
}

/// Gives `states` (read by [`DEVICE_STATES`]) their grace clocks and leaks
/// (read by [`CLOCKS_IN_RANGE`] and [`LEAKS_IN_RANGE`]): device id, check
/// id, and the time a clock started. Check ids this server does not know
/// (left by a newer one) are ignored.
pub(in crate::store) fn attach_checks(
    states: &mut [DeviceState],
    clocks: impl IntoIterator<Item = (String, String, Timestamp)>,
    leaks: impl IntoIterator<Item = (String, String)>,
) {
    let mut checks: HashMap<String, CheckState> = HashMap::new();
    for (device, check, since) in clocks {
        if let Ok(check) = check.parse::<CheckId>() {
            checks
                .entry(device)
                .or_default()
                .failing_since
                .insert(check, since);
        }
    }
    for (device, check) in leaks {
        if let Ok(check) = check.parse::<CheckId>() {
            checks.entry(device).or_default().leaking.insert(check);
        }
    }
    for state in states {
        if let Some(checks) = checks.remove(&state.id) {
            state.checks = checks;
        }
    }
}

#[cfg(test)]
mod tests {
    use shipshape_core::wire::DeviceStatus;

    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for state in [
            RegradeState::Running,
            RegradeState::Done,
            RegradeState::Superseded,
        ] {
            assert_eq!(parse_state(state_column(state)), Some(state));
        }
        assert_eq!(parse_state("paused"), None);
    }

    #[test]
    fn checks_go_to_their_device_and_unknown_ones_are_ignored() {
        let state = |id: &str| DeviceState {
            id: id.to_owned(),
            hostname: id.to_owned(),
            status: DeviceStatus::Leaky,
            checks: CheckState::default(),
            findings_json: "[]".to_owned(),
            last_report: None,
        };
        let mut states = [state("a"), state("b")];
        let at = Timestamp::UNIX_EPOCH;
        attach_checks(
            &mut states,
            [
                ("b".to_owned(), "firewall".to_owned(), at),
                ("b".to_owned(), "from-the-future".to_owned(), at),
            ],
            [("b".to_owned(), "firewall".to_owned())],
        );
        assert_eq!(states[0].checks, CheckState::default());
        assert_eq!(
            states[1].checks.leaking,
            [CheckId::Firewall].into_iter().collect()
        );
        assert_eq!(states[1].checks.failing_since.len(), 1);
    }
}
