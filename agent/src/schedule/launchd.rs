//! macOS: the launchd job `com.shipshape.report`, a LaunchDaemon in
//! /Library/LaunchDaemons (system) or a LaunchAgent in ~/Library/LaunchAgents
//! (user), loaded with `launchctl bootstrap` and read with `launchctl print`.

use std::path::{Path, PathBuf};

use shipshape_core::facts::OsFamily;

use super::every::{Every, words};
use super::template;
use super::{
    Activation, Installed, LastResult, Machine, Plan, Removed, ScheduleError, Scope, Status,
    TimerState, TimerStatus, UnitFile,
};

const LABEL: &str = "com.shipshape.report";
const PLIST: &str = "com.shipshape.report.plist";
const TEMPLATE: &str = include_str!("../../../packaging/launchd/com.shipshape.report.plist");
const LAUNCHCTL: &[&str] = &["/bin/launchctl"];
const ID: &[&str] = &["/usr/bin/id"];
const DAEMONS: &str = "/Library/LaunchDaemons";
const SYSTEM_LOGS: &str = "/Library/Logs/Shipshape";
/// `launchctl print` for a service the domain does not have.
const NOT_FOUND_EXIT: i32 = 113;

fn plist_path(home: Option<&Path>, scope: Scope) -> Result<PathBuf, ScheduleError> {
    Ok(match scope {
        Scope::System => Path::new(DAEMONS).join(PLIST),
        Scope::User => home
            .ok_or(ScheduleError::NoHome)?
            .join("Library/LaunchAgents")
            .join(PLIST),
    })
}

fn log_dir(home: Option<&Path>, scope: Scope) -> Result<PathBuf, ScheduleError> {
    Ok(match scope {
        Scope::System => PathBuf::from(SYSTEM_LOGS),
        Scope::User => home
            .ok_or(ScheduleError::NoHome)?
            .join("Library/Logs/Shipshape"),
    })
}

pub(super) fn render(plan: &Plan) -> Result<Vec<UnitFile>, ScheduleError> {
    let binary = crate::xml::escape(plan.binary_text()?);
    let logs = log_dir(plan.home.as_deref(), plan.scope)?;
    let plist = template::fill(
        TEMPLATE,
        &[
            ("BINARY", &binary),
            ("EVERY", &plan.every.to_string()),
            (
                "INTERVAL_SECONDS",
                &plan.every.as_duration().as_secs().to_string(),
            ),
            ("LOG_DIR", &crate::xml::escape(&logs.to_string_lossy())),
        ],
    );
    Ok(vec![UnitFile {
        name: PLIST,
        contents: plist.into_bytes(),
    }])
}

fn describe(every: Every) -> String {
    format!(
        "`shipshape report` runs every {every} ({} after it was loaded, so a fleet's runs \
         spread out), at boot or login, and once on wake when a run fell due while the Mac slept.",
        words(every.as_duration())
    )
}

/// The launchd domain of the scope: `system`, or this user's `gui/UID`.
fn domain(machine: &Machine, scope: Scope) -> Result<String, ScheduleError> {
    match scope {
        Scope::System => Ok("system".to_owned()),
        Scope::User => {
            let id = machine.program("id", ID)?;
            let output = machine.run(&id, &["-u"])?;
            let uid = output.stdout.trim();
            if uid.is_empty() || !uid.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(ScheduleError::Command {
                    command: format!("{} -u", id.display()),
                    detail: format!("printed `{uid}` instead of a user id"),
                });
            }
            Ok(format!("gui/{uid}"))
        }
    }
}

pub(super) fn install(machine: &Machine, plan: &Plan) -> Result<Installed, ScheduleError> {
    let plist = plist_path(machine.home.as_deref(), plan.scope)?;
    let logs = log_dir(machine.home.as_deref(), plan.scope)?;
    let rooted_logs = machine.rooted(&logs);
    std::fs::create_dir_all(&rooted_logs).map_err(|error| ScheduleError::File {
        path: rooted_logs.clone(),
        error: format!("could not create the log directory: {error}"),
    })?;
    for file in render(plan)? {
        machine.write(
            &machine.rooted(&plist.with_file_name(file.name)),
            &file.contents,
        )?;
    }
    let launchctl = machine.program("launchctl", LAUNCHCTL)?;
    let domain = domain(machine, plan.scope)?;
    let service = format!("{domain}/{LABEL}");
    if machine.ran(&launchctl, &["print", &service])?.success() {
        machine.run(&launchctl, &["bootout", &service])?;
    }
    let path = plist.to_string_lossy();
    machine
        .run(&launchctl, &["bootstrap", &domain, &path])
        .map_err(|error| match (plan.scope, error) {
            (Scope::User, ScheduleError::Command { command, detail }) => ScheduleError::Command {
                command,
                detail: format!(
                    "{detail} (a LaunchAgent loads into a login session: log in at the Mac, \
                     not only over SSH, or install for the whole machine with \
                     `sudo shipshape schedule install --system`)"
                ),
            },
            (_, error) => error,
        })?;
    Ok(Installed {
        scope: plan.scope,
        files: vec![plist],
        activation: Activation::Started,
        schedule: describe(plan.every),
        notes: vec![format!(
            "Its output goes to {}.",
            logs.join("report.log").display()
        )],
    })
}

pub(super) fn remove(machine: &Machine, scope: Scope) -> Result<Removed, ScheduleError> {
    let plist = plist_path(machine.home.as_deref(), scope)?;
    let launchctl = machine.program("launchctl", LAUNCHCTL)?;
    let service = format!("{}/{LABEL}", domain(machine, scope)?);
    let loaded = machine.ran(&launchctl, &["print", &service])?.success();
    if loaded {
        machine.run(&launchctl, &["bootout", &service])?;
    }
    let mut files = Vec::new();
    if machine.delete(&machine.rooted(&plist))? {
        files.push(plist);
    }
    Ok(Removed {
        scope,
        files,
        unregistered: loaded.then(|| format!("launchd job {service}")),
        deferred: None,
        notes: Vec::new(),
    })
}

pub(super) fn status(machine: &Machine) -> Status {
    let mut timers = vec![job_status(machine, Scope::System)];
    if !machine.system.is_privileged() && machine.home.is_some() {
        timers.push(job_status(machine, Scope::User));
    }
    Status {
        os: OsFamily::Macos,
        scheduler: None,
        timers,
    }
}

fn job_status(machine: &Machine, scope: Scope) -> TimerStatus {
    let files: Vec<PathBuf> = plist_path(machine.home.as_deref(), scope)
        .into_iter()
        .filter(|plist| machine.rooted(plist).exists())
        .collect();
    let mut status = TimerStatus {
        scope,
        installed: !files.is_empty(),
        files,
        state: None,
        note: None,
    };
    let asked = machine
        .program("launchctl", LAUNCHCTL)
        .and_then(|launchctl| {
            let service = format!("{}/{LABEL}", domain(machine, scope)?);
            machine.ran(&launchctl, &["print", &service])
        });
    match asked {
        Ok(output) if output.success() => match parse_launchctl_print(&output.stdout) {
            Some(job) => {
                status.installed = true;
                status.state = Some(state(&job));
            }
            None => status.note = Some("launchctl print gave no service description".to_owned()),
        },
        Ok(output) if output.code == Some(NOT_FOUND_EXIT) || mentions_not_found(&output) => {
            if status.installed {
                status.note = Some(format!(
                    "launchd has not loaded it: run `shipshape schedule install {}` again",
                    scope.flag()
                ));
            }
        }
        Ok(output) => {
            status.note = Some(format!("could not ask launchd: {}", super::said(&output)));
        }
        Err(error) => status.note = Some(format!("could not ask launchd: {error}")),
    }
    status
}

fn mentions_not_found(output: &crate::system::CommandOutput) -> bool {
    output.stderr.contains("Could not find service")
        || output.stdout.contains("Could not find service")
}

fn state(job: &LaunchdJob) -> TimerState {
    let mut state = job.state.clone().unwrap_or_else(|| "loaded".to_owned());
    if let Some(seconds) = job.run_interval_seconds {
        state.push_str(&format!(
            ", every {}",
            words(std::time::Duration::from_secs(seconds))
        ));
    }
    if let Some(runs) = job.runs {
        state.push_str(&format!(
            ", {runs} run{} since loaded",
            if runs == 1 { "" } else { "s" }
        ));
    }
    let last_result = if job.state.as_deref() == Some("running") {
        LastResult::Running
    } else if let Some(signal) = &job.last_signal {
        LastResult::Failed {
            reason: format!("ended by a signal: {signal}"),
        }
    } else {
        match job.last_exit {
            Some(LaunchdExit::Code(code)) => LastResult::Exited { code },
            Some(LaunchdExit::Never) | None => LastResult::Never,
        }
    };
    TimerState {
        active: true,
        state,
        next_run: None,
        last_run: None,
        last_result,
    }
}

/// What `launchctl print DOMAIN/LABEL` says about a loaded job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchdJob {
    /// The plist it was loaded from.
    pub path: Option<String>,
    /// "not running", "running", "spawn scheduled"…
    pub state: Option<String>,
    /// How often it has been started since it was loaded.
    pub runs: Option<u64>,
    pub last_exit: Option<LaunchdExit>,
    /// "last terminating signal", when a signal ended the last run.
    pub last_signal: Option<String>,
    /// `StartInterval`, as launchd holds it.
    pub run_interval_seconds: Option<u64>,
}

/// `last exit code = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchdExit {
    /// `(never exited)`.
    Never,
    Code(i64),
}

/// Reads the job's own top-level fields; nested blocks (coalitions,
/// endpoints, event triggers) repeat keys such as `state` and are skipped.
/// `None` when the text describes no service.
pub fn parse_launchctl_print(text: &str) -> Option<LaunchdJob> {
    let mut job = LaunchdJob::default();
    let mut depth = 0usize;
    let mut described = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('}') {
            depth = depth.saturating_sub(1);
            continue;
        }
        let opens = line.ends_with('{');
        if depth == 1 && !opens {
            if let Some((key, value)) = line.split_once(" = ") {
                let value = value.trim();
                match key.trim() {
                    "path" => job.path = Some(value.to_owned()),
                    "state" => job.state = Some(value.to_owned()),
                    "runs" => job.runs = value.parse().ok(),
                    "last exit code" => {
                        job.last_exit = if value.starts_with('(') {
                            Some(LaunchdExit::Never)
                        } else {
                            value.parse().ok().map(LaunchdExit::Code)
                        }
                    }
                    "last terminating signal" => job.last_signal = Some(value.to_owned()),
                    "run interval" => {
                        job.run_interval_seconds = value
                            .strip_suffix(" seconds")
                            .and_then(|seconds| seconds.trim().parse().ok())
                    }
                    _ => {}
                }
            }
        }
        if opens {
            described |= depth == 0;
            depth += 1;
        }
    }
    described.then_some(job)
}
