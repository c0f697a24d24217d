//! The policy: served signed with an ETag (304 when unchanged), replaced by
//! an admin with `PUT /v1/policy`, which re-grades the fleet.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;
use shipshape_core::wire::DeviceStatus;
use shipshape_server::api::policy::BUILT_IN;

use crate::support::{Server, Signed, leaky_submission, request};

/// Only the SSH key check, which the test laptop passes (it has no keys).
const SSH_KEYS_ONLY: &str = "name = \"keys-only\"\n\n[checks.ssh-keys]\nseverity = \"high\"\n";

async fn put_policy(server: &Server, token: Option<&str>, text: &str) -> crate::support::Answer {
    let mut builder =
        request(Method::PUT, "/v1/policy").header(header::CONTENT_TYPE, "application/toml");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    server
        .send(builder.body(Body::from(text.to_owned())).unwrap())
        .await
}

#[tokio::test]
async fn the_policy_is_served_signed_with_an_etag() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let fetch = Signed::new(&device, Method::GET, "/v1/policy", Vec::new());
    let answer = server.send(fetch.request()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), BUILT_IN);
    assert!(
        answer
            .header(header::CONTENT_TYPE)
            .unwrap()
            .starts_with("application/toml")
    );
    let etag = answer.header(header::ETAG).expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // The same request again is a replay.
    let replay = server.send(fetch.request()).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.error().error.contains("nonce was used before"));

    let mut cached = Signed::new(&device, Method::GET, "/v1/policy", Vec::new()).request();
    cached
        .headers_mut()
        .insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    let answer = server.send(cached).await;
    assert_eq!(answer.status, StatusCode::NOT_MODIFIED);
    assert_eq!(answer.header(header::ETAG), Some(etag.as_str()));
    assert!(answer.body.is_empty());

    let metrics = server.get("/metrics").await.text();
    for line in [
        "shipshape_policy_fetches_total{outcome=\"sent\"} 1",
        "shipshape_policy_fetches_total{outcome=\"not_modified\"} 1",
        "shipshape_policy_fetches_total{outcome=\"rejected\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn the_policy_is_only_for_enrolled_devices() {
    let server = Server::start().await;
    let answer = server.get("/v1/policy").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error().error, "request has no content-digest header");

    let device = server.enroll("ada-laptop").await;
    let mut signed = Signed::new(&device, Method::GET, "/v1/policy", Vec::new());
    signed.keyid = "someone-else".to_owned();
    let answer = server.send(signed.request()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer
            .error()
            .error
            .contains("unknown key id `someone-else`")
    );
}

#[tokio::test]
async fn replacing_the_policy_needs_an_admin_and_a_valid_policy() {
    let server = Server::start().await;
    let answer = put_policy(&server, None, SSH_KEYS_ONLY).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.error().error.contains("admin token"));
    let enroll_token = server.enroll_token.clone();
    let answer = put_policy(&server, Some(&enroll_token), SSH_KEYS_ONLY).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    let admin = server.admin_token.clone();
    let answer = put_policy(
        &server,
        Some(&admin),
        "[checks.ssh-keys]\nseverity = \"urgent\"\n",
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let error = answer.error().error;
    assert!(error.starts_with("policy.toml:2:12: "), "{error}");

    // Nothing changed: the built-in policy is still served.
    let device = server.enroll("ada-laptop").await;
    let answer = server
        .send(Signed::new(&device, Method::GET, "/v1/policy", Vec::new()).request())
        .await;
    assert_eq!(answer.text(), BUILT_IN);
}

#[tokio::test]
async fn a_new_policy_regrades_the_fleet() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    assert_eq!(
        server
            .report(&device, &leaky_submission("ada-laptop"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server.detail(&device).await.unwrap().device.status,
        DeviceStatus::Leaky
    );
    let old_etag = server
        .send(Signed::new(&device, Method::GET, "/v1/policy", Vec::new()).request())
        .await
        .header(header::ETAG)
        .unwrap()
        .to_owned();

    let admin = server.admin_token.clone();
    let answer = put_policy(&server, Some(&admin), SSH_KEYS_ONLY).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    assert_eq!(answer.header(header::LOCATION), Some("/v1/policy/status"));
    let new_etag = answer
        .header(header::ETAG)
        .expect("the new ETag")
        .to_owned();
    assert_ne!(new_etag, old_etag);
    let started: serde_json::Value = answer.json();
    assert_eq!(started["devices"], 1, "{started}");
    assert!(
        started["state"] == "running" || started["state"] == "done",
        "{started}"
    );
    let progress = server.regrade_finished().await;
    assert_eq!(
        (
            &progress["policy_id"],
            &progress["state"],
            &progress["devices"],
            &progress["done"],
            &progress["changed_status"]
        ),
        (
            &started["policy_id"],
            &json!("done"),
            &json!(1),
            &json!(1),
            &json!(1)
        ),
        "{progress}"
    );
    assert!(progress["finished_at"].is_string(), "{progress}");
    let detail = server.detail(&device).await.unwrap();
    assert_eq!(detail.device.status, DeviceStatus::Compliant);
    assert!(detail.device.failing_checks.is_empty());
    let metrics = server.get("/metrics").await.text();
    for line in [
        format!(
            "shipshape_regrade_running{{policy_id=\"{}\"}} 0",
            progress["policy_id"]
        ),
        "shipshape_regrade_devices{count=\"done\"} 1".to_owned(),
        "shipshape_regrade_devices{count=\"changed\"} 1".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    // The same policy again starts nothing: 200 with the re-grade as it stands.
    let again = put_policy(&server, Some(&admin), SSH_KEYS_ONLY).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json::<serde_json::Value>(), progress);
    assert_eq!(again.header(header::ETAG), Some(new_etag.as_str()));

    // Agents get the new policy, and new reports are graded by it.
    let answer = server
        .send(Signed::new(&device, Method::GET, "/v1/policy", Vec::new()).request())
        .await;
    assert_eq!(answer.text(), SSH_KEYS_ONLY);
    assert_eq!(answer.header(header::ETAG), Some(new_etag.as_str()));
    let receipt: shipshape_core::wire::Receipt = server
        .report(&device, &leaky_submission("ada-laptop"))
        .await
        .json();
    assert_eq!(receipt.status, DeviceStatus::Compliant);
    assert_eq!(receipt.findings.len(), 1);
}

#[tokio::test]
async fn the_regrade_status_needs_an_admin() {
    let server = Server::start().await;
    let answer = server.get("/v1/policy/status").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let progress: serde_json::Value = server.admin_get("/v1/policy/status").await.json();
    assert_eq!(
        progress["state"], "done",
        "no device to re-grade: {progress}"
    );
    assert_eq!(progress["devices"], 0);
    assert!(
        progress.get("after").is_none(),
        "the cursor stays inside: {progress}"
    );
}

#[tokio::test]
async fn at_start_a_policy_file_is_activated_once_and_an_invalid_one_refused() {
    use jiff::Timestamp;
    use shipshape_server::api::policy::{PolicySetupError, activate_at_start};
    use shipshape_server::store::{SqliteStore, Store as _};

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("start.db")).unwrap();
    let built_in = activate_at_start(&store, None, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(built_in.stored.text, BUILT_IN);
    assert_eq!(built_in.policy.name, "default");

    let file = dir.path().join("keys.toml");
    std::fs::write(&file, SSH_KEYS_ONLY).unwrap();
    let activated = activate_at_start(&store, Some(&file), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(activated.stored.text, SSH_KEYS_ONLY);
    assert_ne!(activated.stored.id, built_in.stored.id);
    // Starting again with the same file activates nothing new.
    let again = activate_at_start(&store, Some(&file), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(again.stored, activated.stored);
    // Nor does starting without one.
    let kept = activate_at_start(&store, None, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(kept.stored, activated.stored);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[checks.ssh-keys]\nseverity = \"urgent\"\n").unwrap();
    let error = activate_at_start(&store, Some(&bad), Timestamp::now())
        .await
        .unwrap_err();
    assert!(matches!(error, PolicySetupError::Invalid(_)));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:2:12: ", bad.display())),
        "{error}"
    );
    assert_eq!(store.active_policy().await.unwrap(), Some(activated.stored));
}
