//! `shipshape report` against a fake server: the policy with its ETag, the
//! signed report, exit codes by the server's grade, and what happens when
//! the server is away, refuses, or pushes a policy that does not parse.
//! The outbox, retries, heartbeats and the breaker are in `delivery.rs`.

use predicates::prelude::*;
use serde_json::Value;
use shipshape_core::wire::{Heartbeat, ReportSubmission, facts_hash};

use crate::fake_server::{
    DEVICE_ID, FakeServer, POLICY_ETAG, QUICK_RETRIES, Reply, closed_port_url, device_public_key,
    enroll, fleet, set_delivery, shipshape,
};

fn last_report(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("state").join("last-report.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn signs_and_delivers_the_report_under_the_servers_policy() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    let key = device_public_key(dir.path());

    let assert = shipshape(dir.path()).arg("report").assert().code(0);
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("policy fleet ({})", server.url)),
        "{stdout}"
    );
    assert!(stdout.contains("SSH server"), "{stdout}");

    let requests = server.take_requests();
    let paths: Vec<(&str, &str)> = requests
        .iter()
        .map(|request| (request.method.as_str(), request.path.as_str()))
        .collect();
    assert_eq!(paths, [("GET", "/v1/policy"), ("POST", "/v1/reports")]);
    assert_eq!(requests[0].header("if-none-match"), None);
    for request in &requests {
        let verified = request.verify(&server.url, key).unwrap();
        assert_eq!(verified.keyid, DEVICE_ID);
    }
    let nonces: Vec<String> = requests
        .iter()
        .map(|request| request.verify(&server.url, key).unwrap().nonce)
        .collect();
    assert_ne!(nonces[0], nonces[1]);

    let submission: ReportSubmission = serde_json::from_slice(&requests[1].body).unwrap();
    let id = uuid::Uuid::parse_str(&submission.id).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(submission.report.policy.name, "fleet");
    assert_eq!(submission.report.policy.source, server.url);
    let checks: Vec<&str> = submission
        .report
        .findings
        .iter()
        .map(|finding| finding.check.as_str())
        .collect();
    assert_eq!(checks, ["ssh-server"]);
    assert!(
        stdout.contains(&format!(
            "report {} delivered to {}: compliant",
            submission.id, server.url
        )),
        "{stdout}"
    );

    let last = last_report(dir.path());
    assert_eq!(last["id"], submission.id.as_str());
    assert_eq!(last["status"], "compliant");
    assert_eq!(last["error"], Value::Null);
    let state = dir.path().join("state");
    assert_eq!(
        std::fs::read_to_string(state.join("policy-cache.toml")).unwrap(),
        crate::fake_server::POLICY
    );
    assert_eq!(
        std::fs::read_to_string(state.join("policy-cache.etag")).unwrap(),
        POLICY_ETAG
    );

    assert!(
        !state
            .join("outbox")
            .join(format!("{}.json", submission.id))
            .exists(),
        "an acknowledged report leaves the outbox"
    );

    // The next run asks with the ETag, gets 304 and judges by the cache; its
    // facts are unchanged, so they go as their hash in a heartbeat.
    shipshape(dir.path()).arg("report").assert().code(0);
    let requests = server.take_requests();
    assert_eq!(requests[0].header("if-none-match"), Some(POLICY_ETAG));
    assert_eq!(requests[1].path, "/v1/heartbeats");
    requests[1].verify(&server.url, key).unwrap();
    let again: Heartbeat = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(again.report.policy.name, "fleet");
    assert_eq!(again.facts_hash, facts_hash(&submission.facts));
    assert_ne!(again.id, submission.id);
}

#[test]
fn the_exit_code_follows_the_servers_grade_and_json_prints_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("leaky"));
    enroll(dir.path(), &server);
    let assert = shipshape(dir.path())
        .args(["report", "--format", "json"])
        .assert()
        .code(1);
    let receipt: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(receipt["status"], "leaky");
    assert_eq!(receipt["device_id"], DEVICE_ID);
    assert_eq!(receipt["report_id"], last_report(dir.path())["id"]);
}

#[test]
fn a_bad_policy_push_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    shipshape(dir.path()).arg("report").assert().code(0);
    server.take_requests();

    let good = fleet("compliant");
    server.answer(move |request| {
        if request.path == "/v1/policy" {
            Reply::text(200, "[checks.firewall]\nseverity = \"urgent\"\n")
                .with_header("etag", "\"broken\"")
        } else {
            good(request)
        }
    });
    let kept = format!("keeping the last good policy (etag {POLICY_ETAG})");
    shipshape(dir.path())
        .arg("report")
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "shipshape: error: the server's policy does not parse: ",
        ))
        .stderr(predicate::str::contains("unknown variant `urgent`"))
        .stderr(predicate::str::contains(format!(" — {kept}")));
    let requests = server.take_requests();
    let sent: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(sent["report"]["policy"]["name"], "fleet");
    let state = dir.path().join("state");
    assert_eq!(
        std::fs::read_to_string(state.join("policy-cache.etag")).unwrap(),
        POLICY_ETAG,
        "the broken policy's ETag is not remembered"
    );
    shipshape(dir.path())
        .arg("status")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("policy       ERROR since "))
        .stdout(predicate::str::contains(kept.as_str()));

    // The server is fixed: the refusal is over.
    server.answer(fleet("compliant"));
    shipshape(dir.path())
        .arg("report")
        .assert()
        .code(0)
        .stderr(predicate::str::contains("error").not());
    shipshape(dir.path())
        .arg("status")
        .assert()
        .stdout(predicate::str::contains(format!(
            "policy       the server's, cached (etag {POLICY_ETAG})"
        )));
}

#[test]
fn an_unreachable_server_queues_the_report_and_the_exit_code_is_the_local_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    shipshape(dir.path()).arg("report").assert().code(0);

    // Point the enrollment at a port where nothing listens.
    let config_path = dir.path().join("config").join("agent.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let gone = closed_port_url();
    std::fs::write(&config_path, config.replace(&server.url, &gone)).unwrap();
    set_delivery(dir.path(), QUICK_RETRIES);

    let assert = shipshape(dir.path())
        .args(["report", "--format", "json"])
        .assert()
        .stderr(predicate::str::contains(format!(
            "warning: could not fetch the policy: cannot reach {gone}/v1/policy: connection refused"
        )));
    let last = last_report(dir.path());
    let local = if last["verdict"] == "leaky" { 1 } else { 0 };
    assert_eq!(assert.get_output().status.code(), Some(local), "{last}");
    let queued: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(queued["report_id"], last["id"]);
    assert_eq!(queued["queued"], true);
    assert_eq!(queued["waiting"], 1);
    assert_eq!(queued["verdict"], last["verdict"]);
    assert_eq!(last["status"], Value::Null);
    assert_eq!(last["queued"], true);
    let error = last["error"].as_str().unwrap();
    assert!(
        error.starts_with("server unreachable since ")
            && error.contains(&format!(
                "— cannot reach {gone}/v1/heartbeats: connection refused"
            ))
            && error.contains("; 1 report waiting, will retry at the next run — "),
        "{error}"
    );
    let id = last["id"].as_str().unwrap();
    assert!(
        dir.path()
            .join("state")
            .join("outbox")
            .join(format!("{id}.json"))
            .exists()
    );
    shipshape(dir.path())
        .arg("status")
        .assert()
        .stdout(predicate::str::contains(format!("{id} at ")))
        .stdout(predicate::str::contains(
            ": queued, not delivered yet: server unreachable since",
        ));
}

#[test]
fn a_refused_report_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    server.answer(|_| Reply::json(401, &serde_json::json!({ "error": "device revoked" })));
    let last_id = || last_report(dir.path())["id"].as_str().unwrap().to_owned();
    let assert = shipshape(dir.path()).arg("report").assert().code(2);
    let id = last_id();
    let rejected = dir.path().join("state").join("outbox").join("rejected");
    assert.stderr(predicate::str::contains(format!(
        "shipshape: error: report {id} was not delivered: server refused the report: 401 device revoked \
         — re-enroll with `shipshape enroll`; moved to {}",
        rejected.join(format!("{id}.json")).display()
    )));
    assert!(
        last_report(dir.path())["error"]
            .as_str()
            .unwrap()
            .contains("401 device revoked")
    );
    assert_eq!(last_report(dir.path())["queued"], false);
    shipshape(dir.path())
        .arg("status")
        .assert()
        .stdout(predicate::str::contains(
            ": NOT delivered: server refused the report: 401",
        ));
}

#[test]
fn not_enrolled_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    shipshape(dir.path())
        .arg("report")
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "this machine is not enrolled (there is no ",
        ))
        .stderr(predicate::str::contains(
            "run `shipshape enroll --server URL --token TOKEN` first",
        ));
}

#[test]
fn check_judges_by_the_cached_server_policy_even_after_an_exception_expired() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("policy-cache.toml"),
        format!(
            "{}\n[[exceptions]]\ncheck = \"ssh-server\"\nhosts = [\"*\"]\nreason = \"lab\"\nexpires = 2020-01-31\n",
            crate::fake_server::POLICY
        ),
    )
    .unwrap();
    let assert = shipshape(dir.path())
        .args(["check", "--format", "json"])
        .assert();
    let report: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(report["policy"]["name"], "fleet");
    assert_eq!(
        report["policy"]["source"],
        state.join("policy-cache.toml").display().to_string()
    );
    assert_ne!(report["findings"][0]["status"], "excepted");
}
