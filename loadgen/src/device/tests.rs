use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use shipshape_core::Facts;
use shipshape_core::report::CheckReport;
use shipshape_core::signing::verify_request;
use shipshape_core::wire::{Heartbeat, ReportSubmission, facts_hash};

use super::*;

const SERVER: &str = "http://127.0.0.1:8443";

fn now() -> Timestamp {
    "2026-11-24T09:12:00Z".parse().unwrap()
}

fn policy() -> Policy {
    Policy::parse(
        include_str!("../../../policies/default.toml"),
        "default.toml",
        now().to_zoned(TimeZone::UTC).date(),
    )
    .unwrap()
}

fn device(index: u64) -> Device {
    let identity = Identity::new().unwrap();
    Device::new(
        format!("device-{index}"),
        identity,
        Machine::new(1, index, now()),
    )
}

#[test]
fn a_run_goes_in_full_until_acknowledged_then_as_heartbeats_until_the_facts_change() {
    let policy = policy();
    let mut device = device(3);
    let first = device.run(&policy, SERVER, now());
    assert!(!first.heartbeat, "nothing acknowledged yet");
    let unacknowledged = device.run(&policy, SERVER, now());
    assert!(
        !unacknowledged.heartbeat,
        "the first report was not acknowledged"
    );
    device.acknowledge(&first);
    assert!(device.run(&policy, SERVER, now()).heartbeat);
    device.change(now());
    let changed = device.run(&policy, SERVER, now());
    assert!(!changed.heartbeat, "the facts changed");
    device.acknowledge(&changed);
    assert!(device.run(&policy, SERVER, now()).heartbeat);
}

#[test]
fn the_bodies_are_what_the_agent_sends() {
    let policy = policy();
    let mut device = device(8);
    let run = device.run(&policy, SERVER, now());
    let full: ReportSubmission = serde_json::from_slice(&run.full_body()).unwrap();
    assert_eq!(&full.facts, Machine::new(1, 8, now()).facts());
    assert!(uuid::Uuid::parse_str(&full.id).is_ok_and(|id| id.get_version_num() == 7));
    assert_eq!(full.dropped, 0);
    let expected = evaluate(&policy, &full.facts, now(), &FailingSince::new());
    assert_eq!(full.report.findings, expected);
    assert_eq!(full.report.verdict, Verdict::of(&expected));
    assert_eq!(run.verdict(), full.report.verdict);
    assert_eq!(full.report.host, full.facts.host);
    assert_eq!(full.report.checked_at, now());
    assert_eq!(full.report.policy.name, "default");
    assert_eq!(full.report.policy.source, SERVER);

    let heartbeat: Heartbeat = serde_json::from_slice(&run.heartbeat_body()).unwrap();
    assert_eq!(heartbeat.id, full.id);
    assert_eq!(heartbeat.facts_hash, facts_hash(&full.facts));
    assert_eq!(heartbeat.report, full.report);

    let next = device.run(&policy, SERVER, now());
    let next: ReportSubmission = serde_json::from_slice(&next.full_body()).unwrap();
    assert_ne!(next.id, full.id, "every run has its own id");
}

#[test]
fn grace_clocks_run_on_between_runs() {
    let policy = policy();
    let later = now() + SignedDuration::from_hours(15 * 24);
    let os_updates = |findings: Vec<shipshape_core::Finding>| {
        findings
            .into_iter()
            .find(|finding| finding.check == "os-updates")
            .map(|finding| finding.status)
    };
    let status = |run: &Run| {
        let submission: ReportSubmission = serde_json::from_slice(&run.full_body()).unwrap();
        os_updates(submission.report.findings)
    };
    // A machine whose updates fail within the 14 days of grace, now and
    // when seen fresh at `later`: only a clock started now can run out.
    let index = (0..500)
        .find(|index| {
            let facts = Machine::new(1, *index, now()).facts().clone();
            [now(), later].into_iter().all(|at| {
                let fresh = evaluate(&policy, &facts, at, &FailingSince::new());
                os_updates(fresh) == Some(shipshape_core::Status::Warn)
            })
        })
        .expect("some machine fails os-updates within grace");
    let mut seen_before = device(index);
    assert_eq!(
        status(&seen_before.run(&policy, SERVER, now())),
        Some(shipshape_core::Status::Warn)
    );
    assert_eq!(
        status(&seen_before.run(&policy, SERVER, later)),
        Some(shipshape_core::Status::Fail),
        "machine {index}: the grace that started 15 days ago ran out"
    );
    assert_eq!(
        status(&device(index).run(&policy, SERVER, later)),
        Some(shipshape_core::Status::Warn),
        "machine {index}: a first run starts its grace"
    );
}

#[test]
fn requests_are_signed_with_the_enrolled_key_and_a_fresh_nonce() {
    let identity = Identity::new().unwrap();
    let request = identity.enroll_request("token", &Machine::new(1, 2, now()));
    let public_key: [u8; 32] = STANDARD
        .decode(&request.public_key)
        .unwrap()
        .try_into()
        .unwrap();
    let public_key = ed25519_dalek::VerifyingKey::from_bytes(&public_key).unwrap();
    assert_eq!(request.token, "token");
    assert_eq!(&request.host, &Machine::new(1, 2, now()).facts().host);

    let device = Device::new("device-2".to_owned(), identity, Machine::new(1, 2, now()));
    let url = format!("{SERVER}/v1/reports");
    let body = b"{\"report\":1}";
    let headers = device.sign(&url, body, now()).unwrap();
    let verified = verify_request(
        "POST",
        &url,
        body,
        headers.as_received(),
        |keyid| (keyid == "device-2").then_some(public_key),
        now().as_second(),
        300,
    )
    .unwrap();
    assert_eq!(verified.keyid, "device-2");
    assert_eq!(verified.created, now().as_second());
    let again = device.sign(&url, body, now()).unwrap();
    let nonce = |headers: &SignedHeaders| {
        verify_request(
            "POST",
            &url,
            body,
            headers.as_received(),
            |_| Some(public_key),
            now().as_second(),
            300,
        )
        .unwrap()
        .nonce
    };
    assert_ne!(nonce(&headers), nonce(&again));
}

/// The benchmark fixture: a real `shipshape facts` and `check --format
/// json` from the Debian 12 dev machine, as one full report.
fn captured_report_bytes() -> usize {
    let facts: Facts =
        serde_json::from_str(include_str!("../../../server/benches/fixtures/facts.json")).unwrap();
    let report: CheckReport =
        serde_json::from_str(include_str!("../../../server/benches/fixtures/report.json")).unwrap();
    let submission = ReportSubmission {
        id: uuid::Uuid::now_v7().to_string(),
        facts,
        report,
        dropped: 0,
    };
    serde_json::to_vec(&submission).unwrap().len()
}

#[test]
fn full_reports_are_about_the_size_of_a_real_one_and_heartbeats_smaller() {
    let policy = policy();
    let runs: Vec<Run> = (0..500)
        .map(|index| device(index).run(&policy, SERVER, now()))
        .collect();
    let full: Vec<usize> = runs.iter().map(|run| run.full_body().len()).collect();
    let heartbeat: Vec<usize> = runs.iter().map(|run| run.heartbeat_body().len()).collect();
    let mean = |sizes: &[usize]| sizes.iter().sum::<usize>() / sizes.len();
    let captured = captured_report_bytes();
    let ratio = mean(&full) as f64 / captured as f64;
    assert!(
        (0.7..1.3).contains(&ratio),
        "mean full report {} bytes, the captured one {captured}",
        mean(&full)
    );
    let (smallest, largest) = (full.iter().min().unwrap(), full.iter().max().unwrap());
    assert!(
        largest > &(smallest * 2),
        "sizes vary: {smallest} to {largest} bytes"
    );
    assert!(mean(&heartbeat) < mean(&full) * 3 / 4);
}
