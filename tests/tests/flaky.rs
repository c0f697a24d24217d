//! A path to the server that answers slowly, cuts requests and answers, and
//! returns 500 and 503 at random for a while, then heals: every report
//! arrives exactly once, in the order it was made, and the outbox empties.

use std::time::Duration;

use shipshape_tests::proxy::{Faults, Outcome, Proxy};
use shipshape_tests::{Agent, Server, leaky_policy, report_id, sample};

/// Runs through the flaky path.
const FLAKY_RUNS: usize = 8;
/// The seed of the proxy's faults: the same seed, the same faults.
const SEED: u64 = 0x5eed_0f1a_4e5e;

#[test]
fn through_a_flaky_path_every_report_arrives_exactly_once_in_order() {
    // No rate limit: the retries of this test are not what it measures.
    let server =
        Server::with_policy_and_config(&leaky_policy(sample().os_id()), "rate-limit = 0\n");
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let proxy = Proxy::start(server.url(), SEED);
    let agent = Agent::new();
    let device = agent.enroll_at(&proxy.url(), &enroll);
    agent.set_delivery(
        "retry-delays = [\"10ms\", \"20ms\", \"40ms\"]\nbreaker-failures = 100\nrequest-timeout = \"2s\"",
    );
    let mut made = vec![report_id(&agent.report())];

    proxy.set_faults(Faults {
        delay: Duration::from_millis(50),
        drop_request: 0.2,
        fail_before: 0.2,
        drop_response: 0.2,
        fail_after: 0.2,
        ..Faults::default()
    });
    let mut backlog = 0;
    for _ in 0..FLAKY_RUNS {
        let output = agent.report();
        made.push(report_id(&output));
        backlog = backlog.max(agent.outbox().len());
    }
    proxy.set_faults(Faults::default());
    // Healed: one run sends whatever the flaky runs left queued.
    made.push(report_id(&agent.report()));

    assert_eq!(agent.outbox(), Vec::<String>::new(), "the outbox is empty");
    assert_eq!(agent.rejected(), Vec::<String>::new(), "nothing refused");
    server.assert_delivered_once_in_order(&admin, &device, &made);

    // The faults did happen, including the ones that leave the server with
    // a report whose sender never heard back — which then came again.
    let log = proxy.log();
    let sent = |what: fn(Outcome) -> bool| {
        log.iter()
            .filter(|exchange| exchange.method == "POST" && what(exchange.outcome))
            .count()
    };
    let seen_but_unanswered = sent(|outcome| {
        matches!(
            outcome,
            Outcome::DroppedResponse(_) | Outcome::FailedAfter(_)
        )
    });
    let never_seen =
        sent(|outcome| matches!(outcome, Outcome::DroppedRequest | Outcome::FailedBefore(_)));
    assert!(
        seen_but_unanswered > 0 && never_seen > 0 && backlog > 0,
        "seed {SEED:#x} injected too few faults (the largest backlog was {backlog}): {log:#?}"
    );
}
