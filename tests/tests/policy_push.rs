//! A policy the server pushes that does not parse (served by the proxy in
//! place of the server's own: the server refuses to store one) never
//! blinds the agent: the report is judged by the last good policy, says so,
//! and `shipshape status` shows the refusal until a good policy replaces it.

use std::process::Output;

use serde_json::Value;
use shipshape_tests::proxy::{Faults, Outcome, Proxy, PushedPolicy};
use shipshape_tests::{Agent, Server, leaky_policy, lenient_policy, report_id, run_ok, sample};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The name of the policy the agent judged report `id` by, from the report
/// (or heartbeat) it sent through the proxy.
fn judged_by(proxy: &Proxy, id: &str) -> String {
    let sent: Vec<Value> = proxy
        .log()
        .iter()
        .filter(|exchange| exchange.method == "POST" && exchange.path != "/v1/enroll")
        .filter_map(|exchange| serde_json::from_slice(&exchange.body).ok())
        .filter(|body: &Value| body["id"] == id)
        .collect();
    let names: Vec<&str> = sent
        .iter()
        .filter_map(|body| body["report"]["policy"]["name"].as_str())
        .collect();
    assert!(!names.is_empty(), "report {id} was not sent: {sent:?}");
    assert!(names.windows(2).all(|pair| pair[0] == pair[1]), "{names:?}");
    names[0].to_owned()
}

fn status(agent: &Agent) -> Value {
    let output = run_ok(agent.command().args(["status", "--format", "json"]));
    serde_json::from_slice(&output.stdout).expect("status --format json")
}

#[test]
fn a_bad_policy_push_keeps_the_last_good_policy_in_force() {
    let os = sample().os_id();
    let server = Server::with_policy(&leaky_policy(os));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let proxy = Proxy::start(server.url(), 6);
    let agent = Agent::new();
    agent.enroll_at(&proxy.url(), &enroll);

    let first = agent.report();
    assert_eq!(first.status.code(), Some(1), "{}", stdout(&first));
    assert_eq!(judged_by(&proxy, &report_id(&first)), "always-leaky");
    let good_etag = status(&agent)["policy"]["cached_etag"].clone();
    assert!(good_etag.is_string(), "the policy is cached with its ETag");

    // The push: a policy naming a check that does not exist.
    proxy.set_faults(Faults {
        policy: Some(PushedPolicy {
            text: "name = \"pushed\"\n\n[checks.no-such-check]\nseverity = \"high\"\n".to_owned(),
            etag: "\"bad-push\"".to_owned(),
        }),
        ..Faults::default()
    });
    let pushed = agent.report();
    assert_eq!(pushed.status.code(), Some(1), "{}", stdout(&pushed));
    assert_eq!(
        judged_by(&proxy, &report_id(&pushed)),
        "always-leaky",
        "judged by the last good policy"
    );
    assert!(
        stdout(&pushed).contains("policy always-leaky ("),
        "the report names the policy it was judged by:\n{}",
        stdout(&pushed)
    );
    let error = stderr(&pushed);
    assert!(
        error.contains("error: the server's policy does not parse")
            && error.contains("no-such-check")
            && error.contains("keeping the last good policy"),
        "said as an error, naming what is wrong:\n{error}"
    );
    let shown = status(&agent);
    assert_eq!(
        shown["policy"]["cached_etag"], good_etag,
        "the good one stays cached"
    );
    let refused = &shown["policy"]["refused"];
    assert_eq!(refused["etag"], "\"bad-push\"", "{shown:#}");
    assert_eq!(refused["kept"], true, "{shown:#}");
    assert!(
        proxy
            .log()
            .iter()
            .any(|exchange| exchange.outcome == Outcome::PolicyReplaced),
        "the proxy pushed the bad policy"
    );
    let human = String::from_utf8_lossy(&run_ok(agent.command().arg("status")).stdout).into_owned();
    assert!(human.contains("does not parse"), "{human}");

    // A good policy replaces it, and the refusal is over.
    proxy.set_faults(Faults::default());
    let put = server.put_policy(&admin, &lenient_policy(os));
    assert_eq!(put.status, 202, "{}", put.text);
    let healed = agent.report();
    assert_eq!(healed.status.code(), Some(0), "{}", stdout(&healed));
    assert_eq!(judged_by(&proxy, &report_id(&healed)), "always-compliant");
    let shown = status(&agent);
    assert!(shown["policy"]["refused"].is_null(), "{shown:#}");
    assert_ne!(shown["policy"]["cached_etag"], good_etag);
}
