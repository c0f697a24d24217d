//! Desktop notifications for the employee: one when this machine newly
//! springs a leak, one when it is bailed out, and nothing for a state they
//! were already told.
//!
//! What was last told lives in `<state>/notified.json` ([`Told`]). Each run
//! of `check` or `report` compares its findings with it ([`decide`]); only a
//! message handed to the desktop, or having nothing to say, moves it on. A
//! notification that failed is tried again on the next run, and one that
//! found no one to tell (a server, a container, nobody logged in) counts as
//! not told: the employee hears of it when they are next at the desktop.
//! A notification never fails the check; trouble is a warning in the log.
//!
//! Delivery goes through the [`System`] seam, by OS: `notify-send` on Linux
//! (into each active graphical session when run as root), `osascript` on
//! macOS, a PowerShell toast on Windows.

mod linux;
mod macos;
#[cfg(test)]
mod sample;
mod told;
mod windows;

pub use told::{Decision, Told, decide};

use std::path::{Path, PathBuf};

use shipshape_core::checks::CheckId;
use shipshape_core::facts::OsFamily;
use shipshape_core::report::CheckReport;

use crate::config::Notify;
use crate::paths::Paths;
use crate::system::{CommandError, System};

/// What one run asks of notifications.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run<'a> {
    /// The checks the run was limited to (`--only`); empty for all of the policy's.
    pub only: &'a [CheckId],
    /// `--no-notify`: say nothing and remember nothing.
    pub opted_out: bool,
}

/// How loudly a notification asks for attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Normal,
    Critical,
}

impl Urgency {
    fn as_str(self) -> &'static str {
        match self {
            Urgency::Normal => "normal",
            Urgency::Critical => "critical",
        }
    }
}

/// One notification, before any OS-specific quoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub urgency: Urgency,
    pub title: String,
    pub body: String,
}

/// The application name the desktop shows beside the notification.
const APP_NAME: &str = "Shipshape";

/// What became of this run's notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Turned off by `--no-notify` or `[notify] enabled = false`, or the
    /// `[notify]` table could not be read: nothing said, nothing remembered.
    Off,
    /// Nothing new to tell; the current state is remembered.
    NothingNew,
    /// The message was handed to the desktop and is remembered as told.
    Shown(Message),
    /// No desktop to show it on; what was told stays as it was.
    NoOne(String),
    /// Showing it failed; what was told stays as it was, so the next run tries again.
    Failed(String),
}

/// Where the desktop's answer was not a notification on screen.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{} failed (exit code {code}): {stderr}", .program.display())]
    Refused {
        program: PathBuf,
        code: String,
        stderr: String,
    },
}

/// How a delivery ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Handed {
    /// Shown in at least one desktop session.
    Shown,
    /// There was no desktop session to show it in, and why.
    NoOne(String),
}

/// The file that remembers what the employee was last told.
pub fn state_path(paths: &Paths) -> PathBuf {
    paths.state_dir.join("notified.json")
}

/// Tells the employee what changed since they were last told, after `report`
/// was judged. Never fails: a notification that cannot be shown is logged.
pub fn after_run(
    system: &dyn System,
    paths: &Paths,
    report: &CheckReport,
    run: Run<'_>,
) -> Outcome {
    if run.opted_out {
        tracing::debug!("desktop notifications: off for this run (--no-notify)");
        return Outcome::Off;
    }
    match configured(&paths.agent_config()) {
        Ok(notify) if notify.enabled => {}
        Ok(_) => {
            tracing::debug!("desktop notifications: off ([notify] enabled = false)");
            return Outcome::Off;
        }
        Err(error) => {
            tracing::warn!("not showing desktop notifications: {error}");
            return Outcome::Off;
        }
    }
    let path = state_path(paths);
    let told = Told::load(&path);
    let decision = decide(&told, report, run.only);
    let outcome = match decision.message {
        None => Outcome::NothingNew,
        Some(message) => match deliver(system, &message) {
            Ok(Handed::Shown) => Outcome::Shown(message),
            Ok(Handed::NoOne(why)) => {
                tracing::debug!("desktop notification not shown: {why}");
                return Outcome::NoOne(why);
            }
            Err(error) => {
                tracing::warn!(
                    "could not show the desktop notification \"{}\" (it is tried again next run): {error}",
                    message.title
                );
                return Outcome::Failed(error.to_string());
            }
        },
    };
    if let Err(error) = decision.next.save(&path) {
        tracing::warn!("could not remember which leaks were notified: {error:#}");
    }
    outcome
}

/// The `[notify]` setting in `agent.toml`, which need not be an enrolled config.
fn configured(path: &Path) -> Result<Notify, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Notify::default());
        }
        Err(error) => return Err(format!("could not read {}: {error}", path.display())),
    };
    Notify::of_text(&text, &path.display().to_string())
        .map(Option::unwrap_or_default)
        .map_err(|error| format!("{error}: fix the [notify] table"))
}

fn deliver(system: &dyn System, message: &Message) -> Result<Handed, DeliveryError> {
    match system.os() {
        OsFamily::Linux => linux::deliver(system, message),
        OsFamily::Macos => macos::deliver(system, message),
        OsFamily::Windows => windows::deliver(system, message),
    }
}

/// Runs a program whose only answer is its exit code.
fn run_quietly(system: &dyn System, program: &Path, args: &[&str]) -> Result<(), DeliveryError> {
    let output = system.run(program, args)?;
    if output.success() {
        return Ok(());
    }
    let stderr = output.stderr.trim();
    Err(DeliveryError::Refused {
        program: program.to_owned(),
        code: output
            .code
            .map_or_else(|| "none".to_owned(), |code| code.to_string()),
        stderr: if stderr.is_empty() {
            output.stdout.trim().to_owned()
        } else {
            stderr.to_owned()
        },
    })
}

#[cfg(test)]
mod tests {
    use shipshape_core::Status;
    use shipshape_core::checks::CheckId::{DiskEncryption, Firewall};

    use super::sample::{finding, report};
    use super::*;
    use crate::system::CommandOutput;
    use crate::system::fake::FakeSystem;

    const NOTIFY_SEND: &str = "/usr/bin/notify-send --app-name=Shipshape";
    const FIREWALL: &str = "--urgency=critical -- Your machine sprang a leak \
                            Firewall. Run `shipshape check` to see how to fix it.";
    const DISK: &str = "--urgency=critical -- Your machine sprang a leak \
                        Disk encryption. Run `shipshape check` to see how to fix it.";
    const BAILED_OUT: &str = "--urgency=normal -- Bailed out This machine is shipshape again.";

    fn paths_under(dir: &Path) -> Paths {
        Paths {
            config_dir: dir.join("config"),
            state_dir: dir.join("state"),
        }
    }

    /// The employee's own desktop session, where notify-send answers `shown`.
    fn desktop(shown: &[&str]) -> FakeSystem {
        shown.iter().fold(
            FakeSystem::new(OsFamily::Linux)
                .env_var("DISPLAY", ":0")
                .env_var("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus"),
            |system, args| system.command(&format!("{NOTIFY_SEND} {args}"), ""),
        )
    }

    fn all() -> Run<'static> {
        Run::default()
    }

    #[test]
    fn the_employee_hears_of_each_change_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        let system = desktop(&[FIREWALL, DISK, BAILED_OUT]);
        let notified = || system.ran().len();
        let firewall = report(vec![
            finding(DiskEncryption, Status::Pass, false),
            finding(Firewall, Status::Fail, true),
        ]);
        let shown = after_run(&system, &paths, &firewall, all());
        assert!(matches!(&shown, Outcome::Shown(message) if message.body.starts_with("Firewall.")));
        assert_eq!(notified(), 1);
        assert_eq!(
            after_run(&system, &paths, &firewall, all()),
            Outcome::NothingNew
        );
        assert_eq!(notified(), 1, "the same leak is not told twice");

        let both = report(vec![
            finding(DiskEncryption, Status::Fail, true),
            finding(Firewall, Status::Fail, true),
        ]);
        assert!(matches!(
            after_run(&system, &paths, &both, all()),
            Outcome::Shown(_)
        ));
        assert_eq!(
            system.ran()[1],
            format!("{NOTIFY_SEND} {DISK}"),
            "only the new leak is named"
        );

        let unknown = report(vec![
            finding(DiskEncryption, Status::Unknown, true),
            finding(Firewall, Status::Unknown, true),
        ]);
        assert_eq!(
            after_run(&system, &paths, &unknown, all()),
            Outcome::NothingNew
        );
        assert_eq!(notified(), 2, "unknown says nothing");

        let clean = report(vec![
            finding(DiskEncryption, Status::Pass, false),
            finding(Firewall, Status::Pass, false),
        ]);
        assert!(matches!(
            after_run(&system, &paths, &clean, all()),
            Outcome::Shown(_)
        ));
        assert_eq!(system.ran()[2], format!("{NOTIFY_SEND} {BAILED_OUT}"));
        assert_eq!(
            after_run(&system, &paths, &clean, all()),
            Outcome::NothingNew
        );
        assert_eq!(notified(), 3);
        assert_eq!(Told::load(&state_path(&paths)), Told::default());
    }

    #[test]
    fn a_failed_notification_is_tried_again_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        let leaky = report(vec![finding(Firewall, Status::Fail, true)]);
        let failing = desktop(&[]).command_output(
            &format!("{NOTIFY_SEND} {FIREWALL}"),
            CommandOutput {
                code: Some(1),
                stdout: String::new(),
                stderr: "Could not connect: No such file or directory\n".to_owned(),
            },
        );
        let outcome = after_run(&failing, &paths, &leaky, all());
        assert_eq!(
            outcome,
            Outcome::Failed(
                "/usr/bin/notify-send failed (exit code 1): Could not connect: No such file or directory"
                    .to_owned()
            )
        );
        assert!(!state_path(&paths).exists(), "nothing was told");

        let working = desktop(&[FIREWALL]);
        assert!(matches!(
            after_run(&working, &paths, &leaky, all()),
            Outcome::Shown(_)
        ));
        assert_eq!(working.ran().len(), 1);
    }

    #[test]
    fn with_no_one_to_tell_nothing_counts_as_told() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        let leaky = report(vec![finding(Firewall, Status::Fail, true)]);
        let server = FakeSystem::new(OsFamily::Linux);
        assert!(matches!(
            after_run(&server, &paths, &leaky, all()),
            Outcome::NoOne(_)
        ));
        assert!(!state_path(&paths).exists());
        let desktop = desktop(&[FIREWALL]);
        assert!(matches!(
            after_run(&desktop, &paths, &leaky, all()),
            Outcome::Shown(_)
        ));

        let clean = report(vec![finding(Firewall, Status::Pass, false)]);
        let fresh = tempfile::tempdir().unwrap();
        let fresh = paths_under(fresh.path());
        assert_eq!(
            after_run(&server, &fresh, &clean, all()),
            Outcome::NothingNew
        );
        assert_eq!(Told::load(&state_path(&fresh)), Told::default());
        assert!(
            state_path(&fresh).exists(),
            "a clean first run is remembered"
        );
    }

    #[test]
    fn opting_out_says_and_remembers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        let leaky = report(vec![finding(Firewall, Status::Fail, true)]);
        let system = desktop(&[FIREWALL]);
        let flag = Run {
            only: &[],
            opted_out: true,
        };
        assert_eq!(after_run(&system, &paths, &leaky, flag), Outcome::Off);

        let config = paths.agent_config();
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, "[notify]\nenabled = false\n").unwrap();
        assert_eq!(after_run(&system, &paths, &leaky, all()), Outcome::Off);
        std::fs::write(&config, "[notify]\nenabled = \"off\"\n").unwrap();
        assert_eq!(
            after_run(&system, &paths, &leaky, all()),
            Outcome::Off,
            "a table that is wrong is not guessed at"
        );
        assert!(system.ran().is_empty());
        assert!(!state_path(&paths).exists());

        std::fs::write(&config, "[notify]\nenabled = true\n").unwrap();
        assert!(matches!(
            after_run(&system, &paths, &leaky, all()),
            Outcome::Shown(_)
        ));
    }
}
