//! The circuit breaker, across separate `shipshape report` runs (its state
//! is on disk): after `breaker-failures` failed runs it opens, and runs
//! queue without touching the network; after the cool-off one run probes —
//! a failed probe opens it again at once, a good one closes it and delivers
//! the queue.

use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use shipshape_tests::proxy::{Faults, Proxy};
use shipshape_tests::{Agent, Server, leaky_policy, report_id, run_ok, sample};

/// `breaker-cooldown`: longer than a run takes to start and read the breaker.
const COOLDOWN: Duration = Duration::from_secs(2);

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until `COOLDOWN` has passed since `opened`.
fn cool_off(opened: Instant) {
    thread::sleep(COOLDOWN.saturating_sub(opened.elapsed()));
}

#[test]
fn the_breaker_opens_after_failed_runs_skips_the_network_and_recovers_half_open() {
    let server = Server::with_policy(&leaky_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let proxy = Proxy::start(server.url(), 5);
    let agent = Agent::new();
    let device = agent.enroll_at(&proxy.url(), &enroll);
    agent.set_delivery(&format!(
        "retry-delays = [\"10ms\"]\nbreaker-failures = 2\nbreaker-cooldown = \"{}s\"",
        COOLDOWN.as_secs()
    ));
    let mut made = vec![report_id(&agent.report())];

    // Two failed runs: the second opens the breaker.
    proxy.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    for run in 1..=2 {
        let output = agent.report();
        let id = report_id(&output);
        assert!(
            stdout(&output).contains(&format!("report {id} queued: server unreachable")),
            "failed run {run}:\n{}",
            stdout(&output)
        );
        made.push(id);
    }
    let opened = Instant::now();

    // Open: the run queues its report without a single connection.
    let before = proxy.connections();
    let skipped = agent.report();
    let id = report_id(&skipped);
    assert!(
        stdout(&skipped).contains(&format!("report {id} queued: breaker open")),
        "{}",
        stdout(&skipped)
    );
    made.push(id);
    assert_eq!(
        proxy.connections(),
        before,
        "an open breaker keeps off the network"
    );
    assert_eq!(agent.outbox(), made[1..]);
    let status =
        String::from_utf8_lossy(&run_ok(agent.command().arg("status")).stdout).into_owned();
    for expected in [
        "3 reports waiting",
        "breaker open until",
        "server unreachable since",
    ] {
        assert!(status.contains(expected), "`{expected}` in:\n{status}");
    }

    // Half-open, the server still down: one probe, and open again at once.
    cool_off(opened);
    let before = proxy.connections();
    let probe = agent.report();
    let reopened = Instant::now();
    made.push(report_id(&probe));
    assert!(
        proxy.connections() > before,
        "the half-open run probes the server"
    );
    let before = proxy.connections();
    let skipped = agent.report();
    let id = report_id(&skipped);
    assert!(
        stdout(&skipped).contains(&format!("report {id} queued: breaker open")),
        "one failed probe opens the breaker again:\n{}",
        stdout(&skipped)
    );
    made.push(id);
    assert_eq!(proxy.connections(), before, "open again: no connection");

    // Half-open, the server back: the probe succeeds and delivers the queue.
    cool_off(reopened);
    proxy.set_faults(Faults::default());
    let recovered = agent.report();
    let id = report_id(&recovered);
    let text = stdout(&recovered);
    assert!(
        text.contains(&format!("report {id} delivered to {}", proxy.url())),
        "{text}"
    );
    made.push(id);
    assert_eq!(
        agent.outbox(),
        Vec::<String>::new(),
        "the queue is delivered"
    );
    server.assert_delivered_once_in_order(&admin, &device, &made);

    // Closed: the next run sends as usual.
    let before = proxy.connections();
    let closed = agent.report();
    made.push(report_id(&closed));
    assert!(proxy.connections() > before);
    assert_eq!(agent.outbox(), Vec::<String>::new());
    server.assert_delivered_once_in_order(&admin, &device, &made);
}
