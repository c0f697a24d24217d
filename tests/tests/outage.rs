//! The server down for a while: every `shipshape report` queues its report
//! and still exits with the grade; when the server is back, the next run
//! delivers each queued report exactly once, oldest first, and empties the
//! outbox.

use shipshape_tests::{Agent, Server, leaky_policy, report_id, sample};

/// Runs while the server is down.
const RUNS_DOWN: usize = 4;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn reports_queue_while_the_server_is_down_and_each_is_delivered_once_when_it_is_back() {
    let mut server = Server::with_policy(&leaky_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let agent = Agent::new();
    let device = agent.enroll_at(server.url(), &enroll);
    // Quick retries; a breaker that stays closed through the outage (the
    // breaker has its own test), so the first run after it sends.
    agent.set_delivery("retry-delays = [\"20ms\", \"40ms\"]\nbreaker-failures = 100");

    // Delivered, and the server's policy (every machine leaks) cached.
    let first = agent.report();
    assert_eq!(first.status.code(), Some(1), "{}", stdout(&first));
    let mut made = vec![report_id(&first)];
    assert!(agent.outbox().is_empty(), "{:?}", agent.outbox());

    server.kill();
    for run in 1..=RUNS_DOWN {
        let output = agent.report();
        // The grade, by the cached policy: the network never makes it 2.
        assert_eq!(
            output.status.code(),
            Some(1),
            "run {run}: {}",
            stdout(&output)
        );
        let id = report_id(&output);
        let text = stdout(&output);
        assert!(
            text.contains(&format!("report {id} queued: server unreachable")),
            "run {run} says why the report is queued:\n{text}"
        );
        made.push(id);
        assert_eq!(agent.outbox(), made[1..], "run {run}: every report queued");
    }

    server.restart();
    let back = agent.report();
    assert_eq!(back.status.code(), Some(1), "{}", stdout(&back));
    let id = report_id(&back);
    let text = stdout(&back);
    assert!(
        text.contains(&format!("report {id} delivered to {}", server.url())),
        "{text}"
    );
    assert!(
        text.contains(&format!("delivered {RUNS_DOWN} queued reports")),
        "{text}"
    );
    made.push(id);
    assert_eq!(agent.outbox(), Vec::<String>::new(), "the outbox is empty");
    assert_eq!(agent.rejected(), Vec::<String>::new(), "nothing refused");
    server.assert_delivered_once_in_order(&admin, &device, &made);

    // Another run finds nothing left to send twice.
    let again = agent.report();
    made.push(report_id(&again));
    server.assert_delivered_once_in_order(&admin, &device, &made);
}

#[test]
fn a_full_outbox_drops_the_oldest_reports_and_the_next_report_says_how_many() {
    let mut server = Server::with_policy(&leaky_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let agent = Agent::new();
    let device = agent.enroll_at(server.url(), &enroll);
    agent.set_delivery("retry-delays = [\"10ms\"]\nbreaker-failures = 100\noutbox-max-reports = 3");
    let mut made = vec![report_id(&agent.report())];

    server.kill();
    for _ in 0..5 {
        made.push(report_id(&agent.report()));
    }
    // The three newest wait; the two oldest were dropped.
    assert_eq!(agent.outbox(), made[3..]);

    server.restart();
    made.push(report_id(&agent.report()));
    assert_eq!(agent.outbox(), Vec::<String>::new());
    // Making the last report dropped one more to stay within three: the
    // three newest arrive, and the server hears of the three dropped.
    let mut delivered = vec![made[0].clone()];
    delivered.extend_from_slice(&made[4..]);
    server.assert_delivered_once_in_order(&admin, &device, &delivered);
    assert_eq!(
        server.metric("shipshape_reports_dropped_by_agents_total"),
        Some(3.0),
        "{}",
        server.metrics()
    );
}
