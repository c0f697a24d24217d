//! A small fixed fleet at a fixed time, shared by the renderers' tests.

use jiff::{SignedDuration, Timestamp};
use shipshape_core::Finding;
use shipshape_core::finding::{Severity, Status};
use shipshape_core::wire::DeviceStatus;

use crate::model::{
    CheckFailures, DeviceDetail, DeviceRow, FleetCursor, FleetPage, FleetQuery, ReportSummary,
    Staleness, Summary, Transition, TransitionKind,
};

pub(crate) fn at(text: &str) -> Timestamp {
    text.parse().expect("a valid timestamp")
}

/// When the fixture fleet is looked at.
pub(crate) fn now() -> Timestamp {
    at("2026-11-02T12:00:00Z")
}

fn row(
    id: &str,
    hostname: &str,
    os: &str,
    status: DeviceStatus,
    failing_checks: &[&str],
    last_seen: Option<&str>,
) -> DeviceRow {
    DeviceRow {
        id: id.to_owned(),
        hostname: hostname.to_owned(),
        os: os.to_owned(),
        status,
        failing_checks: failing_checks
            .iter()
            .map(|&check| check.to_owned())
            .collect(),
        last_seen: last_seen.map(at),
        enrolled_at: at("2026-10-01T08:15:00Z"),
        revoked: false,
    }
}

/// The leaky laptop: two checks leak.
pub(crate) fn leaky_row() -> DeviceRow {
    row(
        "0190a1b2-0000-7000-8000-000000000001",
        "laptop-ana",
        "Debian GNU/Linux 12 (bookworm)",
        DeviceStatus::Leaky,
        &["disk-encryption", "firewall"],
        Some("2026-11-02T09:42:10.5Z"),
    )
}

/// The first page (4 per page) of a fleet of 5: leaky first, then silent
/// (and revoked), unknown, compliant.
pub(crate) fn fleet_page() -> FleetPage {
    let mut silent = row(
        "0190a1b2-0000-7000-8000-000000000002",
        "build-07",
        "Ubuntu 22.04.4 LTS",
        DeviceStatus::Silent,
        &["os-updates"],
        Some("2026-10-27T17:03:00Z"),
    );
    silent.revoked = true;
    FleetPage {
        summary: Summary {
            total: 5,
            leaky: 1,
            silent: 1,
            unknown: 1,
            compliant: 2,
        },
        failures_by_check: vec![
            CheckFailures {
                check: "disk-encryption".to_owned(),
                devices: 1,
            },
            CheckFailures {
                check: "firewall".to_owned(),
                devices: 1,
            },
        ],
        devices: vec![
            leaky_row(),
            silent,
            row(
                "0190a1b2-0000-7000-8000-000000000003",
                "mac-ben",
                "macOS 14.4",
                DeviceStatus::Unknown,
                &[],
                Some("2026-11-02T11:31:00Z"),
            ),
            row(
                "0190a1b2-0000-7000-8000-000000000004",
                "win-carla",
                "Windows 11 Pro 23H2",
                DeviceStatus::Compliant,
                &[],
                Some("2026-11-02T11:59:40Z"),
            ),
        ],
        per_page: 4,
        matching: 5,
        next: Some(FleetCursor {
            group: DeviceStatus::Compliant,
            hostname: "win-carla".to_owned(),
            id: "0190a1b2-0000-7000-8000-000000000004".to_owned(),
        }),
    }
}

/// The query that shows [`fleet_page`].
pub(crate) fn fleet_query() -> FleetQuery {
    FleetQuery {
        status: None,
        check: None,
        after: None,
        per_page: 4,
        staleness: Staleness {
            now: now(),
            stale_after: SignedDuration::from_hours(48),
        },
    }
}

/// A fleet with no device at all.
pub(crate) fn empty_fleet() -> FleetPage {
    FleetPage {
        summary: Summary::default(),
        failures_by_check: Vec::new(),
        devices: Vec::new(),
        per_page: 50,
        matching: 0,
        next: None,
    }
}

fn finding(
    check: &str,
    status: Status,
    severity: Severity,
    leak: bool,
    summary: &str,
    evidence: &[&str],
    remediation: Option<&str>,
) -> Finding {
    Finding {
        check: check.to_owned(),
        status,
        severity,
        leak,
        summary: summary.to_owned(),
        evidence: evidence.iter().map(|&line| line.to_owned()).collect(),
        remediation: remediation.map(str::to_owned),
    }
}

/// The leaky laptop's page.
pub(crate) fn device_detail() -> DeviceDetail {
    DeviceDetail {
        device: leaky_row(),
        findings: vec![
            finding(
                "disk-encryption",
                Status::Fail,
                Severity::High,
                true,
                "The system disk is not encrypted",
                &["/ is on /dev/nvme0n1p2 (ext4), no dm-crypt layer"],
                Some(
                    "Reinstall with LUKS full-disk encryption (the Debian installer's \"Guided - use entire disk and set up encrypted LVM\").",
                ),
            ),
            finding(
                "firewall",
                Status::Fail,
                Severity::Medium,
                true,
                "No firewall filters incoming connections",
                &[
                    "nftables: no input chain",
                    "iptables: INPUT policy ACCEPT, no rules",
                ],
                Some("sudo apt install ufw && sudo ufw enable"),
            ),
            finding(
                "os-updates",
                Status::Warn,
                Severity::High,
                false,
                "3 security updates pending for 2 days (grace: 7 days)",
                &["openssl 3.0.14-1~deb12u1 → 3.0.15-1~deb12u1"],
                Some("sudo apt update && sudo apt upgrade"),
            ),
            finding(
                "ssh-keys",
                Status::Pass,
                Severity::Medium,
                false,
                "Every SSH private key is protected by a passphrase",
                &["~/.ssh/id_ed25519: ed25519, encrypted"],
                None,
            ),
        ],
        transitions: vec![
            Transition {
                check: "firewall".to_owned(),
                kind: TransitionKind::SprangLeak,
                at: at("2026-11-01T18:20:00Z"),
                report_id: Some("0190a1b2-0000-7000-8000-0000000000r3".to_owned()),
            },
            Transition {
                check: "os-updates".to_owned(),
                kind: TransitionKind::BailedOut,
                at: at("2026-10-20T10:00:00Z"),
                report_id: None,
            },
            Transition {
                check: "disk-encryption".to_owned(),
                kind: TransitionKind::SprangLeak,
                at: at("2026-10-01T08:16:00Z"),
                report_id: Some("0190a1b2-0000-7000-8000-0000000000r1".to_owned()),
            },
        ],
        reports: vec![
            ReportSummary {
                id: "0190a1b2-0000-7000-8000-0000000000r3".to_owned(),
                received_at: at("2026-11-02T09:42:10.5Z"),
                status: DeviceStatus::Leaky,
                failing_checks: vec!["disk-encryption".to_owned(), "firewall".to_owned()],
            },
            ReportSummary {
                id: "0190a1b2-0000-7000-8000-0000000000r2".to_owned(),
                received_at: at("2026-10-15T09:00:00Z"),
                status: DeviceStatus::Leaky,
                failing_checks: vec!["disk-encryption".to_owned()],
            },
        ],
    }
}
