use jiff::Timestamp;

use super::parts::Parts;
use super::{Assessment, Check, CheckId, Common, check_policy, observed};
use crate::facts::{Facts, Observed, OsFamily, ServiceState};

check_policy! {
    /// `[checks.ssh-server]`
    SshServerPolicy => CheckId::SshServer, {
        /// An SSH server may run at all.
        #[serde(default = "yes")]
        allow_running: bool,
        /// Password logins (PasswordAuthentication, or keyboard-interactive through PAM) are allowed.
        #[serde(default)]
        allow_password_authentication: bool,
        /// Acceptable `PermitRootLogin` values.
        #[serde(default = "default_root_login")]
        permit_root_login: Vec<String>,
    }
}

fn yes() -> bool {
    true
}

fn default_root_login() -> Vec<String> {
    [
        "no",
        "prohibit-password",
        "without-password",
        "forced-commands-only",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl Check for SshServerPolicy {
    fn id(&self) -> CheckId {
        Self::ID
    }

    fn common(&self) -> Common<'_> {
        self.common_settings()
    }

    fn assess(&self, facts: &Facts, _now: Timestamp) -> Assessment {
        let server = match observed(&facts.ssh_server, "whether an SSH server runs") {
            Ok(server) => server,
            Err(unknown) => return unknown,
        };
        let family = facts.host.os.family;
        match server.state {
            ServiceState::NotInstalled => return Assessment::pass("no SSH server installed"),
            ServiceState::Disabled => return Assessment::pass("SSH server installed but off"),
            ServiceState::Running => {}
        }
        if !self.allow_running {
            return Assessment::fail("an SSH server is running", turn_off(family));
        }
        let config = match &server.config {
            Some(Observed::Observed(config)) => config,
            Some(Observed::Unknown { reason }) => {
                return Assessment::unknown(
                    format!("SSH server runs; its settings are unknown: {reason}"),
                    reason.clone(),
                );
            }
            None => {
                return Assessment::unknown(
                    "SSH server runs; its settings were not read",
                    "Run `sudo shipshape check` for a full check.",
                );
            }
        };
        let mut parts = Parts::default();
        parts.evidence.push(format!(
            "from {}: PasswordAuthentication {}, KbdInteractiveAuthentication {}, UsePAM {}, PermitEmptyPasswords {}, PermitRootLogin {}",
            config.source,
            yes_no(config.password_authentication),
            yes_no(config.kbd_interactive_authentication),
            yes_no(config.use_pam),
            yes_no(config.permit_empty_passwords),
            config.permit_root_login
        ));
        let password_via_pam = config.kbd_interactive_authentication && config.use_pam;
        if !self.allow_password_authentication
            && (config.password_authentication || password_via_pam)
        {
            let how = if config.password_authentication {
                "PasswordAuthentication yes"
            } else {
                "KbdInteractiveAuthentication yes with UsePAM yes"
            };
            parts.fail(
                format!("SSH server accepts passwords ({how})"),
                set_option(
                    family,
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no",
                ),
            );
        }
        if config.permit_empty_passwords && (config.password_authentication || password_via_pam) {
            parts.fail(
                "SSH server accepts empty passwords".to_owned(),
                set_option(family, "PermitEmptyPasswords no"),
            );
        }
        if !self
            .permit_root_login
            .iter()
            .any(|allowed| allowed == &config.permit_root_login)
        {
            parts.fail(
                format!(
                    "SSH server lets root log in (PermitRootLogin {})",
                    config.permit_root_login
                ),
                set_option(family, "PermitRootLogin prohibit-password"),
            );
        }
        if parts.evidence.len() == 1 {
            parts.pass("SSH server runs with key-only logins".to_owned());
        }
        parts.finish()
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn turn_off(family: OsFamily) -> String {
    match family {
        OsFamily::Macos => {
            "Turn off Remote Login: System Settings → General → Sharing → Remote Login \
             (or `sudo systemsetup -setremotelogin off`)."
                .to_owned()
        }
        OsFamily::Windows => {
            "Stop the OpenSSH server: `Stop-Service sshd; Set-Service sshd -StartupType Disabled` \
             in an administrator PowerShell."
                .to_owned()
        }
        OsFamily::Linux => {
            "Stop the SSH server: `sudo systemctl disable --now ssh` (Fedora/RHEL: `sshd`)."
                .to_owned()
        }
    }
}

fn set_option(family: OsFamily, lines: &str) -> String {
    let (file, reload) = match family {
        OsFamily::Macos => (
            "/etc/ssh/sshd_config.d/100-shipshape.conf",
            "then turn Remote Login off and on again in System Settings → General → Sharing",
        ),
        OsFamily::Windows => (
            "C:\\ProgramData\\ssh\\sshd_config (near the top)",
            "then `Restart-Service sshd` as administrator",
        ),
        OsFamily::Linux => (
            "/etc/ssh/sshd_config.d/00-shipshape.conf",
            "then `sudo sshd -t && sudo systemctl reload ssh` (Fedora/RHEL: `sshd`)",
        ),
    };
    let lines = lines.replace('\n', "` and `");
    format!("Put `{lines}` in {file} (sshd takes the first value it reads), {reload}.")
}
