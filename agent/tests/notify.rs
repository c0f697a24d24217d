//! Desktop notifications from the real binary on a machine with no desktop
//! (CI, containers, servers): `check` still succeeds, a clean run is
//! remembered, a leak no one could be told of is not, and the opt-outs hold.
//! What is shown on a desktop is tested through the fake machine in
//! `agent/src/notify*`.

use std::path::{Path, PathBuf};

use predicates::prelude::*;

use crate::fake_server::{FakeServer, enroll, enroll_command, fleet};

/// `shipshape` under `dir` with no desktop in sight: no display, and a
/// session bus address that leads nowhere.
fn shipshape(dir: &Path) -> assert_cmd::Command {
    let mut command = crate::fake_server::shipshape(dir);
    command
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("XDG_RUNTIME_DIR");
    command
}

fn notified(dir: &Path) -> PathBuf {
    dir.join("state").join("notified.json")
}

/// A policy whose one check does not run on this OS: a clean run anywhere.
fn calm_policy(dir: &Path) -> PathBuf {
    let elsewhere = if cfg!(windows) { "macos" } else { "windows" };
    let path = dir.join("calm.toml");
    std::fs::write(
        &path,
        format!("[checks.firewall]\nseverity = \"high\"\nplatforms = [\"{elsewhere}\"]\n"),
    )
    .unwrap();
    path
}

fn write_config(dir: &Path, text: &str) {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("agent.toml"), text).unwrap();
}

#[test]
fn a_clean_check_without_a_desktop_succeeds_and_remembers_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = calm_policy(dir.path());
    for _ in 0..2 {
        shipshape(dir.path())
            .arg("check")
            .arg("--policy")
            .arg(&policy)
            .assert()
            .code(0)
            .stdout(predicate::str::contains("✓ Shipshape"));
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(notified(dir.path())).unwrap()).unwrap();
        assert_eq!(
            state,
            serde_json::json!({ "leaky": false, "leaking": [] }),
            "{state:#}"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_leak_no_desktop_could_be_told_of_is_not_remembered_as_told() {
    // As root, the agent looks for graphical sessions through logind; on a
    // machine that has seats someone may be logged in, and would be told.
    if rustix::process::geteuid().is_root() && Path::new("/run/systemd/seats").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let id = text
        .lines()
        .find_map(|line| line.strip_prefix("ID="))
        .map_or("linux", |id| id.trim_matches('"'));
    let policy = dir.path().join("leaky.toml");
    std::fs::write(
        &policy,
        format!(
            "[checks.os-updates]\nseverity = \"high\"\nrequire-automatic = false\n\
             max-pending-security = 100000\n[checks.os-updates.min-version]\n{id} = \"9999\"\n"
        ),
    )
    .unwrap();
    shipshape(dir.path())
        .arg("check")
        .arg("--policy")
        .arg(&policy)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("older than the minimum 9999"));
    assert!(
        !notified(dir.path()).exists(),
        "no one was told, so the next run with a desktop tells"
    );
}

#[test]
fn no_notify_and_the_notify_table_leave_notifications_alone() {
    let dir = tempfile::tempdir().unwrap();
    let policy = calm_policy(dir.path());
    shipshape(dir.path())
        .args(["check", "--no-notify", "--policy"])
        .arg(&policy)
        .assert()
        .code(0);
    assert!(!notified(dir.path()).exists());

    write_config(dir.path(), "[notify]\nenabled = false\n");
    shipshape(dir.path())
        .args(["check", "--policy"])
        .arg(&policy)
        .assert()
        .code(0);
    assert!(!notified(dir.path()).exists());

    write_config(dir.path(), "[notify]\nenabled = \"no\"\n");
    shipshape(dir.path())
        .args(["check", "--policy"])
        .arg(&policy)
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "agent.toml:2:11: invalid type: string \"no\", expected a boolean: fix the [notify] table",
        ));
    assert!(!notified(dir.path()).exists());

    shipshape(dir.path())
        .args(["check", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--no-notify"));
}

#[test]
fn notifications_turned_off_before_enrolling_stay_off_for_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    write_config(dir.path(), "[notify]\nenabled = false\n");
    enroll(dir.path(), &server);
    let config = dir.path().join("config").join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[notify]\nenabled = false\n"), "{text}");
    enroll_command(dir.path(), &server.url).assert().success();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("[notify]\nenabled = false\n"),
        "enrolling again: {text}"
    );

    shipshape(dir.path()).arg("report").assert().success();
    assert!(!notified(dir.path()).exists());

    std::fs::write(&config, text.replace("enabled = false", "enabled = 0")).unwrap();
    enroll_command(dir.path(), &server.url)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "expected a boolean: fix or remove the [notify] table, then enroll again",
        ));
}
