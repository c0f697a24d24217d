//! Signed requests the server must refuse — tampered, forged, replayed,
//! expired, from a revoked device or an unknown key — each with a 401 that
//! says why, and each leaving the store as it was.
//!
//! The requests are crafted by hand with core's `sign_request`, from a
//! device key the test enrolled itself; the revoked device is also tried
//! with the real agent.

use reqwest::Method;
use serde_json::Value;
use shipshape_core::signing::content_digest;
use shipshape_tests::device::{Device, Signed, json_bytes, new_key, unix_now};
use shipshape_tests::{Agent, Server, leaky_policy, run_ok, sample};

/// A server with a device that has reported once.
struct Reporting {
    server: Server,
    admin: String,
    device: Device,
}

const HOSTNAME: &str = "signer";

impl Reporting {
    fn start() -> Reporting {
        let server = Server::with_policy(&leaky_policy(sample().os_id()));
        let admin = server.create_token("--admin");
        let enroll = server.create_token("--enroll");
        let device = Device::enroll(&server, &enroll, &sample().host(HOSTNAME));
        let answer = device.report(&sample().submission(HOSTNAME));
        assert_eq!(
            answer.status,
            200,
            "the first report: {}\n{}",
            answer.text,
            server.stderr()
        );
        Reporting {
            server,
            admin,
            device,
        }
    }

    /// What the store shows: the fleet report, and the device with its
    /// findings, transitions and reports.
    fn store(&self) -> (Value, Value) {
        (
            self.server.fleet(&self.admin),
            self.server.device(&self.admin, &self.device.id),
        )
    }

    /// Sends `request`, expects a 401 whose error contains `why`, and
    /// checks that the store did not change.
    fn assert_refused(&self, request: &Signed, why: &str) {
        let before = self.store();
        let answer = request.send();
        assert_eq!(
            answer.status, 401,
            "{} {} should be refused: {}",
            request.method, request.url, answer.text
        );
        let error = answer.error();
        assert!(error.contains(why), "`{why}` in: {error}");
        assert_eq!(self.store(), before, "a refused request changed the store");
    }

    fn reports(&self) -> Vec<String> {
        self.server.device(&self.admin, &self.device.id)["reports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|report| report["id"].as_str().map(str::to_owned))
            .collect()
    }
}

fn report_body() -> Vec<u8> {
    json_bytes(&sample().submission(HOSTNAME))
}

#[test]
fn a_tampered_body_is_refused_and_stores_nothing() {
    let reporting = Reporting::start();
    let signed = reporting
        .device
        .sign(Method::POST, "/v1/reports", report_body());

    // Another body under the signed digest.
    let mut tampered = signed.clone();
    tampered.body = report_body();
    reporting.assert_refused(&tampered, "content-digest does not match the body");

    // Another body with its own digest, under the original signature.
    tampered.headers.content_digest = content_digest(&tampered.body);
    reporting.assert_refused(&tampered, "signature does not verify");

    // The request as signed is still accepted: the refusals did not even
    // use up its nonce.
    let answer = signed.send();
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(reporting.reports().len(), 2);
}

#[test]
fn a_signature_by_another_key_is_refused_and_stores_nothing() {
    let reporting = Reporting::start();
    let device = &reporting.device;
    let forged = device.sign_as(
        &new_key(),
        &device.id,
        unix_now(),
        Method::POST,
        "/v1/reports",
        report_body(),
    );
    reporting.assert_refused(
        &forged,
        &format!("signature does not verify with the key of `{}`", device.id),
    );
}

#[test]
fn a_replayed_request_is_refused_and_stores_nothing_twice() {
    let reporting = Reporting::start();
    let submission = sample().submission(HOSTNAME);
    let signed = reporting
        .device
        .sign(Method::POST, "/v1/reports", json_bytes(&submission));
    let answer = signed.send();
    assert_eq!(answer.status, 200, "{}", answer.text);
    reporting.assert_refused(&signed, "nonce was used before");
    let id = submission["id"].as_str().expect("the report id");
    assert_eq!(
        reporting
            .reports()
            .iter()
            .filter(|report| *report == id)
            .count(),
        1
    );

    // The policy too: it stores nothing but the nonce.
    let fetch = reporting.device.sign(Method::GET, "/v1/policy", Vec::new());
    assert_eq!(fetch.send().status, 200);
    reporting.assert_refused(&fetch, "nonce was used before");
}

#[test]
fn a_signature_created_ten_minutes_off_is_refused_and_stores_nothing() {
    let reporting = Reporting::start();
    let device = &reporting.device;
    let at = |created| {
        device.sign_as(
            &device.key,
            &device.id,
            created,
            Method::POST,
            "/v1/reports",
            report_body(),
        )
    };
    reporting.assert_refused(&at(unix_now() - 600), "s ago, more than the 300s allowed");
    reporting.assert_refused(
        &at(unix_now() + 600),
        "s in the future, more than the 300s allowed",
    );
}

#[test]
fn an_unknown_key_is_refused_and_stores_nothing() {
    let reporting = Reporting::start();
    let stranger = uuid::Uuid::now_v7().to_string();
    let request = reporting.device.sign_as(
        &new_key(),
        &stranger,
        unix_now(),
        Method::POST,
        "/v1/reports",
        report_body(),
    );
    reporting.assert_refused(&request, &format!("unknown key id `{stranger}`"));
}

#[test]
fn a_revoked_device_is_refused_and_stores_nothing() {
    let reporting = Reporting::start();
    let revoked = run_ok(
        reporting
            .server
            .admin()
            .args(["device", "revoke", &reporting.device.id]),
    );
    assert!(
        String::from_utf8_lossy(&revoked.stderr).contains("revoked device"),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let (fleet, _) = reporting.store();
    assert_eq!(fleet["devices"][0]["revoked"], true);

    let report = reporting
        .device
        .sign(Method::POST, "/v1/reports", report_body());
    reporting.assert_refused(&report, "was revoked");
    let policy = reporting.device.sign(Method::GET, "/v1/policy", Vec::new());
    reporting.assert_refused(&policy, "was revoked");
}

#[test]
fn a_revoked_agent_cannot_report_and_says_why() {
    let server = Server::with_policy(&leaky_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let agent = Agent::new();
    agent.enroll(&server, &enroll);
    assert_eq!(agent.run(&["report"]).status.code(), Some(1), "leaky");
    let fleet = server.fleet(&admin);
    let id = fleet["devices"][0]["id"]
        .as_str()
        .expect("the enrolled device")
        .to_owned();
    run_ok(server.admin().args(["device", "revoke", &id]));
    let before = (server.fleet(&admin), server.device(&admin, &id));

    let report = agent.run(&["report"]);
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert_eq!(report.status.code(), Some(2), "{stderr}");
    for expected in [
        "was not delivered",
        "server refused the report: 401",
        &format!("device `{id}` was revoked"),
    ] {
        assert!(stderr.contains(expected), "`{expected}` in: {stderr}");
    }
    assert_eq!(
        (server.fleet(&admin), server.device(&admin, &id)),
        before,
        "a revoked device's report changed the store"
    );

    let status =
        String::from_utf8_lossy(&run_ok(agent.command().arg("status")).stdout).into_owned();
    assert!(status.contains("NOT delivered"), "{status}");
}
