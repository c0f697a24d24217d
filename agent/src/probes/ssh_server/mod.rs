//! ssh-server: whether an SSH server accepts connections, and how it lets people in.

mod config;
mod linux;
mod macos;
mod windows;

use std::path::Path;

use shipshape_core::facts::{Observed, OsFamily, SshServer, SshdConfig};

use crate::system::System;

pub use config::{parse_sshd_t, read_sshd_config};
pub use macos::{parse_launchctl_print, parse_remote_login};
pub use windows::parse_get_service;

/// Output or config text that does not say what sshd does.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("`sshd -T` printed no `{0}` line")]
    Missing(&'static str),
    #[error("{place}: `{value}` is not a valid value for {keyword}")]
    BadValue {
        place: String,
        keyword: String,
        value: String,
    },
    #[error("{tool} printed something unexpected: {text:?}")]
    Unrecognized { tool: &'static str, text: String },
}

/// Observes the SSH server of the machine behind `system`.
pub fn probe(system: &dyn System) -> Observed<SshServer> {
    match system.os() {
        OsFamily::Linux => linux::probe(system),
        OsFamily::Macos => macos::probe(system),
        OsFamily::Windows => windows::probe(system),
    }
}

/// sshd's effective settings: `sshd -T` when privileged (it must read the
/// host keys), else, or when it fails, the config files.
fn effective_config(
    system: &dyn System,
    sshd: &Path,
    main: &Path,
    config_dir: &Path,
) -> Observed<SshdConfig> {
    if system.is_privileged() {
        match system.run(sshd, &["-T"]) {
            Ok(output) if output.success() => match parse_sshd_t(&output.stdout) {
                Ok(config) => return Observed::Observed(config),
                Err(error) => {
                    tracing::debug!(%error, "sshd -T not understood; reading the config files")
                }
            },
            Ok(output) => {
                tracing::debug!(stderr = %output.stderr.trim(), "sshd -T failed; reading the config files")
            }
            Err(error) => tracing::debug!(%error, "sshd -T did not run; reading the config files"),
        }
    }
    read_sshd_config(system, main, config_dir)
}
