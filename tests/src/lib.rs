//! The harness of the end-to-end tests in `tests/`: they run the real
//! `shipshape` and `shipshape-server` binaries of this workspace (build them
//! first: `cargo build --workspace --bins`), each server on a free loopback
//! port with its own database, each agent with its own directories.
//!
//! The agent's own CLI tests are in `agent/tests/`.

pub mod device;
pub mod postgres;
pub mod proxy;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::device::Answer;

/// How long a process may take to say it is ready.
const STARTUP: Duration = Duration::from_secs(30);

/// The target directory this test runs from (`target/`), where the
/// binaries are built and the tests leave their artifacts.
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .map(Path::to_owned)
        .expect("the profile directory sits in the target directory")
}

/// `target/debug` (or the profile in use): a test executable runs from its
/// `deps/` subdirectory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe
        .parent()
        .expect("the test executable sits in a directory");
    if deps.ends_with("deps") {
        deps.parent().unwrap_or(deps).to_owned()
    } else {
        deps.to_owned()
    }
}

/// One of the workspace's binaries (`shipshape`, `shipshape-server`).
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A command for `program`: the one place the tests start processes.
#[expect(
    clippy::disallowed_methods,
    reason = "end-to-end tests run the real binaries; the agent's System seam is for the agent"
)]
pub fn command(program: impl AsRef<OsStr>) -> Command {
    Command::new(program)
}

/// Runs a command to completion, panicking with its output when it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A long-running child process, killed when dropped. Its stderr goes to a
/// file, shown when it fails to start.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    /// Kept open: the process may write more, and must not get EPIPE.
    _stdout: Option<ChildStdout>,
    stderr: PathBuf,
}

impl Process {
    /// Starts `command` and waits until a line on its stdout satisfies
    /// `ready`, which returns what the test needs from it (the address it
    /// listens on). `logs` is the directory for its stderr.
    pub fn start<T: Send + 'static>(
        name: &str,
        mut command: Command,
        logs: &Path,
        ready: impl Fn(&str) -> Option<T> + Send + 'static,
    ) -> (Process, T) {
        let stderr = logs.join(format!("{name}.stderr"));
        let stderr_file = File::create(&stderr)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", stderr.display()));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");

        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => return sender.send(None),
                    Ok(_) => {
                        if let Some(found) = ready(line.trim_end()) {
                            return sender.send(Some((found, lines.into_inner())));
                        }
                    }
                }
            }
        });
        let mut process = Process {
            name: name.to_owned(),
            child,
            _stdout: None,
            stderr,
        };
        match receiver.recv_timeout(STARTUP) {
            Ok(Some((found, stdout))) => {
                process._stdout = Some(stdout);
                (process, found)
            }
            Ok(None) => panic!(
                "{name} exited before it was ready ({:?}):\n{}",
                process.child.wait(),
                process.stderr()
            ),
            Err(_) => panic!(
                "{name} was not ready after {STARTUP:?}:\n{}",
                process.stderr()
            ),
        }
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", self.stderr.display()))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill().and_then(|()| self.child.wait().map(drop)) {
            eprintln!("cannot stop {}: {error}", self.name);
        }
    }
}

/// A `shipshape-server serve` on a free loopback port, with its own
/// database in a temporary directory (or the one [`Server::start_on`]
/// names). Stopped when dropped.
#[derive(Debug)]
pub struct Server {
    url: String,
    db: String,
    /// `None` while killed.
    process: Option<Process>,
    /// `serve`'s policy argument, given again on a restart.
    policy: Option<PathBuf>,
    /// The `--config` file, given again on a restart.
    config: Option<PathBuf>,
    /// How many times the server was started: each run logs to its own file.
    runs: usize,
    /// Holds the SQLite database (unless the server was started on another)
    /// and the logs; removed when the server is dropped.
    dir: TempDir,
}

impl Server {
    /// Starts a server grading with the built-in policy.
    pub fn start() -> Server {
        Server::start_with(None, None, None)
    }

    /// Starts a server grading with `policy` (TOML text).
    pub fn with_policy(policy: &str) -> Server {
        Server::start_with(None, Some(policy), None)
    }

    /// Starts a server grading with `policy`, with the config file `config`
    /// (TOML text: `rate-limit = 0`, …).
    pub fn with_policy_and_config(policy: &str, config: &str) -> Server {
        Server::start_with(None, Some(policy), Some(config))
    }

    /// Starts a server on the database `db` (a `--db` URL, such as a
    /// [`postgres::Schema`]'s) with the config file `config`: servers
    /// started on one database are replicas of one another.
    pub fn start_on(db: &str, config: &str) -> Server {
        Server::start_with(Some(db), None, Some(config))
    }

    fn start_with(db: Option<&str>, policy: Option<&str>, config: Option<&str>) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory for the server");
        let db = db.map_or_else(
            || format!("sqlite:{}", dir.path().join("shipshape.db").display()),
            str::to_owned,
        );
        let policy = policy.map(|policy| {
            let path = dir.path().join("policy.toml");
            std::fs::write(&path, policy).expect("write the server's policy");
            path
        });
        let config = config.map(|config| {
            let path = dir.path().join("server.toml");
            std::fs::write(&path, config).expect("write the server's config");
            path
        });
        let mut server = Server {
            url: String::new(),
            db,
            process: None,
            policy,
            config,
            runs: 0,
            dir,
        };
        server.url = server.serve("127.0.0.1:0");
        server
    }

    /// Starts `serve` on `listen`; returns the URL it announced.
    fn serve(&mut self, listen: &str) -> String {
        let mut serve = command(binary("shipshape-server"));
        if let Some(config) = &self.config {
            serve.arg("--config").arg(config);
        }
        serve.args(["serve", "--listen", listen, "--db", &self.db]);
        if let Some(policy) = &self.policy {
            serve.arg("--policy").arg(policy);
        }
        self.runs += 1;
        let name = self.run_name();
        let (process, url) = Process::start(&name, serve, self.dir.path(), |line| {
            line.strip_prefix("listening on ").map(str::to_owned)
        });
        self.process = Some(process);
        url
    }

    /// `shipshape-server`, then `shipshape-server.2`, …: names each run's log.
    fn run_name(&self) -> String {
        match self.runs {
            1 => "shipshape-server".to_owned(),
            run => format!("shipshape-server.{run}"),
        }
    }

    /// Kills the server (SIGKILL: no chance to finish anything) and waits
    /// until it is gone. The database stays for [`Server::restart`].
    pub fn kill(&mut self) {
        drop(self.process.take());
    }

    /// Starts the server again on the same database, address and policy
    /// file, after [`Server::kill`].
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "restart a server that was killed");
        let listen = self
            .url
            .strip_prefix("http://")
            .expect("a plain-HTTP test server")
            .to_owned();
        let url = self.serve(&listen);
        assert_eq!(url, self.url, "the server came back on its address");
    }

    /// `GET /metrics`: the counters since this run of the server started.
    pub fn metrics(&self) -> String {
        let answer = Answer::from(http_client().get(format!("{}/metrics", self.url)).send());
        assert_eq!(answer.status, 200, "GET /metrics: {}", answer.text);
        answer.text
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the server logged so far in its current run (or its last,
    /// while killed).
    pub fn stderr(&self) -> String {
        let path = self.dir.path().join(format!("{}.stderr", self.run_name()));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
    }

    /// `shipshape-server ARGS` on this server's database (`token …`,
    /// `device …`, `fleet …`), not yet run.
    pub fn admin(&self) -> Command {
        let mut admin = command(binary("shipshape-server"));
        admin.args(["--db", &self.db]);
        admin
    }

    /// A new token: `kind` is `--admin` or `--enroll`.
    pub fn create_token(&self, kind: &str) -> String {
        let output = run_ok(self.admin().args(["token", "create", kind]));
        let token = String::from_utf8(output.stdout).expect("the token is UTF-8");
        token.trim().to_owned()
    }

    /// `GET path` with `admin_token` as bearer.
    pub fn get_admin(&self, path: &str, admin_token: &str) -> Answer {
        Answer::from(
            http_client()
                .get(format!("{}{path}", self.url))
                .bearer_auth(admin_token)
                .send(),
        )
    }

    /// `GET /v1/fleet`: the first page of the fleet report.
    pub fn fleet(&self, admin_token: &str) -> Value {
        self.admin_json("/v1/fleet", admin_token)
    }

    /// `GET /v1/devices/{id}`: the device, its findings and history.
    pub fn device(&self, admin_token: &str, id: &str) -> Value {
        self.admin_json(&format!("/v1/devices/{id}"), admin_token)
    }

    /// The device's reports as the server lists them (its latest 50),
    /// newest first.
    pub fn stored_reports(&self, admin_token: &str, device_id: &str) -> Vec<StoredReport> {
        self.device(admin_token, device_id)["reports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|report| StoredReport {
                id: report["id"]
                    .as_str()
                    .expect("a listed report has an id")
                    .to_owned(),
                received_at: report["received_at"]
                    .as_str()
                    .and_then(|at| at.parse().ok())
                    .unwrap_or_else(|| panic!("a listed report has a received_at: {report}")),
            })
            .collect()
    }

    /// Asserts the server stored exactly `expected` for the device — each
    /// report once, none other — and received them in the order they were
    /// made (report ids are UUID v7: they sort in that order).
    pub fn assert_delivered_once_in_order(
        &self,
        admin_token: &str,
        device_id: &str,
        expected: &[String],
    ) {
        let stored = self.assert_delivered_once(admin_token, device_id, expected);
        for pair in stored.windows(2) {
            assert!(
                pair[0].received_at <= pair[1].received_at,
                "report {} (made first) was received at {}, after report {} at {}",
                pair[0].id,
                pair[0].received_at,
                pair[1].id,
                pair[1].received_at
            );
        }
    }

    /// Asserts the server stored exactly `expected` for the device, each
    /// report once and none other; returns them, oldest first.
    pub fn assert_delivered_once(
        &self,
        admin_token: &str,
        device_id: &str,
        expected: &[String],
    ) -> Vec<StoredReport> {
        let mut stored = self.stored_reports(admin_token, device_id);
        stored.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = stored.iter().map(|report| report.id.as_str()).collect();
        let mut expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(
            ids,
            expected,
            "the server stores each report made exactly once\nserver log:\n{}",
            self.stderr()
        );
        stored
    }

    /// The value of one series of `GET /metrics` (`name{labels}` as the
    /// server writes it); `None` when the server does not show it.
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    fn admin_json(&self, path: &str, admin_token: &str) -> Value {
        let answer = self.get_admin(path, admin_token);
        assert_eq!(
            answer.status,
            200,
            "GET {path}: {}\n{}",
            answer.text,
            self.stderr()
        );
        answer.json()
    }

    /// Polls `GET /v1/policy/status` until the re-grade of the active
    /// policy is no longer running; its last answer.
    pub fn regrade_finished(&self, admin_token: &str) -> Value {
        let deadline = std::time::Instant::now() + STARTUP;
        loop {
            let progress = self.admin_json("/v1/policy/status", admin_token);
            if progress["state"] != "running" {
                return progress;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the re-grade did not finish: {progress}\nserver log:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `PUT /v1/policy`: activates `policy` (TOML); the server re-grades the
    /// fleet in the background ([`Server::regrade_finished`] waits for it).
    pub fn put_policy(&self, admin_token: &str, policy: &str) -> Answer {
        Answer::from(
            http_client()
                .put(format!("{}/v1/policy", self.url))
                .bearer_auth(admin_token)
                .body(policy.to_owned())
                .send(),
        )
    }

    /// Signs in on the fleet page's form, as a browser does, and returns the
    /// cookie (`name=value`) the server set.
    pub fn sign_in(&self, admin_token: &str) -> String {
        let answer = Answer::from(
            http_client_without_redirects()
                .post(format!("{}/login", self.url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={admin_token}"))
                .send(),
        );
        assert_eq!(answer.status, 303, "POST /login: {}", answer.text);
        let cookie = answer
            .header("set-cookie")
            .unwrap_or_else(|| panic!("POST /login set no cookie: {:?}", answer.headers));
        cookie
            .split(';')
            .next()
            .expect("a cookie has a name and value")
            .to_owned()
    }

    /// `GET path` with the sign-in `cookie`: an HTML page.
    pub fn page(&self, path: &str, cookie: &str) -> Answer {
        Answer::from(
            http_client_without_redirects()
                .get(format!("{}{path}", self.url))
                .header("cookie", cookie)
                .send(),
        )
    }
}

/// A report as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub id: String,
    pub received_at: jiff::Timestamp,
}

/// A `shipshape` agent with its own configuration and state directories,
/// so it neither reads nor changes the machine's real enrollment.
#[derive(Debug)]
pub struct Agent {
    dir: TempDir,
}

impl Default for Agent {
    fn default() -> Self {
        Agent::new()
    }
}

impl Agent {
    pub fn new() -> Agent {
        Agent {
            dir: tempfile::tempdir().expect("a temporary directory for the agent"),
        }
    }

    /// `shipshape ARGS` for this agent, not yet run.
    pub fn command(&self) -> Command {
        let mut agent = command(binary("shipshape"));
        agent
            .env("SHIPSHAPE_CONFIG_DIR", self.dir.path().join("config"))
            .env("SHIPSHAPE_STATE_DIR", self.dir.path().join("state"));
        agent
    }

    /// `shipshape enroll` with `server`, keeping the device key in a file
    /// (a test must not touch the machine's keyring); panics when it fails.
    pub fn enroll(&self, server: &Server, enroll_token: &str) -> Output {
        run_ok(&mut self.enroll_command(server.url(), enroll_token))
    }

    /// `shipshape enroll` with the server at `url` (a proxy in front of it);
    /// returns the device id it was given.
    pub fn enroll_at(&self, url: &str, enroll_token: &str) -> String {
        let output = run_ok(&mut self.enroll_command(url, enroll_token));
        let text = String::from_utf8_lossy(&output.stdout);
        let prefix = format!("enrolled with {url} as device ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("`shipshape enroll` named no device id:\n{text}"))
            .to_owned()
    }

    /// `shipshape enroll` with the server at `url`, keeping the device key in
    /// a file, not yet run.
    fn enroll_command(&self, url: &str, enroll_token: &str) -> Command {
        let mut command = self.command();
        command.args([
            "enroll",
            "--server",
            url,
            "--token",
            enroll_token,
            "--key-store",
            "file",
        ]);
        command
    }

    /// Adds a `[delivery]` table to `agent.toml` (after enrolling): `table`
    /// is its keys, e.g. `retry-delays = ["50ms"]`.
    pub fn set_delivery(&self, table: &str) {
        let path = self.dir.path().join("config").join("agent.toml");
        let mut config = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("enroll before set_delivery: {error}"));
        config.push_str("\n[delivery]\n");
        config.push_str(table);
        config.push('\n');
        std::fs::write(&path, config).expect("write agent.toml");
    }

    /// The agent's state directory (`SHIPSHAPE_STATE_DIR`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The ids of the reports waiting in the outbox, oldest first.
    pub fn outbox(&self) -> Vec<String> {
        report_files(&self.state_dir().join("outbox"))
    }

    /// The ids of the reports the server refused for good (`outbox/rejected/`).
    pub fn rejected(&self) -> Vec<String> {
        report_files(&self.state_dir().join("outbox").join("rejected"))
    }

    /// `shipshape report`, run to completion: the exit code must be the
    /// grade (0 or 1), never 2, whatever the network did.
    pub fn report(&self) -> Output {
        let output = self.run(&["report"]);
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "shipshape report ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Starts `shipshape report` without waiting for it, its output piped.
    pub fn spawn_report(&self) -> Child {
        self.command()
            .arg("report")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shipshape report starts")
    }

    /// `shipshape ARGS`, run to completion whatever its exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command();
        command.args(args);
        command
            .output()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
    }
}

/// The report ids (`<id>.json`) in an outbox directory, sorted: the agent's
/// temporary files (`.…tmp`) and the reasons beside rejected reports are not reports.
fn report_files(dir: &Path) -> Vec<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => panic!("cannot list {}: {error}", dir.display()),
    };
    let mut ids: Vec<String> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| !name.starts_with('.') && !name.ends_with(".reason.json"))
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The id of the report a `shipshape report` run made, from its output
/// ("report ID delivered to …", "report ID queued: …").
pub fn report_id(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| line.strip_prefix("report "))
        .find_map(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("`shipshape report` named no report:\n{text}"))
        .to_owned()
}

/// What the real agent observes on this machine, taken once per test run:
/// the facts and the check report a signed report carries. Tests that
/// craft requests by hand send these, changing only what they test.
#[derive(Debug)]
pub struct Sample {
    /// `shipshape facts`.
    pub facts: Value,
    /// `shipshape check --format json` (built-in policy).
    pub report: Value,
}

/// This machine's [`Sample`].
pub fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let agent = Agent::new();
        // Side by side: every test waits for these.
        let (facts, check) = thread::scope(|scope| {
            let facts = scope.spawn(|| run_ok(agent.command().arg("facts")).stdout);
            let check = agent.run(&["check", "--format", "json"]);
            (facts.join().expect("shipshape facts ran"), check)
        });
        assert!(
            matches!(check.status.code(), Some(0 | 1)),
            "shipshape check --format json judged nothing ({}):\n{}",
            check.status,
            String::from_utf8_lossy(&check.stderr)
        );
        let json = |bytes: &[u8], what: &str| -> Value {
            serde_json::from_slice(bytes).unwrap_or_else(|error| panic!("{what}: {error}"))
        };
        Sample {
            facts: json(&facts, "shipshape facts"),
            report: json(&check.stdout, "shipshape check --format json"),
        }
    })
}

impl Sample {
    /// The OS id (`debian`, `macos`, …) the agent reports, which policies'
    /// `min-version` tables are keyed by.
    pub fn os_id(&self) -> &str {
        self.facts["host"]["os"]["id"]
            .as_str()
            .expect("the facts name the OS id")
    }

    /// The `Host` the agent reports, under another hostname.
    pub fn host(&self, hostname: &str) -> Value {
        let mut host = self.facts["host"].clone();
        host["hostname"] = hostname.into();
        host
    }

    /// A `ReportSubmission` with a new report id (UUID v7, as the agent
    /// chooses them), from a machine named `hostname`.
    pub fn submission(&self, hostname: &str) -> Value {
        let mut facts = self.facts.clone();
        facts["host"] = self.host(hostname);
        let mut report = self.report.clone();
        report["host"] = self.host(hostname);
        serde_json::json!({
            "id": uuid::Uuid::now_v7().to_string(),
            "facts": facts,
            "report": report,
        })
    }
}

/// A policy every machine with OS id `os_id` fails: its OS release would
/// have to be 9999 or newer (and a machine whose release cannot be read is
/// unknown, which leaks too). The outcome does not depend on the machine.
pub fn leaky_policy(os_id: &str) -> String {
    os_release_policy("always-leaky", os_id)
}

/// The same check as [`leaky_policy`], excepted on every host: every
/// machine is compliant, whatever its facts.
pub fn lenient_policy(os_id: &str) -> String {
    format!(
        r#"{}
[[exceptions]]
check = "os-updates"
hosts = ["*"]
reason = "end-to-end test: every machine passes"
expires = 2999-12-31
"#,
        os_release_policy("always-compliant", os_id)
    )
}

fn os_release_policy(name: &str, os_id: &str) -> String {
    format!(
        r#"name = "{name}"
leak-severity = "high"
unknown = "leak"

[checks.os-updates]
severity = "critical"

[checks.os-updates.min-version]
{os_id} = "9999"
"#
    )
}

/// A blocking HTTP client for plain HTTP on loopback (rustls with ring is
/// there for the agent's HTTPS; installing it once keeps reqwest happy).
/// One client for the whole test binary — building one costs milliseconds
/// and a thread — that opens a new connection for every request, as the
/// agent's separate runs do, so that no request rides a connection to a
/// server that was killed since.
pub fn http_client() -> reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| client_builder().build().expect("an HTTP client"))
        .clone()
}

/// Like [`http_client`], but a redirect is an answer: the test sees the
/// `303` and the cookie of `POST /login`.
pub fn http_client_without_redirects() -> reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client")
        })
        .clone()
}

fn client_builder() -> reqwest::blocking::ClientBuilder {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
}
