//! `shipshape schedule`: run `shipshape report` on a timer — a systemd timer
//! on Linux, a launchd job on macOS, a Task Scheduler task on Windows.
//!
//! The unit files, plist and task XML are rendered from the templates under
//! `packaging/` (embedded in the binary), so packages ship exactly what
//! `schedule install` writes. Files are written under [`Machine::root`]
//! (`/`, or a temporary directory in tests); the scheduler itself is driven
//! through the [`System`] seam with absolute program paths.

pub mod every;
mod launchd;
pub mod output;
mod systemd;
mod template;
mod windows;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use shipshape_core::facts::OsFamily;

use crate::atomic::{self, Access};
use crate::cli::Format;
use crate::exit;
use crate::paths::Paths;
use crate::system::{CommandOutput, System};

pub use every::Every;
pub use launchd::{LaunchdExit, LaunchdJob, parse_launchctl_print};
pub use systemd::{SystemdService, SystemdTimer, parse_service_show, parse_timer_show};
pub use template::leftover_placeholders;
pub use windows::{ScheduledTask, parse_schtasks_query};

/// `shipshape schedule …`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the timer that runs `shipshape report`, and start it.
    ///
    /// A system timer (the default as root) runs with full privileges for a
    /// full check; a user timer (the default otherwise) runs as you.
    Install {
        #[command(flatten)]
        scope: ScopeArgs,
        /// How often: 5m, 10m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h or 1d.
        #[arg(long, value_name = "DUR", default_value_t = Every::HOURLY)]
        every: Every,
    },
    /// Stop and remove the timer.
    Remove {
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Whether a timer is installed and active, when it last ran and how that run ended.
    Status {
        /// Output for people (`human`) or programs (`json`).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Write the timer's files into a directory, touching no scheduler (for packaging).
    Render {
        /// The OS to render for: linux, macos or windows (default: this one).
        #[arg(long, value_name = "OS", value_parser = parse_os)]
        os: Option<OsFamily>,
        #[command(flatten)]
        scope: ScopeArgs,
        /// How often: 5m, 10m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h or 1d.
        #[arg(long, value_name = "DUR", default_value_t = Every::HOURLY)]
        every: Every,
        /// The agent the timer runs (default: this executable).
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// The directory to write the files into (created when missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `--user` or `--system`.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ScopeArgs {
    /// For this user only, as this user (default when not root).
    #[arg(long)]
    pub user: bool,
    /// For the whole machine, as root / SYSTEM (default as root).
    #[arg(long)]
    pub system: bool,
}

impl ScopeArgs {
    fn scope(&self, privileged: bool) -> Scope {
        match (self.user, self.system) {
            (true, _) => Scope::User,
            (_, true) => Scope::System,
            _ if privileged => Scope::System,
            _ => Scope::User,
        }
    }
}

fn parse_os(text: &str) -> Result<OsFamily, String> {
    match text {
        "linux" => Ok(OsFamily::Linux),
        "macos" => Ok(OsFamily::Macos),
        "windows" => Ok(OsFamily::Windows),
        _ => Err(format!(
            "`{text}` is not an OS: write linux, macos or windows"
        )),
    }
}

/// Whose timer: the machine's or one user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Runs as root / SYSTEM: every probe can see everything.
    System,
    /// Runs as the user who installed it, while their session exists.
    User,
}

impl Scope {
    fn flag(self) -> &'static str {
        match self {
            Scope::System => "--system",
            Scope::User => "--user",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::System => "system",
            Scope::User => "user",
        })
    }
}

/// What to render or install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub os: OsFamily,
    pub scope: Scope,
    pub every: Every,
    /// The agent the timer runs: an absolute path on the target OS.
    pub binary: PathBuf,
    /// The user's home; user timers on macOS keep their log in it.
    pub home: Option<PathBuf>,
}

impl Plan {
    /// The binary path as text, checked for the target OS.
    fn binary_text(&self) -> Result<&str, ScheduleError> {
        let bad = |why: &str| ScheduleError::Binary {
            path: self.binary.clone(),
            why: why.to_owned(),
        };
        let text = self
            .binary
            .to_str()
            .ok_or_else(|| bad("it is not valid UTF-8"))?;
        if text.chars().any(char::is_control) {
            return Err(bad("it contains a control character such as a line break"));
        }
        let absolute = match self.os {
            OsFamily::Windows => {
                let bytes = text.as_bytes();
                text.starts_with(r"\\")
                    || (bytes.len() > 2
                        && bytes[0].is_ascii_alphabetic()
                        && bytes[1] == b':'
                        && bytes[2] == b'\\')
            }
            OsFamily::Linux | OsFamily::Macos => text.starts_with('/'),
        };
        if !absolute {
            return Err(bad(
                "a scheduler needs an absolute path (like /usr/bin/shipshape or C:\\Program Files\\Shipshape\\shipshape.exe)",
            ));
        }
        if self.os == OsFamily::Windows && text.contains('"') {
            return Err(bad("a Windows path cannot contain a double quote"));
        }
        Ok(text)
    }
}

/// One rendered file: its name and exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: &'static str,
    pub contents: Vec<u8>,
}

/// The machine the timer goes on: the seam, and where its files live.
pub struct Machine<'a> {
    pub system: &'a dyn System,
    /// Prefix of every system path Shipshape writes (`/` in production).
    pub root: PathBuf,
    /// The user's home directory, for user timers.
    pub home: Option<PathBuf>,
    /// The agent's state directory (the Windows task XML is kept there).
    pub state_dir: PathBuf,
}

impl fmt::Debug for Machine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("os", &self.system.os())
            .field("root", &self.root)
            .field("home", &self.home)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

impl<'a> Machine<'a> {
    /// This machine, with the agent's directories.
    pub fn new(system: &'a dyn System, paths: &Paths) -> Self {
        let home_var = match system.os() {
            OsFamily::Windows => "USERPROFILE",
            OsFamily::Linux | OsFamily::Macos => "HOME",
        };
        Machine {
            system,
            root: PathBuf::from("/"),
            home: system
                .env(home_var)
                .filter(|home| !home.is_empty())
                .map(PathBuf::from),
            state_dir: paths.state_dir.clone(),
        }
    }

    /// Where a system path lives under [`Machine::root`].
    fn rooted(&self, path: &Path) -> PathBuf {
        match path.strip_prefix("/") {
            Ok(relative) => self.root.join(relative),
            Err(_) => self.root.join(path),
        }
    }

    fn home(&self) -> Result<&Path, ScheduleError> {
        self.home.as_deref().ok_or(ScheduleError::NoHome)
    }

    /// The first of `candidates` that is installed.
    fn program(&self, tool: &'static str, candidates: &[&str]) -> Result<PathBuf, ScheduleError> {
        self.system
            .find_program(candidates)
            .ok_or_else(|| ScheduleError::ToolMissing {
                tool,
                looked: candidates.join(", "),
            })
    }

    /// Runs a command that must succeed.
    fn run(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, ScheduleError> {
        let output = self.ran(program, args)?;
        if output.success() {
            Ok(output)
        } else {
            Err(ScheduleError::Command {
                command: command_line(program, args),
                detail: said(&output),
            })
        }
    }

    /// Runs a command whose failure is an answer.
    fn ran(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, ScheduleError> {
        self.system
            .run(program, args)
            .map_err(|error| ScheduleError::Command {
                command: command_line(program, args),
                detail: error.to_string(),
            })
    }

    /// Writes one of the timer's files, 0644, whole or not at all.
    fn write(&self, path: &Path, contents: &[u8]) -> Result<(), ScheduleError> {
        atomic::write(path, contents, Access::Everyone).map_err(|error| ScheduleError::File {
            path: path.to_owned(),
            error: format!("{error:#}"),
        })
    }

    /// Deletes a file if it is there; whether it was.
    fn delete(&self, path: &Path) -> Result<bool, ScheduleError> {
        match std::fs::remove_file(path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    let _ = atomic::sync_dir(dir);
                }
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(ScheduleError::File {
                path: path.to_owned(),
                error: format!("could not delete it: {error}"),
            }),
        }
    }
}

fn command_line(program: &Path, args: &[&str]) -> String {
    let mut line = program.display().to_string();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

/// What a failed command said, stderr first.
fn said(output: &CommandOutput) -> String {
    let text = [output.stderr.trim(), output.stdout.trim()]
        .into_iter()
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let code = output.code.map_or_else(
        || "it was killed by a signal".to_owned(),
        |code| format!("exit code {code}"),
    );
    if text.is_empty() {
        code
    } else {
        format!("{code}: {text}")
    }
}

/// Why a schedule command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("{what} needs {who}: run `{retry}`, or `{user}` for a timer of your own")]
    NeedsPrivilege {
        what: String,
        who: &'static str,
        retry: String,
        user: String,
    },
    #[error("cannot tell your home directory (HOME is not set), where a user timer lives")]
    NoHome,
    #[error("cannot use {} as the agent's path: {why}", .path.display())]
    Binary { path: PathBuf, why: String },
    #[error("{tool} is not installed (looked for {looked})")]
    ToolMissing { tool: &'static str, looked: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{}: {error}", .path.display())]
    File { path: PathBuf, error: String },
}

/// How an install took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// The scheduler loaded the timer: it runs from now on.
    Started,
    /// The files are in place but the scheduler is not running here; the
    /// timer starts when it does. The text says why.
    Deferred(String),
}

/// What `schedule install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub scope: Scope,
    /// The files written (real paths, without the test root).
    pub files: Vec<PathBuf>,
    pub activation: Activation,
    /// How the timer runs, in a sentence.
    pub schedule: String,
    /// What else the person should know.
    pub notes: Vec<String>,
}

/// What `schedule remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub scope: Scope,
    /// The files deleted; empty when nothing was installed.
    pub files: Vec<PathBuf>,
    /// The task a scheduler dropped when it keeps no file of its own (Windows).
    pub unregistered: Option<String>,
    /// Why the scheduler was not asked to stop it, when it is not running here.
    pub deferred: Option<String>,
    /// What else the person should know.
    pub notes: Vec<String>,
}

impl Removed {
    pub fn nothing_was_installed(&self) -> bool {
        self.files.is_empty() && self.unregistered.is_none()
    }
}

/// Everything `schedule status` found, as `--format json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub os: OsFamily,
    /// Why the scheduler cannot be asked at all (systemd not running here).
    pub scheduler: Option<String>,
    pub timers: Vec<TimerStatus>,
}

/// One scope's timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimerStatus {
    pub scope: Scope,
    pub installed: bool,
    /// The timer's files that exist (unit files, plist, kept task XML).
    pub files: Vec<PathBuf>,
    /// What the scheduler says; `None` when it could not be asked.
    pub state: Option<TimerState>,
    /// Something to know or fix (not loaded, the scheduler's answer unreadable).
    pub note: Option<String>,
}

/// The scheduler's view of the timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimerState {
    /// Whether the scheduler will start runs.
    pub active: bool,
    /// The scheduler's own words ("active (waiting), enabled", "not running", "Ready").
    pub state: String,
    /// When the next run is due, as the scheduler prints it.
    pub next_run: Option<String>,
    /// When the last run started, as the scheduler prints it.
    pub last_run: Option<String>,
    pub last_result: LastResult,
}

/// How the last run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LastResult {
    /// No run has ended yet.
    Never,
    /// A run is going on now.
    Running,
    /// `shipshape report` exited with this code: 0 shipshape, 1 leaky, 2 error.
    Exited { code: i64 },
    /// It ended without an exit code (killed, timed out, could not start).
    Failed { reason: String },
}

impl fmt::Display for LastResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LastResult::Never => f.write_str("no run has ended yet"),
            LastResult::Running => f.write_str("running now"),
            LastResult::Exited { code } => match code {
                0 => f.write_str("exit 0 (shipshape)"),
                1 => f.write_str("exit 1 (leaky: `shipshape status` shows the last report)"),
                2 => f.write_str("exit 2 (error: see the log)"),
                code => write!(f, "exit {code}"),
            },
            LastResult::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// Renders the timer's files for a plan.
pub fn render(plan: &Plan) -> Result<Vec<UnitFile>, ScheduleError> {
    match plan.os {
        OsFamily::Linux => systemd::render(plan),
        OsFamily::Macos => launchd::render(plan),
        OsFamily::Windows => windows::render(plan),
    }
}

/// Installs and starts the timer on this machine.
pub fn install(machine: &Machine, plan: &Plan) -> Result<Installed, ScheduleError> {
    if plan.scope == Scope::System && !machine.system.is_privileged() {
        return Err(needs_privilege(
            machine.system.os(),
            "installing a system timer",
            &format!("schedule install --system --every {}", plan.every),
            &format!("schedule install --user --every {}", plan.every),
        ));
    }
    match plan.os {
        OsFamily::Linux => systemd::install(machine, plan),
        OsFamily::Macos => launchd::install(machine, plan),
        OsFamily::Windows => windows::install(machine, plan),
    }
}

/// Stops and removes the timer; nothing installed is not an error.
pub fn remove(machine: &Machine, scope: Scope) -> Result<Removed, ScheduleError> {
    if scope == Scope::System && !machine.system.is_privileged() {
        return Err(needs_privilege(
            machine.system.os(),
            "removing the system timer",
            "schedule remove --system",
            "schedule remove --user",
        ));
    }
    match machine.system.os() {
        OsFamily::Linux => systemd::remove(machine, scope),
        OsFamily::Macos => launchd::remove(machine, scope),
        OsFamily::Windows => windows::remove(machine, scope),
    }
}

/// Asks the scheduler about the system timer, and the user's where it applies.
pub fn status(machine: &Machine) -> Status {
    match machine.system.os() {
        OsFamily::Linux => systemd::status(machine),
        OsFamily::Macos => launchd::status(machine),
        OsFamily::Windows => windows::status(machine),
    }
}

fn needs_privilege(os: OsFamily, what: &str, system: &str, user: &str) -> ScheduleError {
    let (who, retry) = match os {
        OsFamily::Windows => (
            "an elevated prompt (Run as administrator)",
            format!("shipshape {system}"),
        ),
        OsFamily::Linux | OsFamily::Macos => ("root", format!("sudo shipshape {system}")),
    };
    ScheduleError::NeedsPrivilege {
        what: what.to_owned(),
        who,
        retry,
        user: format!("shipshape {user}"),
    }
}

/// Runs `shipshape schedule …` and returns the exit code.
pub fn run(system: &dyn System, paths: &Paths, command: Command) -> anyhow::Result<u8> {
    let machine = Machine::new(system, paths);
    let privileged = system.is_privileged();
    let mut stdout = anstream::stdout();
    match command {
        Command::Install { scope, every } => {
            let plan = Plan {
                os: system.os(),
                scope: scope.scope(privileged),
                every,
                binary: current_binary()?,
                home: machine.home.clone(),
            };
            let installed = install(&machine, &plan)?;
            output::installed(&mut stdout, &installed)?;
        }
        Command::Remove { scope } => {
            let removed = remove(&machine, scope.scope(privileged))?;
            output::removed(&mut stdout, &removed)?;
        }
        Command::Status { format } => {
            let status = status(&machine);
            match format {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut stdout, &status)?;
                    writeln!(stdout)?;
                }
                Format::Human => output::status(&mut stdout, &status)?,
            }
        }
        Command::Render {
            os,
            scope,
            every,
            binary,
            out,
        } => {
            let plan = Plan {
                os: os.unwrap_or_else(|| system.os()),
                scope: scope.scope(privileged),
                every,
                binary: match binary {
                    Some(binary) => binary,
                    None => current_binary()?,
                },
                home: machine.home.clone(),
            };
            for file in render(&plan)? {
                let path = out.join(file.name);
                machine.write(&path, &file.contents)?;
                output::wrote(&mut stdout, &path)?;
            }
        }
    }
    Ok(exit::SHIPSHAPE)
}

/// The running executable: what the timer should run by default.
fn current_binary() -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    std::env::current_exe().context(
        "cannot tell where this shipshape executable is: pass its absolute path with --binary",
    )
}
