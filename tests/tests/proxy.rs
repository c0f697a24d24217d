//! The fault-injecting proxy the outage tests put between agent and
//! server does what each fault says: a test of the harness, so that a
//! failing outage test points at the agent or the server, not at the proxy.

use std::thread;
use std::time::{Duration, Instant};

use reqwest::Method;
use shipshape_tests::device::Device;
use shipshape_tests::proxy::{Faults, Hold, Outcome, Proxy, PushedPolicy};
use shipshape_tests::{Server, http_client, leaky_policy, sample};

#[test]
fn the_proxy_passes_exchanges_through_and_injects_each_fault() {
    let policy = leaky_policy(sample().os_id());
    let server = Server::with_policy(&policy);
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let proxy = Proxy::start(server.url(), 7);
    // Signed for the proxy's URL: the server checks the Host the proxy passed on.
    let device = Device::enroll(&server, &enroll, &sample().host("proxied")).via(&proxy.url());
    let stored = || device.stored_report_ids(&server, &admin);
    let report = || {
        let submission = sample().submission("proxied");
        let id = submission["id"].as_str().map(str::to_owned);
        (id.expect("an id"), device.try_report(&submission))
    };

    // Passed through: the signature holds, the report is stored.
    let (id, answer) = report();
    let answer = answer.expect("an answer through the proxy");
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(stored(), std::slice::from_ref(&id));
    let health = http_client()
        .get(format!("{}/healthz", proxy.url()))
        .send()
        .expect("an answer");
    assert_eq!(health.status().as_u16(), 200);

    // A 500 or 503 before the server sees anything.
    proxy.set_faults(Faults {
        fail_before: 1.0,
        ..Faults::default()
    });
    let (_, answer) = report();
    let status = answer.expect("an injected answer").status;
    assert!(matches!(status, 500 | 503), "{status}");
    assert_eq!(stored(), [id], "nothing reached the server");

    // A 503 after the server stored the report.
    proxy.set_faults(Faults {
        fail_after: 1.0,
        ..Faults::default()
    });
    let (after, answer) = report();
    assert_eq!(answer.expect("an injected answer").status, 503);
    assert!(stored().contains(&after), "the server stored it");

    // The answer cut halfway: no answer, but the server stored the report.
    proxy.set_faults(Faults {
        drop_response: 1.0,
        ..Faults::default()
    });
    let (cut, answer) = report();
    assert!(answer.is_err(), "a cut answer is no answer: {answer:?}");
    assert!(stored().contains(&cut), "the server stored it");

    // The request cut halfway: no answer, and nothing stored.
    proxy.set_faults(Faults {
        drop_request: 1.0,
        ..Faults::default()
    });
    let (lost, answer) = report();
    assert!(answer.is_err(), "a cut request gets no answer: {answer:?}");
    assert!(!stored().contains(&lost));

    // Down: connections are accepted and closed, and counted.
    proxy.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let before = proxy.connections();
    let (_, answer) = report();
    assert!(answer.is_err(), "{answer:?}");
    assert!(proxy.connections() > before);

    // Slow: the answer waits.
    proxy.set_faults(Faults {
        delay: Duration::from_millis(300),
        ..Faults::default()
    });
    let start = Instant::now();
    let (_, answer) = report();
    assert_eq!(answer.expect("a slow answer").status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));

    // Held after the server answered: stored, the sender still waiting.
    proxy.set_faults(Faults {
        hold: Some(Hold::Answers),
        ..Faults::default()
    });
    let (held, answer) = thread::scope(|scope| {
        let sender = scope.spawn(report);
        assert!(proxy.wait_held(1, Duration::from_secs(10)), "held");
        assert_eq!(proxy.held(), 1);
        proxy.set_faults(Faults::default());
        sender.join().expect("the sender finished")
    });
    assert_eq!(answer.expect("the held answer").status, 200);
    assert!(stored().contains(&held));

    // A pushed policy replaces the server's, even for a cached ETag.
    proxy.set_faults(Faults {
        policy: Some(PushedPolicy {
            text: "not = [a policy".to_owned(),
            etag: "\"pushed\"".to_owned(),
        }),
        ..Faults::default()
    });
    let fetched = device
        .sign(Method::GET, "/v1/policy", Vec::new())
        .send_with(&[("if-none-match", "\"cached\"")]);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.text, "not = [a policy");
    assert_eq!(fetched.header("etag"), Some("\"pushed\""));

    let outcomes: Vec<Outcome> = proxy
        .log()
        .into_iter()
        .filter(|exchange| exchange.path == "/v1/reports")
        .map(|exchange| exchange.outcome)
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| outcome.reached_server())
            .count(),
        5,
        "{outcomes:?}"
    );
}
