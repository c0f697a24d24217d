//! `POST /v1/heartbeats`: a run whose facts did not change is stored as a
//! report with the facts the server holds; a hash it does not hold is
//! answered "resend the full report", with nothing stored.

use axum::http::{Method, StatusCode};
use shipshape_core::facts::Observed;
use shipshape_core::wire::{
    DeviceStatus, Heartbeat, RESEND_FULL, Receipt, ReportSubmission, facts_hash,
};

use crate::support::{Device, Server, Signed, heartbeat_after, leaky_submission};

/// A device with one full report stored; its submission.
async fn reported(server: &Server, hostname: &str) -> (Device, ReportSubmission) {
    let device = server.enroll(hostname).await;
    let submission = leaky_submission(hostname);
    let answer = server.report(&device, &submission).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    (device, submission)
}

fn metric(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

#[tokio::test]
async fn a_heartbeat_with_the_last_facts_hash_is_stored_as_a_report() {
    let server = Server::start().await;
    let (device, submission) = reported(&server, "ada-laptop").await;
    let before = server.detail(&device).await.unwrap();

    // Received times are in milliseconds: let one pass.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let heartbeat = heartbeat_after(&submission);
    let answer = server.heartbeat(&device, &heartbeat).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let receipt: Receipt = answer.json();
    assert_eq!(receipt.report_id, heartbeat.id);
    assert_eq!(receipt.device_id, device.id);
    assert_eq!(
        receipt.status,
        DeviceStatus::Leaky,
        "graded from the held facts"
    );
    assert!(
        receipt
            .findings
            .iter()
            .any(|finding| finding.check == "disk-encryption" && finding.leak)
    );

    let after = server.detail(&device).await.unwrap();
    assert_eq!(after.reports.len(), 2);
    assert_eq!(after.reports[0].id, heartbeat.id, "the newest report");
    assert_eq!(after.device.last_seen, Some(receipt.received_at));
    assert!(after.device.last_seen > before.device.last_seen);
    assert_eq!(after.device.hostname, "ada-laptop");

    // The held facts stay the device's last facts: the next heartbeat too.
    let next = heartbeat_after(&submission);
    assert_eq!(
        server.heartbeat(&device, &next).await.status,
        StatusCode::OK
    );

    let metrics = server.get("/metrics").await.text();
    assert!(
        metric(&metrics, "shipshape_heartbeats_total{outcome=\"stored\"} 2"),
        "{metrics}"
    );
    assert!(
        metric(&metrics, "shipshape_reports_total{outcome=\"stored\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_hash_the_server_does_not_hold_asks_for_the_full_report() {
    let server = Server::start().await;

    // A device that never sent facts.
    let fresh = server.enroll("new-laptop").await;
    let answer = server
        .heartbeat(&fresh, &heartbeat_after(&leaky_submission("new-laptop")))
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert_eq!(answer.error().code.as_deref(), Some(RESEND_FULL));
    assert!(server.detail(&fresh).await.unwrap().reports.is_empty());

    // A device whose facts changed since: only the last facts count.
    let (device, first) = reported(&server, "ada-laptop").await;
    let mut changed = leaky_submission("ada-laptop");
    changed.facts.firewall = Observed::unknown("the probe timed out".to_owned());
    assert_ne!(facts_hash(&changed.facts), facts_hash(&first.facts));
    assert_eq!(
        server.report(&device, &changed).await.status,
        StatusCode::OK
    );
    let before = server.detail(&device).await;
    let heartbeat = heartbeat_after(&first);
    let answer = server.heartbeat(&device, &heartbeat).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    let error = answer.error();
    assert_eq!(error.code.as_deref(), Some(RESEND_FULL));
    assert!(error.error.contains("resend the full report"), "{error:?}");
    assert_eq!(server.detail(&device).await, before, "nothing stored");

    // The agent's full report under the same id, signed afresh, goes through.
    let full = ReportSubmission {
        id: heartbeat.id.clone(),
        ..first.clone()
    };
    let answer = server.report(&device, &full).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json::<Receipt>().report_id, heartbeat.id);

    let metrics = server.get("/metrics").await.text();
    assert!(
        metric(
            &metrics,
            "shipshape_reports_rejected_total{reason=\"resend_full\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_refused_heartbeat_does_not_spend_its_nonce() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let submission = leaky_submission("ada-laptop");
    let heartbeat = heartbeat_after(&submission);
    let signed = Signed::new(
        &device,
        Method::POST,
        "/v1/heartbeats",
        serde_json::to_vec(&heartbeat).unwrap(),
    );
    assert_eq!(
        server.send(signed.request()).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        server.report(&device, &submission).await.status,
        StatusCode::OK
    );
    // The same signed heartbeat again: now the facts are held, and its
    // nonce was never recorded.
    let answer = server.send(signed.request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // But once stored, it cannot be replayed.
    let answer = server.send(signed.request()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
    assert!(answer.error().error.contains("replayed"));
}

#[tokio::test]
async fn a_retried_heartbeat_gets_the_same_receipt() {
    let server = Server::start().await;
    let (device, submission) = reported(&server, "ada-laptop").await;
    let heartbeat = heartbeat_after(&submission);
    let first: Receipt = server.heartbeat(&device, &heartbeat).await.json();
    let answer = server.heartbeat(&device, &heartbeat).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json::<Receipt>(), first);
    assert_eq!(server.detail(&device).await.unwrap().reports.len(), 2);

    let metrics = server.get("/metrics").await.text();
    assert!(
        metric(
            &metrics,
            "shipshape_heartbeats_total{outcome=\"duplicate\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn heartbeats_are_checked_like_reports() {
    let server = Server::start().await;
    let (device, submission) = reported(&server, "ada-laptop").await;

    let mut bad_hash = heartbeat_after(&submission);
    bad_hash.facts_hash = bad_hash.facts_hash.to_uppercase();
    let answer = server.heartbeat(&device, &bad_hash).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert_eq!(answer.error().path.as_deref(), Some("facts_hash"));

    let mut bad_id = heartbeat_after(&submission);
    bad_id.id = "report-1".to_owned();
    let answer = server.heartbeat(&device, &bad_id).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert_eq!(answer.error().path.as_deref(), Some("id"));

    let signed = Signed::new(
        &device,
        Method::POST,
        "/v1/heartbeats",
        serde_json::to_vec(&heartbeat_after(&submission)).unwrap(),
    );
    let tampered = serde_json::to_vec(&heartbeat_after(&submission)).unwrap();
    let answer = server.send(signed.request_with_body(tampered)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());

    // A heartbeat under the id of another device's report is refused.
    let (other, theirs) = reported(&server, "eve-laptop").await;
    let taken = Heartbeat {
        id: submission.id.clone(),
        ..heartbeat_after(&theirs)
    };
    let answer = server.heartbeat(&other, &taken).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert_eq!(answer.error().code, None, "not a resend-full");

    assert_eq!(server.detail(&device).await.unwrap().reports.len(), 1);
}

#[tokio::test]
async fn reports_dropped_by_agents_are_counted_once() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut submission = leaky_submission("ada-laptop");
    submission.dropped = 3;
    assert_eq!(
        server.report(&device, &submission).await.status,
        StatusCode::OK
    );
    // A retry of the same report does not count its drops again.
    assert_eq!(
        server.report(&device, &submission).await.status,
        StatusCode::OK
    );
    let mut heartbeat = heartbeat_after(&submission);
    heartbeat.dropped = 2;
    assert_eq!(
        server.heartbeat(&device, &heartbeat).await.status,
        StatusCode::OK
    );

    let metrics = server.get("/metrics").await.text();
    assert!(
        metric(&metrics, "shipshape_reports_dropped_by_agents_total 5"),
        "{metrics}"
    );
}
