//! Facts × policy → findings: the one function the agent and the server share.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::checks::{Check, CheckId, Outcome};
use crate::facts::Facts;
use crate::finding::{Finding, Status};
use crate::policy::{Policy, UnknownTreatment};

/// When each currently failing check was first seen failing: the agent keeps
/// it between runs, the server derives it from its transitions log. Grace
/// periods count from here; a check absent from the map starts failing `now`.
pub type FailingSince = BTreeMap<CheckId, Timestamp>;

/// Judges `facts` by `policy` at time `now`, one finding per check the policy runs.
///
/// Platforms decide `skipped`; a failure younger than its grace is `warn`;
/// an unexpired exception for the host turns fail, warn and unknown into
/// `excepted`. A finding leaks when it fails (or is unknown under the `leak`
/// treatment) at or above the policy's leak severity.
pub fn evaluate(
    policy: &Policy,
    facts: &Facts,
    now: Timestamp,
    failing_since: &FailingSince,
) -> Vec<Finding> {
    let today = now.to_zoned(TimeZone::UTC).date();
    policy
        .checks
        .iter()
        .map(|check| {
            let since = failing_since.get(&check.id()).copied().unwrap_or(now);
            judge(policy, check, facts, now, since, today)
        })
        .collect()
}

/// Starts the clock of each newly failing check and stops it for passing
/// ones; the agent and the server both keep their grace clocks with it, so
/// their verdicts agree. An unknown, excepted or skipped finding leaves the
/// clock as it was: a probe that cannot tell for one run neither restarts
/// nor ends a grace period.
pub fn advance_failing_since(since: &mut FailingSince, findings: &[Finding], now: Timestamp) {
    for finding in findings {
        let Ok(check) = finding.check.parse::<CheckId>() else {
            continue;
        };
        match finding.status {
            Status::Fail | Status::Warn => {
                since.entry(check).or_insert(now);
            }
            Status::Pass => {
                since.remove(&check);
            }
            Status::Unknown | Status::Excepted | Status::Skipped => {}
        }
    }
}

/// One check's finding; a failure counts from `since`.
fn judge(
    policy: &Policy,
    check: &dyn Check,
    facts: &Facts,
    now: Timestamp,
    since: Timestamp,
    today: Date,
) -> Finding {
    let id = check.id();
    let common = check.common();
    let family = facts.host.os.family;
    let mut finding = Finding {
        check: id.to_string(),
        status: Status::Skipped,
        severity: common.severity,
        leak: false,
        summary: format!("not checked on {family}"),
        evidence: Vec::new(),
        remediation: None,
    };
    if common
        .platforms
        .is_some_and(|platforms| !platforms.contains(&family))
    {
        return finding;
    }
    let assessment = check.assess(facts, now);
    finding.summary = assessment.summary;
    finding.evidence = assessment.evidence;
    finding.remediation = assessment.remediation;
    finding.status = match (assessment.outcome, common.grace) {
        (Outcome::Pass, _) => Status::Pass,
        (Outcome::Unknown, _) => Status::Unknown,
        (Outcome::Fail, Some(grace)) if now.duration_since(since) < grace.0 => {
            let deadline = since.checked_add(grace.0).unwrap_or(since);
            finding.summary = format!(
                "{} (grace until {})",
                finding.summary,
                deadline.strftime("%Y-%m-%d %H:%M UTC")
            );
            Status::Warn
        }
        (Outcome::Fail, _) => Status::Fail,
    };
    if finding.status != Status::Pass {
        if let Some(exception) = policy.exception_for(id, &facts.host.hostname, today) {
            finding.evidence.insert(
                0,
                format!("would be {}: {}", finding.status.as_str(), finding.summary),
            );
            finding.summary = format!("excepted until {}: {}", exception.expires, exception.reason);
            finding.status = Status::Excepted;
            finding.remediation = None;
        }
    }
    if finding.status == Status::Pass {
        finding.remediation = None;
    }
    let unknown_leaks = common.unknown.unwrap_or(policy.unknown) == UnknownTreatment::Leak;
    finding.leak = common.severity >= policy.leak_severity
        && (finding.status == Status::Fail || (finding.status == Status::Unknown && unknown_leaks));
    finding
}

#[cfg(test)]
mod tests;
