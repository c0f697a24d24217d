//! Linux: `notify-send` over the desktop session's D-Bus.
//!
//! Run by the employee, the agent shows the notification in its own
//! graphical session. Run as root (the systemd timer, `sudo shipshape
//! check`), it asks logind which graphical sessions are active and shows it
//! in each, as that session's user, on that user's session bus. A machine
//! with no notify-send, no logind or no graphical session (servers,
//! containers) has no one to tell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{APP_NAME, DeliveryError, Handed, Message, run_quietly};
use crate::system::System;

const NOTIFY_SEND: &[&str] = &["/usr/bin/notify-send", "/bin/notify-send"];
const LOGINCTL: &[&str] = &["/usr/bin/loginctl", "/bin/loginctl"];
const RUNUSER: &[&str] = &["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"];
const ENV: &[&str] = &["/usr/bin/env", "/bin/env"];

/// logind's session types that have a screen.
const GRAPHICAL: &[&str] = &["x11", "wayland", "mir"];

pub(super) fn deliver(system: &dyn System, message: &Message) -> Result<Handed, DeliveryError> {
    let Some(notify_send) = system.find_program(NOTIFY_SEND) else {
        return Ok(Handed::NoOne(
            "notify-send is not installed (Debian/Ubuntu: libnotify-bin; Fedora: libnotify)"
                .to_owned(),
        ));
    };
    if system.is_privileged() {
        into_active_sessions(system, &notify_send, message)
    } else {
        into_own_session(system, &notify_send, message)
    }
}

/// `notify-send`'s arguments; `--` keeps a title that starts with `-` from reading as an option.
fn notify_send_args(message: &Message) -> Vec<String> {
    vec![
        format!("--app-name={APP_NAME}"),
        format!("--urgency={}", message.urgency.as_str()),
        "--".to_owned(),
        message.title.clone(),
        escape_markup(&message.body),
    ]
}

/// Notification servers read the body as markup (`<b>`, `&amp;`): text stays text.
fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn into_own_session(
    system: &dyn System,
    notify_send: &Path,
    message: &Message,
) -> Result<Handed, DeliveryError> {
    let set = |name: &str| system.env(name).filter(|value| !value.is_empty());
    if set("DISPLAY").is_none() && set("WAYLAND_DISPLAY").is_none() {
        return Ok(Handed::NoOne(
            "this is not a graphical session (neither DISPLAY nor WAYLAND_DISPLAY is set)"
                .to_owned(),
        ));
    }
    let args = notify_send_args(message);
    if set("DBUS_SESSION_BUS_ADDRESS").is_some() {
        run_quietly(system, notify_send, &as_strs(&args))?;
        return Ok(Handed::Shown);
    }
    let Some(runtime_dir) = set("XDG_RUNTIME_DIR") else {
        return Ok(Handed::NoOne(
            "there is no session bus (neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set)"
                .to_owned(),
        ));
    };
    let bus = Path::new(&runtime_dir).join("bus");
    if system.symlink_metadata(&bus).is_err() {
        return Ok(Handed::NoOne(format!(
            "there is no session bus at {}",
            bus.display()
        )));
    }
    let Some(env) = system.find_program(ENV) else {
        return Ok(Handed::NoOne("env is not installed".to_owned()));
    };
    let mut command = vec![bus_address(&bus), notify_send.display().to_string()];
    command.extend(args);
    run_quietly(system, &env, &as_strs(&command))?;
    Ok(Handed::Shown)
}

fn into_active_sessions(
    system: &dyn System,
    notify_send: &Path,
    message: &Message,
) -> Result<Handed, DeliveryError> {
    let (Some(loginctl), Some(runuser), Some(env)) = (
        system.find_program(LOGINCTL),
        system.find_program(RUNUSER),
        system.find_program(ENV),
    ) else {
        return Ok(Handed::NoOne(
            "loginctl, runuser or env is not installed, so no desktop session can be reached"
                .to_owned(),
        ));
    };
    let listed = system.run(&loginctl, &["list-sessions", "--no-legend"])?;
    if !listed.success() {
        // "System has not been booted with systemd as init system": a container.
        return Ok(Handed::NoOne(format!(
            "logind lists no sessions: {}",
            listed.stderr.lines().next().unwrap_or_default().trim()
        )));
    }
    let desktops = active_desktops(system, &loginctl, &listed.stdout);
    if desktops.is_empty() {
        return Ok(Handed::NoOne(
            "no one is logged in to an active graphical session".to_owned(),
        ));
    }
    let args = notify_send_args(message);
    let mut shown = Vec::new();
    let mut failed = Vec::new();
    let mut busless = Vec::new();
    for (uid, user) in desktops {
        let bus = PathBuf::from(format!("/run/user/{uid}/bus"));
        if system.symlink_metadata(&bus).is_err() {
            busless.push(format!("{user} (no {})", bus.display()));
            continue;
        }
        let mut command = vec![
            "-u".to_owned(),
            user.clone(),
            "--".to_owned(),
            env.display().to_string(),
            bus_address(&bus),
            notify_send.display().to_string(),
        ];
        command.extend(args.iter().cloned());
        match run_quietly(system, &runuser, &as_strs(&command)) {
            Ok(()) => shown.push(user),
            Err(error) => failed.push((user, error)),
        }
    }
    if shown.is_empty() {
        return match failed.into_iter().next() {
            Some((_, error)) => Err(error),
            None => Ok(Handed::NoOne(format!(
                "the graphical sessions have no session bus: {}",
                busless.join(", ")
            ))),
        };
    }
    for (user, error) in failed {
        tracing::warn!("could not show the desktop notification to {user}: {error}");
    }
    tracing::debug!("desktop notification shown to {}", shown.join(", "));
    Ok(Handed::Shown)
}

/// The users of active graphical sessions, one entry per uid, from
/// `loginctl list-sessions` and a `show-session` of each.
fn active_desktops(system: &dyn System, loginctl: &Path, listing: &str) -> BTreeMap<u32, String> {
    let mut desktops = BTreeMap::new();
    for session in parse_list_sessions(listing) {
        let args = [
            "show-session",
            session.id.as_str(),
            "-p",
            "Name",
            "-p",
            "Type",
            "-p",
            "Class",
            "-p",
            "State",
            "-p",
            "Active",
        ];
        match system.run(loginctl, &args) {
            Ok(output) if output.success() => {
                if let Some(user) = desktop_user(&session, &parse_properties(&output.stdout)) {
                    desktops.entry(session.uid).or_insert(user);
                }
            }
            // A session that closed since it was listed.
            Ok(output) => tracing::debug!(
                "loginctl show-session {}: {}",
                session.id,
                output.stderr.trim()
            ),
            Err(error) => tracing::debug!("loginctl show-session {}: {error}", session.id),
        }
    }
    desktops
}

/// One session as `loginctl list-sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    pub id: String,
    pub uid: u32,
    pub user: String,
}

/// The sessions of `loginctl list-sessions`: the first three columns
/// (SESSION, UID, USER) are the same in every systemd and elogind version;
/// the columns after them are not. The header and the "N sessions listed."
/// footer, which `--no-legend` drops, are skipped too.
pub(super) fn parse_list_sessions(text: &str) -> Vec<Session> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let id = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let user = fields.next()?;
            id.chars()
                .all(|c| c.is_ascii_alphanumeric())
                .then(|| Session {
                    id: id.to_owned(),
                    uid,
                    user: user.to_owned(),
                })
        })
        .collect()
}

/// `Key=Value` lines, as `loginctl show-session` prints them.
pub(super) fn parse_properties(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

/// The user to notify when the session is an active graphical one of a
/// person (class `user`, not a login screen's `greeter`).
pub(super) fn desktop_user(session: &Session, properties: &BTreeMap<&str, &str>) -> Option<String> {
    let graphical = properties
        .get("Type")
        .is_some_and(|kind| GRAPHICAL.contains(kind));
    let person = properties.get("Class").is_none_or(|class| *class == "user");
    let active = match properties.get("State") {
        Some(state) => *state == "active",
        None => properties.get("Active") == Some(&"yes"),
    };
    let name = properties
        .get("Name")
        .copied()
        .filter(|name| !name.is_empty())
        .unwrap_or(&session.user);
    (graphical && person && active && !name.starts_with('-')).then(|| name.to_owned())
}

fn bus_address(bus: &Path) -> String {
    format!("DBUS_SESSION_BUS_ADDRESS=unix:path={}", bus.display())
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use shipshape_core::facts::OsFamily;

    use super::*;
    use crate::notify::Urgency;
    use crate::system::CommandOutput;
    use crate::system::fake::{FakeSystem, fixture_body};

    const LIST_219: &str =
        include_str!("../../tests/fixtures/notify/linux/loginctl-list-sessions-systemd-219.txt");
    const LIST_245: &str = include_str!(
        "../../tests/fixtures/notify/linux/loginctl-list-sessions-systemd-245-greeter.txt"
    );
    const LIST_257: &str =
        include_str!("../../tests/fixtures/notify/linux/loginctl-list-sessions-elogind-257.txt");
    const NO_SYSTEMD: &str =
        include_str!("../../tests/fixtures/notify/linux/loginctl-list-sessions-no-systemd.txt");
    const SHOW_1: &str =
        include_str!("../../tests/fixtures/notify/linux/loginctl-show-session-systemd-219-x11.txt");
    const SHOW_2: &str = include_str!(
        "../../tests/fixtures/notify/linux/loginctl-show-session-systemd-219-x11-second.txt"
    );
    const NO_BUS: &str = include_str!("../../tests/fixtures/notify/linux/notify-send-no-bus.txt");

    const LIST: &str = "/usr/bin/loginctl list-sessions --no-legend";
    const NOTIFY_SEND: &str = "/usr/bin/notify-send";
    const ARGS: &str = "--app-name=Shipshape --urgency=critical -- Your machine sprang a leak \
                        Firewall. Run `shipshape check` to see how to fix it.";

    fn leak() -> Message {
        Message {
            urgency: Urgency::Critical,
            title: "Your machine sprang a leak".to_owned(),
            body: "Firewall. Run `shipshape check` to see how to fix it.".to_owned(),
        }
    }

    fn show(id: &str) -> String {
        format!("/usr/bin/loginctl show-session {id} -p Name -p Type -p Class -p State -p Active")
    }

    fn as_user(user: &str, uid: u32) -> String {
        format!(
            "/usr/sbin/runuser -u {user} -- /usr/bin/env \
             DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus {NOTIFY_SEND} {ARGS}"
        )
    }

    /// A Linux machine with notify-send, run as root (the timer).
    fn root() -> FakeSystem {
        FakeSystem::new(OsFamily::Linux)
            .privileged(true)
            .file(NOTIFY_SEND, "")
            .file("/usr/sbin/runuser", "")
            .file("/usr/bin/env", "")
    }

    fn runs_of(system: &FakeSystem, program: &str) -> Vec<String> {
        system
            .ran()
            .into_iter()
            .filter(|line| line.starts_with(program))
            .collect()
    }

    fn session(id: &str, uid: u32, user: &str) -> Session {
        Session {
            id: id.to_owned(),
            uid,
            user: user.to_owned(),
        }
    }

    #[test]
    fn every_listing_format_yields_id_uid_and_user() {
        assert_eq!(
            parse_list_sessions(fixture_body(LIST_219)),
            [
                session("2", 1000, "liveuser"),
                session("1", 1000, "liveuser")
            ]
        );
        assert_eq!(
            parse_list_sessions(fixture_body(LIST_245)),
            [session("2", 1000, "hossein"), session("c1", 121, "gdm")]
        );
        assert_eq!(
            parse_list_sessions(fixture_body(LIST_257)),
            [session("6", 1004, "sed"), session("c2", 1004, "sed")]
        );
        assert_eq!(parse_list_sessions(""), []);
        assert_eq!(
            parse_list_sessions("-u 1000 root\n"),
            [],
            "an id is alphanumeric"
        );
    }

    #[test]
    fn an_active_x11_session_of_a_person_is_a_desktop() {
        let properties = parse_properties(fixture_body(SHOW_1));
        let listed = session("1", 1000, "liveuser");
        assert_eq!(
            desktop_user(&listed, &properties),
            Some("liveuser".to_owned())
        );
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut changed = properties.clone();
            changed.extend(pairs.iter().copied());
            desktop_user(&listed, &changed)
        };
        assert_eq!(with(&[("Type", "tty")]), None);
        assert_eq!(with(&[("Type", "wayland")]), Some("liveuser".to_owned()));
        assert_eq!(with(&[("Class", "greeter")]), None);
        assert_eq!(with(&[("State", "online"), ("Active", "no")]), None);
        assert_eq!(
            with(&[("Name", "")]),
            Some("liveuser".to_owned()),
            "the listed user"
        );
    }

    #[test]
    fn as_root_each_user_with_an_active_desktop_is_told_once_on_their_own_bus() {
        let system = root()
            .file("/run/user/1000/bus", "")
            .command(LIST, fixture_body(LIST_219))
            .command(&show("2"), fixture_body(SHOW_2))
            .command(&show("1"), fixture_body(SHOW_1))
            .command(&as_user("liveuser", 1000), "");
        assert_eq!(deliver(&system, &leak()).unwrap(), Handed::Shown);
        assert_eq!(
            runs_of(&system, "/usr/sbin/runuser"),
            [as_user("liveuser", 1000)],
            "two sessions of one user: one notification"
        );
    }

    #[test]
    fn as_root_the_login_screen_and_a_background_session_are_not_told() {
        // The Key=Value form of show-session, with the values this listing implies:
        // hossein at the screen on tty2, GDM's greeter in the background on tty1.
        let system = root()
            .file("/run/user/1000/bus", "")
            .file("/run/user/121/bus", "")
            .command(LIST, fixture_body(LIST_245))
            .command(
                &show("2"),
                "Name=hossein\nType=wayland\nClass=user\nActive=yes\nState=active\n",
            )
            .command(
                &show("c1"),
                "Name=gdm\nType=wayland\nClass=greeter\nActive=no\nState=online\n",
            )
            .command(&as_user("hossein", 1000), "");
        assert_eq!(deliver(&system, &leak()).unwrap(), Handed::Shown);
        assert_eq!(
            runs_of(&system, "/usr/sbin/runuser"),
            [as_user("hossein", 1000)]
        );
    }

    #[test]
    fn as_root_in_a_container_or_on_a_server_there_is_no_one_to_tell() {
        let container = root().command_output(
            LIST,
            CommandOutput {
                code: Some(1),
                stdout: String::new(),
                stderr: fixture_body(NO_SYSTEMD).to_owned(),
            },
        );
        let Handed::NoOne(why) = deliver(&container, &leak()).unwrap() else {
            panic!("a container has no desktop");
        };
        assert!(why.contains("has not been booted with systemd"), "{why}");

        let server = root()
            .command(LIST, fixture_body(LIST_257))
            .command(
                &show("6"),
                "Name=sed\nType=tty\nClass=user\nActive=yes\nState=active\n",
            )
            .command(
                &show("c2"),
                "Name=sed\nType=tty\nClass=user\nActive=yes\nState=active\n",
            );
        assert_eq!(
            deliver(&server, &leak()).unwrap(),
            Handed::NoOne("no one is logged in to an active graphical session".to_owned())
        );
        assert!(runs_of(&server, "/usr/sbin/runuser").is_empty());

        let bare = FakeSystem::new(OsFamily::Linux).privileged(true);
        assert!(matches!(
            deliver(&bare, &leak()).unwrap(),
            Handed::NoOne(why) if why.starts_with("notify-send is not installed")
        ));
        assert!(bare.ran().is_empty());
    }

    #[test]
    fn as_root_a_desktop_without_a_session_bus_is_skipped() {
        let system = root()
            .command(LIST, fixture_body(LIST_219))
            .command(&show("2"), fixture_body(SHOW_2))
            .command(&show("1"), fixture_body(SHOW_1));
        let Handed::NoOne(why) = deliver(&system, &leak()).unwrap() else {
            panic!("no bus, no notification");
        };
        assert!(why.contains("liveuser (no /run/user/1000/bus)"), "{why}");
    }

    #[test]
    fn as_root_a_failure_is_an_error_only_when_no_one_was_told() {
        let failing = CommandOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: fixture_body(NO_BUS).to_owned(),
        };
        let listing = "1 1000 alice seat0 tty2\n2 1001 bob seat1 tty3\n";
        let desktop = |name: &str| format!("Name={name}\nType=x11\nClass=user\nState=active\n");
        let both = || {
            root()
                .file("/run/user/1000/bus", "")
                .file("/run/user/1001/bus", "")
                .command(LIST, listing)
                .command(&show("1"), desktop("alice"))
                .command(&show("2"), desktop("bob"))
                .command_output(&as_user("alice", 1000), failing.clone())
        };
        let one_told = both().command(&as_user("bob", 1001), "");
        assert_eq!(deliver(&one_told, &leak()).unwrap(), Handed::Shown);
        let none_told = both().command_output(&as_user("bob", 1001), failing.clone());
        let error = deliver(&none_told, &leak()).unwrap_err().to_string();
        assert_eq!(
            error,
            "/usr/sbin/runuser failed (exit code 1): Could not connect: No such file or directory"
        );
    }

    #[test]
    fn the_employee_is_told_in_their_own_graphical_session() {
        let desktop = || {
            FakeSystem::new(OsFamily::Linux)
                .file(NOTIFY_SEND, "")
                .env_var("WAYLAND_DISPLAY", "wayland-0")
        };
        let direct = format!("{NOTIFY_SEND} {ARGS}");
        let with_bus = desktop()
            .env_var("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus")
            .command(&direct, "");
        assert_eq!(deliver(&with_bus, &leak()).unwrap(), Handed::Shown);
        assert_eq!(with_bus.ran(), [direct]);

        let wrapped = format!(
            "/usr/bin/env DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus {NOTIFY_SEND} {ARGS}"
        );
        let runtime_dir = desktop()
            .env_var("XDG_RUNTIME_DIR", "/run/user/1000")
            .file("/run/user/1000/bus", "")
            .file("/usr/bin/env", "")
            .command(&wrapped, "");
        assert_eq!(deliver(&runtime_dir, &leak()).unwrap(), Handed::Shown);
        assert_eq!(runtime_dir.ran(), [wrapped]);

        let no_bus = desktop();
        assert!(matches!(
            deliver(&no_bus, &leak()).unwrap(),
            Handed::NoOne(_)
        ));
        let ssh = FakeSystem::new(OsFamily::Linux)
            .file(NOTIFY_SEND, "")
            .env_var("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus");
        assert!(
            matches!(deliver(&ssh, &leak()).unwrap(), Handed::NoOne(why) if why.contains("not a graphical session"))
        );
        assert!(no_bus.ran().is_empty() && ssh.ran().is_empty());
    }

    #[test]
    fn texts_stay_text_and_a_dash_is_no_option() {
        let message = Message {
            urgency: Urgency::Normal,
            title: "--help".to_owned(),
            body: "<b>bold</b> & co".to_owned(),
        };
        assert_eq!(
            notify_send_args(&message),
            [
                "--app-name=Shipshape",
                "--urgency=normal",
                "--",
                "--help",
                "&lt;b&gt;bold&lt;/b&gt; &amp; co"
            ]
        );
    }
}
