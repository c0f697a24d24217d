//! Runs that overlap — the timer's and one started by hand, over a backlog
//! — never send the same queue twice at once: every report arrives exactly
//! once, and what one run left queued the next delivers.

use shipshape_tests::proxy::{Faults, Proxy};
use shipshape_tests::{Agent, Server, leaky_policy, report_id, sample};

/// Runs started at once.
const RUNS: usize = 3;

#[test]
fn overlapping_runs_deliver_every_report_exactly_once() {
    let server =
        Server::with_policy_and_config(&leaky_policy(sample().os_id()), "rate-limit = 0\n");
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let proxy = Proxy::start(server.url(), 3);
    let agent = Agent::new();
    let device = agent.enroll_at(&proxy.url(), &enroll);
    agent.set_delivery("retry-delays = [\"10ms\"]\nbreaker-failures = 100");
    let mut made = vec![report_id(&agent.report())];

    // A backlog, then several runs at once over a slow path, so that their
    // flushes overlap.
    proxy.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    for _ in 0..3 {
        made.push(report_id(&agent.report()));
    }
    proxy.set_faults(Faults {
        delay: std::time::Duration::from_millis(300),
        ..Faults::default()
    });
    let runs: Vec<_> = (0..RUNS).map(|_| agent.spawn_report()).collect();
    let mut waited = 0;
    for run in runs {
        let output = run.wait_with_output().expect("the run's output");
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "an overlapping run failed: {output:?}"
        );
        made.push(report_id(&output));
        let said = String::from_utf8_lossy(&output.stdout);
        waited += usize::from(said.contains("another shipshape run is sending the outbox"));
    }
    assert!(waited > 0, "the runs did not overlap");
    proxy.set_faults(Faults::default());
    made.push(report_id(&agent.report()));

    assert_eq!(agent.outbox(), Vec::<String>::new());
    assert_eq!(agent.rejected(), Vec::<String>::new());
    // Not necessarily in order: a run may list the queue while another,
    // which made its report a moment earlier, is still writing it.
    server.assert_delivered_once(&admin, &device, &made);
    let duplicates = server
        .metric("shipshape_reports_total{outcome=\"duplicate\"}")
        .unwrap_or(0.0)
        + server
            .metric("shipshape_heartbeats_total{outcome=\"duplicate\"}")
            .unwrap_or(0.0);
    assert_eq!(
        duplicates,
        0.0,
        "no report was sent twice:\n{}",
        server.metrics()
    );
}
