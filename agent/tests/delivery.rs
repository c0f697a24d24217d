//! The outbox, retries, heartbeats and the circuit breaker, against a fake
//! server that goes away, fails, answers late or hangs up: every report is
//! delivered exactly once and in order, refused ones are kept with their
//! reason, and the check never fails because the network did.

use std::path::{Path, PathBuf};
use std::time::Duration;

use predicates::prelude::*;
use serde_json::Value;
use shipshape_core::wire::facts_hash;

use crate::fake_server::{
    Captured, FakeServer, QUICK_RETRIES, Reply, closed_port_url, device_public_key, enroll, fleet,
    heartbeat, is_report, report_id, scripted, set_delivery, shipshape, submission,
};

fn state(dir: &Path) -> PathBuf {
    dir.join("state")
}

fn last_report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(state(dir).join("last-report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The ids waiting in the outbox, oldest first.
fn outbox(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state(dir).join("outbox")) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The exit code `report` owes when its report stays queued: this machine's verdict.
fn local_exit(dir: &Path) -> i32 {
    match last_report(dir)["verdict"].as_str() {
        Some("leaky") => 1,
        _ => 0,
    }
}

/// Runs `shipshape report`, asserting the exit code is the local verdict; returns stdout.
fn report_queued(dir: &Path) -> String {
    let output = shipshape(dir).arg("report").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(local_exit(dir)),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Points the enrollment under `dir` at `url`.
fn point_at(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config").join("agent.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, config.replace(from, to)).unwrap();
}

/// The report ids the server acknowledged-or-not, one per report request, in order.
fn sent_ids(requests: &[Captured]) -> Vec<String> {
    requests
        .iter()
        .filter(|request| is_report(request))
        .map(report_id)
        .collect()
}

#[test]
fn reports_queue_while_the_server_is_away_and_arrive_once_in_order_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    set_delivery(
        dir.path(),
        &format!("{QUICK_RETRIES}\nbreaker-failures = 10"),
    );
    let gone = closed_port_url();
    point_at(dir.path(), &server.url, &gone);

    let mut queued = Vec::new();
    for run in 1..=3 {
        let stdout = report_queued(dir.path());
        let id = last_report(dir.path())["id"].as_str().unwrap().to_owned();
        assert!(
            stdout.contains(&format!("report {id} queued: server unreachable since ")),
            "{stdout}"
        );
        let waiting = if run == 1 {
            "1 report waiting".to_owned()
        } else {
            format!("{run} reports waiting")
        };
        assert!(
            stdout.contains(&format!("; {waiting}, will retry at the next run")),
            "{stdout}"
        );
        queued.push(id);
    }
    assert_eq!(
        outbox(dir.path()),
        queued,
        "kept in the order they were made"
    );

    // `check` says so, and its exit code stays the verdict's.
    let check = shipshape(dir.path()).arg("check").output().unwrap();
    assert_eq!(check.status.code(), Some(local_exit(dir.path())));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        stdout.contains("3 reports waiting to be sent: server unreachable since ")
            && stdout.contains("connection refused"),
        "{stdout}"
    );
    let status = shipshape(dir.path()).arg("status").assert().code(0);
    let status = String::from_utf8_lossy(&status.get_output().stdout).into_owned();
    assert!(
        status.contains("outbox       3 reports waiting to be sent ("),
        "{status}"
    );
    assert!(
        status.contains("delivery     3 failed runs in a row — server unreachable since "),
        "{status}"
    );

    // The server is back: an upcheck, then the backlog, oldest first, then this run's.
    point_at(dir.path(), &gone, &server.url);
    let output = shipshape(dir.path()).arg("report").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let latest = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    assert!(
        stdout.contains("delivered 3 queued reports (the oldest from "),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "report {latest} delivered to {}: compliant",
        server.url
    )));
    let requests = server.take_requests();
    let order: Vec<&str> = requests
        .iter()
        .map(|request| request.path.as_str())
        .collect();
    assert_eq!(order[..2], ["/v1/policy", "/healthz"], "{order:?}");
    queued.push(latest);
    assert_eq!(sent_ids(&requests), queued, "each exactly once, in order");
    assert!(outbox(dir.path()).is_empty());

    // Nothing is sent twice.
    shipshape(dir.path()).arg("report").assert().code(0);
    let again = sent_ids(&server.take_requests());
    assert_eq!(again.len(), 1);
    assert!(!queued.contains(&again[0]));
    shipshape(dir.path())
        .arg("status")
        .assert()
        .stdout(predicate::str::contains("outbox       empty"))
        .stdout(predicate::str::contains("delivery     ok"));
}

#[test]
fn failures_are_retried_at_the_configured_delays_then_the_report_waits_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(scripted("compliant", |_| {
        Some(Reply::error(503, "overloaded", None))
    }));
    enroll(dir.path(), &server);
    set_delivery(
        dir.path(),
        "retry-delays = [\"100ms\", \"200ms\", \"400ms\"]",
    );
    let key = device_public_key(dir.path());

    let stdout = report_queued(dir.path());
    assert!(
        stdout.contains("queued: server failing since ")
            && stdout.contains("server refused the report: 503 overloaded"),
        "{stdout}"
    );
    let first = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    let requests: Vec<Captured> = server
        .take_requests()
        .into_iter()
        .filter(is_report)
        .collect();
    assert_eq!(requests.len(), 4, "one try and three retries");
    let mut nonces = Vec::new();
    for request in &requests {
        assert_eq!(report_id(request), first);
        nonces.push(request.verify(&server.url, key).unwrap().nonce);
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 4, "every attempt signed afresh");
    for (pair, nominal) in requests.windows(2).zip([100, 200, 400]) {
        let waited = pair[1].at.duration_since(pair[0].at);
        let least = Duration::from_millis(nominal * 8 / 10);
        assert!(
            waited >= least,
            "waited {waited:?} for a {nominal} ms delay"
        );
    }

    // Still failing: the older report goes first and the run stops there.
    report_queued(dir.path());
    let second = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    let requests = server.take_requests();
    assert_eq!(sent_ids(&requests), [first.as_str(); 4]);
    assert!(requests.iter().any(|request| request.path == "/healthz"));
    assert_eq!(outbox(dir.path()), [first.clone(), second.clone()]);

    // Recovered: both, in order.
    server.answer(fleet("compliant"));
    shipshape(dir.path()).arg("report").assert().code(0);
    let third = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    assert_eq!(sent_ids(&server.take_requests()), [first, second, third]);
}

#[test]
fn retry_after_timeouts_and_hang_ups_are_passing_troubles() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(scripted("leaky", |n| match n {
        0 => Some(Reply::error(429, "slow down", None).with_header("retry-after", "1")),
        1 => Some(Reply::hang_up()),
        2 => Some(Reply::error(500, "oops", None).after(Duration::from_secs(3))),
        _ => None,
    }));
    enroll(dir.path(), &server);
    set_delivery(
        dir.path(),
        &format!("{QUICK_RETRIES}\nrequest-timeout = \"500ms\""),
    );
    let output = shipshape(dir.path()).arg("report").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "delivered, graded leaky: {stdout}"
    );
    assert!(stdout.contains(" delivered to "), "{stdout}");
    let requests: Vec<Captured> = server
        .take_requests()
        .into_iter()
        .filter(is_report)
        .collect();
    assert_eq!(requests.len(), 4);
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1, waited {waited:?}"
    );
    let id = &last_report(dir.path())["id"];
    assert!(requests.iter().all(|request| report_id(request) == *id));
}

#[test]
fn a_report_refused_for_good_is_kept_with_its_reason_and_never_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(scripted("compliant", |n| {
        (n == 0).then(|| {
            Reply::json(
                422,
                &serde_json::json!({ "error": "hostname is too long", "path": "facts.host.hostname" }),
            )
        })
    }));
    enroll(dir.path(), &server);
    set_delivery(dir.path(), QUICK_RETRIES);

    let assert = shipshape(dir.path()).arg("report").assert().code(2);
    let id = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    let rejected = state(dir.path()).join("outbox").join("rejected");
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "shipshape: error: report {id} was not delivered: server refused the report: 422 \
             hostname is too long (at `facts.host.hostname`)"
        )) && stderr.contains(&format!(
            "moved to {}",
            rejected.join(format!("{id}.json")).display()
        )),
        "{stderr}"
    );
    assert_eq!(sent_ids(&server.take_requests()), [id.as_str()], "no retry");
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(rejected.join(format!("{id}.reason.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["status"], 422);
    assert!(
        kept["reason"]
            .as_str()
            .unwrap()
            .contains("hostname is too long")
    );
    assert!(outbox(dir.path()).is_empty());

    let status = shipshape(dir.path()).arg("status").assert().code(0);
    let text = String::from_utf8_lossy(&status.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!(
            "rejected     1 report refused for good, kept in {}:",
            rejected.display()
        )) && text.contains(&format!("{id}: refused ")),
        "{text}"
    );
    let json = shipshape(dir.path())
        .args(["status", "--format", "json"])
        .assert()
        .code(0);
    let json: Value = serde_json::from_slice(&json.get_output().stdout).unwrap();
    assert_eq!(json["delivery"]["rejected"][0]["id"], id.as_str());
    assert_eq!(json["delivery"]["rejected"][0]["rejection"]["status"], 422);

    // The next run sends only its own report.
    shipshape(dir.path()).arg("report").assert().code(0);
    let sent = sent_ids(&server.take_requests());
    assert_eq!(sent.len(), 1);
    assert_ne!(sent[0], id);
}

#[test]
fn a_full_outbox_drops_the_oldest_and_the_next_delivery_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    set_delivery(
        dir.path(),
        &format!("{QUICK_RETRIES}\nbreaker-failures = 10\noutbox-max-reports = 2"),
    );
    let gone = closed_port_url();
    point_at(dir.path(), &server.url, &gone);
    let mut made = Vec::new();
    for run in 1..=4 {
        let output = shipshape(dir.path()).arg("report").output().unwrap();
        made.push(last_report(dir.path())["id"].as_str().unwrap().to_owned());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.contains(
                "shipshape: warning: the outbox was full (at most 2 reports and 50MiB): \
                 dropped the 1 oldest report; the next delivered report tells the server"
            ),
            run > 2,
            "run {run}: {stderr}"
        );
    }
    assert_eq!(outbox(dir.path()), made[2..]);
    shipshape(dir.path())
        .arg("status")
        .assert()
        .stdout(predicate::str::contains(
            "2 reports dropped from the full outbox, to be announced to the server",
        ));

    // The server is back; this run's report makes three, so one more goes.
    point_at(dir.path(), &gone, &server.url);
    shipshape(dir.path())
        .arg("report")
        .assert()
        .code(0)
        .stderr(predicate::str::contains("dropped the 1 oldest report"));
    let requests: Vec<Captured> = server
        .take_requests()
        .into_iter()
        .filter(is_report)
        .collect();
    let dropped: Vec<(String, u64)> = requests
        .iter()
        .map(|request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            (report_id(request), body["dropped"].as_u64().unwrap_or(0))
        })
        .collect();
    let latest = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    assert_eq!(dropped, [(made[3].clone(), 3), (latest, 0)]);
    shipshape(dir.path())
        .arg("status")
        .assert()
        .stdout(predicate::str::contains("dropped from the full outbox").not());
}

#[test]
fn unchanged_facts_go_as_a_heartbeat_and_in_full_when_the_server_asks() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    shipshape(dir.path()).arg("report").assert().code(0);
    let full = server.take_requests();
    assert_eq!(full[1].path, "/v1/reports");
    let hash = facts_hash(&submission(&full[1]).facts);

    shipshape(dir.path()).arg("report").assert().code(0);
    let requests = server.take_requests();
    assert_eq!(requests.len(), 2, "the policy, then one heartbeat");
    assert_eq!(requests[1].path, "/v1/heartbeats");
    let beat = heartbeat(&requests[1]);
    assert_eq!(beat.facts_hash, hash);
    assert!(requests[1].body.len() < full[1].body.len());

    // A server that lost the facts asks for them; the same report goes in full.
    server.answer(fleet("compliant"));
    shipshape(dir.path()).arg("report").assert().code(0);
    let requests = server.take_requests();
    let paths: Vec<&str> = requests
        .iter()
        .map(|request| request.path.as_str())
        .collect();
    assert_eq!(paths, ["/v1/policy", "/v1/heartbeats", "/v1/reports"]);
    assert_eq!(report_id(&requests[1]), report_id(&requests[2]));
    assert_eq!(facts_hash(&submission(&requests[2]).facts), hash);
}

#[test]
fn the_breaker_opens_after_failed_runs_keeps_off_the_network_then_probes() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    server.answer(|_| Reply::error(503, "down for maintenance", None));
    set_delivery(
        dir.path(),
        "retry-delays = []\nbreaker-failures = 2\nbreaker-cooldown = \"1h\"",
    );
    report_queued(dir.path());
    let stdout = report_queued(dir.path());
    assert!(
        stdout.contains("breaker open until ")
            && stdout.contains(
                " after 2 failed runs: the runs until then queue reports without sending"
            ),
        "{stdout}"
    );
    server.take_requests();

    // Open: the run queues and touches nothing.
    let stdout = report_queued(dir.path());
    let id = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    assert!(
        stdout.contains(&format!("report {id} queued: breaker open until "))
            && stdout.contains(
                "after 2 failed runs: not sending; 3 reports waiting; server failing since "
            )
            && stdout.contains("not sending; 3 reports waiting"),
        "{stdout}"
    );
    assert!(server.take_requests().is_empty(), "no request while open");
    shipshape(dir.path())
        .arg("status")
        .assert()
        .stdout(predicate::str::contains("delivery     breaker OPEN until "));
    server.take_requests();

    // After the cool-off, a failed probe (the upcheck) opens it again.
    end_cooloff(dir.path());
    let stdout = report_queued(dir.path());
    assert!(stdout.contains("breaker open until "), "{stdout}");
    let paths: Vec<String> = server
        .take_requests()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(paths, ["/v1/policy", "/healthz"]);

    // A successful probe closes it and sends the backlog.
    end_cooloff(dir.path());
    server.answer(fleet("compliant"));
    let assert = shipshape(dir.path()).arg("report").assert().code(0);
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout);
    assert!(stdout.contains("delivered 4 queued reports"), "{stdout}");
    let requests = server.take_requests();
    assert_eq!(requests[1].path, "/healthz");
    assert_eq!(sent_ids(&requests).len(), 5);
    let breaker: Value = serde_json::from_str(
        &std::fs::read_to_string(state(dir.path()).join("breaker.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(breaker["failed_runs"], 0);
    assert_eq!(breaker["open_until"], Value::Null);
}

/// Moves the open breaker's end into the past, as if its cool-off had passed.
fn end_cooloff(dir: &Path) {
    let path = state(dir).join("breaker.json");
    let mut breaker: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(breaker["open_until"].is_string(), "{breaker}");
    breaker["open_until"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&path, breaker.to_string()).unwrap();
}

#[test]
fn a_damaged_outbox_file_is_set_aside_and_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    let outbox_dir = state(dir.path()).join("outbox");
    std::fs::create_dir_all(&outbox_dir).unwrap();
    let torn = "0198c6a2-0000-7000-8000-000000000001";
    std::fs::write(
        outbox_dir.join(format!("{torn}.json")),
        "{\"id\": \"0198c6a2-00",
    )
    .unwrap();
    std::fs::write(outbox_dir.join(".half-written.json.1-0.tmp"), "{").unwrap();

    let assert = shipshape(dir.path()).arg("report").assert().code(0);
    assert.stderr(predicate::str::contains(format!(
        "shipshape: error: not sending {torn}: the queued file {} does not parse as a report",
        outbox_dir.join(format!("{torn}.json")).display()
    )));
    let requests = server.take_requests();
    assert_eq!(sent_ids(&requests).len(), 1);
    assert!(
        requests
            .iter()
            .all(|request| !String::from_utf8_lossy(&request.body).contains(torn))
    );
    assert!(
        outbox_dir
            .join("rejected")
            .join(format!("{torn}.json"))
            .exists()
    );
    assert!(outbox(dir.path()).is_empty());
}

#[cfg(unix)]
#[test]
fn a_run_that_finds_the_outbox_busy_queues_and_leaves_the_sending_to_the_other() {
    use rustix::fs::{FlockOperation, flock};
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    let outbox_dir = state(dir.path()).join("outbox");
    std::fs::create_dir_all(&outbox_dir).unwrap();
    let lock = std::fs::File::create(outbox_dir.join(".lock")).unwrap();
    flock(&lock, FlockOperation::NonBlockingLockExclusive).unwrap();

    let stdout = report_queued(dir.path());
    let id = last_report(dir.path())["id"].as_str().unwrap().to_owned();
    assert!(
        stdout.contains(&format!(
            "report {id} queued: another shipshape run is sending the outbox; 1 report waiting"
        )),
        "{stdout}"
    );
    assert!(sent_ids(&server.take_requests()).is_empty());
    drop(lock);
    shipshape(dir.path()).arg("report").assert().code(0);
    assert_eq!(sent_ids(&server.take_requests())[0], id);
}
