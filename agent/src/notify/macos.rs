//! macOS: `osascript -e 'display notification …'`.
//!
//! A notification shows only from inside the user's GUI login session. Run
//! by the employee, the agent is in it. Run as root (the launchd daemon), it
//! enters the session of whoever owns `/dev/console` with `launchctl asuser`
//! and runs osascript as that user through sudo, the pattern Mac admins use
//! (scriptingosx.com, "Running a command as another user"). No console user
//! (the login window) means no one to tell.

use std::path::Path;

use super::{APP_NAME, DeliveryError, Handed, Message, run_quietly};
use crate::system::System;

const OSASCRIPT: &str = "/usr/bin/osascript";
const LAUNCHCTL: &str = "/bin/launchctl";
const SUDO: &str = "/usr/bin/sudo";
const CONSOLE: &str = "/dev/console";

pub(super) fn deliver(system: &dyn System, message: &Message) -> Result<Handed, DeliveryError> {
    let osascript = Path::new(OSASCRIPT);
    if system.symlink_metadata(osascript).is_err() {
        return Ok(Handed::NoOne(format!("{OSASCRIPT} is not installed")));
    }
    let script = script(message);
    if !system.is_privileged() {
        run_quietly(system, osascript, &["-e", &script])?;
        return Ok(Handed::Shown);
    }
    let console_user = system
        .symlink_metadata(Path::new(CONSOLE))
        .ok()
        .and_then(|info| info.uid);
    let uid = match console_user {
        Some(uid) if uid != 0 => uid.to_string(),
        _ => {
            return Ok(Handed::NoOne(
                "no one is logged in at the console".to_owned(),
            ));
        }
    };
    let as_uid = format!("#{uid}");
    run_quietly(
        system,
        Path::new(LAUNCHCTL),
        &[
            "asuser", &uid, SUDO, "-u", &as_uid, OSASCRIPT, "-e", &script,
        ],
    )?;
    Ok(Handed::Shown)
}

/// The AppleScript that shows `message`; every text is a quoted literal.
pub(super) fn script(message: &Message) -> String {
    format!(
        "display notification {} with title {} subtitle {}",
        applescript_string(&message.body),
        applescript_string(APP_NAME),
        applescript_string(&message.title),
    )
}

/// An AppleScript string literal: `"` and `\` escaped, line breaks and tabs
/// as `\n`, `\r`, `\t`, other control characters as spaces.
pub(super) fn applescript_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for c in text.chars() {
        match c {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            '\n' => literal.push_str("\\n"),
            '\r' => literal.push_str("\\r"),
            '\t' => literal.push_str("\\t"),
            c if c.is_control() => literal.push(' '),
            c => literal.push(c),
        }
    }
    literal.push('"');
    literal
}

#[cfg(test)]
mod tests {
    use shipshape_core::facts::OsFamily;

    use super::*;
    use crate::notify::Urgency;
    use crate::system::fake::FakeSystem;

    /// The string literals of an AppleScript, decoded, and the code around them.
    fn literals(script: &str) -> (Vec<String>, String) {
        let mut found = Vec::new();
        let mut code = String::new();
        let mut chars = script.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                code.push(c);
                continue;
            }
            let mut literal = String::new();
            loop {
                match chars.next().expect("the literal is closed") {
                    '"' => break,
                    '\\' => literal.push(match chars.next().expect("an escape") {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        other => other,
                    }),
                    c => literal.push(c),
                }
            }
            found.push(literal);
            code.push_str("\"\"");
        }
        (found, code)
    }

    fn hostile() -> Message {
        Message {
            urgency: Urgency::Critical,
            title: "\" & (do shell script \"touch /tmp/pwned\") & \"".to_owned(),
            body: "back\\slash \\\" quote\nline\ttab\u{7}bell — laptop’s".to_owned(),
        }
    }

    #[test]
    fn hostile_texts_stay_inside_their_string_literals() {
        let message = hostile();
        let (found, code) = literals(&script(&message));
        assert_eq!(
            code, "display notification \"\" with title \"\" subtitle \"\"",
            "no text leaks into the code"
        );
        assert_eq!(
            found,
            [
                "back\\slash \\\" quote\nline\ttab bell — laptop’s",
                "Shipshape",
                message.title.as_str()
            ]
        );
    }

    #[test]
    fn the_employee_runs_osascript_and_root_reaches_the_console_user() {
        let message = hostile();
        let script = script(&message);
        let own = format!("{OSASCRIPT} -e {script}");
        let user = FakeSystem::new(OsFamily::Macos).command(&own, "");
        assert_eq!(deliver(&user, &message).unwrap(), Handed::Shown);
        assert_eq!(user.ran(), [own]);

        let via_launchd = format!("{LAUNCHCTL} asuser 501 {SUDO} -u #501 {OSASCRIPT} -e {script}");
        let root = FakeSystem::new(OsFamily::Macos)
            .privileged(true)
            .file(OSASCRIPT, "")
            .file_with(CONSOLE, "", 0o600, 501)
            .command(&via_launchd, "");
        assert_eq!(deliver(&root, &message).unwrap(), Handed::Shown);
        assert_eq!(root.ran(), [via_launchd]);

        let login_window = FakeSystem::new(OsFamily::Macos)
            .privileged(true)
            .file(OSASCRIPT, "")
            .file_with(CONSOLE, "", 0o600, 0);
        assert_eq!(
            deliver(&login_window, &message).unwrap(),
            Handed::NoOne("no one is logged in at the console".to_owned())
        );
        assert!(login_window.ran().is_empty());
    }
}
