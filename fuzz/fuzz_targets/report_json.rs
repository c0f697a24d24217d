//! The JSON a device sends (`ReportSubmission`, `Heartbeat`, `EnrollRequest`,
//! and `Facts` on their own) on any bytes: whatever parses survives a round
//! trip unchanged with the same facts hash, and its facts can be judged by
//! the shipped policies at any moment without a panic.

#![no_main]

use std::fmt::Debug;
use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shipshape_core::wire::{EnrollRequest, Heartbeat, ReportSubmission, facts_hash};
use shipshape_core::{Facts, FailingSince, Policy, evaluate};

const TODAY: Date = date(2026, 11, 24);

static POLICIES: LazyLock<[Policy; 2]> = LazyLock::new(|| {
    let parse = |text, origin| Policy::parse(text, origin, TODAY).expect("a shipped policy parses");
    [
        parse(include_str!("../../policies/default.toml"), "default.toml"),
        parse(include_str!("../../policies/strict.toml"), "strict.toml"),
    ]
});

fuzz_target!(|data: &[u8]| {
    if let Ok(submission) = serde_json::from_slice::<ReportSubmission>(data) {
        let again = round_trip(&submission);
        assert_eq!(facts_hash(&submission.facts), facts_hash(&again.facts));
        judge(&submission.facts, submission.report.checked_at);
    }
    if let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(data) {
        round_trip(&heartbeat);
    }
    if let Ok(enroll) = serde_json::from_slice::<EnrollRequest>(data) {
        round_trip(&enroll);
    }
    if let Ok(facts) = serde_json::from_slice::<Facts>(data) {
        let again = round_trip(&facts);
        // The heartbeat's promise: equal facts, equal hash on both sides.
        assert_eq!(facts_hash(&facts), facts_hash(&again));
        judge(&facts, Timestamp::UNIX_EPOCH);
    }
});

/// Serializes `value` and parses it back, which must give `value` again.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> T {
    let json = serde_json::to_string(value).expect("a parsed value serializes");
    let again: T = serde_json::from_str(&json)
        .unwrap_or_else(|error| panic!("{json} does not parse back: {error}"));
    assert_eq!(value, &again, "{json} parses back as another value");
    again
}

/// Both shipped policies, at a fixed moment and at `reported` (a time the
/// input chose), with failures fresh and as old as `reported`.
fn judge(facts: &Facts, reported: Timestamp) {
    let fixed = Timestamp::from_second(1_795_000_000).expect("a valid timestamp");
    for policy in POLICIES.iter() {
        let checks = policy.checks.iter().count();
        let since: FailingSince = policy.checks.iter().map(|c| (c.id(), reported)).collect();
        for now in [fixed, reported] {
            for failing_since in [&FailingSince::new(), &since] {
                let findings = evaluate(policy, facts, now, failing_since);
                assert_eq!(findings.len(), checks);
            }
        }
    }
}
