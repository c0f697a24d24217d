//! `POST /v1/reports`: a signed report is stored once and answered with a
//! receipt; every kind of bad request is refused with the right status, a
//! body that says why, and nothing stored.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use shipshape_core::wire::{DeviceStatus, Receipt};
use shipshape_server::api::ApiSettings;
use shipshape_server::store::Store as _;

use crate::support::{Device, Server, Signed, leaky_submission, random_bytes, request};

#[tokio::test]
async fn a_signed_report_is_stored_graded_and_acknowledged() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let submission = leaky_submission("ada-laptop");
    let answer = server.report(&device, &submission).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let receipt: Receipt = answer.json();
    assert_eq!(receipt.report_id, submission.id);
    assert_eq!(receipt.device_id, device.id);
    assert_eq!(receipt.status, DeviceStatus::Leaky);
    let disk = receipt
        .findings
        .iter()
        .find(|finding| finding.check == "disk-encryption")
        .expect("the server graded the disk");
    assert!(disk.leak);

    let detail = server.detail(&device).await.unwrap();
    assert_eq!(detail.device.status, DeviceStatus::Leaky);
    assert!(
        detail
            .device
            .failing_checks
            .contains(&"disk-encryption".to_owned())
    );
    assert_eq!(detail.reports.len(), 1);
    assert_eq!(detail.reports[0].id, submission.id);
}

#[tokio::test]
async fn a_retry_gets_the_same_receipt_and_stores_nothing_twice() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let submission = leaky_submission("ada-laptop");
    let first: Receipt = server.report(&device, &submission).await.json();
    // A retry is signed afresh (new nonce), as the agent does.
    let answer = server.report(&device, &submission).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json::<Receipt>(), first);
    assert_eq!(server.detail(&device).await.unwrap().reports.len(), 1);

    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("shipshape_reports_total{outcome=\"stored\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shipshape_reports_total{outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
}

/// Sends `request` and checks the status, that the error mentions `says`,
/// and that the device's stored state did not change.
async fn refused(
    server: &Server,
    device: &Device,
    request: Request<Body>,
    status: StatusCode,
    says: &str,
) {
    let before = server.detail(device).await;
    let answer = server.send(request).await;
    assert_eq!(answer.status, status, "{says}: {}", answer.text());
    assert!(
        answer
            .header(axum::http::header::WWW_AUTHENTICATE)
            .is_none(),
        "no bearer token would help"
    );
    let error = answer.error().error;
    assert!(error.contains(says), "expected {says:?} in {error:?}");
    assert_eq!(
        server.detail(device).await,
        before,
        "{says}: the store changed"
    );
}

/// Sends `signed` as it is and checks it is refused as unauthorized, as
/// [`refused`] does.
async fn unauthorized(server: &Server, device: &Device, signed: &Signed, says: &str) {
    refused(
        server,
        device,
        signed.request(),
        StatusCode::UNAUTHORIZED,
        says,
    )
    .await;
}

fn report_body(hostname: &str) -> Vec<u8> {
    serde_json::to_vec(&leaky_submission(hostname)).unwrap()
}

/// A report from `ada-laptop` signed by `device`, for a test to bend.
fn signed_report(device: &Device) -> Signed {
    Signed::new(
        device,
        Method::POST,
        "/v1/reports",
        report_body("ada-laptop"),
    )
}

#[tokio::test]
async fn a_tampered_body_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let signed = signed_report(&device);
    refused(
        &server,
        &device,
        signed.request_with_body(report_body("eve-laptop")),
        StatusCode::UNAUTHORIZED,
        "content-digest does not match the body",
    )
    .await;
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut signed = signed_report(&device);
    signed.key = SigningKey::from_bytes(&random_bytes());
    unauthorized(&server, &device, &signed, "does not verify with the key").await;
}

#[tokio::test]
async fn a_signature_for_another_url_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut signed = signed_report(&device);
    signed.signed_uri = "http://other.example/v1/reports".to_owned();
    unauthorized(&server, &device, &signed, "does not verify with the key").await;
}

#[tokio::test]
async fn a_replayed_nonce_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let signed = signed_report(&device);
    assert_eq!(server.send(signed.request()).await.status, StatusCode::OK);
    // The very same request again, and a new report under the same nonce.
    unauthorized(&server, &device, &signed, "nonce was used before").await;
    let mut again = signed_report(&device);
    again.nonce = signed.nonce.clone();
    unauthorized(&server, &device, &again, "nonce was used before").await;
    assert_eq!(server.detail(&device).await.unwrap().reports.len(), 1);
}

#[tokio::test]
async fn a_signature_created_too_long_ago_or_ahead_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut signed = signed_report(&device);
    signed.created = Timestamp::now().as_second() - 600;
    unauthorized(&server, &device, &signed, "more than the 300s allowed").await;
    signed.created = Timestamp::now().as_second() + 600;
    unauthorized(&server, &device, &signed, "in the future").await;
}

#[tokio::test]
async fn a_revoked_device_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    assert!(
        server
            .store
            .revoke_device(&device.id, Timestamp::now())
            .await
            .unwrap()
    );
    let signed = signed_report(&device);
    unauthorized(&server, &device, &signed, "was revoked").await;
}

#[tokio::test]
async fn an_unknown_key_id_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut signed = signed_report(&device);
    signed.keyid = "00000000-0000-0000-0000-000000000000".to_owned();
    unauthorized(&server, &device, &signed, "unknown key id").await;
}

#[tokio::test]
async fn missing_signature_headers_are_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let before = server.detail(&device).await;
    let answer = server
        .send(
            request(Method::POST, "/v1/reports")
                .header("content-type", "application/json")
                .body(report_body("ada-laptop").into())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error().error, "request has no content-digest header");

    let signed = signed_report(&device);
    let mut without_signature = signed.request();
    without_signature.headers_mut().remove("signature");
    let answer = server.send(without_signature).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error().error, "request has no signature header");

    let mut garbled = signed.request();
    garbled
        .headers_mut()
        .insert("signature-input", "sig1=(".parse().unwrap());
    let answer = server.send(garbled).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .error()
            .error
            .starts_with("malformed signature-input header: ")
    );
    assert_eq!(server.detail(&device).await, before);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_refused() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut submission = leaky_submission("ada-laptop");
    submission.report.policy.source = "x".repeat(1024 * 1024);
    let body = serde_json::to_vec(&submission).unwrap();
    let signed = Signed::new(&device, Method::POST, "/v1/reports", body);
    refused(
        &server,
        &device,
        signed.request(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than",
    )
    .await;
}

#[tokio::test]
async fn malformed_json_is_a_400_with_the_field_path() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut body = serde_json::to_value(leaky_submission("ada-laptop")).unwrap();
    body["facts"]["host"]["os"]["family"] = 7.into();
    let signed = Signed::new(
        &device,
        Method::POST,
        "/v1/reports",
        serde_json::to_vec(&body).unwrap(),
    );
    let before = server.detail(&device).await;
    let answer = server.send(signed.request()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let error = answer.error();
    assert_eq!(error.path.as_deref(), Some("facts.host.os.family"));
    assert!(
        error.error.starts_with("malformed JSON: "),
        "{}",
        error.error
    );
    assert_eq!(server.detail(&device).await, before);

    let signed = Signed::new(&device, Method::POST, "/v1/reports", b"{\"id\": ".to_vec());
    let answer = server.send(signed.request()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().error.contains("EOF"), "{}", answer.text());
}

#[tokio::test]
async fn a_report_id_must_be_a_uuid_and_the_host_plausible() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut submission = leaky_submission("ada-laptop");
    submission.id = "report-1".to_owned();
    let answer = server.report(&device, &submission).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error().path.as_deref(), Some("id"));

    let submission = leaky_submission("ada\u{1b}[2J");
    let answer = server.report(&device, &submission).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error().path.as_deref(), Some("facts.host.hostname"));
    assert!(server.detail(&device).await.unwrap().reports.is_empty());
}

#[tokio::test]
async fn a_report_id_of_another_device_is_a_conflict() {
    let server = Server::start().await;
    let ada = server.enroll("ada-laptop").await;
    let bob = server.enroll("bob-laptop").await;
    let submission = leaky_submission("ada-laptop");
    assert_eq!(
        server.report(&ada, &submission).await.status,
        StatusCode::OK
    );
    let before = server.detail(&bob).await;
    let answer = server.report(&bob, &submission).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert!(answer.error().error.contains("another device"));
    assert_eq!(server.detail(&bob).await, before);
}

#[tokio::test]
async fn rejections_are_counted_by_reason() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let mut signed = signed_report(&device);
    signed.key = SigningKey::from_bytes(&random_bytes());
    server.send(signed.request()).await;
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains("shipshape_reports_rejected_total{reason=\"bad_signature\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn behind_a_proxy_the_public_url_is_what_is_signed() {
    let server = Server::start_with(ApiSettings {
        stale_after: SignedDuration::from_hours(48),
        public_url: Some("https://fleet.example.com/shipshape/".parse().unwrap()),
        tls: false,
    })
    .await;
    let device = server.enroll("ada-laptop").await;
    let mut signed = signed_report(&device);
    signed.signed_uri = "https://fleet.example.com/shipshape/v1/reports".to_owned();
    let answer = server.send(signed.request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());

    // Signed for the address the proxy forwards to: not what the agent called.
    let direct = signed_report(&device);
    unauthorized(&server, &device, &direct, "does not verify").await;
}
