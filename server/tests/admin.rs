//! The admin commands over a seeded fleet: the fleet page by page with
//! cursors or all at once, the CSV, `policy simulate`, and `serve` resuming
//! a re-grade that a stop cut short.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;
use shipshape_server::api::policy::activate_at_start;
use shipshape_server::auth::hash_token;
use shipshape_server::model::{IncomingReport, NewDevice, TokenKind};
use shipshape_server::store::{SqliteStore, Store as _};

use crate::cli::{run, spawn_serve};
use crate::support::{create_token, host, leaky_submission};

/// Only the SSH key check, which the seeded laptops pass.
const KEYS_ONLY: &str = "name = \"keys-only\"\n[checks.ssh-keys]\nseverity = \"high\"\n";

/// A database with `leaky` devices that reported an unencrypted disk
/// (leaky under the default policy) and `quiet` ones that never reported;
/// the admin token.
fn seed(db: &Path, leaky: usize, quiet: usize) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open(db).unwrap();
        let policy = activate_at_start(&store, None, Timestamp::now())
            .await
            .unwrap();
        let enroll = create_token(&store, TokenKind::Enroll, None, None).await;
        let admin = create_token(&store, TokenKind::Admin, None, None).await;
        for n in 0..leaky + quiet {
            let hostname = format!("laptop-{n:02}");
            let device = NewDevice {
                public_key: [n as u8; 32],
                host: host(&hostname),
                enrolled_at: Timestamp::now(),
            };
            let id = store
                .enroll(&hash_token(&enroll), device)
                .await
                .unwrap()
                .unwrap();
            if n < leaky {
                let report = IncomingReport {
                    device_id: id,
                    received_at: Timestamp::now(),
                    nonce: format!("seed-{n}"),
                    submission: leaky_submission(&hostname),
                    repeats: None,
                };
                store.record_report(report, &policy).await.unwrap();
            }
        }
        admin
    })
}

/// `GET path` with the admin token, over a plain connection; the JSON body.
fn get_json(address: &str, path: &str, admin: &str) -> Value {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {admin}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {response}"))
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(db: &Path, args: &[&str]) -> String {
    let output = run(db, args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

#[test]
fn the_fleet_in_the_terminal_page_by_page_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    seed(&db, 3, 2);

    let first = ok(&db, &["fleet", "--per-page", "2"]);
    assert!(
        first.starts_with("5 devices: 3 leaky, 0 silent, 2 unknown"),
        "{first}"
    );
    let cursor = first
        .lines()
        .last()
        .and_then(|line| line.split("--after ").nth(1))
        .unwrap_or_else(|| panic!("the next page's cursor: {first}"))
        .to_owned();
    assert!(first.contains("showing 2 of 5 matching devices"), "{first}");
    let second = ok(&db, &["fleet", "--per-page", "2", "--after", &cursor]);
    assert!(second.contains("laptop-02"), "{second}");
    assert!(!second.contains("laptop-00"), "{second}");

    let all = ok(&db, &["fleet", "--per-page", "2", "--all"]);
    for n in 0..5 {
        assert_eq!(all.matches(&format!("laptop-{n:02}")).count(), 1, "{all}");
    }
    assert_eq!(all.matches("HOSTNAME").count(), 1, "{all}");
    assert!(all.ends_with("\n5 devices\n"), "{all}");

    let json: Value = serde_json::from_str(&ok(
        &db,
        &["fleet", "--format", "json", "--all", "--per-page", "2"],
    ))
    .expect("one JSON document");
    let hostnames: Vec<&str> = json["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(
        hostnames,
        [
            "laptop-00",
            "laptop-01",
            "laptop-02",
            "laptop-03",
            "laptop-04"
        ]
    );
    assert_eq!(
        (&json["matching"], &json["next"]),
        (&Value::from(5), &Value::Null)
    );
    let page: Value =
        serde_json::from_str(&ok(&db, &["fleet", "--format", "json", "--per-page", "2"])).unwrap();
    assert_eq!(page["next"], cursor.as_str());

    let csv = ok(&db, &["fleet", "--format", "csv", "--status", "unknown"]);
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let bad = run(&db, &["fleet", "--after", "page-2"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("`page-2` is not a cursor"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_policy_is_simulated_on_the_stored_facts_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    seed(&db, 3, 1);
    let before = ok(&db, &["fleet", "--format", "json"]);
    let policy = dir.path().join("keys-only.toml");
    std::fs::write(&policy, KEYS_ONLY).unwrap();

    let table = ok(&db, &["policy", "simulate", policy.to_str().unwrap()]);
    assert!(
        table.contains("Policy \"keys-only\" on the last facts of 4 devices"),
        "{table}"
    );
    assert!(
        table.contains("would leak:        0 (leaky now: 3)"),
        "{table}"
    );
    assert!(table.contains("Would bail out: 3 devices"), "{table}");
    assert!(table.contains("disk-encryption"), "{table}");
    let json: Value = serde_json::from_str(&ok(
        &db,
        &[
            "policy",
            "simulate",
            policy.to_str().unwrap(),
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(
        (&json["would_leak"], &json["no_longer_leaky"]),
        (&Value::from(0), &Value::from(3))
    );
    assert_eq!(json["bails_out"][0]["checks"][0], "disk-encryption");
    assert_eq!(
        ok(&db, &["fleet", "--format", "json"]),
        before,
        "nothing stored"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[checks.ssh-keys]\nseverity = \"urgent\"\n").unwrap();
    let output = run(&db, &["policy", "simulate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!("{}:2:12: ", bad.display())),
        "{}",
        stderr(&output)
    );
    let missing = run(&db, &["policy", "simulate", "no-such.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read policy file no-such.toml"));
}

#[test]
fn serve_resumes_a_regrade_it_did_not_finish() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let admin = seed(&db, 3, 1);
    // Activated by a server that stopped before re-grading anything.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open(&db).unwrap();
        let (_, progress) = store
            .activate_policy(KEYS_ONLY, Timestamp::now())
            .await
            .unwrap();
        assert_eq!((progress.done, progress.devices), (0, 4));
    });

    let (mut child, address) = spawn_serve(&db, &[], "http");
    let deadline = Instant::now() + Duration::from_secs(30);
    let progress = loop {
        let progress = get_json(&address, "/v1/policy/status", &admin);
        if progress["state"] != "running" {
            break progress;
        }
        assert!(
            Instant::now() < deadline,
            "the re-grade did not finish: {progress}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (&progress["state"], &progress["done"]),
        (&Value::from("done"), &Value::from(4))
    );
    assert_eq!(progress["changed_status"], 3);
    let fleet = get_json(&address, "/v1/fleet", &admin);
    assert_eq!(fleet["summary"]["compliant"], 3, "{fleet}");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("resuming the re-grade"), "{log}");
}
