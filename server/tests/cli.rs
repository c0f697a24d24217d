//! The `shipshape-server` binary: tokens printed once, `serve` announcing
//! its address and stopping cleanly on SIGTERM, and the fleet in the terminal.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_shipshape-server");

#[expect(clippy::disallowed_methods, reason = "these tests run the real binary")]
pub(crate) fn command(db: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_remove("SHIPSHAPE_SERVER_CONFIG")
        .env("SHIPSHAPE_SERVER_DB", format!("sqlite:{}", db.display()));
    command
}

pub(crate) fn run(db: &Path, args: &[&str]) -> Output {
    command(db).args(args).output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn tokens_are_printed_once_and_listed_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let created = run(
        &db,
        &[
            "token",
            "create",
            "--enroll",
            "--uses",
            "5",
            "--expires",
            "7d",
        ],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created);
    assert_eq!(
        token.lines().count(),
        1,
        "the token alone on stdout: {token}"
    );
    let token = token.trim();
    assert!(token.starts_with("sse_"), "{token}");
    assert!(stderr(&created).contains("shown only this once"));
    assert!(stderr(&created).contains("5 uses"));

    let admin = run(&db, &["token", "create", "--admin"]);
    assert!(admin.status.success());
    assert!(stdout(&admin).starts_with("ssa_"));

    let list = run(&db, &["token", "list"]);
    assert!(list.status.success());
    let table = stdout(&list);
    assert!(!table.contains(token), "no secret in the list");
    assert!(
        table.contains("enrollment") && table.contains("admin"),
        "{table}"
    );

    let json = run(&db, &["token", "list", "--format", "json"]);
    let tokens: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let enroll = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["kind"] == "enroll")
        .unwrap();
    assert_eq!(enroll["uses_left"], 5);
    let id = enroll["id"].as_str().unwrap();

    let revoked = run(&db, &["token", "revoke", id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let again = run(&db, &["token", "list", "--format", "json"]);
    let tokens: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id && !t["revoked_at"].is_null())
    );

    let unknown = run(&db, &["token", "revoke", "no-such-token"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no token has id `no-such-token`"));
    let device = run(&db, &["device", "revoke", "no-such-device"]);
    assert_eq!(device.status.code(), Some(2));
    assert!(stderr(&device).contains("no device has id `no-such-device`"));

    let usage = run(&db, &["token", "create", "--admin", "--uses", "3"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--uses is for enrollment tokens"
    );
}

#[test]
fn the_fleet_in_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let empty = run(&db, &["fleet"]);
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert!(
        stdout(&empty).starts_with("0 devices"),
        "{}",
        stdout(&empty)
    );
    let json = run(&db, &["fleet", "--format", "json", "--status", "leaky"]);
    let page: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(page["summary"]["total"], 0);
    let csv = run(&db, &["fleet", "--format", "csv", "--check", "firewall"]);
    assert!(stdout(&csv).starts_with("id,hostname,os,status,"));
    let bad = run(&db, &["fleet", "--status", "leaking"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Starts `serve` on a free port with the `extra` flags, and reads the
/// address it announces first (`listening on SCHEME://ADDRESS`). Its stderr
/// is piped, for the caller to read or drop.
pub(crate) fn spawn_serve(db: &Path, extra: &[&str], scheme: &str) -> (Child, String) {
    let mut child = command(db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("serve prints its address");
    let address = line
        .trim()
        .strip_prefix(&format!("listening on {scheme}://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, address)
}

/// A running `serve`, stopped (SIGTERM) when dropped.
struct Serving {
    child: Child,
    address: String,
}

impl Serving {
    fn start(db: &Path, extra: &[&str]) -> Serving {
        Serving::start_scheme(db, extra, "http")
    }

    fn start_scheme(db: &Path, extra: &[&str], scheme: &str) -> Serving {
        let (child, address) = spawn_serve(db, extra, scheme);
        Serving { child, address }
    }

    fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// Sends `request` over TLS, trusting only the test certificate.
    fn exchange_tls(&self, request: &str) -> String {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName};

        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(tls_fixture("cert.pem")).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut socket = TcpStream::connect(&self.address).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut tls = rustls::Stream::new(&mut connection, &mut socket);
        tls.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        // A peer that closes without close_notify still sent its answer.
        let _ = tls.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "SIGTERM is what service managers send"
    )]
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (status, stderr)
    }
}

#[test]
fn serve_announces_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/server.db");
    let serving = Serving::start(&db, &[]);
    assert!(
        serving.address.starts_with("127.0.0.1:"),
        "{}",
        serving.address
    );
    let health = serving.get("/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    let (status, stderr) = serving.terminate();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(db.exists(), "the database directory was created");
}

#[test]
fn serve_refuses_an_invalid_policy_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let policy = dir.path().join("bad.toml");
    std::fs::write(&policy, "[checks.firewall]\nseverity = \"urgent\"\n").unwrap();
    let output = run(
        &db,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!("{}:2:12: ", policy.display())),
        "{stderr}"
    );
    assert!(stdout(&output).is_empty(), "never started listening");
}

#[test]
fn serve_reads_its_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nstale-after = \"2d\"\npolicy = \"strict.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("strict.toml"),
        "name = \"only-keys\"\n[checks.ssh-keys]\nseverity = \"high\"\n",
    )
    .unwrap();
    let mut child = command(&db)
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    let serving = Serving {
        child,
        address: line
            .trim()
            .trim_start_matches("listening on http://")
            .to_owned(),
    };
    let (status, log) = serving.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("policy activated"), "{log}");

    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nstale_after = \"2d\"\n").unwrap();
    let output = run(&db, &["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains(&format!(
            "{}:2:1: unknown field `stale_after`",
            config.display()
        )),
        "{}",
        stderr(&output)
    );
}

fn tls_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

#[test]
fn serve_speaks_tls_and_sets_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let admin = run(&db, &["token", "create", "--admin"]);
    let token = stdout(&admin).trim().to_owned();
    let cert = tls_fixture("cert.pem");
    let key = tls_fixture("key.pem");
    let serving = Serving::start_scheme(
        &db,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        "https",
    );
    let port = serving.address.rsplit(':').next().unwrap().to_owned();
    let health = serving.exchange_tls(&format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    ));
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let form = format!("token={token}");
    let login = serving.exchange_tls(&format!(
        "POST /login HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    ));
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = login
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {login}"));
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let (status, log) = serving.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains(&token), "the token is never logged");
}

#[test]
fn serve_says_which_tls_files_it_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let missing = dir.path().join("missing.pem");
    let cert = tls_fixture("cert.pem");
    let output = run(
        &db,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!("cannot load TLS certificate {}", cert.display())),
        "{stderr}"
    );
    assert!(stderr.contains("missing.pem"), "{stderr}");
}
