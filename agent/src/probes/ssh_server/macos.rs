//! macOS: Remote Login is launchd's `com.openssh.sshd`. `systemsetup
//! -getremotelogin` answers only an administrator, so without root the probe
//! asks launchd whether the service is loaded, which it is only while Remote
//! Login is on.

use std::path::Path;

use shipshape_core::facts::{Observed, ServiceState, SshServer};

use super::{ParseError, effective_config};
use crate::probes::needs_root;
use crate::system::{CommandOutput, System};

const SYSTEMSETUP: &str = "/usr/sbin/systemsetup";
const LAUNCHCTL: &str = "/bin/launchctl";
const SSHD: &str = "/usr/sbin/sshd";

/// Parses `systemsetup -getremotelogin`: `Remote Login: On` or `Remote Login: Off`.
pub fn parse_remote_login(text: &str) -> Result<bool, ParseError> {
    let line = text.trim();
    match line
        .strip_prefix("Remote Login:")
        .map(|state| state.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        _ => Err(ParseError::Unrecognized {
            tool: "systemsetup -getremotelogin",
            text: line.to_owned(),
        }),
    }
}

/// Reads `launchctl print system/com.openssh.sshd`: the service is loaded
/// (exit 0) only while Remote Login is on; "Could not find service" means off.
pub fn parse_launchctl_print(output: &CommandOutput) -> Result<bool, ParseError> {
    let not_found = |text: &str| text.contains("Could not find service");
    if output.success() && output.stdout.contains("com.openssh.sshd") {
        Ok(true)
    } else if not_found(&output.stdout) || not_found(&output.stderr) {
        Ok(false)
    } else {
        Err(ParseError::Unrecognized {
            tool: "launchctl print system/com.openssh.sshd",
            text: format!("{}{}", output.stdout, output.stderr)
                .trim()
                .to_owned(),
        })
    }
}

fn remote_login(system: &dyn System) -> Result<bool, String> {
    if system.is_privileged() {
        let answer = system
            .run(Path::new(SYSTEMSETUP), &["-getremotelogin"])
            .map_err(|error| error.to_string())
            .and_then(|output| {
                parse_remote_login(&output.stdout).map_err(|error| error.to_string())
            });
        match answer {
            Ok(on) => return Ok(on),
            Err(error) => tracing::debug!(%error, "systemsetup gave no answer; asking launchd"),
        }
    }
    let output = system
        .run(Path::new(LAUNCHCTL), &["print", "system/com.openssh.sshd"])
        .map_err(|error| format!("checking Remote Login failed: {error}"))?;
    parse_launchctl_print(&output)
        .map_err(|error| format!("{} ({error})", needs_root("checking Remote Login", system)))
}

pub(super) fn probe(system: &dyn System) -> Observed<SshServer> {
    let on = match remote_login(system) {
        Ok(on) => on,
        Err(reason) => return Observed::unknown(reason),
    };
    Observed::Observed(SshServer {
        state: if on {
            ServiceState::Running
        } else {
            ServiceState::Disabled
        },
        config: Some(effective_config(
            system,
            Path::new(SSHD),
            Path::new("/etc/ssh/sshd_config"),
            Path::new("/etc/ssh"),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_login_on_off_and_refusal() {
        assert!(parse_remote_login("Remote Login: On\n").unwrap());
        assert!(!parse_remote_login("Remote Login: Off\n").unwrap());
        let refused =
            parse_remote_login("You need administrator access to run this tool... exiting!\n");
        assert!(refused.is_err());
    }
}
