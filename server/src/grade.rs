//! The server's grade of one device: the same [`evaluate`] the agent runs,
//! with grace counted from the first failure the *server* saw, and the
//! transitions that tell the security team when a check started or stopped
//! leaking. Pure: the store hands in the previous state and persists the result.

use std::collections::BTreeSet;

use jiff::Timestamp;
use shipshape_core::checks::CheckId;
use shipshape_core::wire::DeviceStatus;
use shipshape_core::{
    Facts, FailingSince, Finding, Policy, Status, advance_failing_since, evaluate,
};

use crate::model::TransitionKind;

/// What the server remembers about a device's checks between two grades.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckState {
    /// When each failing check was first seen failing: grace counts from here.
    pub failing_since: FailingSince,
    /// The checks whose findings leaked at the last grade.
    pub leaking: BTreeSet<CheckId>,
}

/// The outcome of grading a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    /// One finding per check the policy runs, in catalog order.
    pub findings: Vec<Finding>,
    /// Leaky, unknown or compliant; silent is never a grade (it is derived
    /// from the last-seen time when the fleet is shown).
    pub status: DeviceStatus,
    /// The state to remember until the next grade.
    pub state: CheckState,
    /// The checks that started or stopped leaking, in catalog order.
    pub transitions: Vec<(CheckId, TransitionKind)>,
}

/// Grades `facts` under `policy` at `now`, given the device's `previous` state.
pub fn grade(policy: &Policy, facts: &Facts, now: Timestamp, previous: &CheckState) -> Grade {
    let findings = evaluate(policy, facts, now, &previous.failing_since);
    let status = status_of(&findings);
    let leaking: BTreeSet<CheckId> = findings
        .iter()
        .filter(|finding| finding.leak)
        .filter_map(|finding| finding.check.parse().ok())
        .collect();
    let transitions = previous
        .leaking
        .union(&leaking)
        .filter_map(
            |&check| match (previous.leaking.contains(&check), leaking.contains(&check)) {
                (false, true) => Some((check, TransitionKind::SprangLeak)),
                (true, false) => Some((check, TransitionKind::BailedOut)),
                _ => None,
            },
        )
        .collect();
    let mut failing_since = previous.failing_since.clone();
    advance_failing_since(&mut failing_since, &findings, now);
    Grade {
        findings,
        status,
        state: CheckState {
            failing_since,
            leaking,
        },
        transitions,
    }
}

/// Leaky if any finding leaks; else unknown if any check could not tell;
/// else compliant (passing, in grace, excepted or skipped).
pub fn status_of(findings: &[Finding]) -> DeviceStatus {
    if findings.iter().any(|finding| finding.leak) {
        DeviceStatus::Leaky
    } else if findings
        .iter()
        .any(|finding| finding.status == Status::Unknown)
    {
        DeviceStatus::Unknown
    } else {
        DeviceStatus::Compliant
    }
}

/// Facts and policies for the server's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use jiff::{SignedDuration, Timestamp};
    use shipshape_core::Policy;
    use shipshape_core::facts::*;

    /// The shipped default policy.
    pub(crate) fn default_policy() -> Policy {
        Policy::parse_accepted(include_str!("../../policies/default.toml"), "default.toml")
            .expect("the shipped default policy parses")
    }

    /// A policy from TOML text.
    pub(crate) fn policy(text: &str) -> Policy {
        Policy::parse_accepted(text, "test.toml").expect("test policy parses")
    }

    /// A Debian machine that is shipshape under the default policy at `now`.
    pub(crate) fn shipshape(hostname: &str, now: Timestamp) -> Facts {
        Facts {
            host: Host {
                hostname: hostname.into(),
                os: OsInfo {
                    family: OsFamily::Linux,
                    id: "debian".into(),
                    name: "Debian GNU/Linux 12 (bookworm)".into(),
                    version: Some("12".into()),
                    build: None,
                },
                kernel: Some("6.1.0-27-amd64".into()),
                arch: "x86_64".into(),
                hardware_id: Some("4c4c4544-0042".into()),
            },
            disk_encryption: Observed::Observed(DiskEncryption {
                volumes: vec![Volume {
                    mount_point: "/".into(),
                    device: Some("/dev/mapper/vg-root".into()),
                    encryption: VolumeEncryption::Encrypted,
                    method: Some("dm-crypt LUKS2".into()),
                    detail: None,
                }],
            }),
            os_updates: Observed::Observed(OsUpdates {
                pending: Observed::Observed(PendingUpdates {
                    manager: "apt".into(),
                    total: 0,
                    security: 0,
                    security_packages: vec![],
                    held_back: 0,
                    metadata_updated: Some(now - SignedDuration::from_hours(2)),
                }),
                automatic: Observed::Observed(AutomaticUpdates {
                    enabled: true,
                    mechanism: "unattended-upgrades".into(),
                    detail: None,
                }),
                last_installed: None,
            }),
            firewall: Observed::Observed(Firewall {
                backend: "nftables".into(),
                enabled: true,
                inbound: Inbound::Blocked,
                stealth: None,
                profiles: vec![],
                notes: vec![],
            }),
            ssh_keys: Observed::Observed(SshKeys {
                keys: vec![],
                scanned: vec!["/home/anna/.ssh".into()],
                unreadable: vec![],
            }),
            ssh_server: Observed::Observed(SshServer {
                state: ServiceState::NotInstalled,
                config: None,
            }),
        }
    }

    /// The firewall lets unsolicited inbound traffic in: fails at high severity.
    pub(crate) fn open_firewall(mut facts: Facts) -> Facts {
        if let Observed::Observed(firewall) = &mut facts.firewall {
            firewall.inbound = Inbound::Allowed;
        }
        facts
    }

    /// A security update is pending: fails, with the default policy's 14-day grace.
    pub(crate) fn pending_security_update(mut facts: Facts) -> Facts {
        if let Observed::Observed(updates) = &mut facts.os_updates
            && let Observed::Observed(pending) = &mut updates.pending
        {
            pending.total = 1;
            pending.security = 1;
            pending.security_packages = vec!["openssl".into()];
        }
        facts
    }

    /// The firewall could not be read.
    pub(crate) fn unknown_firewall(mut facts: Facts) -> Facts {
        facts.firewall = Observed::unknown("`nft` needs root: run `sudo shipshape check`");
        facts
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::fixtures::*;
    use super::*;

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * n)
    }

    fn finding<'a>(grade: &'a Grade, check: &str) -> &'a Finding {
        grade
            .findings
            .iter()
            .find(|finding| finding.check == check)
            .unwrap()
    }

    #[test]
    fn a_shipshape_machine_is_compliant_with_no_state() {
        let grade = grade(
            &default_policy(),
            &shipshape("anna", now()),
            now(),
            &CheckState::default(),
        );
        assert_eq!(grade.status, DeviceStatus::Compliant);
        assert_eq!(grade.findings.len(), 5);
        assert_eq!(grade.state, CheckState::default());
        assert!(grade.transitions.is_empty());
    }

    #[test]
    fn a_leak_springs_once_and_bails_out_once() {
        let policy = default_policy();
        let leaky = open_firewall(shipshape("anna", now()));
        let first = grade(&policy, &leaky, now(), &CheckState::default());
        assert_eq!(first.status, DeviceStatus::Leaky);
        assert_eq!(
            first.transitions,
            vec![(CheckId::Firewall, TransitionKind::SprangLeak)]
        );
        assert_eq!(first.state.leaking, BTreeSet::from([CheckId::Firewall]));
        assert_eq!(
            first.state.failing_since.get(&CheckId::Firewall),
            Some(&now())
        );

        let later = now() + SignedDuration::from_hours(1);
        let again = grade(&policy, &leaky, later, &first.state);
        assert!(again.transitions.is_empty(), "a known leak is no news");
        assert_eq!(
            again.state.failing_since.get(&CheckId::Firewall),
            Some(&now()),
            "the clock keeps the first failure"
        );

        let fixed = grade(&policy, &shipshape("anna", later), later, &again.state);
        assert_eq!(fixed.status, DeviceStatus::Compliant);
        assert_eq!(
            fixed.transitions,
            vec![(CheckId::Firewall, TransitionKind::BailedOut)]
        );
        assert_eq!(fixed.state, CheckState::default());
    }

    #[test]
    fn grace_counts_from_the_first_failure_the_server_saw() {
        let policy = default_policy();
        let facts = pending_security_update(shipshape("anna", now()));
        let first = grade(&policy, &facts, now(), &CheckState::default());
        assert_eq!(finding(&first, "os-updates").status, Status::Warn);
        assert_eq!(
            first.status,
            DeviceStatus::Compliant,
            "in grace is not a leak"
        );
        assert!(first.transitions.is_empty());
        assert_eq!(
            first.state.failing_since.get(&CheckId::OsUpdates),
            Some(&now())
        );

        let at = now() + days(13);
        let facts = pending_security_update(shipshape("anna", at));
        let within = grade(&policy, &facts, at, &first.state);
        assert_eq!(finding(&within, "os-updates").status, Status::Warn);

        let at = now() + days(15);
        let facts = pending_security_update(shipshape("anna", at));
        let after = grade(&policy, &facts, at, &within.state);
        assert_eq!(finding(&after, "os-updates").status, Status::Fail);
        assert_eq!(after.status, DeviceStatus::Leaky);
        assert_eq!(
            after.transitions,
            vec![(CheckId::OsUpdates, TransitionKind::SprangLeak)]
        );
    }

    #[test]
    fn an_unknown_run_neither_restarts_nor_ends_grace() {
        let policy = default_policy();
        let failing = pending_security_update(shipshape("anna", now()));
        let first = grade(&policy, &failing, now(), &CheckState::default());

        let at = now() + days(1);
        let mut facts = shipshape("anna", at);
        facts.os_updates = shipshape_core::facts::Observed::unknown("apt is locked");
        let unknown = grade(&policy, &facts, at, &first.state);
        assert_eq!(finding(&unknown, "os-updates").status, Status::Unknown);
        assert_eq!(
            unknown.status,
            DeviceStatus::Leaky,
            "unknown leaks by default"
        );
        assert_eq!(
            unknown.state.failing_since.get(&CheckId::OsUpdates),
            Some(&now())
        );
        assert_eq!(
            unknown.transitions,
            vec![(CheckId::OsUpdates, TransitionKind::SprangLeak)]
        );

        let at = now() + days(15);
        let facts = pending_security_update(shipshape("anna", at));
        let failing = grade(&policy, &facts, at, &unknown.state);
        assert_eq!(finding(&failing, "os-updates").status, Status::Fail);
        assert!(
            failing.transitions.is_empty(),
            "still leaking, only for another reason"
        );
    }

    #[test]
    fn unknown_that_does_not_leak_makes_the_device_unknown() {
        let lenient = policy("unknown = \"report\"\n[checks.firewall]\nseverity = \"high\"\n");
        let facts = unknown_firewall(shipshape("anna", now()));
        let grade = grade(&lenient, &facts, now(), &CheckState::default());
        assert_eq!(grade.status, DeviceStatus::Unknown);
        assert!(grade.state.leaking.is_empty());

        let leaky = super::grade(&default_policy(), &facts, now(), &CheckState::default());
        assert_eq!(leaky.status, DeviceStatus::Leaky);
    }

    #[test]
    fn a_check_the_policy_no_longer_runs_bails_out() {
        let facts = open_firewall(shipshape("anna", now()));
        let strict = grade(&default_policy(), &facts, now(), &CheckState::default());
        let without_firewall = policy("[checks.ssh-keys]\nseverity = \"high\"\n");
        let regraded = grade(&without_firewall, &facts, now(), &strict.state);
        assert_eq!(regraded.status, DeviceStatus::Compliant);
        assert_eq!(
            regraded.transitions,
            vec![(CheckId::Firewall, TransitionKind::BailedOut)]
        );
    }

    #[test]
    fn below_leak_severity_fails_without_a_transition() {
        let lenient =
            policy("leak-severity = \"critical\"\n[checks.firewall]\nseverity = \"high\"\n");
        let facts = open_firewall(shipshape("anna", now()));
        let grade = grade(&lenient, &facts, now(), &CheckState::default());
        assert_eq!(grade.findings[0].status, Status::Fail);
        assert_eq!(grade.status, DeviceStatus::Compliant);
        assert!(grade.transitions.is_empty());
        assert_eq!(
            grade.state.failing_since.get(&CheckId::Firewall),
            Some(&now()),
            "a failure starts the clock even when it does not leak"
        );
    }
}
