//! The policy parser on any UTF-8 text: it never panics, every error points
//! inside the text, a policy valid today stays valid once accepted, and the
//! agent's real facts can be judged by whatever policy parses.

#![no_main]

use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use libfuzzer_sys::fuzz_target;
use shipshape_core::policy::PolicyError;
use shipshape_core::{Facts, FailingSince, Policy, evaluate};

const ORIGIN: &str = "fuzz.toml";
const TODAY: Date = date(2026, 11, 24);

/// Real agent output (the server benchmark's fixture).
static FACTS: LazyLock<Facts> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../server/benches/fixtures/facts.json"))
        .expect("the benchmark fixture is valid facts")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Policy::parse(text, ORIGIN, TODAY);
    let accepted = Policy::parse_accepted(text, ORIGIN);
    for error in [&parsed, &accepted]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
    {
        assert_points_inside(text, error);
    }
    // Accepting differs from parsing only in letting exceptions expire.
    if parsed.is_ok() {
        assert_eq!(parsed, accepted, "valid today but not once accepted");
    }
    if let Ok(policy) = accepted {
        judge(&policy);
    }
});

/// The error names the origin, and its line and column lie in the text: at
/// most one past the end of a line, where a missing value or bracket is.
fn assert_points_inside(text: &str, error: &PolicyError) {
    assert_eq!(error.origin, ORIGIN);
    assert!(!error.message.is_empty(), "{error:?} says nothing");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&error.line),
        "{error:?} points past the last line ({})",
        lines.len()
    );
    let width = lines[error.line - 1].chars().count();
    assert!(
        (1..=width + 1).contains(&error.column),
        "{error:?} points past the end of its line ({width} characters)"
    );
}

/// One finding per check the policy runs, whether failures are fresh or
/// have lasted since the far past or the far future; exceptions are looked
/// up for the fixture's host and for the policy's own (fuzzed) name, so
/// host patterns meet fuzzed hostnames.
fn judge(policy: &Policy) {
    let now = Timestamp::from_second(1_795_000_000).expect("a valid timestamp");
    let checks = policy.checks.iter().count();
    for since in [None, Some(Timestamp::MIN), Some(Timestamp::MAX)] {
        let failing_since: FailingSince = since
            .map(|since| policy.checks.iter().map(|c| (c.id(), since)).collect())
            .unwrap_or_default();
        let findings = evaluate(policy, &FACTS, now, &failing_since);
        assert_eq!(findings.len(), checks);
    }
    for check in policy.checks.iter() {
        for hostname in [FACTS.host.hostname.as_str(), policy.name.as_str()] {
            if let Some(exception) = policy.exception_for(check.id(), hostname, TODAY) {
                assert_eq!(exception.check, check.id());
            }
        }
    }
}
