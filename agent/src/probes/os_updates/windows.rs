use std::path::Path;

use shipshape_core::facts::{AutomaticUpdates, Observed, OsUpdates};

use crate::probes::host::windows::{REG, SYSTEMINFO};
use crate::probes::host::{parse_reg_query, parse_systeminfo};
use crate::system::System;

const AU_POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU";

/// Judges the Windows Update group policy (`reg query` of the `…\WindowsUpdate\AU`
/// key): `NoAutoUpdate = 1` turns updates off; `AUOptions` 4 (download and
/// install on a schedule) and 5 (local admin chooses; Windows' choice is
/// automatic) keep them on; 2, 3 and 7 wait for a person to install; no
/// `AUOptions` leaves Windows' default, automatic.
pub fn automatic_from_policy(text: &str) -> AutomaticUpdates {
    let values = parse_reg_query(text);
    let dword = |name: &str| {
        values
            .iter()
            .find(|value| value.name.eq_ignore_ascii_case(name))
            .and_then(|value| value.dword())
    };
    let (enabled, detail) = match (dword("NoAutoUpdate"), dword("AUOptions")) {
        (Some(1), _) => (
            false,
            "policy NoAutoUpdate = 1 turns automatic updates off".to_owned(),
        ),
        (_, Some(4)) => (
            true,
            "policy AUOptions = 4: download and install on a schedule".to_owned(),
        ),
        (_, Some(5)) => (
            true,
            "policy AUOptions = 5: the local administrator chooses".to_owned(),
        ),
        (_, Some(option)) => (
            false,
            format!("policy AUOptions = {option}: updates wait for someone to install them"),
        ),
        (_, None) => (
            true,
            "the policy sets no AUOptions, so Windows installs updates automatically".to_owned(),
        ),
    };
    let option = dword("AUOptions")
        .map(|option| format!(" (AUOptions={option})"))
        .unwrap_or_default();
    AutomaticUpdates {
        enabled,
        mechanism: format!("Windows Update{option}"),
        detail: Some(detail),
    }
}

pub(super) fn probe(system: &dyn System) -> OsUpdates {
    let automatic = match system.run(Path::new(REG), &["query", AU_POLICY_KEY]) {
        Ok(output) if output.success() => Observed::Observed(automatic_from_policy(&output.stdout)),
        // reg exits 1 with "unable to find the specified registry key" when no policy exists.
        Ok(output) if output.code == Some(1) && output.stderr.contains("unable to find") => {
            Observed::Observed(AutomaticUpdates {
                enabled: true,
                mechanism: "Windows Update".to_owned(),
                detail: Some("no Windows Update policy is set, so Windows installs updates automatically (its default)".to_owned()),
            })
        }
        Ok(output) => Observed::unknown(format!("reg query {AU_POLICY_KEY} failed: {}", output.stderr.trim())),
        Err(error) => Observed::unknown(error.to_string()),
    };
    let automatic = match automatic {
        Observed::Observed(mut automatic) => {
            if let Some(hotfixes) = last_hotfix(system) {
                automatic.detail = Some(format!(
                    "{}; {hotfixes}",
                    automatic.detail.unwrap_or_default()
                ));
            }
            Observed::Observed(automatic)
        }
        unknown => unknown,
    };
    OsUpdates {
        pending: Observed::unknown(
            "Windows keeps no list of pending updates that can be read without asking Windows Update; \
             open Settings → Windows Update to see them",
        ),
        automatic,
    }
}

/// Evidence of patching: the last hotfix systeminfo lists.
fn last_hotfix(system: &dyn System) -> Option<String> {
    let output = system.run(Path::new(SYSTEMINFO), &[]).ok()?;
    let info = parse_systeminfo(&output.stdout).ok()?;
    let last = info.hotfixes.last()?;
    Some(format!(
        "{} hotfixes listed by systeminfo, the last {last}",
        info.hotfixes.len()
    ))
}
