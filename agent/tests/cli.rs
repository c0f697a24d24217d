//! The `shipshape` binary as a user runs it: exit codes, JSON schema, policy errors.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn shipshape(state: &Path) -> Command {
    let mut command = Command::cargo_bin("shipshape").unwrap();
    command
        .env("SHIPSHAPE_STATE_DIR", state)
        .env("SHIPSHAPE_CONFIG_DIR", state.join("config"))
        .env_remove("SHIPSHAPE_LOG");
    command
}

fn policy_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    shipshape(dir.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("shipshape 0."));
    shipshape(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("check").and(predicate::str::contains("facts")));
}

#[test]
fn shipped_policies_validate() {
    let dir = tempfile::tempdir().unwrap();
    for policy in ["policies/default.toml", "policies/strict.toml"] {
        shipshape(dir.path())
            .args(["policy", "validate"])
            .arg(repo_file(policy))
            .assert()
            .success()
            .stdout(
                predicate::str::contains("valid policy").and(predicate::str::contains("5 checks")),
            );
    }
}

#[test]
fn bad_policies_exit_2_with_file_line_and_column_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown-key.toml",
            "[checks.firewall]\nseverity = \"high\"\nrequire-stelth = true\n",
            "unknown-key.toml:3:1: unknown field `require-stelth`",
        ),
        (
            "bad-severity.toml",
            "[checks.firewall]\nseverity = \"urgent\"\n",
            "bad-severity.toml:2:12: unknown variant `urgent`",
        ),
        (
            "expired.toml",
            "[checks.firewall]\nseverity = \"high\"\n\n[[exceptions]]\ncheck = \"firewall\"\nhosts = [\"x\"]\nreason = \"lab\"\nexpires = 2020-01-31\n",
            "expired.toml:8:11: exception for `firewall` expired on 2020-01-31",
        ),
        ("not-toml.toml", "[checks.firewall\n", "not-toml.toml:1:"),
    ];
    for (name, text, expected) in cases {
        let path = policy_file(dir.path(), name, text);
        for args in [vec!["check", "--policy"], vec!["policy", "validate"]] {
            shipshape(dir.path())
                .args(&args)
                .arg(&path)
                .assert()
                .code(2)
                .stdout("")
                .stderr(predicate::str::contains(expected));
        }
    }
    assert!(
        !dir.path().join("failing-since.json").exists(),
        "a bad policy must not run any check"
    );
}

#[test]
fn missing_policy_file_and_bad_only_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    shipshape(dir.path())
        .args(["check", "--policy", "/nonexistent/policy.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "could not read policy /nonexistent/policy.toml",
        ));
    shipshape(dir.path())
        .args(["check", "--only", "antivirus"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown check `antivirus`"));
    let only_firewall = policy_file(
        dir.path(),
        "fw.toml",
        "[checks.firewall]\nseverity = \"high\"\n",
    );
    shipshape(dir.path())
        .args(["check", "--only", "ssh-keys", "--policy"])
        .arg(&only_firewall)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "does not run the check `ssh-keys`",
        ));
}

fn os_release_id() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("ID="))
        .map(|id| id.trim_matches('"').to_owned())
        .unwrap_or_else(|| "linux".to_owned())
}

fn check_json(dir: &Path, policy: &Path, only: &[&str]) -> (i32, serde_json::Value) {
    let mut command = shipshape(dir);
    command
        .args(["check", "--format", "json", "--policy"])
        .arg(policy);
    for id in only {
        command.args(["--only", id]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"));
    (output.status.code().unwrap(), json)
}

#[test]
fn json_schema_and_exit_code_follow_the_verdict() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let id = os_release_id();
    let leaky = policy_file(
        dir.path(),
        "leaky.toml",
        &format!(
            "name = \"too-new\"\n[checks.os-updates]\nseverity = \"high\"\nrequire-automatic = false\n\
             max-pending-security = 100000\n[checks.os-updates.min-version]\n{id} = \"9999\"\n"
        ),
    );
    let (code, report) = check_json(dir.path(), &leaky, &[]);
    assert_eq!(report["schema"], 1);
    assert_eq!(report["verdict"], "leaky", "{report:#}");
    assert_eq!(code, 1);
    assert_eq!(report["policy"]["name"], "too-new");
    assert_eq!(report["host"]["os"]["family"], "linux");
    let finding = &report["findings"][0];
    assert_eq!(finding["check"], "os-updates");
    assert_eq!(finding["status"], "fail");
    assert_eq!(finding["severity"], "high");
    assert_eq!(finding["leak"], true);
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .contains("older than the minimum 9999")
    );
    assert!(finding["evidence"].is_array());
    assert!(finding["remediation"].is_string());
    assert_eq!(report["findings"].as_array().unwrap().len(), 1);

    let calm = policy_file(
        dir.path(),
        "calm.toml",
        "unknown = \"report\"\n[checks.ssh-server]\nseverity = \"low\"\nallow-password-authentication = true\n\
         permit-root-login = [\"yes\", \"no\", \"prohibit-password\", \"forced-commands-only\"]\n\
         [checks.firewall]\nseverity = \"low\"\n",
    );
    let (code, report) = check_json(dir.path(), &calm, &["ssh-server"]);
    assert_eq!(report["verdict"], "shipshape", "{report:#}");
    assert_eq!(code, 0);
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["ssh-server"], "--only limits the findings");
}

#[test]
fn facts_prints_every_group_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let output = shipshape(dir.path())
        .args(["facts", "--only", "firewall"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let facts: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for group in [
        "host",
        "disk_encryption",
        "os_updates",
        "firewall",
        "ssh_keys",
        "ssh_server",
    ] {
        assert!(facts.get(group).is_some(), "missing {group}");
    }
    assert_eq!(
        facts["ssh_keys"]["unknown"]["reason"],
        "not collected in this run"
    );
}

#[test]
fn human_output_has_a_header_a_line_per_check_and_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let output = shipshape(dir.path()).args(["check"]).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("Shipshape check · policy default (built-in)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
    for title in [
        "Disk encryption",
        "OS updates",
        "Firewall",
        "SSH keys",
        "SSH server",
    ] {
        assert!(stdout.contains(title), "missing {title}: {stdout}");
    }
    let code = output.status.code().unwrap();
    let last = stdout.lines().last().unwrap();
    match code {
        0 => assert!(last.starts_with("✓ Shipshape"), "{last}"),
        1 => assert!(last.starts_with("✗ Leaky"), "{last}"),
        other => panic!("unexpected exit {other}: {stdout}"),
    }
    assert!(dir.path().join("failing-since.json").exists() || code == 0);
}
