//! Facts × policy → findings: the one function the agent and the server share.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::checks::{CheckId, Outcome};
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
            let id = check.id();
            let common = check.common();
            let family = facts.host.os.family;
            if common
                .platforms
                .is_some_and(|platforms| !platforms.contains(&family))
            {
                return Finding {
                    check: id.to_string(),
                    status: Status::Skipped,
                    severity: common.severity,
                    leak: false,
                    summary: format!("not checked on {family}"),
                    evidence: Vec::new(),
                    remediation: None,
                };
            }
            let assessment = check.assess(facts, now);
            let mut status = match assessment.outcome {
                Outcome::Pass => Status::Pass,
                Outcome::Unknown => Status::Unknown,
                Outcome::Fail => {
                    let since = failing_since.get(&id).copied().unwrap_or(now);
                    match common.grace {
                        Some(grace) if now.duration_since(since) < grace.0 => Status::Warn,
                        _ => Status::Fail,
                    }
                }
            };
            let mut summary = assessment.summary;
            let mut evidence = assessment.evidence;
            if status == Status::Warn {
                if let Some(grace) = common.grace {
                    let since = failing_since.get(&id).copied().unwrap_or(now);
                    let deadline = since.checked_add(grace.0).unwrap_or(since);
                    summary = format!(
                        "{summary} (grace until {})",
                        deadline.strftime("%Y-%m-%d %H:%M UTC")
                    );
                }
            }
            if status != Status::Pass {
                if let Some(exception) = policy.exception_for(id, &facts.host.hostname, today) {
                    evidence.insert(0, format!("would be {}: {summary}", status.as_str()));
                    summary = format!("excepted until {}: {}", exception.expires, exception.reason);
                    status = Status::Excepted;
                }
            }
            let unknown_leaks = common.unknown.unwrap_or(policy.unknown) == UnknownTreatment::Leak;
            let leak = common.severity >= policy.leak_severity
                && (status == Status::Fail || (status == Status::Unknown && unknown_leaks));
            Finding {
                check: id.to_string(),
                status,
                severity: common.severity,
                leak,
                summary,
                evidence,
                remediation: matches!(status, Status::Fail | Status::Warn | Status::Unknown)
                    .then_some(assessment.remediation)
                    .flatten(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
