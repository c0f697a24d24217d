//! Windows: the OpenSSH server is the `sshd` service. `Get-Service` tells
//! whether it exists and runs; its config is `C:\ProgramData\ssh\sshd_config`.

use std::path::Path;

use shipshape_core::facts::{Observed, ServiceState, SshServer};

use super::{ParseError, effective_config};
use crate::probes::POWERSHELL;
use crate::system::System;

const SSHD: &str = r"C:\Windows\System32\OpenSSH\sshd.exe";
const CONFIG_DIR: &str = r"C:\ProgramData\ssh";
const CONFIG_FILE: &str = r"C:\ProgramData\ssh\sshd_config";

/// Parses the `Get-Service sshd` table: `None` when no such service exists,
/// else whether it runs (a start or resume in progress counts as running).
pub fn parse_get_service(stdout: &str, stderr: &str) -> Result<Option<ServiceState>, ParseError> {
    if stderr.contains("Cannot find any service") {
        return Ok(None);
    }
    let row = stdout
        .lines()
        .map(str::split_whitespace)
        .find_map(|mut words| {
            let status = words.next()?;
            (words.next()?.eq_ignore_ascii_case("sshd")).then_some(status)
        });
    match row {
        Some("Running" | "StartPending" | "ContinuePending") => Ok(Some(ServiceState::Running)),
        Some("Stopped" | "StopPending" | "Paused" | "PausePending") => {
            Ok(Some(ServiceState::Disabled))
        }
        _ => Err(ParseError::Unrecognized {
            tool: "Get-Service sshd",
            text: format!("{stdout}{stderr}").trim().to_owned(),
        }),
    }
}

pub(super) fn probe(system: &dyn System) -> Observed<SshServer> {
    let output = match system.run(
        Path::new(POWERSHELL),
        &[
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            "Get-Service sshd",
        ],
    ) {
        Ok(output) => output,
        Err(error) => {
            return Observed::unknown(format!("asking for the sshd service failed: {error}"));
        }
    };
    match parse_get_service(&output.stdout, &output.stderr) {
        Ok(None) => Observed::Observed(SshServer {
            state: ServiceState::NotInstalled,
            config: None,
        }),
        Ok(Some(state)) => Observed::Observed(SshServer {
            state,
            config: Some(effective_config(
                system,
                Path::new(SSHD),
                Path::new(CONFIG_FILE),
                Path::new(CONFIG_DIR),
            )),
        }),
        Err(error) => Observed::unknown(error.to_string()),
    }
}
