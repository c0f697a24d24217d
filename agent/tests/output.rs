//! Snapshots of the human report, one finding of every status.

use shipshape::output::human;
use shipshape_core::facts::{Host, OsFamily, OsInfo};
use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
use shipshape_core::{Finding, Severity, Status, Verdict};

fn finding(
    check: &str,
    status: Status,
    severity: Severity,
    leak: bool,
    summary: &str,
    fix: Option<&str>,
) -> Finding {
    Finding {
        check: check.into(),
        status,
        severity,
        leak,
        summary: summary.into(),
        evidence: vec![],
        remediation: fix.map(Into::into),
    }
}

fn report(findings: Vec<Finding>) -> CheckReport {
    CheckReport {
        schema: SCHEMA_VERSION,
        verdict: Verdict::of(&findings),
        checked_at: "2026-11-24T09:12:00Z".parse().unwrap(),
        host: Host {
            hostname: "anna-mbp".into(),
            os: OsInfo {
                family: OsFamily::Macos,
                id: "macos".into(),
                name: "macOS".into(),
                version: Some("14.5".into()),
                build: Some("23F79".into()),
            },
            kernel: None,
            arch: "aarch64".into(),
            hardware_id: None,
        },
        policy: PolicyRef {
            name: "default".into(),
            source: "built-in".into(),
        },
        findings,
    }
}

fn render(report: &CheckReport, strip: bool) -> String {
    let mut bytes = Vec::new();
    if strip {
        human(&mut anstream::StripStream::new(&mut bytes), report).unwrap();
    } else {
        human(&mut bytes, report).unwrap();
    }
    String::from_utf8(bytes).unwrap()
}

#[test]
fn leaky_report_shows_every_status_and_the_fixes() {
    let report = report(vec![
        finding(
            "disk-encryption",
            Status::Fail,
            Severity::Critical,
            true,
            "/ not encrypted",
            Some("Turn on FileVault: System Settings → Privacy & Security → FileVault → Turn On…"),
        ),
        finding(
            "os-updates",
            Status::Warn,
            Severity::High,
            false,
            "1 security update pending (grace until 2026-12-08 09:12 UTC)",
            Some("Install updates: System Settings → General → Software Update."),
        ),
        finding(
            "firewall",
            Status::Unknown,
            Severity::High,
            true,
            "could not tell whether a firewall is on: socketfilterfw did not answer within 10 s and was stopped",
            None,
        ),
        finding(
            "ssh-keys",
            Status::Pass,
            Severity::High,
            false,
            "2 keys protected and strong",
            None,
        ),
        finding(
            "ssh-server",
            Status::Excepted,
            Severity::High,
            false,
            "excepted until 2027-01-31: lab mac, SEC-12",
            None,
        ),
    ]);
    insta::assert_snapshot!(render(&report, true));
}

#[test]
fn shipshape_report_counts_what_passed() {
    let report = report(vec![
        finding(
            "disk-encryption",
            Status::Pass,
            Severity::Critical,
            false,
            "/ encrypted",
            None,
        ),
        finding(
            "firewall",
            Status::Fail,
            Severity::Low,
            false,
            "stealth mode is off",
            Some("Turn on stealth mode."),
        ),
        finding(
            "ssh-keys",
            Status::Skipped,
            Severity::High,
            false,
            "not checked on macOS",
            None,
        ),
    ]);
    insta::assert_snapshot!(render(&report, true));
}

#[test]
fn colour_is_written_for_terminals() {
    let report = report(vec![finding(
        "firewall",
        Status::Fail,
        Severity::High,
        true,
        "no firewall is on",
        Some("Turn it on."),
    )]);
    let coloured = render(&report, false);
    assert!(coloured.contains("\u{1b}[1m\u{1b}[31m✗"), "{coloured:?}");
    assert_eq!(
        anstream::adapter::strip_str(&coloured).to_string(),
        render(&report, true)
    );
}
