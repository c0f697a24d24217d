//! `shipshape enroll` against a fake server: what it sends, where the key
//! goes, what it writes and prints, and what it refuses.

use base64::Engine as _;
use predicates::prelude::*;
use shipshape_core::wire::EnrollRequest;

use crate::fake_server::{
    DEVICE_ID, FakeServer, TOKEN, closed_port_url, device_public_key, enroll, enroll_command,
    fleet, set_delivery, shipshape,
};

#[test]
fn enrolls_with_a_file_key_and_writes_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    let assert = enroll_command(dir.path(), &format!("{}/", server.url))
        .assert()
        .success();
    let output = assert.get_output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let key_file = dir.path().join("state").join("device-key");
    let config_file = dir.path().join("config").join("agent.toml");
    assert!(
        stdout.contains(&format!(
            "device key stored in {} (0600), as --key-store file asked",
            key_file.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "enrolled with {} as device {DEVICE_ID}",
            server.url
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));

    let requests = server.take_requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v1/enroll")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert!(
        request
            .header("user-agent")
            .is_some_and(|agent| agent.starts_with("shipshape/")),
        "{:?}",
        request.header("user-agent")
    );
    let sent: EnrollRequest = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(sent.token, TOKEN);
    assert!(!sent.host.hostname.is_empty());
    let public = base64::engine::general_purpose::STANDARD
        .decode(&sent.public_key)
        .unwrap();
    assert_eq!(public, device_public_key(dir.path()).as_bytes());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [&key_file, &config_file] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }
    let config = std::fs::read_to_string(&config_file).unwrap();
    assert!(
        config.contains(&format!("server = \"{}\"", server.url)),
        "{config}"
    );
    assert!(
        config.contains(&format!("device-id = \"{DEVICE_ID}\"")),
        "{config}"
    );
    assert!(config.contains("key-store = \"file\""), "{config}");
    assert!(!config.contains(TOKEN));
}

#[cfg(target_os = "linux")]
#[test]
fn without_a_keyring_auto_falls_back_to_the_file_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    let key_file = dir.path().join("state").join("device-key");
    shipshape(dir.path())
        .args(["enroll", "--server", &server.url, "--token", TOKEN])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "device key stored in {} (0600): no keyring available here: ",
            key_file.display()
        )));
    assert!(key_file.exists());
    let config = std::fs::read_to_string(dir.path().join("config").join("agent.toml")).unwrap();
    assert!(config.contains("key-store = \"file\""), "{config}");

    shipshape(dir.path())
        .args(["enroll", "--server", &server.url, "--token", TOKEN])
        .args(["--key-store", "keyring"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no keyring is available ("))
        .stderr(predicate::str::contains("use `--key-store file`"));
}

#[test]
fn refuses_plain_http_to_another_machine_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    shipshape(dir.path())
        .args(["enroll", "--server", "http://shipshape.example.com", "--token", TOKEN])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`http://shipshape.example.com` uses plain http://, which would send reports unencrypted: use https://",
        ))
        .stderr(predicate::str::contains(TOKEN).not());
    assert!(!dir.path().join("config").exists());
    assert!(!dir.path().join("state").join("device-key").exists());
}

#[test]
fn a_refused_token_changes_nothing_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(|_| {
        crate::fake_server::Reply::json(
            401,
            &serde_json::json!({ "error": "expired on 2026-11-01" }),
        )
    });
    enroll_command(dir.path(), &server.url)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "server refused the enrollment: 401 expired on 2026-11-01 — ask for a new enrollment token",
        ))
        .stderr(predicate::str::contains(TOKEN).not());
    assert!(!dir.path().join("config").join("agent.toml").exists());
    assert!(!dir.path().join("state").join("device-key").exists());

    enroll_command(dir.path(), &closed_port_url())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot reach http://127.0.0.1:"))
        .stderr(predicate::str::contains("connection refused"));
}

#[test]
fn enrolling_again_says_so_and_replaces_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    crate::fake_server::enroll(dir.path(), &server);
    let first = device_public_key(dir.path());
    enroll_command(dir.path(), &server.url)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "this machine is enrolled with {} as device {DEVICE_ID}: enrolling again replaces that enrollment",
            server.url
        )));
    assert_ne!(device_public_key(dir.path()), first);
}

#[test]
fn the_ca_file_must_hold_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    shipshape(dir.path())
        .args([
            "enroll",
            "--server",
            "https://shipshape.example.com",
            "--token",
            TOKEN,
        ])
        .arg("--ca-file")
        .arg(&ca)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("could not read the CA file"))
        .stderr(predicate::str::contains("holds no PEM certificate"));
}

#[test]
fn a_pinned_ca_is_the_only_one_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start_tls(fleet("compliant"));
    let fixtures = crate::fake_server::tls_fixtures();

    enroll_command(dir.path(), &server.url)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "cannot reach {}/v1/enroll: the server's certificate is not trusted (",
            server.url
        )))
        .stderr(predicate::str::contains("enroll again with --ca-file"));

    enroll_command(dir.path(), &server.url)
        .arg("--ca-file")
        .arg(fixtures.join("other-ca.pem"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the server's certificate is not trusted",
        ));
    assert!(server.take_requests().is_empty());

    enroll_command(dir.path(), &server.url)
        .arg("--ca-file")
        .arg(fixtures.join("ca.pem"))
        .assert()
        .success();
    let config = std::fs::read_to_string(dir.path().join("config").join("agent.toml")).unwrap();
    assert!(
        config.contains(&format!(
            "ca-file = \"{}\"",
            fixtures.join("ca.pem").display()
        )),
        "{config}"
    );
    // Later requests trust the pinned CA from the config.
    shipshape(dir.path()).arg("report").assert().code(0);
    let paths: Vec<String> = server
        .take_requests()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert_eq!(paths, ["/v1/enroll", "/v1/policy", "/v1/reports"]);
}

#[test]
fn enrolling_again_keeps_the_delivery_settings_even_seeded_before_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = FakeServer::start(fleet("compliant"));
    let config_file = dir.path().join("config").join("agent.toml");
    std::fs::create_dir_all(config_file.parent().unwrap()).unwrap();
    std::fs::write(&config_file, "[delivery]\nbreaker-failures = 5\n").unwrap();
    enroll_command(dir.path(), &server.url)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "missing field `server`), keeping its [delivery] table",
        ));
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(
        text.contains("[delivery]\nbreaker-failures = 5\n"),
        "{text}"
    );

    set_delivery(dir.path(), "retry-delays = [\"50ms\"]");
    enroll(dir.path(), &server);
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(text.contains("breaker-failures = 5"), "{text}");
    assert!(text.contains("retry-delays = [\"50ms\"]"), "{text}");

    // A table that is wrong is not silently replaced.
    std::fs::write(&config_file, "[delivery]\nbreaker-failures = 0\n").unwrap();
    enroll_command(dir.path(), &server.url)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "agent.toml:2:20: breaker-failures must be a whole number from 1 up, not 0: \
             fix or remove the [delivery] table, then enroll again",
        ));
}
