//! `POST /v1/enroll`: a token buys a device id for a public key, or a 401
//! that says what is wrong with the token; a bad key or body is a 400.

use axum::http::StatusCode;
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use shipshape_server::model::TokenKind;
use shipshape_server::store::Store as _;

use crate::support::{Server, create_token, enroll_request, random_bytes};

#[tokio::test]
async fn an_enrolled_device_has_its_key_on_file() {
    let server = Server::start().await;
    let device = server.enroll("ada-laptop").await;
    let key = server
        .store
        .device_key(&device.id)
        .await
        .unwrap()
        .expect("the device is on file");
    assert_eq!(&key.public_key, device.key.verifying_key().as_bytes());
    assert!(!key.revoked);
    let fleet = server.fleet().await;
    assert_eq!(fleet["summary"]["total"], 1);
    assert_eq!(fleet["devices"][0]["hostname"], "ada-laptop");
}

#[tokio::test]
async fn a_refused_token_says_why() {
    let server = Server::start().await;
    let store = server.store.as_ref();
    let once = create_token(store, TokenKind::Enroll, Some(1), None).await;
    let past = Timestamp::now() - SignedDuration::from_hours(1);
    let expired = create_token(store, TokenKind::Enroll, None, Some(past)).await;
    let before = store.list_tokens().await.unwrap();
    let revoked = create_token(store, TokenKind::Enroll, None, None).await;
    let revoked_id = store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|token| !before.contains(token))
        .unwrap()
        .id;
    assert!(
        store
            .revoke_token(&revoked_id, Timestamp::now())
            .await
            .unwrap()
    );

    let key = SigningKey::from_bytes(&random_bytes());
    let enroll = |token: String| {
        let request = enroll_request(&token, &key, "bob-desktop");
        let server = &server;
        async move { server.post_json("/v1/enroll", &request).await }
    };
    assert_eq!(enroll(once.clone()).await.status, StatusCode::CREATED);
    for (token, why) in [
        (once, "used up"),
        (expired, "expired"),
        (revoked, "revoked"),
        ("sse_not-a-token".to_owned(), "unknown"),
        // An admin token does not enroll.
        (server.admin_token.clone(), "unknown"),
    ] {
        let answer = enroll(token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{why}");
        let error = answer.error().error;
        assert!(error.contains(why), "{why}: {error}");
    }
    assert_eq!(
        server.fleet().await["summary"]["total"],
        1,
        "only one enrolled"
    );
}

#[tokio::test]
async fn a_bad_key_or_body_is_a_400_naming_the_field() {
    let server = Server::start().await;
    let key = SigningKey::from_bytes(&random_bytes());
    let mut request = enroll_request(&server.enroll_token, &key, "carol-mac");
    request.public_key = "AAAA".to_owned();
    let answer = server.post_json("/v1/enroll", &request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let error = answer.error();
    assert_eq!(error.path.as_deref(), Some("public_key"));
    assert!(error.error.contains("32"), "{}", error.error);

    let mut body =
        serde_json::to_value(enroll_request(&server.enroll_token, &key, "carol-mac")).unwrap();
    body["host"]["os"]["family"] = "beos".into();
    let answer = server.post_json("/v1/enroll", &body).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let error = answer.error();
    assert_eq!(error.path.as_deref(), Some("host.os.family"));
    assert!(
        error
            .error
            .starts_with("malformed JSON: unknown variant `beos`"),
        "{}",
        error.error
    );

    let request = enroll_request(&server.enroll_token, &key, " ");
    let answer = server.post_json("/v1/enroll", &request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error().path.as_deref(), Some("host.hostname"));
    assert_eq!(server.fleet().await["summary"]["total"], 0);
}
