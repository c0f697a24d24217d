//! Disk encryption: which volumes hold the system and users' data, and
//! whether each sits on a cipher (dm-crypt/LUKS or ZFS native encryption on
//! Linux, FileVault on macOS, BitLocker on Windows).

pub mod linux;
pub mod macos;
pub mod windows;

use shipshape_core::facts::{DiskEncryption, Observed, OsFamily, Volume, VolumeEncryption};

use crate::system::{CommandError, CommandOutput, System};

/// Observes this fact group on the machine behind `system`.
pub fn probe(system: &dyn System) -> Observed<DiskEncryption> {
    match system.os() {
        OsFamily::Linux => linux::probe(system),
        OsFamily::Macos => macos::probe(system),
        OsFamily::Windows => windows::probe(system),
    }
}

/// A command output this probe could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        ParseError(message.into())
    }
}

/// A volume whose state could not be observed, with the reason why.
fn unknown_volume(mount_point: &str, device: Option<String>, reason: impl Into<String>) -> Volume {
    Volume {
        mount_point: mount_point.to_owned(),
        device,
        encryption: VolumeEncryption::Unknown {
            reason: reason.into(),
        },
        method: None,
        detail: None,
    }
}

/// Why a finished command's output cannot be used: its exit code and the
/// first line it wrote to stderr.
fn failure(program: &str, output: &CommandOutput) -> String {
    let code = output.code.map_or_else(
        || "was killed".to_owned(),
        |code| format!("exited with code {code}"),
    );
    match output
        .stderr
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
    {
        Some(line) => format!("{program} {code}: {line}"),
        None => format!("{program} {code}"),
    }
}

/// Runs `program` found among `candidates`, or says why it could not be run.
fn run(
    system: &dyn System,
    candidates: &[&str],
    args: &[&str],
) -> Result<CommandOutput, CommandError> {
    let program = system
        .find_program(candidates)
        .ok_or_else(|| CommandError::NotFound(candidates[0].into()))?;
    system.run(&program, args)
}
