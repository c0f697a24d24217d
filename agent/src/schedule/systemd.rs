//! Linux: `shipshape-report.service` (oneshot) started by `shipshape-report.timer`.
//!
//! System units go to /etc/systemd/system, user units to
//! ~/.config/systemd/user. Where systemd is not running (a container), the
//! units are written and linked into `timers.target.wants` — what
//! `systemctl enable` would do — so the timer starts when systemd does.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use shipshape_core::facts::OsFamily;

use super::every::{Every, systemd_span, words};
use super::template;
use super::{
    Activation, Installed, LastResult, Machine, Plan, Removed, ScheduleError, Scope, Status,
    TimerState, TimerStatus, UnitFile,
};
use crate::system::{CommandOutput, FileKind};

const SERVICE: &str = "shipshape-report.service";
const TIMER: &str = "shipshape-report.timer";
const SERVICE_TEMPLATE: &str = include_str!("../../../packaging/systemd/shipshape-report.service");
const TIMER_TEMPLATE: &str = include_str!("../../../packaging/systemd/shipshape-report.timer");
const SYSTEMCTL: &[&str] = &["/usr/bin/systemctl", "/bin/systemctl"];
/// Where `schedule install --system` writes, and where an administrator's units win.
const SYSTEM_UNIT_DIR: &str = "/etc/systemd/system";
/// Where a package installs its units.
const PACKAGE_UNIT_DIRS: &[&str] = &["/usr/lib/systemd/system", "/lib/systemd/system"];
/// Exists exactly when systemd is the running init system (sd_booted(3)).
const BOOTED: &str = "/run/systemd/system";
const TIMER_PROPERTIES: &str =
    "LoadState,ActiveState,SubState,UnitFileState,LastTriggerUSec,NextElapseUSecRealtime";
const SERVICE_PROPERTIES: &str =
    "ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,ExecMainStartTimestamp";

pub(super) fn render(plan: &Plan) -> Result<Vec<UnitFile>, ScheduleError> {
    let binary = template::systemd_exec_path(plan.binary_text()?);
    let service = template::fill(
        &template::system_only(SERVICE_TEMPLATE, plan.scope == Scope::System),
        &[("BINARY", &binary)],
    );
    let timer = template::fill(
        TIMER_TEMPLATE,
        &[
            ("EVERY", &plan.every.to_string()),
            ("ON_CALENDAR", &plan.every.on_calendar()),
            ("RANDOMIZED_DELAY", &systemd_span(plan.every.spread())),
        ],
    );
    Ok(vec![
        UnitFile {
            name: SERVICE,
            contents: service.into_bytes(),
        },
        UnitFile {
            name: TIMER,
            contents: timer.into_bytes(),
        },
    ])
}

fn describe(every: Every) -> String {
    format!(
        "`shipshape report` runs every {every}, after a random delay of up to {} (fixed for \
         this machine), and at boot or wake when a run was missed.",
        words(every.spread())
    )
}

/// The directory of the scope's units (the real path, without the test root).
fn unit_dir(machine: &Machine, scope: Scope) -> Result<PathBuf, ScheduleError> {
    match scope {
        Scope::System => Ok(PathBuf::from(SYSTEM_UNIT_DIR)),
        Scope::User => match machine
            .system
            .env("XDG_CONFIG_HOME")
            .filter(|dir| dir.starts_with('/'))
        {
            Some(config) => Ok(Path::new(&config).join("systemd/user")),
            None => Ok(machine.home()?.join(".config/systemd/user")),
        },
    }
}

fn wants_link(dir: &Path) -> PathBuf {
    dir.join("timers.target.wants").join(TIMER)
}

/// Whether the scope's service manager runs; why not, otherwise.
fn manager(machine: &Machine, scope: Scope) -> Result<(), String> {
    let booted = machine
        .system
        .symlink_metadata(Path::new(BOOTED))
        .is_ok_and(|info| info.kind == FileKind::Dir);
    if !booted {
        return Err("systemd is not running on this machine (a container?)".to_owned());
    }
    if scope == Scope::User {
        let Some(runtime) = machine
            .system
            .env("XDG_RUNTIME_DIR")
            .filter(|dir| !dir.is_empty())
        else {
            return Err(
                "no systemd user manager runs for this session (XDG_RUNTIME_DIR is not set)"
                    .to_owned(),
            );
        };
        let socket = Path::new(&runtime).join("systemd/private");
        if machine.system.symlink_metadata(&socket).is_err() {
            return Err(format!(
                "no systemd user manager runs for this session ({} is missing)",
                socket.display()
            ));
        }
    }
    Ok(())
}

fn systemctl(
    machine: &Machine,
    program: &Path,
    scope: Scope,
    args: &[&str],
) -> Result<CommandOutput, ScheduleError> {
    let mut all = Vec::with_capacity(args.len() + 1);
    if scope == Scope::User {
        all.push("--user");
    }
    all.extend_from_slice(args);
    machine.run(program, &all)
}

pub(super) fn install(machine: &Machine, plan: &Plan) -> Result<Installed, ScheduleError> {
    let dir = unit_dir(machine, plan.scope)?;
    let reinstall = machine.rooted(&dir.join(TIMER)).exists();
    let mut files = Vec::new();
    for file in render(plan)? {
        let path = dir.join(file.name);
        machine.write(&machine.rooted(&path), &file.contents)?;
        files.push(path);
    }
    let activation = match manager(machine, plan.scope) {
        Err(why) => {
            let link = wants_link(&dir);
            enable_offline(machine, &dir.join(TIMER), &link)?;
            files.push(link);
            Activation::Deferred(why)
        }
        Ok(()) => {
            let program = machine.program("systemctl", SYSTEMCTL)?;
            systemctl(machine, &program, plan.scope, &["daemon-reload"])?;
            systemctl(machine, &program, plan.scope, &["enable", "--now", TIMER])?;
            if reinstall {
                // An active timer keeps its old schedule until it is restarted.
                systemctl(machine, &program, plan.scope, &["restart", TIMER])?;
            }
            Activation::Started
        }
    };
    let mut notes = Vec::new();
    if plan.scope == Scope::User {
        notes.push(
            "A user timer runs while you are logged in; `loginctl enable-linger` keeps it \
             running when you are not. `sudo shipshape schedule install` gives a full check."
                .to_owned(),
        );
    }
    Ok(Installed {
        scope: plan.scope,
        files,
        activation,
        schedule: describe(plan.every),
        notes,
    })
}

/// What `systemctl enable` does to a unit file: link it into the target that wants it.
fn enable_offline(machine: &Machine, timer: &Path, link: &Path) -> Result<(), ScheduleError> {
    let rooted = machine.rooted(link);
    let linked = rooted
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| match std::fs::remove_file(&rooted) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => symlink(timer, &rooted),
        });
    linked.map_err(|error| ScheduleError::File {
        path: rooted.clone(),
        error: format!("could not link the timer into timers.target: {error}"),
    })
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "systemd units are linked on Linux only",
    ))
}

pub(super) fn remove(machine: &Machine, scope: Scope) -> Result<Removed, ScheduleError> {
    let dir = unit_dir(machine, scope)?;
    let ours = [dir.join(TIMER), dir.join(SERVICE), wants_link(&dir)];
    let mut notes = Vec::new();
    if scope == Scope::System {
        if let Some(packaged) = packaged_timer(machine) {
            notes.push(format!(
                "The shipshape package installed its own timer ({}): removing the package \
                 deletes it; `sudo systemctl disable --now {TIMER}` stops it until then.",
                packaged.display()
            ));
        }
    }
    let present = ours
        .iter()
        .any(|path| machine.rooted(path).symlink_metadata().is_ok());
    if !present {
        return Ok(Removed {
            scope,
            files: Vec::new(),
            unregistered: None,
            deferred: None,
            notes,
        });
    }
    let running = manager(machine, scope);
    let program = match running {
        Ok(()) => Some(machine.program("systemctl", SYSTEMCTL)?),
        Err(_) => None,
    };
    if let Some(program) = &program {
        systemctl(machine, program, scope, &["disable", "--now", TIMER])?;
    }
    let mut files = Vec::new();
    for path in ours {
        if machine.delete(&machine.rooted(&path))? {
            files.push(path);
        }
    }
    if let Some(program) = &program {
        systemctl(machine, program, scope, &["daemon-reload"])?;
    }
    Ok(Removed {
        scope,
        files,
        unregistered: None,
        deferred: running.err(),
        notes,
    })
}

/// A timer unit a package put in the vendor directories, if any.
fn packaged_timer(machine: &Machine) -> Option<PathBuf> {
    PACKAGE_UNIT_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(TIMER))
        .find(|path| machine.rooted(path).exists())
}

pub(super) fn status(machine: &Machine) -> Status {
    let scheduler = manager(machine, Scope::System)
        .err()
        .map(|why| format!("{why}: an installed timer starts when systemd does"));
    let mut timers = vec![timer_status(machine, Scope::System, scheduler.is_none())];
    if unit_dir(machine, Scope::User).is_ok() {
        // Root's own user timer is shown only when there is one.
        let user = timer_status(machine, Scope::User, scheduler.is_none());
        if user.installed || !machine.system.is_privileged() {
            timers.push(user);
        }
    }
    Status {
        os: OsFamily::Linux,
        scheduler,
        timers,
    }
}

fn timer_status(machine: &Machine, scope: Scope, booted: bool) -> TimerStatus {
    let mut dirs = Vec::new();
    if let Ok(dir) = unit_dir(machine, scope) {
        dirs.push(dir);
    }
    if scope == Scope::System {
        dirs.extend(PACKAGE_UNIT_DIRS.iter().map(PathBuf::from));
    }
    // The first directory holding the timer is the one systemd uses.
    let files: Vec<PathBuf> = dirs
        .iter()
        .find(|dir| machine.rooted(&dir.join(TIMER)).exists())
        .map(|dir| {
            [SERVICE, TIMER]
                .iter()
                .map(|name| dir.join(name))
                .filter(|path| machine.rooted(path).exists())
                .collect()
        })
        .unwrap_or_default();
    let mut status = TimerStatus {
        scope,
        installed: !files.is_empty(),
        state: None,
        note: None,
        files,
    };
    if status.installed && status.files.len() < 2 {
        status.note = Some(format!(
            "{SERVICE} is missing: run `shipshape schedule install {}` again",
            scope.flag()
        ));
    }
    if !status.installed || !booted {
        return status;
    }
    if let Err(why) = manager(machine, scope) {
        status.note = Some(format!("{why}: the timer starts at your next login"));
        return status;
    }
    match ask(machine, scope) {
        Ok((timer, _)) if timer.load_state.as_deref() == Some("not-found") => {
            status.note = Some(format!(
                "systemd has not loaded the timer: run `shipshape schedule install {}` again",
                scope.flag()
            ));
        }
        Ok((timer, service)) => status.state = Some(state(&timer, &service)),
        Err(error) => status.note = Some(format!("could not ask systemd: {error}")),
    }
    status
}

fn ask(machine: &Machine, scope: Scope) -> Result<(SystemdTimer, SystemdService), ScheduleError> {
    let program = machine.program("systemctl", SYSTEMCTL)?;
    let timer = systemctl(
        machine,
        &program,
        scope,
        &["show", TIMER, "-p", TIMER_PROPERTIES],
    )?;
    let service = systemctl(
        machine,
        &program,
        scope,
        &["show", SERVICE, "-p", SERVICE_PROPERTIES],
    )?;
    Ok((
        parse_timer_show(&timer.stdout),
        parse_service_show(&service.stdout),
    ))
}

fn state(timer: &SystemdTimer, service: &SystemdService) -> TimerState {
    let unknown = "unknown".to_owned();
    let mut state = format!(
        "{} ({})",
        timer.active_state.as_ref().unwrap_or(&unknown),
        timer.sub_state.as_ref().unwrap_or(&unknown)
    );
    if let Some(file_state) = &timer.unit_file_state {
        state.push_str(", ");
        state.push_str(file_state);
    }
    TimerState {
        active: timer.active_state.as_deref() == Some("active"),
        state,
        next_run: timer.next_elapse.clone(),
        last_run: timer
            .last_trigger
            .clone()
            .or_else(|| service.started.clone()),
        last_result: last_result(service),
    }
}

fn last_result(service: &SystemdService) -> LastResult {
    if service.active_state.as_deref() == Some("activating") {
        return LastResult::Running;
    }
    let status = service.exec_main_status.unwrap_or_default();
    match (service.result.as_deref(), service.exec_main_code) {
        (Some("timeout"), _) => LastResult::Failed {
            reason: "it ran past its time limit (TimeoutStartSec) and was stopped".to_owned(),
        },
        // systemd's own codes for a process it could not set up (203 = EXEC).
        (_, Some(1)) if (200..=243).contains(&status) => LastResult::Failed {
            reason: format!(
                "systemd could not start it (status {status}; see `journalctl -u {SERVICE}`)"
            ),
        },
        (_, Some(1)) => LastResult::Exited { code: status },
        (_, Some(2)) => LastResult::Failed {
            reason: format!("killed by signal {status}"),
        },
        (_, Some(3)) => LastResult::Failed {
            reason: format!("dumped core on signal {status}"),
        },
        // No main process has ended (ExecMainCode=0): never ran, unless systemd says it failed.
        (Some(result), _) if result != "success" => LastResult::Failed {
            reason: format!("systemd's result: {result}"),
        },
        _ => LastResult::Never,
    }
}

/// What `systemctl show shipshape-report.timer -p …` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemdTimer {
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    pub unit_file_state: Option<String>,
    /// When the timer last fired, as systemctl prints it.
    pub last_trigger: Option<String>,
    /// When it fires next, as systemctl prints it.
    pub next_elapse: Option<String>,
}

/// What `systemctl show shipshape-report.service -p …` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemdService {
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    pub result: Option<String>,
    /// How the main process ended: 1 exited, 2 killed, 3 dumped core (`CLD_*`).
    pub exec_main_code: Option<i64>,
    /// Its exit code, or the signal that ended it.
    pub exec_main_status: Option<i64>,
    /// When its main process last started, as systemctl prints it.
    pub started: Option<String>,
}

/// Reads a timer's properties from `systemctl show` (the first unit's block).
pub fn parse_timer_show(text: &str) -> SystemdTimer {
    let properties = Properties::parse(text);
    SystemdTimer {
        load_state: properties.text("LoadState"),
        active_state: properties.text("ActiveState"),
        sub_state: properties.text("SubState"),
        unit_file_state: properties.text("UnitFileState"),
        last_trigger: properties.timestamp("LastTriggerUSec"),
        next_elapse: properties.timestamp("NextElapseUSecRealtime"),
    }
}

/// Reads a service's properties from `systemctl show` (the first unit's block).
pub fn parse_service_show(text: &str) -> SystemdService {
    let properties = Properties::parse(text);
    SystemdService {
        active_state: properties.text("ActiveState"),
        sub_state: properties.text("SubState"),
        result: properties.text("Result"),
        exec_main_code: properties.number("ExecMainCode"),
        exec_main_status: properties.number("ExecMainStatus"),
        started: properties.timestamp("ExecMainStartTimestamp"),
    }
}

/// A unit's `Key=value` properties as `systemctl show` prints them.
struct Properties(BTreeMap<String, String>);

impl Properties {
    /// The `Key=value` lines up to the first blank line after some.
    fn parse(text: &str) -> Properties {
        let mut properties = BTreeMap::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                if properties.is_empty() {
                    continue;
                }
                break;
            }
            if let Some((key, value)) = line.split_once('=') {
                properties.insert(key.trim().to_owned(), value.trim().to_owned());
            }
        }
        Properties(properties)
    }

    /// A value; `None` when missing or empty.
    fn text(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|value| !value.is_empty()).cloned()
    }

    /// A number; `None` when missing or not one.
    fn number(&self, key: &str) -> Option<i64> {
        self.0.get(key).and_then(|value| value.trim().parse().ok())
    }

    /// A timestamp as systemctl prints it ("Mon 2026-11-24 09:00:03 UTC");
    /// `None` for "never" (empty, `n/a`, 0) and for the time spans systemd
    /// 233–236 printed by mistake ("47y 3month 1w …").
    fn timestamp(&self, key: &str) -> Option<String> {
        let value = self.0.get(key)?.trim();
        let has_date = value.as_bytes().windows(10).any(|window| {
            window.iter().enumerate().all(|(index, byte)| match index {
                4 | 7 => *byte == b'-',
                _ => byte.is_ascii_digit(),
            })
        });
        has_date.then(|| value.to_owned())
    }
}
