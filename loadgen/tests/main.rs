//! The real `shipshape-loadgen` against a real `shipshape-server` (build
//! the workspace's binaries first: `cargo build --workspace --bins`).

use std::process::Output;

use serde_json::Value;
use shipshape_tests::{Server, command, run_ok};

fn enroll_token(server: &Server, uses: u32) -> String {
    let output =
        run_ok(
            server
                .admin()
                .args(["token", "create", "--enroll", "--uses", &uses.to_string()]),
        );
    String::from_utf8(output.stdout)
        .expect("the token is UTF-8")
        .trim()
        .to_owned()
}

fn loadgen(server: &Server, token: &str, args: &[&str]) -> Output {
    command(env!("CARGO_BIN_EXE_shipshape-loadgen"))
        .args(["--server", server.url(), "--enroll-token", token])
        .args(args)
        .output()
        .expect("shipshape-loadgen runs")
}

fn count(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is not a number"))
}

#[test]
fn every_report_the_loadgen_counts_is_stored_by_the_server() {
    let server = Server::start();
    let admin = server.create_token("--admin");
    let token = enroll_token(&server, 5);
    // 5 devices, 10 requests a second for 2 s: each device sends its first
    // report and 4 more, within the server's default rate limit (burst 10).
    let output = loadgen(
        &server,
        &token,
        &[
            "--devices",
            "5",
            "--rate",
            "10/s",
            "--duration",
            "2s",
            "--heartbeat-share",
            "0.5",
            "--seed",
            "42",
            "--format",
            "json",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{}", server.stderr());
    let results: Value = serde_json::from_slice(&output.stdout).expect("JSON results");

    assert_eq!(results["enrollment"]["requests"]["ok"], 5, "{results:#}");
    let first = &results["first_reports"]["requests"];
    let measured = &results["measured"];
    let (full, heartbeat) = (&measured["full"], &measured["heartbeat"]);
    for tally in [first, full, heartbeat] {
        assert_eq!(tally["errors"], serde_json::json!({}), "{results:#}");
        assert_eq!(tally["sent"], tally["ok"], "{results:#}");
    }
    assert_eq!(first["ok"], 5);
    assert_eq!(measured["not_sent"], 0, "{results:#}");
    assert_eq!(heartbeat["resend_full"], 0, "{results:#}");
    assert_eq!(
        count(&full["sent"]) + count(&heartbeat["sent"]),
        20.0,
        "10/s for 2 s: {results:#}"
    );
    assert!(
        count(&full["ok"]) > 0.0 && count(&heartbeat["ok"]) > 0.0,
        "{results:#}"
    );
    assert_eq!(count(&full["latency"]["count"]), count(&full["ok"]));

    let fleet = server.fleet(&admin);
    assert_eq!(fleet["summary"]["total"], 5, "{fleet:#}");
    let stored = server
        .metric("shipshape_reports_total{outcome=\"stored\"}")
        .expect("the server counts stored reports");
    assert_eq!(stored, count(&first["ok"]) + count(&full["ok"]));
    let heartbeats = server
        .metric("shipshape_heartbeats_total{outcome=\"stored\"}")
        .expect("the server counts stored heartbeats");
    assert_eq!(heartbeats, count(&heartbeat["ok"]));
    let metrics = server.metrics();
    assert!(
        !metrics.contains("shipshape_reports_rejected_total{"),
        "the server refused some: {metrics}"
    );
    assert_eq!(
        server.metric("shipshape_reports_total{outcome=\"duplicate\"}"),
        Some(0.0)
    );
}

#[test]
fn an_enrollment_refused_stops_the_run_and_says_why() {
    let server = Server::start();
    let token = enroll_token(&server, 2);
    let output = loadgen(
        &server,
        &token,
        &["--devices", "3", "--rate", "5", "--duration", "1s"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("failed: HTTP 401") && stderr.contains("used up"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
