//! Probes: observe facts, judge nothing.
//!
//! One module per fact group, each with `mod.rs` choosing the probe by
//! [`System::os`] and `linux.rs` / `macos.rs` / `windows.rs` holding pure
//! parsers of command outputs and files. Because the choice is made at run
//! time from the seam, tests drive the macOS and Windows probes on Linux too.

pub mod disk_encryption;
pub mod firewall;
pub mod host;
pub mod os_updates;
mod powershell;
pub mod ssh_keys;
pub mod ssh_server;

use shipshape_core::checks::CheckId;
use shipshape_core::facts::{Facts, Observed};

use crate::system::System;

/// Windows PowerShell 5.1, present on every supported Windows.
pub(crate) const POWERSHELL: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe";

/// Observes every fact group `wanted` names; the others are unknown, "not collected".
pub fn collect(system: &dyn System, wanted: &[CheckId]) -> Facts {
    fn when<T>(
        wanted: &[CheckId],
        id: CheckId,
        probe: impl FnOnce() -> Observed<T>,
    ) -> Observed<T> {
        if wanted.contains(&id) {
            let started = std::time::Instant::now();
            let fact = probe();
            tracing::debug!(check = %id, elapsed_ms = started.elapsed().as_millis() as u64, "probed");
            fact
        } else {
            Observed::unknown("not collected in this run")
        }
    }
    Facts {
        host: host::probe(system),
        disk_encryption: when(wanted, CheckId::DiskEncryption, || {
            disk_encryption::probe(system)
        }),
        os_updates: when(wanted, CheckId::OsUpdates, || os_updates::probe(system)),
        firewall: when(wanted, CheckId::Firewall, || firewall::probe(system)),
        ssh_keys: when(wanted, CheckId::SshKeys, || ssh_keys::probe(system)),
        ssh_server: when(wanted, CheckId::SshServer, || ssh_server::probe(system)),
    }
}

/// The reason to give when a fact needs privileges the agent lacks.
pub fn needs_root(what: &str, system: &dyn System) -> String {
    if system.is_privileged() {
        format!("{what} was refused even with full privileges")
    } else {
        match system.os() {
            shipshape_core::facts::OsFamily::Windows => {
                format!(
                    "{what} needs an administrator: run `shipshape check` from an elevated terminal"
                )
            }
            _ => format!("{what} needs root: run `sudo shipshape check` for a full check"),
        }
    }
}

/// A command output that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not read the output of {tool}: {reason}")]
pub struct ParseError {
    pub tool: &'static str,
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(tool: &'static str, reason: impl Into<String>) -> Self {
        ParseError {
            tool,
            reason: reason.into(),
        }
    }
}
