//! The real agent against the real server: `shipshape enroll`, `shipshape
//! report`, and the device in the fleet report — `/v1/fleet`, the CSV and
//! `shipshape-server fleet` — graded by the server's policy; then
//! `shipshape status`.

use std::process::Output;

use serde_json::{Value, json};
use shipshape_tests::{Agent, Server, leaky_policy, lenient_policy, run_ok, sample};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The device id `shipshape enroll` announced.
fn enrolled_device_id(server: &Server, enrolled: &Output) -> String {
    let prefix = format!("enrolled with {} as device ", server.url());
    let text = stdout(enrolled);
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("`shipshape enroll` named no device id:\n{text}"))
        .to_owned()
}

/// Asserts `shipshape report` exited with `code`, showing its output if not.
fn assert_report_exit(report: &Output, code: i32, server: &Server) {
    assert_eq!(
        report.status.code(),
        Some(code),
        "shipshape report:\nstdout: {}\nstderr: {}\nserver: {}",
        stdout(report),
        String::from_utf8_lossy(&report.stderr),
        server.stderr()
    );
}

/// The CSV line of the device `id`.
fn csv_row<'a>(csv: &'a str, id: &str) -> &'a str {
    csv.lines()
        .find(|line| line.starts_with(&format!("{id},")))
        .unwrap_or_else(|| panic!("no CSV row for {id}:\n{csv}"))
}

#[test]
fn a_reporting_agent_is_leaky_in_the_fleet_report_and_its_status() {
    let server = Server::with_policy(&leaky_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let agent = Agent::new();

    let enrolled = agent.enroll(&server, &enroll);
    assert!(
        stdout(&enrolled).contains("device key stored in"),
        "enroll says where the key went:\n{}",
        stdout(&enrolled)
    );
    let id = enrolled_device_id(&server, &enrolled);

    let report = agent.run(&["report"]);
    assert_report_exit(&report, 1, &server);
    assert!(
        stdout(&report).contains(&format!(
            " delivered to {}: leaky (os-updates)",
            server.url()
        )),
        "{}",
        stdout(&report)
    );

    // `/v1/fleet`: one device, leaky on os-updates.
    let fleet = server.fleet(&admin);
    assert_eq!(
        fleet["summary"],
        json!({"total": 1, "leaky": 1, "silent": 0, "unknown": 0, "compliant": 0})
    );
    assert_eq!(
        fleet["failures_by_check"],
        json!([{"check": "os-updates", "devices": 1}])
    );
    let device = &fleet["devices"][0];
    assert_eq!(device["id"], id.as_str());
    assert_eq!(device["status"], "leaky");
    assert_eq!(device["failing_checks"], json!(["os-updates"]));
    assert_eq!(device["hostname"], sample().facts["host"]["hostname"]);
    assert_eq!(device["revoked"], false);
    assert!(device["last_seen"].is_string(), "{device}");

    // The CSV.
    let csv = server.get_admin("/v1/fleet.csv", &admin);
    csv.assert_ok_as("text/csv", "the fleet CSV");
    assert_eq!(
        csv.text.lines().next(),
        Some("id,hostname,os,status,failing_checks,last_seen,enrolled_at,revoked")
    );
    assert_eq!(csv.text.lines().count(), 2, "{}", csv.text);
    let row = csv_row(&csv.text, &id);
    assert!(row.contains(",leaky,os-updates,"), "{row}");
    assert!(row.ends_with(",false"), "{row}");

    // The terminal: the same report in each format.
    let fleet_cli =
        |format: &str| stdout(&run_ok(server.admin().args(["fleet", "--format", format])));
    let json: Value = serde_json::from_str(&fleet_cli("json")).expect("fleet --format json");
    assert_eq!(json, fleet, "the CLI and the API show the same fleet");
    assert_eq!(fleet_cli("csv"), csv.text);
    let table = fleet_cli("table");
    assert!(
        table.starts_with("1 devices: 1 leaky, 0 silent, 0 unknown, 0 compliant"),
        "{table}"
    );
    let line = table
        .lines()
        .find(|line| line.contains(&id))
        .unwrap_or_else(|| panic!("no table row for {id}:\n{table}"));
    for column in ["LEAKY", "os-updates"] {
        assert!(line.contains(column), "{column} in: {line}");
    }

    // `shipshape status` names the enrollment and the last report.
    let detail = server.device(&admin, &id);
    let report_id = detail["reports"][0]["id"]
        .as_str()
        .expect("the device's report");
    let status = stdout(&run_ok(agent.command().arg("status")));
    for expected in [
        format!("yes, with {} as device {id}", server.url()),
        format!("{report_id} at "),
        format!("delivered to {}, graded leaky", server.url()),
        "(readable)".to_owned(),
        "reachable (GET /healthz answered in".to_owned(),
    ] {
        assert!(status.contains(&expected), "`{expected}` in:\n{status}");
    }
    let status: Value = serde_json::from_slice(
        &run_ok(agent.command().args(["status", "--format", "json"])).stdout,
    )
    .expect("status --format json");
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["device_id"], id.as_str());
    assert_eq!(status["server"], server.url());
    assert_eq!(status["key"]["store"], "file");
    assert_eq!(status["last_report"]["id"], report_id);
    assert_eq!(status["last_report"]["status"], "leaky");
    assert_eq!(
        status["last_report"]["received_at"],
        detail["reports"][0]["received_at"]
    );
    assert_eq!(status["server_health"]["reachable"], true);
}

#[test]
fn under_a_lenient_policy_the_agent_is_compliant() {
    let server = Server::with_policy(&lenient_policy(sample().os_id()));
    let admin = server.create_token("--admin");
    let enroll = server.create_token("--enroll");
    let agent = Agent::new();
    let id = enrolled_device_id(&server, &agent.enroll(&server, &enroll));

    let report = agent.run(&["report", "--format", "json"]);
    assert_report_exit(&report, 0, &server);
    let receipt: Value = serde_json::from_slice(&report.stdout).expect("a JSON receipt");
    assert_eq!(receipt["device_id"], id.as_str());
    assert_eq!(receipt["status"], "compliant");
    assert_eq!(receipt["findings"][0]["check"], "os-updates");
    assert_eq!(receipt["findings"][0]["status"], "excepted");

    let fleet = server.fleet(&admin);
    assert_eq!(
        fleet["summary"],
        json!({"total": 1, "leaky": 0, "silent": 0, "unknown": 0, "compliant": 1})
    );
    assert_eq!(fleet["failures_by_check"], json!([]));
    assert_eq!(fleet["devices"][0]["id"], id.as_str());
    assert_eq!(fleet["devices"][0]["status"], "compliant");
    assert_eq!(fleet["devices"][0]["failing_checks"], json!([]));

    let csv = server.get_admin("/v1/fleet.csv", &admin);
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(
        csv_row(&csv.text, &id).contains(",compliant,,"),
        "{}",
        csv.text
    );
    let leaky_only = server.get_admin("/v1/fleet.csv?status=leaky", &admin);
    assert_eq!(leaky_only.text.lines().count(), 1, "{}", leaky_only.text);

    let matching = |status: &str| {
        let output = run_ok(
            server
                .admin()
                .args(["fleet", "--format", "json", "--status", status]),
        );
        let page: Value = serde_json::from_slice(&output.stdout).expect("fleet --format json");
        page["matching"].clone()
    };
    assert_eq!(matching("compliant"), 1);
    assert_eq!(matching("leaky"), 0);
}
