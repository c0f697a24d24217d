//! `kill -9` of the agent, again and again, in the middle of writing and of
//! sending: the proxy holds a report's request (the server never saw it) or
//! its answer (the server stored it, the agent does not know), and the agent
//! dies there; or it dies at a point of its run that varies from kill to
//! kill, from judging to writing the outbox to sending. Afterwards one
//! clean run delivers everything: no report the agent made is lost, none is
//! stored twice, and the server never received a corrupt one.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use shipshape_tests::proxy::{Faults, Hold, Proxy};
use shipshape_tests::{Agent, Server, leaky_policy, report_id, sample};

/// Agents killed side by side, each behind its own proxy.
const AGENTS: usize = 2;
/// Runs each agent must lose to a kill (a timed kill may come after the
/// run finished: it does not count).
const KILLS: usize = 11;
/// Runs each agent may start to get there.
const MAX_RUNS: usize = 2 * KILLS;
/// How long a held exchange may take to arrive.
const HELD_WITHIN: Duration = Duration::from_secs(30);

/// Where a run dies.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// While its report's request is held before the server.
    RequestHeld,
    /// While the answer to its report is held: the server has stored it.
    AnswerHeld,
    /// This long after the server answered its policy request: judging,
    /// writing the outbox, or sending, around the time it takes this
    /// machine to get from the policy to sending the report.
    AfterPolicy(Duration),
}

/// How far into "policy answered → report sent" the timed kills land:
/// mostly around the outbox write, at the end of judging.
const FRACTIONS: [f64; 6] = [0.5, 0.8, 0.9, 0.95, 1.0, 1.1];

impl Kill {
    fn nth(agent: usize, kill: usize, judging: Duration) -> Kill {
        match kill % 4 {
            0 => Kill::RequestHeld,
            1 => Kill::AnswerHeld,
            _ => {
                Kill::AfterPolicy(judging.mul_f64(FRACTIONS[(kill + agent * 3) % FRACTIONS.len()]))
            }
        }
    }
}

/// Holds `stage` of the requests starting with `only`.
fn hold(stage: Hold, only: &'static str) -> Faults {
    Faults {
        hold: Some(stage),
        hold_only: Some(only),
        ..Faults::default()
    }
}

/// Times one whole run from the server's answer to its policy request to
/// its report's request: how long this machine judges. Returns that, and
/// the id of the report the run delivered.
fn time_judging(agent: &Agent, proxy: &Proxy) -> (Duration, String) {
    proxy.set_faults(hold(Hold::Answers, "GET /v1/policy"));
    let child = agent.spawn_report();
    assert!(proxy.wait_held(1, HELD_WITHIN), "no policy request");
    let answered = Instant::now();
    proxy.set_faults(hold(Hold::Requests, "POST "));
    assert!(proxy.wait_held(1, HELD_WITHIN), "no report sent");
    let judging = answered.elapsed();
    proxy.set_faults(Faults::default());
    let output = child.wait_with_output().expect("the agent's output");
    assert!(matches!(output.status.code(), Some(0 | 1)), "{output:?}");
    (judging, report_id(&output))
}

/// Kills the run as `kill` says; returns what it printed before it died.
fn kill_run(agent: &Agent, proxy: &Proxy, kill: Kill) -> Output {
    proxy.set_faults(match kill {
        Kill::RequestHeld => hold(Hold::Requests, "POST "),
        Kill::AnswerHeld => hold(Hold::Answers, "POST "),
        Kill::AfterPolicy(_) => hold(Hold::Answers, "GET /v1/policy"),
    });
    let mut child = agent.spawn_report();
    let held = proxy.wait_held(1, HELD_WITHIN);
    match kill {
        Kill::RequestHeld | Kill::AnswerHeld => {
            child.kill().expect("kill -9 the agent");
            // The held request goes on, to a sender that is gone: a late
            // delivery (request held) or an answer nobody reads.
            proxy.set_faults(Faults::default());
        }
        Kill::AfterPolicy(delay) => {
            proxy.set_faults(Faults::default());
            thread::sleep(delay);
            child.kill().expect("kill -9 the agent");
        }
    }
    let output = child.wait_with_output().expect("the agent's output");
    assert!(
        held,
        "{kill:?}: no request was held within {HELD_WITHIN:?}: {output:?}"
    );
    output
}

/// The report ids a (killed) run printed.
fn printed_ids(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("report "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// What one agent went through.
struct Survivor {
    device: String,
    /// Every report id seen in its outbox or its output.
    seen: BTreeSet<String>,
    /// Runs started, killed or not.
    runs: usize,
    /// Runs that died of the kill (not finished before it).
    killed: usize,
    /// Temporary files the kills left half-written.
    torn_writes: usize,
}

fn kill_again_and_again(server: &Server, enroll: &str, index: usize) -> Survivor {
    let proxy = Proxy::start(server.url(), index as u64);
    let agent = Agent::new();
    let device = agent.enroll_at(&proxy.url(), enroll);
    agent.set_delivery("retry-delays = [\"10ms\", \"20ms\"]\nbreaker-failures = 100");
    let (mut judging, calibrated) = time_judging(&agent, &proxy);
    let mut survivor = Survivor {
        device,
        seen: BTreeSet::from([calibrated]),
        runs: 1,
        killed: 0,
        torn_writes: 0,
    };
    for kill in 0..MAX_RUNS {
        if survivor.killed == KILLS {
            break;
        }
        let how = Kill::nth(index, kill, judging);
        let output = kill_run(&agent, &proxy, how);
        survivor.runs += 1;
        if output.status.code().is_none() {
            // Ended by a signal: the kill, not the end of the run.
            survivor.killed += 1;
        } else if matches!(how, Kill::AfterPolicy(_)) {
            // This machine judges faster now than when timed.
            judging = judging.mul_f64(0.8);
        }
        survivor.seen.extend(printed_ids(&output));
        survivor.seen.extend(agent.outbox());
        assert_eq!(
            agent.rejected(),
            Vec::<String>::new(),
            "agent {index}, after kill {kill} ({how:?}): a report was refused or unreadable"
        );
    }

    survivor.torn_writes = temporary_files(&agent.state_dir());

    // One clean run delivers everything.
    let clean = agent.report();
    survivor.runs += 1;
    survivor.seen.insert(report_id(&clean));
    assert_eq!(
        agent.outbox(),
        Vec::<String>::new(),
        "agent {index}: the clean run empties the outbox\n{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    assert_eq!(agent.rejected(), Vec::<String>::new());

    // Every report that went to the server is whole: valid JSON carrying
    // its id and report.
    for exchange in proxy.log() {
        if exchange.method != "POST" || exchange.path == "/v1/enroll" {
            continue;
        }
        let body: Value = serde_json::from_slice(&exchange.body).unwrap_or_else(|error| {
            panic!(
                "agent {index} sent a corrupt body to {} ({error}): {}",
                exchange.path,
                String::from_utf8_lossy(&exchange.body)
            )
        });
        assert!(
            body["id"].is_string() && body["report"].is_object(),
            "agent {index} sent an incomplete report: {body}"
        );
    }
    survivor
}

/// The agent's temporary files (`.NAME.PID-N.tmp`) under `dir`: each one a
/// write a kill interrupted.
fn temporary_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                temporary_files(&entry.path())
            } else {
                usize::from(name.starts_with('.') && name.ends_with(".tmp"))
            }
        })
        .sum()
}

/// The `shipshape_reports_rejected_total` counters, as `reason value`.
fn rejections(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("shipshape_reports_rejected_total{reason=\""))
        .map(|rest| rest.replace("\"}", ""))
        .collect()
}

#[test]
fn kill_9_of_the_agent_while_writing_or_sending_loses_and_corrupts_nothing() {
    // No rate limit: the agents make many runs in a few seconds.
    let server =
        Server::with_policy_and_config(&leaky_policy(sample().os_id()), "rate-limit = 0\n");
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");

    let survivors: Vec<Survivor> = thread::scope(|scope| {
        let agents: Vec<_> = (0..AGENTS)
            .map(|index| {
                let (server, enroll) = (&server, &enroll);
                scope.spawn(move || kill_again_and_again(server, enroll, index))
            })
            .collect();
        agents
            .into_iter()
            .map(|agent| agent.join().expect("an agent's kills ran"))
            .collect()
    });

    let killed: usize = survivors.iter().map(|survivor| survivor.killed).sum();
    assert_eq!(
        killed,
        AGENTS * KILLS,
        "runs died of a kill; the others finished first"
    );
    for (index, survivor) in survivors.iter().enumerate() {
        let stored: Vec<String> = server
            .stored_reports(&admin, &survivor.device)
            .into_iter()
            .map(|report| report.id)
            .collect();
        let unique: BTreeSet<&String> = stored.iter().collect();
        assert_eq!(
            unique.len(),
            stored.len(),
            "agent {index}: a report stored twice"
        );
        let lost: Vec<&String> = survivor
            .seen
            .iter()
            .filter(|id| !unique.contains(id))
            .collect();
        assert!(
            lost.is_empty(),
            "agent {index}: reports made but never stored: {lost:?}\nserver log:\n{}",
            server.stderr()
        );
        assert!(
            stored.len() <= survivor.runs,
            "agent {index}: {} reports stored from {} runs",
            stored.len(),
            survivor.runs
        );
    }
    let torn: usize = survivors.iter().map(|survivor| survivor.torn_writes).sum();
    eprintln!("{killed} runs killed, {torn} of them while writing a file");
    let metrics = server.metrics();
    let refused: Vec<String> = rejections(&metrics)
        .into_iter()
        .filter(|rejection| !rejection.starts_with("resend_full "))
        .filter(|rejection| !rejection.ends_with(" 0"))
        .collect();
    assert_eq!(
        refused,
        Vec::<String>::new(),
        "the server refused reports:\n{metrics}"
    );
}
