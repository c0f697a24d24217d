//! Two `shipshape-server serve` replicas on one PostgreSQL, as behind a load
//! balancer: both answer for one public URL, and whichever an agent's
//! request reaches, it gets the same answer — a report retried through the
//! other replica is stored once with the same receipt, a replayed request
//! is refused by the other, a device revoked with the admin CLI is refused
//! by both, and both show the same fleet; a policy put through one is
//! served and graded with by the other, and its re-grade is done once.
//! Skipped when `SHIPSHAPE_TEST_POSTGRES_URL` is not set; failed when it is
//! and the database does not answer.

use reqwest::Method;
use serde_json::Value;
use shipshape_tests::device::{Answer, Device, Signed, json_bytes};
use shipshape_tests::postgres::Schema;
use shipshape_tests::{Server, leaky_policy, lenient_policy, run_ok, sample};

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

/// `(check, kind)` of a device's transitions that no report caused: those
/// of re-grades.
fn regraded_transitions(replica: &Server, admin: &str, device: &Device) -> Vec<(String, String)> {
    replica.device(admin, &device.id)["transitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|transition| transition["report_id"].is_null())
        .map(|transition| {
            let text = |field: &str| transition[field].as_str().unwrap_or_default().to_owned();
            (text("check"), text("kind"))
        })
        .collect()
}

#[test]
fn a_policy_put_through_one_replica_is_served_and_graded_by_the_other() {
    let Some(schema) = Schema::create() else {
        return;
    };
    let (a, b) = replicas(&schema);
    let admin = a.create_token("--admin");
    let enroll = b.create_token("--enroll");
    let os = sample().os_id();
    let devices: Vec<Device> = ["first", "second", "third"]
        .into_iter()
        .map(|hostname| Device::enroll(&a, &enroll, &sample().host(hostname)))
        .collect();
    for (device, hostname) in devices.iter().zip(["first", "second", "third"]) {
        let submission = sample().submission(hostname);
        let request =
            device
                .via(PUBLIC_URL)
                .sign(Method::POST, "/v1/reports", json_bytes(&submission));
        let stored = through(&a, &request);
        assert_eq!(stored.status, 200, "{}\n{}", stored.text, a.stderr());
    }
    let agent = devices[0].via(PUBLIC_URL);
    let fetch =
        |replica: &Server| through(replica, &agent.sign(Method::GET, "/v1/policy", Vec::new()));
    let built_in = fetch(&b);
    assert_eq!(built_in.status, 200, "{}", built_in.text);
    let built_in_etag = built_in.header("etag").expect("an ETag").to_owned();

    // An admin replaces the policy through A; the next report reaches B,
    // which grades it with that policy (the built-in one finds leaks).
    let put = a.put_policy(&admin, &lenient_policy(os));
    assert_eq!(put.status, 202, "{}\n{}", put.text, a.stderr());
    let lenient_etag = put.header("etag").expect("an ETag").to_owned();
    assert_ne!(lenient_etag, built_in_etag);
    let graded = through(&b, &agent.sign(Method::POST, "/v1/reports", first_report()));
    assert_eq!(graded.status, 200, "{}\n{}", graded.text, b.stderr());
    assert_eq!(
        graded.json()["status"],
        "compliant",
        "B grades with the policy put through A: {}",
        graded.text
    );
    let served = fetch(&b);
    assert_eq!(served.status, 200, "{}", served.text);
    assert_eq!(served.header("etag"), Some(lenient_etag.as_str()));
    assert!(served.text.contains("always-compliant"), "{}", served.text);

    // The re-grade finishes once, seen alike through both.
    let progress = a.regrade_finished(&admin);
    assert_eq!(progress, b.regrade_finished(&admin));
    assert_eq!(progress["policy_id"], put.json()["policy_id"]);
    assert_eq!(
        (&progress["state"], &progress["done"]),
        (&Value::from("done"), &Value::from(3)),
        "{progress}"
    );
    for device in &devices[1..] {
        let regraded = regraded_transitions(&b, &admin, device);
        assert!(!regraded.is_empty(), "their leaks bail out");
        assert!(
            regraded.iter().all(|(_, kind)| kind == "bailed-out"),
            "{regraded:?}"
        );
        assert_once(&regraded);
    }
    let fleet = b.fleet(&admin);
    assert_eq!(fleet, a.fleet(&admin));
    assert_eq!(fleet["summary"]["compliant"], 3, "{fleet}");

    // And through B: A grades with it, then serves it.
    let put = b.put_policy(&admin, &leaky_policy(os));
    assert_eq!(put.status, 202, "{}\n{}", put.text, b.stderr());
    let leaky_etag = put.header("etag").expect("an ETag").to_owned();
    let graded = through(&a, &agent.sign(Method::POST, "/v1/reports", first_report()));
    assert_eq!(graded.status, 200, "{}\n{}", graded.text, a.stderr());
    assert_eq!(graded.json()["status"], "leaky", "{}", graded.text);
    let served = fetch(&a);
    assert_eq!(served.header("etag"), Some(leaky_etag.as_str()));
    let progress = b.regrade_finished(&admin);
    assert_eq!(progress, a.regrade_finished(&admin));
    assert_eq!(
        (&progress["state"], &progress["done"]),
        (&Value::from("done"), &Value::from(3)),
        "{progress}"
    );
    for device in &devices[1..] {
        let regraded = regraded_transitions(&a, &admin, device);
        assert!(
            regraded.contains(&("os-updates".to_owned(), "sprang-leak".to_owned())),
            "{regraded:?}"
        );
        assert_once(&regraded);
    }
    assert_eq!(a.fleet(&admin)["summary"]["leaky"], 3);
}

/// Each re-grade's transition of a check is there once: no re-grade's
/// batch was stored twice.
fn assert_once(regraded: &[(String, String)]) {
    let mut once = regraded.to_vec();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), regraded.len(), "none twice: {regraded:?}");
}

/// The first device's next report, as its agent sends it.
fn first_report() -> Vec<u8> {
    json_bytes(&sample().submission("first"))
}
