//! What `POST /v1/reports` and `GET /v1/policy` promise an agent: a retried
//! report is stored once, with the same receipt; a body too large or not
//! the JSON the API expects is refused with a status and a message that
//! say why, and stores nothing; the policy comes with an ETag, and the
//! same ETag again gets a 304.

use reqwest::Method;
use serde_json::{Value, json};
use shipshape_tests::device::{Device, json_bytes, post_json};
use shipshape_tests::{Server, leaky_policy, lenient_policy, sample};

/// A server with an admin token, an enrollment token and one enrolled device.
fn server_with_device(policy: &str, hostname: &str) -> (Server, String, String, Device) {
    let server = Server::with_policy(policy);
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let device = Device::enroll(&server, &enroll, &sample().host(hostname));
    (server, admin, enroll, device)
}

fn report_ids(server: &Server, admin: &str, device: &Device) -> Vec<Value> {
    server.device(admin, &device.id)["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|report| report["id"].clone())
        .collect()
}

#[test]
fn a_report_sent_twice_is_stored_once_with_the_same_receipt() {
    let (server, admin, enroll, device) =
        server_with_device(&leaky_policy(sample().os_id()), "retrier");
    let submission = sample().submission("retrier");

    // A retry is signed afresh (new nonce), as the agent does.
    let first = device.report(&submission);
    assert_eq!(first.status, 200, "{}", first.text);
    let second = device.report(&submission);
    assert_eq!(second.status, 200, "{}", second.text);
    let receipt = first.json();
    assert_eq!(second.json(), receipt, "the same receipt");
    assert_eq!(receipt["report_id"], submission["id"]);
    assert_eq!(receipt["device_id"], device.id.as_str());
    assert_eq!(receipt["status"], "leaky");
    assert_eq!(
        report_ids(&server, &admin, &device),
        [submission["id"].clone()]
    );
    let fleet = server.fleet(&admin);
    assert_eq!(fleet["summary"]["total"], 1);
    assert_eq!(fleet["devices"][0]["last_seen"], receipt["received_at"]);

    // Another device cannot take the id.
    let other = Device::enroll(&server, &enroll, &sample().host("other"));
    let taken = other.report(&submission);
    assert_eq!(taken.status, 409, "{}", taken.text);
    assert!(
        taken.error().contains("belongs to another device's report"),
        "{}",
        taken.text
    );
    assert_eq!(report_ids(&server, &admin, &other), Vec::<Value>::new());
    assert_eq!(
        report_ids(&server, &admin, &device),
        [submission["id"].clone()]
    );
}

#[test]
fn a_body_over_one_mebibyte_is_refused_with_413() {
    let (server, admin, enroll, device) =
        server_with_device(&leaky_policy(sample().os_id()), "large");
    let before = server.fleet(&admin);

    // Valid JSON, one byte over the limit.
    let mut submission = sample().submission("large");
    submission["report"]["policy"]["name"] = "".into();
    let padding = 1024 * 1024 + 1 - json_bytes(&submission).len();
    submission["report"]["policy"]["name"] = "x".repeat(padding).into();
    let body = json_bytes(&submission);
    assert_eq!(body.len(), 1024 * 1024 + 1);

    let signed = device.sign(Method::POST, "/v1/reports", body);
    let answer = signed.send();
    assert_eq!(answer.status, 413, "{}", answer.text);
    assert!(
        answer
            .error()
            .contains("larger than the 1048576 bytes allowed"),
        "{}",
        answer.text
    );
    let enrollment = post_json(
        &format!("{}/v1/enroll", server.url()),
        &json!({"token": enroll, "public_key": "x".repeat(1024 * 1024), "host": sample().host("large")}),
    );
    assert_eq!(enrollment.status, 413, "{}", enrollment.text);
    assert_eq!(server.fleet(&admin), before, "nothing stored");
}

#[test]
fn malformed_json_is_refused_with_400_naming_the_field() {
    let (server, admin, enroll, device) =
        server_with_device(&leaky_policy(sample().os_id()), "malformed");
    let before = server.fleet(&admin);
    let field_error = |answer: &shipshape_tests::device::Answer| -> (Value, String) {
        assert_eq!(answer.status, 400, "{}", answer.text);
        (answer.json()["path"].clone(), answer.error())
    };

    let mut wrong_type = sample().submission("malformed");
    wrong_type["facts"]["host"]["os"]["family"] = "plan9".into();
    let (path, error) = field_error(&device.report(&wrong_type));
    assert_eq!(path, "facts.host.os.family");
    assert!(error.starts_with("malformed JSON: "), "{error}");

    let mut unknown_field = sample().submission("malformed");
    unknown_field["report"]["verdikt"] = "shipshape".into();
    let (path, error) = field_error(&device.report(&unknown_field));
    assert_eq!(path, "report.verdikt");
    assert!(error.contains("unknown field `verdikt`"), "{error}");

    let mut not_a_uuid = sample().submission("malformed");
    not_a_uuid["id"] = "report-1".into();
    let (path, error) = field_error(&device.report(&not_a_uuid));
    assert_eq!(path, "id");
    assert!(error.contains("is not a UUID"), "{error}");

    let truncated = device.sign(Method::POST, "/v1/reports", b"{\"id\": ".to_vec());
    let answer = truncated.send();
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(
        answer.error().starts_with("malformed JSON: "),
        "{}",
        answer.text
    );

    let mut enrollment = json!({
        "token": enroll,
        "public_key": "",
        "host": sample().host("malformed"),
    });
    enrollment["host"]["hostname"] = 42.into();
    let (path, _) = field_error(&post_json(
        &format!("{}/v1/enroll", server.url()),
        &enrollment,
    ));
    assert_eq!(path, "host.hostname");

    assert_eq!(server.fleet(&admin), before, "nothing stored");
    assert_eq!(report_ids(&server, &admin, &device), Vec::<Value>::new());
}

#[test]
fn the_policy_comes_with_an_etag_and_the_same_etag_gets_304() {
    let os = sample().os_id();
    let policy = leaky_policy(os);
    let (server, admin, _, device) = server_with_device(&policy, "policy-reader");
    let fetch = || device.sign(Method::GET, "/v1/policy", Vec::new());

    let fresh = fetch().send();
    fresh.assert_ok_as("application/toml", "the policy");
    assert_eq!(fresh.text, policy, "the active policy, as given");
    let etag = fresh.header("etag").expect("an ETag").to_owned();

    let cached = fetch().send_with(&[("if-none-match", &etag)]);
    assert_eq!(cached.status, 304, "{}", cached.text);
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
    assert_eq!(cached.text, "");
    let other = fetch().send_with(&[("if-none-match", "\"another\"")]);
    assert_eq!(other.status, 200);

    // A new policy has a new ETag: the cached one no longer matches.
    let lenient = lenient_policy(os);
    let put = server.put_policy(&admin, &lenient);
    assert_eq!(put.status, 202, "{}", put.text);
    let new_etag = put.header("etag").expect("the new ETag").to_owned();
    assert_ne!(new_etag, etag);
    let changed = fetch().send_with(&[("if-none-match", &etag)]);
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.text, lenient);
    assert_eq!(changed.header("etag"), Some(new_etag.as_str()));

    // Unsigned, it is refused.
    let unsigned = shipshape_tests::http_client()
        .get(format!("{}/v1/policy", server.url()))
        .send()
        .expect("an answer");
    assert_eq!(unsigned.status().as_u16(), 401);
}
