//! `kill -9` of the server while devices report at full speed, again and
//! again on the same database: every report the server acknowledged is
//! there after the restart, with the receipt it was acknowledged with, and
//! every report it did not acknowledge is stored exactly once when sent
//! again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use shipshape_tests::device::{Answer, Device};
use shipshape_tests::{Server, leaky_policy, sample};

/// How many times the server is killed.
const ROUNDS: usize = 10;
/// Devices reporting side by side in each round.
const DEVICES: usize = 8;
/// The most reports a device sends in a round: within the server's default
/// burst of signed requests per device (10), so the load is not throttled.
const MAX_REPORTS: usize = 8;

/// What one device saw in one round.
#[derive(Debug, Default)]
struct Sent {
    /// Acknowledged (2xx): report id → the submission and its receipt.
    acknowledged: BTreeMap<String, (Value, Value)>,
    /// Sent without an acknowledgement (no answer, or an error status):
    /// report id → the submission, to be sent again.
    unacknowledged: BTreeMap<String, Value>,
    /// How many requests got no answer at all: cut by the kill.
    cut: usize,
}

/// Sends reports one after the other until the server stops answering or
/// the round's quota is reached.
fn report_until_cut(device: &Device, hostname: &str, acknowledged: &AtomicUsize) -> Sent {
    let mut sent = Sent::default();
    for _ in 0..MAX_REPORTS {
        let submission = sample().submission(hostname);
        let id = submission["id"]
            .as_str()
            .expect("a submission has an id")
            .to_owned();
        match device.try_report(&submission) {
            Ok(answer) if (200..300).contains(&answer.status) => {
                sent.acknowledged.insert(id, (submission, answer.json()));
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {
                sent.unacknowledged.insert(id, submission);
            }
            Err(_) => {
                sent.unacknowledged.insert(id, submission);
                sent.cut += 1;
                break;
            }
        }
    }
    sent
}

/// Sends `submission`, waiting out any 429 as its `Retry-After` says.
fn report_patiently(device: &Device, submission: &Value) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = device.report(submission);
        if answer.status != 429 || Instant::now() > deadline {
            return answer;
        }
        let wait = answer
            .header("retry-after")
            .and_then(|seconds| seconds.parse().ok())
            .unwrap_or(1);
        thread::sleep(Duration::from_secs(wait));
    }
}

#[test]
fn every_acknowledged_report_survives_kill_9_of_the_server_under_load() {
    let started = Instant::now();
    let mut server = Server::with_policy(&leaky_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let mut cut = 0;

    for round in 0..ROUNDS {
        let hostnames: Vec<String> = (0..DEVICES)
            .map(|device| format!("load-{round}-{device}"))
            .collect();
        let devices: Vec<Device> = hostnames
            .iter()
            .map(|hostname| Device::enroll(&server, &enroll, &sample().host(hostname)))
            .collect();
        // Kill after a different number of acknowledgements each round, so
        // the kill lands at different points of the write path.
        let kill_after = 4 + (round * 13) % 50;
        let acknowledged = AtomicUsize::new(0);
        let rounds: Vec<Sent> = thread::scope(|scope| {
            let senders: Vec<_> = devices
                .iter()
                .zip(&hostnames)
                .map(|(device, hostname)| {
                    let acknowledged = &acknowledged;
                    scope.spawn(move || report_until_cut(device, hostname, acknowledged))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(20);
            while acknowledged.load(Ordering::SeqCst) < kill_after && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            server.kill();
            senders
                .into_iter()
                .map(|sender| sender.join().expect("a reporting thread finished"))
                .collect()
        });
        server.restart();

        for ((device, hostname), sent) in devices.iter().zip(&hostnames).zip(&rounds) {
            cut += sent.cut;
            let stored = device.stored_report_ids(&server, &admin);
            let unique: BTreeSet<&String> = stored.iter().collect();
            assert_eq!(
                unique.len(),
                stored.len(),
                "round {round}, {hostname}: a report stored twice: {stored:?}"
            );
            for id in sent.acknowledged.keys() {
                assert!(
                    unique.contains(id),
                    "round {round}, {hostname}: acknowledged report {id} lost after kill -9\nserver log:\n{}",
                    server.stderr()
                );
            }
            for id in &stored {
                assert!(
                    sent.acknowledged.contains_key(id) || sent.unacknowledged.contains_key(id),
                    "round {round}, {hostname}: stored report {id} was never sent"
                );
            }

            // The last acknowledged report, sent again, gets the receipt it
            // was acknowledged with: the acknowledgement was durable.
            if let Some((submission, receipt)) = sent.acknowledged.values().last() {
                let answer = report_patiently(device, submission);
                assert_eq!(answer.status, 200, "round {round}: {}", answer.text);
                assert_eq!(&answer.json(), receipt, "round {round}: the same receipt");
            }
            // What was never acknowledged is stored once when sent again,
            // whether or not the dead server had stored it.
            for (id, submission) in &sent.unacknowledged {
                let answer = report_patiently(device, submission);
                assert_eq!(answer.status, 200, "round {round}, {id}: {}", answer.text);
            }
            let mut expected: Vec<&String> = sent
                .acknowledged
                .keys()
                .chain(sent.unacknowledged.keys())
                .collect();
            expected.sort();
            let mut stored = device.stored_report_ids(&server, &admin);
            stored.sort();
            assert_eq!(
                stored.iter().collect::<Vec<_>>(),
                expected,
                "round {round}, {hostname}: every report sent, stored exactly once"
            );
        }
    }
    assert!(
        cut >= ROUNDS,
        "the kills cut only {cut} requests in {ROUNDS} rounds: the load did not overlap them"
    );
    eprintln!(
        "{ROUNDS} kills, {cut} requests cut, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
