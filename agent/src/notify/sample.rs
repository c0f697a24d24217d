//! Findings and reports for the notification tests.

use shipshape_core::checks::CheckId;
use shipshape_core::facts::{Host, OsFamily, OsInfo};
use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
use shipshape_core::{Finding, Severity, Status, Verdict};

/// A high-severity finding of `check`.
pub fn finding(check: CheckId, status: Status, leak: bool) -> Finding {
    Finding {
        check: check.as_str().to_owned(),
        status,
        severity: Severity::High,
        leak,
        summary: format!("{check} is {}", status.as_str()),
        evidence: Vec::new(),
        remediation: None,
    }
}

/// A report of `findings` on a Debian laptop, with the verdict they make.
pub fn report(findings: Vec<Finding>) -> CheckReport {
    CheckReport {
        schema: SCHEMA_VERSION,
        verdict: Verdict::of(&findings),
        checked_at: "2026-11-24T09:00:00Z".parse().expect("a timestamp"),
        host: Host {
            hostname: "laptop-7".to_owned(),
            os: OsInfo {
                family: OsFamily::Linux,
                id: "debian".to_owned(),
                name: "Debian GNU/Linux 12 (bookworm)".to_owned(),
                version: Some("12".to_owned()),
                build: None,
            },
            kernel: None,
            arch: "x86_64".to_owned(),
            hardware_id: None,
        },
        policy: PolicyRef {
            name: "default".to_owned(),
            source: "built-in".to_owned(),
        },
        findings,
    }
}
