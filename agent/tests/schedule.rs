//! `shipshape schedule`: the units, plist and task XML rendered into a
//! temporary root and compared with snapshots (and read back by systemd,
//! the `plist` crate and an XML parser); install, remove and status on a
//! scripted machine of each OS; the parsers of `systemctl show`, `launchctl
//! print` and `schtasks /Query` on real captured outputs; and the real
//! binary's `render` and `status`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};
use shipshape::schedule::{
    self, Activation, LastResult, Machine, Plan, ScheduleError, Scope, leftover_placeholders,
    output,
};
use shipshape::system::fake::{FakeSystem, fixture_body};
use shipshape::system::{CommandOutput, RealSystem, System};
use shipshape_core::facts::OsFamily;

const SYSTEMCTL: &str = "/usr/bin/systemctl";
const LAUNCHCTL: &str = "/bin/launchctl";
const SCHTASKS: &str = r"C:\Windows\System32\schtasks.exe";
const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedule")
}

fn fixture(relative: &str) -> String {
    let text = std::fs::read_to_string(fixture_dir().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"));
    fixture_body(&text).to_owned()
}

fn home(os: OsFamily) -> PathBuf {
    PathBuf::from(match os {
        OsFamily::Linux => "/home/alice",
        OsFamily::Macos => "/Users/alice",
        OsFamily::Windows => r"C:\Users\alice",
    })
}

fn plan(os: OsFamily, scope: Scope, every: &str) -> Plan {
    Plan {
        os,
        scope,
        every: every.parse().unwrap(),
        binary: PathBuf::from(match os {
            OsFamily::Windows => r"C:\Program Files\Shipshape\shipshape.exe",
            OsFamily::Linux | OsFamily::Macos => "/usr/bin/shipshape",
        }),
        home: Some(home(os)),
    }
}

/// A machine whose files live under `root`.
fn machine<'a>(system: &'a FakeSystem, root: &Path) -> Machine<'a> {
    Machine {
        system,
        root: root.to_owned(),
        home: Some(home(system.os())),
        state_dir: root.join("state"),
    }
}

fn ok() -> CommandOutput {
    CommandOutput {
        code: Some(0),
        ..CommandOutput::default()
    }
}

fn failed(code: i32, stdout: &str, stderr: &str) -> CommandOutput {
    CommandOutput {
        code: Some(code),
        stdout: stdout.to_owned(),
        stderr: stderr.to_owned(),
    }
}

fn read(root: &Path, path: &str) -> String {
    let path = root.join(path.trim_start_matches('/'));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn exists(root: &Path, path: &str) -> bool {
    root.join(path.trim_start_matches('/'))
        .symlink_metadata()
        .is_ok()
}

fn text_of(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    write(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

// ---------------------------------------------------------------- Linux

/// A Linux machine where systemd runs, as root or not.
fn linux(privileged: bool) -> FakeSystem {
    FakeSystem::new(OsFamily::Linux)
        .privileged(privileged)
        .file("/run/systemd/system/.booted", "")
}

fn linux_user_session(system: FakeSystem) -> FakeSystem {
    system
        .env_var("XDG_RUNTIME_DIR", "/run/user/1000")
        .file("/run/user/1000/systemd/private", "")
}

fn with_systemctl(system: FakeSystem, user: bool, lines: &[&str]) -> FakeSystem {
    let prefix = if user {
        format!("{SYSTEMCTL} --user ")
    } else {
        format!("{SYSTEMCTL} ")
    };
    lines.iter().fold(system, |system, line| {
        system.command_output(&format!("{prefix}{line}"), ok())
    })
}

const INSTALL: &[&str] = &["daemon-reload", "enable --now shipshape-report.timer"];
const SHOW_TIMER: &str = "show shipshape-report.timer -p LoadState,ActiveState,SubState,UnitFileState,LastTriggerUSec,NextElapseUSecRealtime";
const SHOW_SERVICE: &str = "show shipshape-report.service -p ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,ExecMainStartTimestamp";

#[test]
fn linux_system_units_rendered_into_a_temporary_root() {
    let root = tempfile::tempdir().unwrap();
    let system = with_systemctl(linux(true), false, INSTALL);
    let installed = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Linux, Scope::System, "1h"),
    )
    .unwrap();
    assert_eq!(installed.activation, Activation::Started);
    assert_eq!(
        installed.files,
        [
            PathBuf::from("/etc/systemd/system/shipshape-report.service"),
            PathBuf::from("/etc/systemd/system/shipshape-report.timer"),
        ]
    );
    assert_eq!(
        system.ran(),
        [
            "/usr/bin/systemctl daemon-reload",
            "/usr/bin/systemctl enable --now shipshape-report.timer"
        ]
    );
    let service = read(root.path(), "/etc/systemd/system/shipshape-report.service");
    let timer = read(root.path(), "/etc/systemd/system/shipshape-report.timer");
    for text in [&service, &timer] {
        assert_eq!(leftover_placeholders(text), Vec::<&str>::new());
        assert!(!text.contains("SYSTEM_ONLY"), "{text}");
    }
    assert!(service.contains("\nExecStart=/usr/bin/shipshape report\n"));
    assert!(service.contains("\nProtectSystem=strict\n"));
    assert!(service.contains(
        "\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_DAC_READ_SEARCH CAP_SETUID CAP_SETGID\n"
    ));
    assert!(timer.contains("\nOnCalendar=*-*-* *:00:00\n"));
    assert!(timer.contains("\nRandomizedDelaySec=30min\n"));
    insta::assert_snapshot!("linux_system_service", service);
    insta::assert_snapshot!("linux_system_timer", timer);
}

#[test]
fn linux_user_units_drop_what_a_user_manager_cannot_give() {
    let root = tempfile::tempdir().unwrap();
    let system = with_systemctl(linux_user_session(linux(false)), true, INSTALL);
    let installed = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Linux, Scope::User, "30m"),
    )
    .unwrap();
    assert_eq!(installed.activation, Activation::Started);
    assert_eq!(
        system.ran(),
        [
            "/usr/bin/systemctl --user daemon-reload",
            "/usr/bin/systemctl --user enable --now shipshape-report.timer"
        ]
    );
    let service = read(
        root.path(),
        "/home/alice/.config/systemd/user/shipshape-report.service",
    );
    let timer = read(
        root.path(),
        "/home/alice/.config/systemd/user/shipshape-report.timer",
    );
    for sandbox_only in [
        "ProtectSystem",
        "CapabilityBoundingSet",
        "StateDirectory",
        "network-online",
    ] {
        assert!(
            !service.contains(sandbox_only),
            "{sandbox_only} in a user unit"
        );
    }
    assert!(service.contains("\nNoNewPrivileges=yes\n"));
    assert!(timer.contains("\nOnCalendar=*-*-* *:00/30:00\n"));
    assert!(timer.contains("\nRandomizedDelaySec=15min\n"));
    assert!(installed.notes[0].contains("loginctl enable-linger"));
    insta::assert_snapshot!("linux_user_service", service);
    insta::assert_snapshot!("linux_user_timer", timer);
}

#[test]
fn a_path_with_spaces_is_quoted_and_xdg_config_home_is_honoured() {
    let root = tempfile::tempdir().unwrap();
    let system = with_systemctl(
        linux_user_session(linux(false)).env_var("XDG_CONFIG_HOME", "/home/alice/conf"),
        true,
        INSTALL,
    );
    let mut plan = plan(OsFamily::Linux, Scope::User, "1h");
    plan.binary = PathBuf::from("/opt/Ship Shape/100%/shipshape");
    schedule::install(&machine(&system, root.path()), &plan).unwrap();
    let service = read(
        root.path(),
        "/home/alice/conf/systemd/user/shipshape-report.service",
    );
    assert!(
        service.contains("\nExecStart=\"/opt/Ship Shape/100%%/shipshape\" report\n"),
        "{service}"
    );
}

/// systemd itself reads the rendered units; it needs the program to exist, so
/// they run the binary these tests were built with.
#[test]
fn systemd_analyze_verifies_the_rendered_units() {
    if !Path::new(SYSTEMD_ANALYZE).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{SYSTEMD_ANALYZE} is missing on CI: install systemd"
        );
        eprintln!("skipping: {SYSTEMD_ANALYZE} is not installed");
        return;
    }
    let system = RealSystem::new(Duration::from_secs(120));
    for scope in [Scope::System, Scope::User] {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan(OsFamily::Linux, scope, "15m");
        plan.binary = PathBuf::from(env!("CARGO_BIN_EXE_shipshape"));
        let mut paths = Vec::new();
        for file in schedule::render(&plan).unwrap() {
            let path = dir.path().join(file.name);
            std::fs::write(&path, &file.contents).unwrap();
            paths.push(path.to_str().unwrap().to_owned());
        }
        let mut args = vec!["verify"];
        args.extend(paths.iter().map(String::as_str));
        let output = system.run(Path::new(SYSTEMD_ANALYZE), &args).unwrap();
        assert!(
            output.success() && output.stderr.trim().is_empty(),
            "systemd-analyze verify of the {scope} units: {output:?}"
        );
    }
}

#[test]
fn installing_a_system_timer_needs_root_and_touches_nothing() {
    let root = tempfile::tempdir().unwrap();
    let system = linux(false);
    let error = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Linux, Scope::System, "4h"),
    )
    .unwrap_err();
    assert!(matches!(error, ScheduleError::NeedsPrivilege { .. }));
    assert_eq!(
        error.to_string(),
        "installing a system timer needs root: run `sudo shipshape schedule install --system \
         --every 4h`, or `shipshape schedule install --user --every 4h` for a timer of your own"
    );
    assert!(system.ran().is_empty());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
}

#[test]
fn reinstalling_restarts_the_timer_so_a_new_interval_applies() {
    let root = tempfile::tempdir().unwrap();
    let system = with_systemctl(
        linux(true),
        false,
        &[INSTALL[0], INSTALL[1], "restart shipshape-report.timer"],
    );
    let machine = machine(&system, root.path());
    schedule::install(&machine, &plan(OsFamily::Linux, Scope::System, "1h")).unwrap();
    schedule::install(&machine, &plan(OsFamily::Linux, Scope::System, "4h")).unwrap();
    assert_eq!(
        system.ran(),
        [
            "/usr/bin/systemctl daemon-reload",
            "/usr/bin/systemctl enable --now shipshape-report.timer",
            "/usr/bin/systemctl daemon-reload",
            "/usr/bin/systemctl enable --now shipshape-report.timer",
            "/usr/bin/systemctl restart shipshape-report.timer",
        ]
    );
    let timer = read(root.path(), "/etc/systemd/system/shipshape-report.timer");
    assert!(timer.contains("\nOnCalendar=*-*-* 00/4:00:00\n"), "{timer}");
}

#[test]
fn a_failing_systemctl_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let system = linux(true)
        .command_output(&format!("{SYSTEMCTL} daemon-reload"), ok())
        .command_output(
            &format!("{SYSTEMCTL} enable --now shipshape-report.timer"),
            failed(1, "", "Failed to enable unit: Access denied\n"),
        );
    let error = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Linux, Scope::System, "1h"),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "`/usr/bin/systemctl enable --now shipshape-report.timer` failed: exit code 1: Failed to \
         enable unit: Access denied"
    );
}

#[test]
fn where_systemd_is_not_running_the_units_are_written_and_linked_for_later() {
    let root = tempfile::tempdir().unwrap();
    let system = FakeSystem::new(OsFamily::Linux).privileged(true);
    let installed = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Linux, Scope::System, "1h"),
    )
    .unwrap();
    assert!(system.ran().is_empty(), "{:?}", system.ran());
    assert_eq!(
        installed.activation,
        Activation::Deferred("systemd is not running on this machine (a container?)".to_owned())
    );
    let link = root
        .path()
        .join("etc/systemd/system/timers.target.wants/shipshape-report.timer");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/etc/systemd/system/shipshape-report.timer")
    );
    let printed = text_of(|out| output::installed(out, &installed));
    assert!(
        printed.starts_with(
            "systemd is not running on this machine (a container?): the system timer is \
             installed and starts when it does."
        ),
        "{printed}"
    );

    let status = schedule::status(&machine(&system, root.path()));
    assert_eq!(status.timers.len(), 1, "root has no user timer: {status:?}");
    assert!(status.timers[0].installed);
    assert_eq!(status.timers[0].state, None);

    let removed = schedule::remove(&machine(&system, root.path()), Scope::System).unwrap();
    assert!(system.ran().is_empty());
    assert_eq!(removed.files.len(), 3, "{:?}", removed.files);
    assert!(!exists(
        root.path(),
        "/etc/systemd/system/shipshape-report.timer"
    ));
    assert!(link.symlink_metadata().is_err());
    let printed = text_of(|out| output::removed(out, &removed));
    assert!(
        printed.contains(
            "systemd is not running on this machine (a container?), so only its files were deleted."
        ),
        "{printed}"
    );
}

#[test]
fn without_a_user_manager_a_user_timer_waits_for_the_next_login() {
    let root = tempfile::tempdir().unwrap();
    let system = linux(false);
    let installed = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Linux, Scope::User, "1h"),
    )
    .unwrap();
    assert_eq!(
        installed.activation,
        Activation::Deferred(
            "no systemd user manager runs for this session (XDG_RUNTIME_DIR is not set)".to_owned()
        )
    );
    assert!(system.ran().is_empty());
    assert!(exists(
        root.path(),
        "/home/alice/.config/systemd/user/timers.target.wants/shipshape-report.timer"
    ));
    let status = schedule::status(&machine(&system, root.path()));
    let user = &status.timers[1];
    assert_eq!(user.scope, Scope::User);
    assert!(user.installed);
    assert_eq!(
        user.note.as_deref(),
        Some(
            "no systemd user manager runs for this session (XDG_RUNTIME_DIR is not set): the \
             timer starts at your next login"
        )
    );
}

#[test]
fn removing_when_nothing_is_installed_says_so_and_succeeds() {
    let root = tempfile::tempdir().unwrap();
    let system = linux(true);
    let removed = schedule::remove(&machine(&system, root.path()), Scope::System).unwrap();
    assert!(removed.nothing_was_installed());
    assert!(system.ran().is_empty());
    assert_eq!(
        text_of(|out| output::removed(out, &removed)),
        "No system timer is installed: nothing to remove.\n"
    );
}

#[test]
fn removing_disables_the_timer_deletes_the_units_and_reloads() {
    let root = tempfile::tempdir().unwrap();
    let system = with_systemctl(
        linux(true),
        false,
        &[
            INSTALL[0],
            INSTALL[1],
            "disable --now shipshape-report.timer",
        ],
    );
    let machine = machine(&system, root.path());
    schedule::install(&machine, &plan(OsFamily::Linux, Scope::System, "1h")).unwrap();
    let removed = schedule::remove(&machine, Scope::System).unwrap();
    assert_eq!(
        system.ran()[2..],
        [
            "/usr/bin/systemctl disable --now shipshape-report.timer",
            "/usr/bin/systemctl daemon-reload"
        ]
    );
    assert_eq!(
        removed.files,
        [
            PathBuf::from("/etc/systemd/system/shipshape-report.timer"),
            PathBuf::from("/etc/systemd/system/shipshape-report.service"),
        ]
    );
    assert!(!exists(
        root.path(),
        "/etc/systemd/system/shipshape-report.service"
    ));
    assert_eq!(
        text_of(|out| output::removed(out, &removed)),
        "Removed the system timer.\n  /etc/systemd/system/shipshape-report.timer\n  \
         /etc/systemd/system/shipshape-report.service\n"
    );
}

#[test]
fn status_says_when_systemd_is_not_running_here() {
    let root = tempfile::tempdir().unwrap();
    let system = FakeSystem::new(OsFamily::Linux).privileged(true);
    let status = schedule::status(&machine(&system, root.path()));
    assert_eq!(
        status.scheduler.as_deref(),
        Some(
            "systemd is not running on this machine (a container?): an installed timer starts \
             when systemd does"
        )
    );
    assert_eq!(status.timers.len(), 1);
    assert!(!status.timers[0].installed);
    assert!(system.ran().is_empty());
    let printed = text_of(|out| output::status(out, &status));
    assert_eq!(
        printed,
        "scheduler     systemd is not running on this machine (a container?): an installed \
         timer starts when systemd does\nsystem timer  not installed (`shipshape schedule \
         install --system` installs it)\n"
    );
}

/// An installed system timer on a machine whose `systemctl show` prints the given fixtures.
fn installed_linux(root: &Path, timer: &str, service: &str) -> FakeSystem {
    for unit in ["shipshape-report.service", "shipshape-report.timer"] {
        let path = root.join("etc/systemd/system").join(unit);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "[Unit]\n").unwrap();
    }
    linux(true)
        .command(&format!("{SYSTEMCTL} {SHOW_TIMER}"), fixture(timer))
        .command(&format!("{SYSTEMCTL} {SHOW_SERVICE}"), fixture(service))
}

#[test]
fn status_reads_when_the_timer_last_ran_and_how_it_ended() {
    let root = tempfile::tempdir().unwrap();
    let system = installed_linux(
        root.path(),
        "linux/systemctl-show-timer-logrotate-waiting.txt",
        "linux/systemctl-show-p-service-exit-code-1-systemd-261.txt",
    );
    let status = schedule::status(&machine(&system, root.path()));
    assert_eq!(status.scheduler, None);
    let timer = &status.timers[0];
    assert!(timer.installed);
    let state = timer.state.as_ref().expect("systemd answered");
    assert!(state.active);
    assert_eq!(state.state, "active (waiting), enabled");
    assert_eq!(
        state.next_run.as_deref(),
        Some("Thu 2024-07-25 00:00:00 UTC")
    );
    assert_eq!(
        state.last_run.as_deref(),
        Some("Wed 2024-07-24 15:32:51 UTC")
    );
    assert_eq!(state.last_result, LastResult::Exited { code: 1 });
    assert_eq!(
        text_of(|out| output::status(out, &status)),
        "system timer  installed: /etc/systemd/system/shipshape-report.service, \
         /etc/systemd/system/shipshape-report.timer\n              active: active (waiting), \
         enabled; next run Thu 2024-07-25 00:00:00 UTC\n              last run Wed 2024-07-24 \
         15:32:51 UTC: exit 1 (leaky: `shipshape status` shows the last report)\n"
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json["timers"][0]["state"]["last_result"],
        json!({"kind": "exited", "code": 1})
    );
    assert_eq!(json["timers"][0]["scope"], "system");
    assert_eq!(json["os"], "linux");
}

#[test]
fn status_turns_each_captured_systemd_answer_into_the_right_last_run() {
    let cases = [
        (
            "linux/systemctl-show-p-timer-never-triggered.txt",
            "linux/systemctl-show-p-service-never-run.txt",
            "active (waiting), enabled | last None | no run has ended yet",
        ),
        (
            "linux/systemctl-show-timer-timespan-bug-systemd-233.txt",
            "linux/systemctl-show-p-service-killed-signal-9-systemd-261.txt",
            "active (running), enabled | last None | failed: killed by signal 9",
        ),
        (
            "linux/systemctl-show-p-three-timers-raspberry-pi.txt",
            "linux/systemctl-show-service-logind-timeout.txt",
            "active (unknown), enabled | last Some(\"Fri 2026-08-21 04:40:00 CEST\") | failed: it \
             ran past its time limit (TimeoutStartSec) and was stopped",
        ),
    ];
    for (timer, service, expected) in cases {
        let root = tempfile::tempdir().unwrap();
        let system = installed_linux(root.path(), timer, service);
        let status = schedule::status(&machine(&system, root.path()));
        let state = status.timers[0].state.clone().expect("systemd answered");
        assert_eq!(
            format!(
                "{} | last {:?} | {}",
                state.state, state.last_run, state.last_result
            ),
            expected,
            "{timer} + {service}"
        );
    }
}

#[test]
fn status_finds_the_units_a_package_installed() {
    let root = tempfile::tempdir().unwrap();
    for unit in ["shipshape-report.service", "shipshape-report.timer"] {
        let path = root.path().join("lib/systemd/system").join(unit);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "[Unit]\n").unwrap();
    }
    let system = linux(true)
        .command(
            &format!("{SYSTEMCTL} {SHOW_TIMER}"),
            fixture("linux/systemctl-show-timer-logrotate-waiting.txt"),
        )
        .command(
            &format!("{SYSTEMCTL} {SHOW_SERVICE}"),
            fixture("linux/systemctl-show-p-service-never-run.txt"),
        );
    let status = schedule::status(&machine(&system, root.path()));
    assert_eq!(
        status.timers[0].files,
        [
            PathBuf::from("/lib/systemd/system/shipshape-report.service"),
            PathBuf::from("/lib/systemd/system/shipshape-report.timer"),
        ]
    );
    let removed = schedule::remove(&machine(&system, root.path()), Scope::System).unwrap();
    assert!(removed.nothing_was_installed());
    assert!(
        removed.notes[0].contains("The shipshape package installed its own timer"),
        "{:?}",
        removed.notes
    );
    assert!(exists(
        root.path(),
        "/lib/systemd/system/shipshape-report.timer"
    ));
}

#[test]
fn an_unprivileged_status_also_shows_the_users_timer() {
    let root = tempfile::tempdir().unwrap();
    let system = linux_user_session(linux(false));
    let status = schedule::status(&machine(&system, root.path()));
    let scopes: Vec<Scope> = status.timers.iter().map(|timer| timer.scope).collect();
    assert_eq!(scopes, [Scope::System, Scope::User]);
    assert!(status.timers.iter().all(|timer| !timer.installed));
}

// ---------------------------------------------------------------- macOS

fn macos(privileged: bool) -> FakeSystem {
    FakeSystem::new(OsFamily::Macos).privileged(privileged)
}

fn plist_value(text: &str) -> plist::Dictionary {
    plist::Value::from_reader_xml(text.as_bytes())
        .expect("the plist parses")
        .into_dictionary()
        .expect("a dictionary")
}

#[test]
fn macos_launch_daemon_rendered_into_a_temporary_root() {
    let root = tempfile::tempdir().unwrap();
    let system = macos(true)
        .command_output(
            &format!("{LAUNCHCTL} print system/com.shipshape.report"),
            failed(113, "", &fixture("macos/launchctl-print-not-found.txt")),
        )
        .command_output(
            &format!(
                "{LAUNCHCTL} bootstrap system /Library/LaunchDaemons/com.shipshape.report.plist"
            ),
            ok(),
        );
    let installed = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Macos, Scope::System, "1h"),
    )
    .unwrap();
    assert_eq!(
        system.ran(),
        [
            "/bin/launchctl print system/com.shipshape.report",
            "/bin/launchctl bootstrap system /Library/LaunchDaemons/com.shipshape.report.plist"
        ]
    );
    assert_eq!(
        installed.notes,
        ["Its output goes to /Library/Logs/Shipshape/report.log."]
    );
    assert!(root.path().join("Library/Logs/Shipshape").is_dir());
    let text = read(
        root.path(),
        "/Library/LaunchDaemons/com.shipshape.report.plist",
    );
    assert_eq!(leftover_placeholders(&text), Vec::<&str>::new());
    let plist = plist_value(&text);
    assert_eq!(plist["Label"].as_string(), Some("com.shipshape.report"));
    let arguments: Vec<&str> = plist["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|argument| argument.as_string().unwrap())
        .collect();
    assert_eq!(arguments, ["/usr/bin/shipshape", "report"]);
    assert_eq!(plist["StartInterval"].as_unsigned_integer(), Some(3600));
    assert_eq!(plist["RunAtLoad"].as_boolean(), Some(true));
    assert_eq!(
        plist["StandardOutPath"].as_string(),
        Some("/Library/Logs/Shipshape/report.log")
    );
    assert_eq!(
        plist["StandardErrorPath"].as_string(),
        Some("/Library/Logs/Shipshape/report.log")
    );
    insta::assert_snapshot!("macos_system_plist", text);
}

#[test]
fn macos_launch_agent_replaces_a_loaded_one_in_the_users_domain() {
    let root = tempfile::tempdir().unwrap();
    let system = macos(false)
        .command("/usr/bin/id -u", "501\n")
        .command(
            &format!("{LAUNCHCTL} print gui/501/com.shipshape.report"),
            fixture("macos/launchctl-print-agent-run-interval-3600-exit-0.txt"),
        )
        .command_output(&format!("{LAUNCHCTL} bootout gui/501/com.shipshape.report"), ok())
        .command_output(
            &format!(
                "{LAUNCHCTL} bootstrap gui/501 /Users/alice/Library/LaunchAgents/com.shipshape.report.plist"
            ),
            ok(),
        );
    let mut plan = plan(OsFamily::Macos, Scope::User, "4h");
    plan.binary = PathBuf::from("/Users/alice/R&D/shipshape");
    schedule::install(&machine(&system, root.path()), &plan).unwrap();
    assert_eq!(
        system.ran(),
        [
            "/usr/bin/id -u",
            "/bin/launchctl print gui/501/com.shipshape.report",
            "/bin/launchctl bootout gui/501/com.shipshape.report",
            "/bin/launchctl bootstrap gui/501 /Users/alice/Library/LaunchAgents/com.shipshape.report.plist",
        ]
    );
    let text = read(
        root.path(),
        "/Users/alice/Library/LaunchAgents/com.shipshape.report.plist",
    );
    assert!(text.contains("<string>/Users/alice/R&amp;D/shipshape</string>"));
    let plist = plist_value(&text);
    assert_eq!(
        plist["ProgramArguments"].as_array().unwrap()[0].as_string(),
        Some("/Users/alice/R&D/shipshape")
    );
    assert_eq!(plist["StartInterval"].as_unsigned_integer(), Some(4 * 3600));
    assert_eq!(
        plist["StandardOutPath"].as_string(),
        Some("/Users/alice/Library/Logs/Shipshape/report.log")
    );
    insta::assert_snapshot!("macos_user_plist", text);
}

#[test]
fn a_launch_agent_that_cannot_load_says_why() {
    let root = tempfile::tempdir().unwrap();
    let system = macos(false)
        .command("/usr/bin/id -u", "501\n")
        .command_output(
            &format!("{LAUNCHCTL} print gui/501/com.shipshape.report"),
            failed(113, "", "Could not find service \"com.shipshape.report\" in domain for uid: 501\n"),
        )
        .command_output(
            &format!(
                "{LAUNCHCTL} bootstrap gui/501 /Users/alice/Library/LaunchAgents/com.shipshape.report.plist"
            ),
            failed(125, "", "Bootstrap failed: 125: Domain does not support specified action\n"),
        );
    let error = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Macos, Scope::User, "1h"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("Bootstrap failed: 125"), "{error}");
    assert!(
        error.contains("log in at the Mac, not only over SSH"),
        "{error}"
    );
}

#[test]
fn macos_remove_boots_out_and_deletes_and_status_reads_launchctl_print() {
    let root = tempfile::tempdir().unwrap();
    let plist = root
        .path()
        .join("Library/LaunchDaemons/com.shipshape.report.plist");
    std::fs::create_dir_all(plist.parent().unwrap()).unwrap();
    std::fs::write(&plist, "<plist/>").unwrap();
    let system = macos(true)
        .command(
            &format!("{LAUNCHCTL} print system/com.shipshape.report"),
            fixture("macos/launchctl-print-daemon-never-exited-macos15.txt"),
        )
        .command_output(
            &format!("{LAUNCHCTL} bootout system/com.shipshape.report"),
            ok(),
        );
    let machine = machine(&system, root.path());

    let status = schedule::status(&machine);
    let timer = &status.timers[0];
    assert!(timer.installed);
    let state = timer.state.as_ref().unwrap();
    assert_eq!(state.state, "not running, 0 runs since loaded");
    assert_eq!(state.last_result, LastResult::Never);

    let removed = schedule::remove(&machine, Scope::System).unwrap();
    assert_eq!(
        system.ran()[1..],
        [
            "/bin/launchctl print system/com.shipshape.report",
            "/bin/launchctl bootout system/com.shipshape.report"
        ]
    );
    assert_eq!(
        removed.unregistered.as_deref(),
        Some("launchd job system/com.shipshape.report")
    );
    assert!(!plist.exists());
}

#[test]
fn macos_status_of_a_plist_launchd_has_not_loaded() {
    let root = tempfile::tempdir().unwrap();
    let plist = root
        .path()
        .join("Users/alice/Library/LaunchAgents/com.shipshape.report.plist");
    std::fs::create_dir_all(plist.parent().unwrap()).unwrap();
    std::fs::write(&plist, "<plist/>").unwrap();
    let system = macos(false)
        .command("/usr/bin/id -u", "501\n")
        .command_output(
            &format!("{LAUNCHCTL} print system/com.shipshape.report"),
            failed(113, "", &fixture("macos/launchctl-print-not-found.txt")),
        )
        .command(
            &format!("{LAUNCHCTL} print gui/501/com.shipshape.report"),
            fixture("macos/launchctl-print-agent-last-exit-1.txt"),
        );
    let status = schedule::status(&machine(&system, root.path()));
    let [system_timer, user_timer] = &status.timers[..] else {
        panic!("{status:?}")
    };
    assert!(!system_timer.installed);
    assert_eq!(system_timer.note, None);
    assert!(user_timer.installed);
    let state = user_timer.state.as_ref().unwrap();
    assert_eq!(state.state, "not running, 1 run since loaded");
    assert_eq!(state.last_result, LastResult::Exited { code: 1 });
}

// ---------------------------------------------------------------- Windows

fn windows(privileged: bool) -> FakeSystem {
    FakeSystem::new(OsFamily::Windows).privileged(privileged)
}

/// UTF-16 LE with a byte order mark, as schtasks wants it, decoded.
fn utf16(bytes: &[u8]) -> String {
    assert_eq!(bytes[..2], [0xFF, 0xFE], "byte order mark");
    let units: Vec<u16> = bytes[2..]
        .chunks(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16(&units).unwrap()
}

fn task_text<'a>(document: &'a roxmltree::Document, path: &[&str]) -> Option<&'a str> {
    let mut node = document.root_element();
    for name in path {
        node = node.children().find(|child| child.has_tag_name(*name))?;
    }
    node.text()
}

#[test]
fn windows_system_task_rendered_into_a_temporary_root() {
    let root = tempfile::tempdir().unwrap();
    let xml = root.path().join("state/shipshape-report.xml");
    let create = format!(
        r"{SCHTASKS} /Create /TN \Shipshape\Report /XML {} /F",
        xml.display()
    );
    let system = windows(true).command_output(&create, ok());
    let installed = schedule::install(
        &machine(&system, root.path()),
        &plan(OsFamily::Windows, Scope::System, "1h"),
    )
    .unwrap();
    assert_eq!(system.ran(), [create]);
    assert_eq!(installed.files, std::slice::from_ref(&xml));
    let text = utf16(&std::fs::read(&xml).unwrap());
    assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n"));
    assert_eq!(leftover_placeholders(&text), Vec::<&str>::new());
    let document = roxmltree::Document::parse(&text).expect("well-formed XML");
    assert_eq!(
        document.root_element().tag_name().namespace(),
        Some("http://schemas.microsoft.com/windows/2004/02/mit/task")
    );
    let field = |path: &[&str]| task_text(&document, path);
    assert_eq!(
        field(&["RegistrationInfo", "URI"]),
        Some(r"\Shipshape\Report")
    );
    assert_eq!(
        field(&["Triggers", "TimeTrigger", "Repetition", "Interval"]),
        Some("PT1H")
    );
    assert_eq!(
        field(&["Triggers", "TimeTrigger", "RandomDelay"]),
        Some("PT30M")
    );
    assert_eq!(field(&["Settings", "StartWhenAvailable"]), Some("true"));
    assert_eq!(
        field(&["Principals", "Principal", "RunLevel"]),
        Some("HighestAvailable")
    );
    assert_eq!(
        field(&["Principals", "Principal", "UserId"]),
        Some("S-1-5-18")
    );
    assert_eq!(
        field(&["Actions", "Exec", "Command"]),
        Some(r#""C:\Program Files\Shipshape\shipshape.exe""#)
    );
    assert_eq!(field(&["Actions", "Exec", "Arguments"]), Some("report"));
    insta::assert_snapshot!("windows_system_task", text);
}

#[test]
fn windows_user_task_runs_in_the_users_session() {
    let mut plan = plan(OsFamily::Windows, Scope::User, "15m");
    plan.binary = PathBuf::from(r"C:\Users\alice\bin\shipshape.exe");
    let [file] = &schedule::render(&plan).unwrap()[..] else {
        panic!("one file")
    };
    assert_eq!(file.name, "shipshape-report.xml");
    let text = utf16(&file.contents);
    let document = roxmltree::Document::parse(&text).unwrap();
    let field = |path: &[&str]| task_text(&document, path);
    assert_eq!(
        field(&["Principals", "Principal", "LogonType"]),
        Some("InteractiveToken")
    );
    assert_eq!(field(&["Principals", "Principal", "UserId"]), None);
    assert_eq!(
        field(&["Triggers", "TimeTrigger", "Repetition", "Interval"]),
        Some("PT15M")
    );
    assert_eq!(
        field(&["Triggers", "TimeTrigger", "RandomDelay"]),
        Some("PT450S")
    );
    assert_eq!(
        field(&["Actions", "Exec", "Command"]),
        Some(r"C:\Users\alice\bin\shipshape.exe")
    );
}

#[test]
fn windows_remove_deletes_the_task_or_says_there_is_none() {
    let root = tempfile::tempdir().unwrap();
    let query = format!(r"{SCHTASKS} /Query /TN \Shipshape\Report");
    let delete = format!(r"{SCHTASKS} /Delete /TN \Shipshape\Report /F");
    let xml = root.path().join("state/shipshape-report.xml");
    std::fs::create_dir_all(xml.parent().unwrap()).unwrap();
    std::fs::write(&xml, "x").unwrap();
    let system = windows(true)
        .command(&query, "Folder: \\Shipshape\n")
        .command_output(&delete, ok());
    let removed = schedule::remove(&machine(&system, root.path()), Scope::System).unwrap();
    assert_eq!(system.ran(), [query.clone(), delete]);
    assert_eq!(
        removed.unregistered.as_deref(),
        Some(r"scheduled task \Shipshape\Report")
    );
    assert!(!xml.exists());

    let system = windows(true).command_output(
        &query,
        failed(1, "", &fixture("windows/schtasks-not-found.txt")),
    );
    let removed = schedule::remove(&machine(&system, root.path()), Scope::System).unwrap();
    assert!(removed.nothing_was_installed());
    assert_eq!(system.ran(), [query]);
}

#[test]
fn windows_status_reads_schtasks_and_the_tasks_account() {
    let root = tempfile::tempdir().unwrap();
    let query = format!(r"{SCHTASKS} /Query /TN \Shipshape\Report /V /FO LIST");
    let cases = [
        (
            "windows/schtasks-query-v-list-hourly-system-ready.txt",
            "system: Ready, enabled | next Some(\"4/20/2025 4:15:35 AM\") | last Some(\"4/20/2025 \
             3:15:35 AM\") | exit 0 (shipshape)",
        ),
        (
            "windows/schtasks-query-v-list-running-267009.txt",
            "system: Running, enabled | next None | last Some(\"10/19/2019 9:22:00 AM\") | running now",
        ),
    ];
    for (file, expected) in cases {
        let system = windows(false).command(&query, fixture(file));
        let status = schedule::status(&machine(&system, root.path()));
        let timer = &status.timers[0];
        let state = timer.state.as_ref().unwrap();
        assert_eq!(
            format!(
                "{}: {} | next {:?} | last {:?} | {}",
                timer.scope, state.state, state.next_run, state.last_run, state.last_result
            ),
            expected,
            "{file}"
        );
    }
    let system = windows(false).command_output(
        &query,
        failed(1, "", &fixture("windows/schtasks-not-found.txt")),
    );
    let status = schedule::status(&machine(&system, root.path()));
    assert!(!status.timers[0].installed);
    assert_eq!(status.timers[0].note, None);
    assert_eq!(status.timers[0].scope, Scope::User);
}

// ---------------------------------------------------------------- parsers

/// One line per fixture, to compare with its `# expect:` header.
fn parsed(relative: &str) -> String {
    let body = fixture(relative);
    let name = relative.rsplit('/').next().unwrap();
    if name.starts_with("systemctl-show") && name.contains("timer") {
        let timer = schedule::parse_timer_show(&body);
        format!(
            "{:?}/{:?} {:?} last={:?} next={:?} load={:?}",
            timer.active_state,
            timer.sub_state,
            timer.unit_file_state,
            timer.last_trigger,
            timer.next_elapse,
            timer.load_state
        )
    } else if name.starts_with("systemctl-show") {
        let service = schedule::parse_service_show(&body);
        format!(
            "{:?}/{:?} result={:?} code={:?} status={:?} started={:?}",
            service.active_state,
            service.sub_state,
            service.result,
            service.exec_main_code,
            service.exec_main_status,
            service.started
        )
    } else if name.starts_with("launchctl-print") {
        format!("{:?}", schedule::parse_launchctl_print(&body))
    } else {
        format!("{:?}", schedule::parse_schtasks_query(&body))
    }
}

#[test]
fn every_captured_scheduler_output_parses_as_its_header_expects() {
    let cases = [
        (
            "linux/systemctl-show-timer-logrotate-waiting.txt",
            r#"Some("active")/Some("waiting") Some("enabled") last=Some("Wed 2024-07-24 15:32:51 UTC") next=Some("Thu 2024-07-25 00:00:00 UTC") load=Some("loaded")"#,
        ),
        (
            "linux/systemctl-show-p-three-timers-raspberry-pi.txt",
            r#"Some("active")/None Some("enabled") last=Some("Fri 2026-08-21 04:40:00 CEST") next=Some("Sat 2026-08-22 04:40:00 CEST") load=None"#,
        ),
        (
            "linux/systemctl-show-p-timer-never-triggered.txt",
            r#"Some("active")/Some("waiting") Some("enabled") last=None next=None load=None"#,
        ),
        (
            "linux/systemctl-show-timer-timespan-bug-systemd-233.txt",
            r#"Some("active")/Some("running") Some("enabled") last=None next=None load=Some("loaded")"#,
        ),
        (
            "linux/systemctl-show-p-service-killed-signal-9-systemd-261.txt",
            r#"Some("failed")/Some("failed") result=Some("signal") code=Some(2) status=Some(9) started=None"#,
        ),
        (
            "linux/systemctl-show-p-service-exit-code-1-systemd-261.txt",
            r#"Some("failed")/Some("failed") result=Some("exit-code") code=Some(1) status=Some(1) started=None"#,
        ),
        (
            "linux/systemctl-show-service-logind-timeout.txt",
            r#"None/None result=Some("timeout") code=Some(1) status=Some(0) started=Some("Wed 2020-06-03 16:53:40 CEST")"#,
        ),
        (
            "linux/systemctl-show-p-service-never-run.txt",
            r#"Some("inactive")/Some("dead") result=Some("success") code=None status=Some(0) started=None"#,
        ),
        (
            "macos/launchctl-print-agent-run-interval-3600-exit-0.txt",
            r#"Some(LaunchdJob { path: Some("/Users/tsgsz/Library/LaunchAgents/ai.openclaw.session-cleanup.plist"), state: Some("not running"), runs: Some(2), last_exit: Some(Code(0)), last_signal: None, run_interval_seconds: Some(3600) })"#,
        ),
        (
            "macos/launchctl-print-agent-last-exit-1.txt",
            r#"Some(LaunchdJob { path: Some("/Users/qingchang/Library/LaunchAgents/com.alphaloop.rsshub.plist"), state: Some("not running"), runs: Some(1), last_exit: Some(Code(1)), last_signal: None, run_interval_seconds: None })"#,
        ),
        (
            "macos/launchctl-print-daemon-never-exited-macos15.txt",
            r#"Some(LaunchdJob { path: Some("/Library/LaunchDaemons/org.halite.live-probe.plist"), state: Some("not running"), runs: Some(0), last_exit: Some(Never), last_signal: None, run_interval_seconds: None })"#,
        ),
        ("macos/launchctl-print-not-found.txt", "None"),
        (
            "windows/schtasks-query-v-list-hourly-system-ready.txt",
            r#"Some(ScheduledTask { task_name: Some("\\GoogleUpdateTaskMachineUA"), status: Some("Ready"), next_run_time: Some("4/20/2025 4:15:35 AM"), last_run_time: Some("4/20/2025 3:15:35 AM"), last_result: Some(0), task_to_run: Some("C:\\Program Files (x86)\\Google\\Update\\GoogleUpdate.exe /ua /installsource scheduler"), scheduled_task_state: Some("Enabled"), run_as_user: Some("SYSTEM") })"#,
        ),
        (
            "windows/schtasks-query-v-list-running-267009.txt",
            r#"Some(ScheduledTask { task_name: Some("\\restore"), status: Some("Running"), next_run_time: None, last_run_time: Some("10/19/2019 9:22:00 AM"), last_result: Some(267009), task_to_run: Some("powershell.exe -ep bypass C:\\Users\\Administrator\\Documents\\revert.ps1"), scheduled_task_state: Some("Enabled"), run_as_user: Some("SYSTEM") })"#,
        ),
        ("windows/schtasks-not-found.txt", "None"),
    ];
    for (file, expected) in &cases {
        assert_eq!(&parsed(file), expected, "{file}");
    }
    let mut on_disk = Vec::new();
    for os in ["linux", "macos", "windows"] {
        for entry in std::fs::read_dir(fixture_dir().join(os)).unwrap() {
            on_disk.push(format!(
                "{os}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    on_disk.sort();
    let mut covered: Vec<String> = cases.iter().map(|(file, _)| (*file).to_owned()).collect();
    covered.sort();
    assert_eq!(
        on_disk, covered,
        "every schedule fixture has an expectation"
    );
}

// ---------------------------------------------------------------- the binary

fn shipshape(home: &Path) -> Command {
    let mut command = Command::cargo_bin("shipshape").unwrap();
    command
        .env("HOME", home)
        .env("SHIPSHAPE_STATE_DIR", home.join("state"))
        .env("SHIPSHAPE_CONFIG_DIR", home.join("config"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SHIPSHAPE_LOG");
    command
}

#[test]
fn render_writes_each_oss_files_for_packaging() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("units");
    shipshape(dir.path())
        .args([
            "schedule",
            "render",
            "--os",
            "linux",
            "--system",
            "--binary",
            "/usr/bin/shipshape",
            "--out",
        ])
        .arg(&out)
        .assert()
        .code(0)
        .stdout(format!(
            "wrote {0}/shipshape-report.service\nwrote {0}/shipshape-report.timer\n",
            out.display()
        ));
    let service = std::fs::read_to_string(out.join("shipshape-report.service")).unwrap();
    assert!(service.contains("\nExecStart=/usr/bin/shipshape report\n"));
    assert!(service.contains("\nStateDirectory=shipshape\n"));

    shipshape(dir.path())
        .args([
            "schedule", "render", "--os", "macos", "--system", "--every", "30m", "--out",
        ])
        .arg(&out)
        .assert()
        .code(0);
    let plist = std::fs::read_to_string(out.join("com.shipshape.report.plist")).unwrap();
    let this_binary = Path::new(env!("CARGO_BIN_EXE_shipshape"))
        .canonicalize()
        .unwrap();
    assert!(
        plist.contains(&format!("<string>{}</string>", this_binary.display())),
        "{plist}"
    );
    assert!(plist.contains("<integer>1800</integer>"));

    shipshape(dir.path())
        .args([
            "schedule", "render", "--os", "windows", "--system", "--binary",
        ])
        .arg(r"C:\Program Files\Shipshape\shipshape.exe")
        .arg("--out")
        .arg(&out)
        .assert()
        .code(0);
    let xml = utf16(&std::fs::read(out.join("shipshape-report.xml")).unwrap());
    assert!(xml.contains("<UserId>S-1-5-18</UserId>"));
}

#[test]
fn render_refuses_intervals_and_paths_a_scheduler_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let render = |args: &[&str]| {
        let mut command = shipshape(dir.path());
        command
            .args(["schedule", "render", "--os", "linux", "--out"])
            .arg(dir.path().join("out"))
            .args(args);
        command.assert().code(2)
    };
    render(&["--every", "45m"]).stderr(predicate::str::contains(
        "`45m` does not divide the hour or the day evenly",
    ));
    render(&["--every", "1m"]).stderr(predicate::str::contains("the shortest interval is 5m"));
    render(&["--every", "daily"]).stderr(predicate::str::contains(
        "write a number and a unit, like 30m, 1h, 4h or 1d",
    ));
    render(&["--binary", "bin/shipshape"]).stderr(predicate::str::contains(
        "shipshape: cannot use bin/shipshape as the agent's path: a scheduler needs an absolute path",
    ));
    render(&["--user", "--system"]).stderr(predicate::str::contains("cannot be used with"));
    assert!(!dir.path().join("out").exists());
}

/// The real binary on this machine, where no timer is installed in HOME;
/// without systemd running (a container) it says so.
#[test]
fn status_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let booted = Path::new("/run/systemd/system").is_dir();
    let assert = shipshape(dir.path())
        .args(["schedule", "status", "--format", "json"])
        .assert()
        .code(0);
    let status: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(status["os"], "linux");
    assert_eq!(status["timers"][0]["scope"], "system");
    let user = status["timers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|timer| timer["scope"] == "user");
    if let Some(user) = user {
        assert_eq!(user["installed"], false, "no timer in a fresh HOME: {user}");
    }
    let human = shipshape(dir.path())
        .args(["schedule", "status"])
        .assert()
        .code(0);
    let printed = String::from_utf8_lossy(&human.get_output().stdout).into_owned();
    if booted {
        assert_eq!(status["scheduler"], Value::Null);
        assert!(printed.starts_with("system timer  "), "{printed}");
    } else {
        assert_eq!(
            status["scheduler"],
            "systemd is not running on this machine (a container?): an installed timer starts \
             when systemd does"
        );
        assert!(
            printed
                .starts_with("scheduler     systemd is not running on this machine (a container?)"),
            "{printed}"
        );
    }
}
