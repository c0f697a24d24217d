use std::path::Path;

use jiff::Timestamp;
use shipshape_core::facts::{AutomaticUpdates, Observed, OsUpdates, PendingUpdates};

use super::ParseError;
use crate::probes::host::macos::sw_vers;
use crate::system::System;

const SOFTWAREUPDATE: &str = "/usr/sbin/softwareupdate";
const PLUTIL: &str = "/usr/bin/plutil";
const PREFS: &str = "/Library/Preferences/com.apple.SoftwareUpdate.plist";
/// A configuration profile (MDM) overrides the local choice.
const MANAGED_PREFS: &str = "/Library/Managed Preferences/com.apple.SoftwareUpdate.plist";

/// One update `softwareupdate --list` offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacUpdate {
    pub label: String,
    pub title: String,
    pub version: Option<String>,
    pub recommended: bool,
    pub restart: bool,
}

/// Reads `softwareupdate --list` (stdout and stderr together: "No new software
/// available." goes to stderr). A failed scan is an error, never "no updates".
pub fn parse_softwareupdate_list(text: &str) -> Result<Vec<MacUpdate>, ParseError> {
    if let Some(line) = text
        .lines()
        .find(|line| line.contains("finished with error") || line.starts_with("Error"))
    {
        let line: String = line.chars().take(160).collect();
        return Err(ParseError::new(
            "softwareupdate",
            format!("the update scan failed: {line}"),
        ));
    }
    let mut updates: Vec<MacUpdate> = Vec::new();
    for line in text.lines() {
        if let Some(label) = line.trim().strip_prefix("* Label:") {
            updates.push(MacUpdate {
                label: label.trim().to_owned(),
                title: label.trim().to_owned(),
                version: None,
                recommended: false,
                restart: false,
            });
        } else if line.trim_start().starts_with("Title:")
            && let Some(update) = updates.last_mut()
        {
            for field in line.split(',') {
                let Some((key, value)) = field.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                match key.trim() {
                    "Title" => update.title = value.to_owned(),
                    "Version" => update.version = Some(value.to_owned()),
                    "Recommended" => update.recommended = value.eq_ignore_ascii_case("YES"),
                    "Action" => update.restart = value.eq_ignore_ascii_case("restart"),
                    _ => {}
                }
            }
        }
    }
    if updates.is_empty() && !text.contains("No new software available") {
        return Err(ParseError::new(
            "softwareupdate",
            "neither updates nor \"No new software available.\"",
        ));
    }
    Ok(updates)
}

/// The keys of com.apple.SoftwareUpdate that decide automatic updates; `None`
/// when absent, which macOS treats as on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SoftwareUpdatePrefs {
    /// "Check for updates".
    pub automatic_check: Option<bool>,
    /// "Download new updates when available".
    pub automatic_download: Option<bool>,
    /// "Install macOS updates".
    pub install_macos_updates: Option<bool>,
    /// "Install Security Responses and system files".
    pub critical_update_install: Option<bool>,
    /// The newest of the Last*SuccessfulDate keys: when the update catalog was last read.
    pub last_successful_scan: Option<Timestamp>,
}

/// Reads `plutil -p` of the SoftwareUpdate preferences (`"Key" => value` lines;
/// a truncated output is fine).
pub fn parse_softwareupdate_prefs(text: &str) -> SoftwareUpdatePrefs {
    let mut prefs = SoftwareUpdatePrefs::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once("=>") else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        let value = value.trim();
        let flag = || match value {
            "1" | "true" | "YES" => Some(true),
            "0" | "false" | "NO" => Some(false),
            _ => None,
        };
        match key {
            "AutomaticCheckEnabled" => prefs.automatic_check = flag(),
            "AutomaticDownload" => prefs.automatic_download = flag(),
            "AutomaticallyInstallMacOSUpdates" => prefs.install_macos_updates = flag(),
            "CriticalUpdateInstall" => prefs.critical_update_install = flag(),
            "LastSuccessfulDate" | "LastFullSuccessfulDate" | "LastBackgroundSuccessfulDate" => {
                let at = jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S %z", value)
                    .and_then(|parsed| parsed.to_timestamp())
                    .ok();
                prefs.last_successful_scan = prefs.last_successful_scan.max(at);
            }
            _ => {}
        }
    }
    prefs
}

impl SoftwareUpdatePrefs {
    /// Later (managed) settings win where they are set.
    fn overridden_by(self, managed: SoftwareUpdatePrefs) -> Self {
        SoftwareUpdatePrefs {
            automatic_check: managed.automatic_check.or(self.automatic_check),
            automatic_download: managed.automatic_download.or(self.automatic_download),
            install_macos_updates: managed.install_macos_updates.or(self.install_macos_updates),
            critical_update_install: managed
                .critical_update_install
                .or(self.critical_update_install),
            last_successful_scan: self.last_successful_scan.max(managed.last_successful_scan),
        }
    }

    /// Automatic updates count as on only when all four switches are on (absent
    /// keys are macOS's default, on): checking and downloading alone leave
    /// the fixes uninstalled, and most macOS security fixes ship as macOS
    /// updates, so "Install macOS updates" off means the OS is not patched on its own.
    fn automatic(&self, detail_prefix: &str) -> AutomaticUpdates {
        let switches = [
            (
                "Check for updates",
                "AutomaticCheckEnabled",
                self.automatic_check,
            ),
            (
                "Download new updates",
                "AutomaticDownload",
                self.automatic_download,
            ),
            (
                "Install macOS updates",
                "AutomaticallyInstallMacOSUpdates",
                self.install_macos_updates,
            ),
            (
                "Install Security Responses and system files",
                "CriticalUpdateInstall",
                self.critical_update_install,
            ),
        ];
        let off: Vec<String> = switches
            .iter()
            .filter(|(_, _, value)| *value == Some(false))
            .map(|(label, key, _)| format!("{label} ({key} = 0)"))
            .collect();
        let detail = if off.is_empty() {
            format!(
                "{detail_prefix}: every automatic-update switch is on (absent keys are on by default)"
            )
        } else {
            format!("{detail_prefix}: off: {}", off.join(", "))
        };
        AutomaticUpdates {
            enabled: off.is_empty(),
            mechanism: "SoftwareUpdate".to_owned(),
            detail: Some(detail),
        }
    }
}

fn read_prefs(system: &dyn System, path: &str) -> Result<Option<SoftwareUpdatePrefs>, String> {
    if system.symlink_metadata(Path::new(path)).is_err() {
        return Ok(None);
    }
    let output = system
        .run(Path::new(PLUTIL), &["-p", path])
        .map_err(|error| error.to_string())?;
    if !output.success() {
        return Err(format!(
            "plutil could not read {path}: {}",
            output.stderr.trim()
        ));
    }
    Ok(Some(parse_softwareupdate_prefs(&output.stdout)))
}

/// The major release a version belongs to: "13" for 13.6, "10.15" for 10.15.7.
fn major(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some("10"), Some(minor)) => format!("10.{minor}"),
        (Some(first), _) => first.to_owned(),
        (None, _) => String::new(),
    }
}

pub(super) fn probe(system: &dyn System) -> OsUpdates {
    let prefs = read_prefs(system, PREFS).and_then(|local| {
        let managed = read_prefs(system, MANAGED_PREFS)?;
        Ok((local, managed))
    });
    let automatic = match &prefs {
        Ok((None, None)) => Observed::Observed(
            SoftwareUpdatePrefs::default()
                .automatic("no SoftwareUpdate preferences yet, so macOS defaults apply"),
        ),
        Ok((local, managed)) => {
            let source = if managed.is_some() {
                "managed by a profile"
            } else {
                PREFS
            };
            let merged = local
                .clone()
                .unwrap_or_default()
                .overridden_by(managed.clone().unwrap_or_default());
            Observed::Observed(merged.automatic(source))
        }
        Err(reason) => Observed::unknown(reason.clone()),
    };
    let last_scan = prefs.ok().and_then(|(local, managed)| {
        let local = local.and_then(|prefs| prefs.last_successful_scan);
        local.max(managed.and_then(|prefs| prefs.last_successful_scan))
    });
    OsUpdates {
        pending: pending(system, last_scan),
        automatic,
        last_installed: None,
    }
}

/// Every recommended update of macOS itself (same major release) or named a
/// security update (Rapid/Background Security Responses) counts as security:
/// Apple ships its security fixes in those and does not label them otherwise.
/// An upgrade to a newer major release is neither pending nor security: it is
/// the minimum-version policy's business.
fn pending(system: &dyn System, last_scan: Option<Timestamp>) -> Observed<PendingUpdates> {
    // --no-scan lists what the last background scan found, without a network request.
    let output = match system.run(Path::new(SOFTWAREUPDATE), &["--list", "--no-scan"]) {
        Ok(output) => output,
        Err(error) => return Observed::unknown(error.to_string()),
    };
    let text = format!("{}\n{}", output.stdout, output.stderr);
    let updates = match parse_softwareupdate_list(&text) {
        Ok(updates) => updates,
        Err(error) => return Observed::unknown(error.to_string()),
    };
    let current_major = sw_vers(system)
        .ok()
        .map(|sw_vers| major(&sw_vers.product_version));
    let is_macos = |update: &MacUpdate| {
        update.title.starts_with("macOS") || update.title.starts_with("Mac OS X")
    };
    let is_upgrade = |update: &MacUpdate| {
        is_macos(update)
            && match (&current_major, &update.version) {
                (Some(current), Some(version)) => &major(version) != current,
                _ => false,
            }
    };
    let pending: Vec<&MacUpdate> = updates
        .iter()
        .filter(|update| !is_upgrade(update))
        .collect();
    let security_packages: Vec<String> = pending
        .iter()
        .filter(|update| {
            update.recommended && (is_macos(update) || update.title.contains("Security"))
        })
        .map(|update| update.label.clone())
        .collect();
    Observed::Observed(PendingUpdates {
        manager: "softwareupdate".to_owned(),
        total: u32::try_from(pending.len()).unwrap_or(u32::MAX),
        security: u32::try_from(security_packages.len()).unwrap_or(u32::MAX),
        security_packages,
        held_back: 0,
        metadata_updated: last_scan,
    })
}
