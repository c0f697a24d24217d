//! Two `shipshape-server serve` replicas on one PostgreSQL, as behind a load
//! balancer: both answer for one public URL, and whichever an agent's
//! request reaches, it gets the same answer — a report retried through the
//! other replica is stored once with the same receipt, a replayed request
//! is refused by the other, a device revoked with the admin CLI is refused
//! by both, and both show the same fleet. Skipped when
//! `SHIPSHAPE_TEST_POSTGRES_URL` is not set; failed when it is and the
//! database does not answer.

use reqwest::Method;
use serde_json::Value;
use shipshape_tests::device::{Answer, Device, Signed, json_bytes};
use shipshape_tests::postgres::Schema;
use shipshape_tests::{Server, run_ok, sample};

/// The URL the agents are given: the load balancer's.
const PUBLIC_URL: &str = "http://shipshape.test";

/// `request`, signed for the public URL, sent to `replica`.
fn through(replica: &Server, request: &Signed) -> Answer {
    let path = request
        .url
        .strip_prefix(PUBLIC_URL)
        .expect("signed for the public URL");
    Signed {
        url: format!("{}{path}", replica.url()),
        ..request.clone()
    }
    .send()
}

/// Both replicas, started at the same moment on one fresh schema: they
/// migrate it and activate the built-in policy together.
fn replicas(schema: &Schema) -> (Server, Server) {
    let config = format!("public-url = \"{PUBLIC_URL}\"\n");
    std::thread::scope(|scope| {
        let a = scope.spawn(|| Server::start_on(schema.url(), &config));
        let b = scope.spawn(|| Server::start_on(schema.url(), &config));
        (
            a.join().expect("replica a started"),
            b.join().expect("replica b started"),
        )
    })
}

fn reports(replica: &Server, admin: &str, device: &Device) -> Vec<Value> {
    replica.device(admin, &device.id)["reports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn two_replicas_on_one_postgresql_answer_as_one_server() {
    let Some(schema) = Schema::create() else {
        return;
    };
    let (a, b) = replicas(&schema);
    // Tokens made with the admin CLI on the database, used through either replica.
    let admin = a.create_token("--admin");
    let enroll = b.create_token("--enroll");

    let device = Device::enroll(&a, &enroll, &sample().host("replicated"));
    let agent = device.via(PUBLIC_URL);
    let submission = sample().submission("replicated");
    let report = agent.sign(Method::POST, "/v1/reports", json_bytes(&submission));
    let stored = through(&a, &report);
    assert_eq!(stored.status, 200, "{}\n{}", stored.text, a.stderr());

    // The agent got no answer and retries — signed afresh — through the other.
    let retry = agent.sign(Method::POST, "/v1/reports", json_bytes(&submission));
    let retried = through(&b, &retry);
    assert_eq!(retried.status, 200, "{}\n{}", retried.text, b.stderr());
    assert_eq!(retried.json(), stored.json(), "the same receipt");

    // The first request, replayed to the other replica.
    let replayed = through(&b, &report);
    assert_eq!(replayed.status, 401, "{}", replayed.text);
    assert!(
        replayed.error().contains("nonce was used before"),
        "{}",
        replayed.text
    );
    for replica in [&a, &b] {
        let listed = reports(replica, &admin, &device);
        assert_eq!(listed.len(), 1, "stored once: {listed:?}");
        assert_eq!(listed[0]["id"], submission["id"]);
    }
    assert_eq!(a.fleet(&admin), b.fleet(&admin));

    // Revoked with the admin CLI: both refuse the device from then on.
    run_ok(a.admin().args(["device", "revoke", &device.id]));
    for replica in [&a, &b] {
        let next = sample().submission("replicated");
        let refused = through(
            replica,
            &agent.sign(Method::POST, "/v1/reports", json_bytes(&next)),
        );
        assert_eq!(refused.status, 401, "{}", refused.text);
        assert!(refused.error().contains("was revoked"), "{}", refused.text);
    }
    let fleet = a.fleet(&admin);
    assert_eq!(fleet, b.fleet(&admin), "both show the same fleet");
    assert_eq!(fleet["summary"]["total"], 1);
    assert_eq!(fleet["devices"][0]["revoked"], true);
    assert_eq!(reports(&b, &admin, &device).len(), 1);
}
