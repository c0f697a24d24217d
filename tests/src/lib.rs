//! The harness of the end-to-end tests in `tests/`: they run the real
//! `shipshape` and `shipshape-server` binaries of this workspace (build them
//! first: `cargo build --workspace --bins`), each server on a free loopback
//! port with its own database, each agent with its own directories.
//!
//! The agent's own CLI tests are in `agent/tests/`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

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
/// database in a temporary directory. Stopped when dropped.
#[derive(Debug)]
pub struct Server {
    url: String,
    db: String,
    process: Process,
    /// Holds the database; removed when the server is dropped.
    _dir: TempDir,
}

impl Server {
    /// Starts a server grading with the built-in policy.
    pub fn start() -> Server {
        Server::start_with(None)
    }

    /// Starts a server grading with `policy` (TOML text).
    pub fn with_policy(policy: &str) -> Server {
        Server::start_with(Some(policy))
    }

    fn start_with(policy: Option<&str>) -> Server {
        let dir = tempfile::tempdir().expect("a temporary directory for the server");
        let db = format!("sqlite:{}", dir.path().join("shipshape.db").display());
        let mut serve = command(binary("shipshape-server"));
        serve.args(["serve", "--listen", "127.0.0.1:0", "--db", &db]);
        if let Some(policy) = policy {
            let path = dir.path().join("policy.toml");
            std::fs::write(&path, policy).expect("write the server's policy");
            serve.arg("--policy").arg(path);
        }
        let (process, url) = Process::start("shipshape-server", serve, dir.path(), |line| {
            line.strip_prefix("listening on ").map(str::to_owned)
        });
        Server {
            url,
            db,
            process,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
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
}

/// A blocking HTTP client for plain HTTP on loopback (rustls with ring is
/// there for the agent's HTTPS; installing it once keeps reqwest happy).
pub fn http_client() -> reqwest::blocking::Client {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}
