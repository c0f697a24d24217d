//! An agent flushing a backlog faster than its device's rate limit allows:
//! the server answers 429 with `Retry-After`, the agent waits that long —
//! not its own shorter retry delay — and every report is delivered once.

use std::time::Duration;

use shipshape_tests::proxy::{Faults, Outcome, Proxy};
use shipshape_tests::{Agent, Server, leaky_policy, report_id, sample};

#[test]
fn a_report_refused_with_429_is_retried_after_the_retry_after_and_delivered_once() {
    // Two signed requests at once, then one a second: the policy request
    // and the first report pass, the reports right behind them do not.
    let server = Server::with_policy_and_config(
        &leaky_policy(sample().os_id()),
        "rate-limit = 60\nrate-limit-burst = 2\n",
    );
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let proxy = Proxy::start(server.url(), 429);
    let agent = Agent::new();
    let device = agent.enroll_at(&proxy.url(), &enroll);
    agent.set_delivery("retry-delays = [\"10ms\", \"10ms\", \"10ms\"]\nbreaker-failures = 100");

    // A backlog of three, made while the server was out of reach.
    proxy.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let mut made: Vec<String> = (0..3).map(|_| report_id(&agent.report())).collect();
    proxy.set_faults(Faults::default());

    let output = agent.report();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    made.push(report_id(&output));
    server.assert_delivered_once_in_order(&admin, &device, &made);
    assert_eq!(agent.outbox(), Vec::<String>::new());

    let posts: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|exchange| exchange.method == "POST" && exchange.path != "/v1/enroll")
        .collect();
    let limited = posts
        .iter()
        .position(|exchange| exchange.outcome == Outcome::Answered(429))
        .unwrap_or_else(|| panic!("no report was over the limit: {posts:#?}"));
    let retry = posts
        .get(limited + 1)
        .unwrap_or_else(|| panic!("the report was not retried: {posts:#?}"));
    assert_eq!(retry.outcome, Outcome::Answered(200), "{posts:#?}");
    let waited = retry.arrived.duration_since(posts[limited].arrived);
    // Retry-After: 1 (whole seconds), less the jitter the agent may take
    // off its own delay, which Retry-After overrides.
    assert!(
        waited >= Duration::from_millis(950),
        "the retry came {waited:?} after the 429, before its Retry-After"
    );
    assert!(
        server.metric("shipshape_requests_refused_total{limit=\"rate_limited\"}") >= Some(1.0),
        "{}",
        server.metrics()
    );
}
