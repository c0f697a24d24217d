//! Windows: the Task Scheduler task `\Shipshape\Report`, registered from its
//! XML with `schtasks /Create /XML`, read with `schtasks /Query /V /FO LIST`.
//!
//! schtasks reads task XML reliably only as UTF-16 LE with a byte order mark
//! (UTF-8 files fail with "The task XML is malformed"), so the rendered file
//! is UTF-16 and says so in its declaration.

use std::path::PathBuf;

use shipshape_core::facts::OsFamily;

use super::every::{Every, iso8601, words};
use super::template;
use super::{
    Activation, Installed, LastResult, Machine, Plan, Removed, ScheduleError, Scope, Status,
    TimerState, TimerStatus, UnitFile,
};

const TASK: &str = r"\Shipshape\Report";
const XML: &str = "shipshape-report.xml";
const TEMPLATE: &str = include_str!("../../../packaging/windows/shipshape-report.xml");
const SCHTASKS: &[&str] = &[r"C:\Windows\System32\schtasks.exe"];
/// The declaration of the template (UTF-8 text) and of the rendered file.
const DECLARATION: &str = r#"<?xml version="1.0"?>"#;
const UTF16_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-16"?>"#;
/// Task Scheduler's `Last Result` for a task that has not run yet (SCHED_S_TASK_HAS_NOT_RUN).
const HAS_NOT_RUN: i64 = 0x0004_1303;
/// … and for one running now (SCHED_S_TASK_RUNNING).
const RUNNING: i64 = 0x0004_1301;
/// The program was not found (ERROR_FILE_NOT_FOUND as an HRESULT).
const FILE_NOT_FOUND: u32 = 0x8007_0002;

pub(super) fn render(plan: &Plan) -> Result<Vec<UnitFile>, ScheduleError> {
    let command = crate::xml::escape(&template::windows_command(plan.binary_text()?));
    let principal = match plan.scope {
        // LocalSystem, by its well-known SID.
        Scope::System => "<UserId>S-1-5-18</UserId>",
        // The user who registers it, while logged on.
        Scope::User => "<LogonType>InteractiveToken</LogonType>",
    };
    let text = template::fill(
        TEMPLATE,
        &[
            ("BINARY", &command),
            ("EVERY", &plan.every.to_string()),
            ("INTERVAL", &plan.every.iso8601()),
            ("RANDOM_DELAY", &iso8601(plan.every.spread())),
            ("PRINCIPAL", principal),
        ],
    )
    .replacen(DECLARATION, UTF16_DECLARATION, 1);
    Ok(vec![UnitFile {
        name: XML,
        contents: utf16_with_bom(&text),
    }])
}

/// UTF-16 little-endian bytes, byte order mark first.
fn utf16_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

fn describe(every: Every) -> String {
    format!(
        "`shipshape report` runs every {every}, after a random delay of up to {}, and as \
         soon as it can when a run was missed while the machine was off or asleep.",
        words(every.spread())
    )
}

pub(super) fn install(machine: &Machine, plan: &Plan) -> Result<Installed, ScheduleError> {
    let xml = machine.state_dir.join(XML);
    for file in render(plan)? {
        machine.write(&xml.with_file_name(file.name), &file.contents)?;
    }
    let schtasks = machine.program("schtasks", SCHTASKS)?;
    let path = xml.to_string_lossy();
    machine.run(&schtasks, &["/Create", "/TN", TASK, "/XML", &path, "/F"])?;
    Ok(Installed {
        scope: plan.scope,
        files: vec![xml],
        activation: Activation::Started,
        schedule: describe(plan.every),
        notes: vec![format!(
            "Task Scheduler holds it as {TASK}; the file above is the copy it was registered from."
        )],
    })
}

pub(super) fn remove(machine: &Machine, scope: Scope) -> Result<Removed, ScheduleError> {
    let schtasks = machine.program("schtasks", SCHTASKS)?;
    let query = machine.ran(&schtasks, &["/Query", "/TN", TASK])?;
    let registered = query.success();
    if !registered && !is_not_found(&query) {
        return Err(ScheduleError::Command {
            command: format!("{} /Query /TN {TASK}", schtasks.display()),
            detail: super::said(&query),
        });
    }
    if registered {
        machine.run(&schtasks, &["/Delete", "/TN", TASK, "/F"])?;
    }
    let xml = machine.state_dir.join(XML);
    let files = if machine.delete(&xml)? {
        vec![xml]
    } else {
        Vec::new()
    };
    Ok(Removed {
        scope,
        files,
        unregistered: registered.then(|| format!("scheduled task {TASK}")),
        deferred: None,
        notes: Vec::new(),
    })
}

/// schtasks' answer for a task that does not exist.
fn is_not_found(output: &crate::system::CommandOutput) -> bool {
    let said = format!("{} {}", output.stderr, output.stdout);
    said.contains("cannot find the file specified") || said.contains("does not exist")
}

pub(super) fn status(machine: &Machine) -> Status {
    let kept: Vec<PathBuf> = [machine.state_dir.join(XML)]
        .into_iter()
        .filter(|xml| xml.exists())
        .collect();
    let default_scope = if machine.system.is_privileged() {
        Scope::System
    } else {
        Scope::User
    };
    let mut status = TimerStatus {
        scope: default_scope,
        installed: false,
        files: kept,
        state: None,
        note: None,
    };
    let asked = machine
        .program("schtasks", SCHTASKS)
        .and_then(|schtasks| machine.ran(&schtasks, &["/Query", "/TN", TASK, "/V", "/FO", "LIST"]));
    match asked {
        Ok(output) if output.success() => match parse_schtasks_query(&output.stdout) {
            Some(task) => {
                status.installed = true;
                if task.run_as_user.as_deref().is_some_and(is_system_account) {
                    status.scope = Scope::System;
                } else if task.run_as_user.is_some() {
                    status.scope = Scope::User;
                }
                status.state = Some(state(&task));
            }
            None => {
                status.installed = true;
                status.note = Some(
                    "schtasks answered in a form Shipshape cannot read (a Windows display \
                     language other than English?)"
                        .to_owned(),
                );
            }
        },
        Ok(output) if is_not_found(&output) => {}
        Ok(output) => {
            status.note = Some(format!(
                "could not ask Task Scheduler: {}",
                super::said(&output)
            ))
        }
        Err(error) => status.note = Some(format!("could not ask Task Scheduler: {error}")),
    }
    Status {
        os: OsFamily::Windows,
        scheduler: None,
        timers: vec![status],
    }
}

fn is_system_account(user: &str) -> bool {
    let user = user.trim();
    user.eq_ignore_ascii_case("SYSTEM") || user.eq_ignore_ascii_case(r"NT AUTHORITY\SYSTEM")
}

fn state(task: &ScheduledTask) -> TimerState {
    let enabled = task
        .scheduled_task_state
        .as_deref()
        .is_none_or(|state| state.eq_ignore_ascii_case("Enabled"));
    let mut state = task.status.clone().unwrap_or_else(|| "unknown".to_owned());
    if let Some(scheduled) = &task.scheduled_task_state {
        state.push_str(&format!(", {}", scheduled.to_lowercase()));
    }
    let last_result = match task.last_result {
        _ if task.status.as_deref() == Some("Running") => LastResult::Running,
        None | Some(HAS_NOT_RUN) => LastResult::Never,
        Some(RUNNING) => LastResult::Running,
        Some(code) if (0..256).contains(&code) => LastResult::Exited { code },
        Some(code) => {
            // Task Scheduler prints HRESULTs as unsigned or signed decimals.
            let hresult = (code & 0xFFFF_FFFF) as u32;
            LastResult::Failed {
                reason: if hresult == FILE_NOT_FOUND {
                    format!("0x{hresult:08X}: the program was not found (was shipshape moved?)")
                } else {
                    format!("Task Scheduler result 0x{hresult:08X}")
                },
            }
        }
    };
    TimerState {
        active: enabled && task.status.as_deref() != Some("Disabled"),
        state,
        next_run: task.next_run_time.clone(),
        last_run: match last_result {
            LastResult::Never => None,
            _ => task.last_run_time.clone(),
        },
        last_result,
    }
}

/// What `schtasks /Query /TN … /V /FO LIST` says about a task (its first block).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduledTask {
    pub task_name: Option<String>,
    /// "Ready", "Running", "Disabled"…
    pub status: Option<String>,
    pub next_run_time: Option<String>,
    pub last_run_time: Option<String>,
    /// The last run's exit code, or a Task Scheduler HRESULT.
    pub last_result: Option<i64>,
    pub task_to_run: Option<String>,
    /// "Enabled" or "Disabled".
    pub scheduled_task_state: Option<String>,
    pub run_as_user: Option<String>,
}

/// Reads the English `Label: value` list; `None` when it names no task.
pub fn parse_schtasks_query(text: &str) -> Option<ScheduledTask> {
    let mut task = ScheduledTask::default();
    let mut seen_task = false;
    for line in text.lines() {
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let text = || (!value.is_empty() && value != "N/A").then(|| value.to_owned());
        match label.trim() {
            "TaskName" if seen_task => break,
            "TaskName" => {
                seen_task = true;
                task.task_name = text();
            }
            "Status" => task.status = text(),
            "Next Run Time" => task.next_run_time = text(),
            "Last Run Time" => task.last_run_time = text(),
            "Last Result" => task.last_result = value.parse().ok(),
            "Task To Run" => task.task_to_run = text(),
            "Scheduled Task State" => task.scheduled_task_state = text(),
            "Run As User" => task.run_as_user = text(),
            _ => {}
        }
    }
    seen_task.then_some(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_starts_with_the_byte_order_mark_and_is_little_endian() {
        assert_eq!(utf16_with_bom("<é"), [0xFF, 0xFE, b'<', 0, 0xE9, 0]);
    }
}
