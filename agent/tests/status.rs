//! `shipshape status`: enrollment, key, last report and server, always exit 0.

use predicates::prelude::*;
use serde_json::Value;

use crate::fake_server::{DEVICE_ID, FakeServer, closed_port_url, enroll, fleet, shipshape};

#[test]
fn not_enrolled() {
    let dir = tempfile::tempdir().unwrap();
    shipshape(dir.path())
        .arg("status")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "enrolled     no: run `shipshape enroll --server URL --token TOKEN`",
        ))
        .stdout(predicate::str::contains("last report  none yet"));
}

#[test]
fn enrolled_with_a_delivered_report_and_a_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("leaky"));
    enroll(dir.path(), &server);
    shipshape(dir.path()).arg("report").assert().code(1);
    server.take_requests();

    let key_file = dir.path().join("state").join("device-key");
    shipshape(dir.path())
        .arg("status")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(format!(
            "enrolled     yes, with {} as device {DEVICE_ID}",
            server.url
        )))
        .stdout(predicate::str::contains(format!(
            "device key   {} (readable)",
            key_file.display()
        )))
        .stdout(predicate::str::contains(format!(
            ": delivered to {}, graded leaky",
            server.url
        )))
        .stdout(predicate::str::contains(
            "server       reachable (GET /healthz answered in ",
        ));
    let requests = server.take_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/healthz");

    let assert = shipshape(dir.path())
        .args(["status", "--format", "json"])
        .assert()
        .code(0);
    let status: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(status["enrolled"], true);
    assert_eq!(status["device_id"], DEVICE_ID);
    assert_eq!(status["key"]["store"], "file");
    assert_eq!(status["key"]["problem"], Value::Null);
    assert_eq!(status["last_report"]["status"], "leaky");
    assert_eq!(status["server_health"]["reachable"], true);
}

#[test]
fn problems_are_lines_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    enroll(dir.path(), &server);
    let config_path = dir.path().join("config").join("agent.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace(&server.url, &closed_port_url()),
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("state").join("device-key")).unwrap();
    shipshape(dir.path())
        .arg("status")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("(NOT USABLE: the device key file"))
        .stdout(predicate::str::contains(
            "server       unreachable: cannot reach http://127.0.0.1:",
        ));

    std::fs::write(
        &config_path,
        "server = \"https://x.example\"\nkey-store = \"vault\"\n",
    )
    .unwrap();
    shipshape(dir.path())
        .arg("status")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "enrolled     unknown: the config does not parse: ",
        ))
        .stdout(predicate::str::contains(
            "agent.toml:2:13: unknown variant `vault`",
        ));
}
