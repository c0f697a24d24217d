//! Findings: what evaluation concluded about one check on one machine.

use serde::{Deserialize, Serialize};

/// How much a failing check matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Failing, but still within the check's grace period.
    Warn,
    /// The facts could not tell; the policy's `unknown` setting decides whether it leaks.
    Unknown,
    /// Failing or unknown, but waived for this host by an unexpired exception.
    Excepted,
    /// Not for this platform.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
            Status::Unknown => "unknown",
            Status::Excepted => "excepted",
            Status::Skipped => "skipped",
        }
    }
}

/// One check's verdict on one machine, with everything a person needs to act on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The check id (`disk-encryption`, …).
    pub check: String,
    pub status: Status,
    pub severity: Severity,
    /// Whether this finding makes the machine leaky under the policy.
    pub leak: bool,
    /// One line a person reads first.
    pub summary: String,
    /// The facts the verdict rests on.
    pub evidence: Vec<String>,
    /// How to fix it on this very OS, when there is more to do than the summary says.
    pub remediation: Option<String>,
}

/// The machine as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Shipshape,
    Leaky,
}

impl Verdict {
    /// Leaky as soon as one finding leaks.
    pub fn of(findings: &[Finding]) -> Self {
        if findings.iter().any(|finding| finding.leak) {
            Verdict::Leaky
        } else {
            Verdict::Shipshape
        }
    }
}
