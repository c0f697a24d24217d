use std::collections::BTreeMap;
use std::ops::Range;

use jiff::Timestamp;
use toml::Spanned;

use super::parts::Parts;
use super::{Assessment, Check, CheckId, Common, check_policy};
use crate::facts::{AutomaticUpdates, Facts, Observed, OsFamily, PendingUpdates};
use crate::policy::Grace;
use crate::version::Version;

check_policy! {
    /// `[checks.os-updates]`
    OsUpdatesPolicy => CheckId::OsUpdates, {
        /// Minimum OS version by OS id (`macos`, `windows`, `ubuntu`, `debian`, `fedora`, …).
        #[serde(default)]
        min_version: BTreeMap<String, Spanned<String>>,
        /// How many pending security updates are tolerated.
        #[serde(default)]
        max_pending_security: u32,
        /// Updates must install on their own.
        #[serde(default = "yes")]
        require_automatic: bool,
        /// Package metadata older than this makes the pending count unknown.
        #[serde(default = "two_weeks")]
        stale_metadata_after: Option<Grace>,
        /// Where pending updates cannot be read (Windows), the newest installed
        /// update may be at most this old; Patch Tuesday is monthly, so 45 days
        /// means one missed month.
        #[serde(default = "forty_five_days")]
        max_update_age: Option<Grace>,
    }
}

fn yes() -> bool {
    true
}

fn two_weeks() -> Option<Grace> {
    Some(Grace(jiff::SignedDuration::from_hours(14 * 24)))
}

fn forty_five_days() -> Option<Grace> {
    Some(Grace(jiff::SignedDuration::from_hours(45 * 24)))
}

impl Check for OsUpdatesPolicy {
    fn id(&self) -> CheckId {
        Self::ID
    }

    fn common(&self) -> Common<'_> {
        self.common_settings()
    }

    fn validate(&self) -> Result<(), (Range<usize>, String)> {
        for (os, minimum) in &self.min_version {
            minimum
                .get_ref()
                .parse::<Version>()
                .map_err(|error| (minimum.span(), format!("min-version.{os}: {error}")))?;
        }
        Ok(())
    }

    fn assess(&self, facts: &Facts, now: Timestamp) -> Assessment {
        let family = facts.host.os.family;
        let mut parts = Parts::default();
        self.assess_version(facts, &mut parts);
        match &facts.os_updates {
            Observed::Unknown { reason } => {
                parts.unknown(format!("updates: {reason}"), reason.clone())
            }
            Observed::Observed(updates) => {
                match &updates.pending {
                    Observed::Unknown { reason } => self.assess_update_age(
                        reason,
                        updates.last_installed,
                        family,
                        now,
                        &mut parts,
                    ),
                    Observed::Observed(pending) => {
                        self.assess_pending(pending, family, now, &mut parts)
                    }
                }
                self.assess_automatic(&updates.automatic, facts, &mut parts);
            }
        }
        parts.finish()
    }
}

impl OsUpdatesPolicy {
    /// Judges the updates the package manager knows are pending.
    fn assess_pending(
        &self,
        pending: &PendingUpdates,
        family: OsFamily,
        now: Timestamp,
        parts: &mut Parts,
    ) {
        parts.evidence.push(format!(
            "{}: {} pending, {} security, {} held back",
            pending.manager, pending.total, pending.security, pending.held_back
        ));
        if pending.manager == "pacman" {
            parts.evidence.push(
                "pacman does not mark security updates, so none are counted as such".to_owned(),
            );
        }
        let stale = match (self.stale_metadata_after, pending.metadata_updated) {
            (Some(limit), Some(updated)) if now.duration_since(updated) > limit.0 => Some(updated),
            _ => None,
        };
        if let Some(updated) = stale {
            parts.unknown(
                format!(
                    "package lists last refreshed {}, too old to trust",
                    updated.strftime("%Y-%m-%d")
                ),
                refresh_command(&pending.manager),
            );
        } else if pending.security > self.max_pending_security {
            let names = if pending.security_packages.is_empty() {
                String::new()
            } else {
                format!(" ({})", abbreviate(&pending.security_packages, 5))
            };
            parts.fail(
                format!(
                    "{} security update{} pending{names}",
                    pending.security,
                    plural(pending.security)
                ),
                install_command(family, &pending.manager),
            );
        } else if pending.security == 0 {
            parts.pass("no security updates pending".to_owned());
        } else {
            parts.pass(format!(
                "{} security updates pending (allowed)",
                pending.security
            ));
        }
    }

    /// Where pending updates cannot be read (Windows), judges how long ago
    /// the newest update was installed instead.
    fn assess_update_age(
        &self,
        pending_unknown: &str,
        last_installed: Option<Timestamp>,
        family: OsFamily,
        now: Timestamp,
        parts: &mut Parts,
    ) {
        let (Some(limit), Some(installed)) = (self.max_update_age, last_installed) else {
            parts.unknown(
                format!("pending updates unknown: {pending_unknown}"),
                pending_unknown.to_owned(),
            );
            return;
        };
        parts
            .evidence
            .push(format!("pending updates unknown: {pending_unknown}"));
        let age = now.duration_since(installed);
        let date = installed.strftime("%Y-%m-%d");
        if age > limit.0 {
            let days = age.as_secs() / (24 * 3600);
            parts.fail(
                format!("no update installed since {date} ({days} days)"),
                install_command(family, "the system's updater"),
            );
        } else {
            parts.pass(format!("last update installed {date}"));
        }
    }

    /// Judges whether updates install on their own.
    fn assess_automatic(
        &self,
        automatic: &Observed<AutomaticUpdates>,
        facts: &Facts,
        parts: &mut Parts,
    ) {
        match automatic {
            Observed::Unknown { reason } if self.require_automatic => parts.unknown(
                format!("automatic updates unknown: {reason}"),
                reason.clone(),
            ),
            Observed::Unknown { .. } => {}
            Observed::Observed(automatic) => {
                parts.evidence.push(format!(
                    "automatic updates {} ({})",
                    if automatic.enabled { "on" } else { "off" },
                    automatic.mechanism
                ));
                if self.require_automatic && !automatic.enabled {
                    parts.fail(
                        "automatic updates are off".to_owned(),
                        automatic_command(facts.host.os.family, facts),
                    );
                }
            }
        }
    }

    fn assess_version(&self, facts: &Facts, parts: &mut Parts) {
        let os = &facts.host.os;
        parts.evidence.push(format!(
            "{} {}{}",
            os.name,
            os.version.as_deref().unwrap_or("(no version)"),
            os.build
                .as_deref()
                .map(|build| format!(" build {build}"))
                .unwrap_or_default()
        ));
        let Some(wanted) = self.min_version.get(&os.id) else {
            return;
        };
        // Compared as versions, shown as written: "24.04", not "24.4".
        let wanted = wanted.get_ref().as_str();
        let Ok(minimum) = wanted.parse::<Version>() else {
            return;
        };
        let shown = os.version.as_deref().unwrap_or_default();
        match os.version.as_deref().and_then(Version::lenient) {
            None => parts.unknown(
                format!(
                    "could not read the {} version to compare with the minimum {wanted}",
                    os.name
                ),
                "Run `shipshape facts` and send the output to IT.".to_owned(),
            ),
            Some(version) if version < minimum => parts.fail(
                format!("{} {shown} is older than the minimum {wanted}", os.name),
                upgrade_command(os.family, &os.id, wanted),
            ),
            Some(_) => parts.pass(format!("{} {shown} meets the minimum {wanted}", os.name)),
        }
    }
}

fn plural(count: u32) -> &'static str {
    if count == 1 { "" } else { "s" }
}

fn abbreviate(names: &[String], most: usize) -> String {
    if names.len() <= most {
        names.join(", ")
    } else {
        format!(
            "{}, and {} more",
            names[..most].join(", "),
            names.len() - most
        )
    }
}

fn refresh_command(manager: &str) -> String {
    match manager {
        "apt" => "Refresh the package lists: `sudo apt update`.".to_owned(),
        "dnf" => "Refresh the metadata: `sudo dnf makecache`.".to_owned(),
        "zypper" => "Refresh the repositories: `sudo zypper refresh`.".to_owned(),
        "pacman" => "Refresh the package databases: `sudo pacman -Sy` (then upgrade with `sudo pacman -Su`).".to_owned(),
        other => format!("Refresh {other}'s update metadata, then run `shipshape check` again."),
    }
}

fn install_command(family: OsFamily, manager: &str) -> String {
    match (family, manager) {
        (OsFamily::Macos, _) => "Install updates: System Settings → General → Software Update \
             (or `sudo softwareupdate --install --recommended --restart`)."
            .to_owned(),
        (OsFamily::Windows, _) => {
            "Install updates: Settings → Windows Update → Check for updates, then restart."
                .to_owned()
        }
        (OsFamily::Linux, "apt") => {
            "Install them: `sudo apt update && sudo apt upgrade`, then reboot if asked.".to_owned()
        }
        (OsFamily::Linux, "dnf") => {
            "Install them: `sudo dnf upgrade --security`, then reboot if the kernel changed."
                .to_owned()
        }
        (OsFamily::Linux, "zypper") => {
            "Install them: `sudo zypper patch --category security`.".to_owned()
        }
        (OsFamily::Linux, "pacman") => {
            "Install them: `sudo pacman -Syu`, then reboot if the kernel changed.".to_owned()
        }
        (OsFamily::Linux, other) => {
            format!("Install the pending updates with {other}, then reboot if asked.")
        }
    }
}

fn upgrade_command(family: OsFamily, id: &str, minimum: &str) -> String {
    match (family, id) {
        (OsFamily::Macos, _) => format!(
            "Upgrade macOS to {minimum} or later: System Settings → General → Software Update."
        ),
        (OsFamily::Windows, _) => format!(
            "Upgrade Windows to build {minimum} or later: Settings → Windows Update (feature updates)."
        ),
        (OsFamily::Linux, "ubuntu") => {
            format!("Upgrade to Ubuntu {minimum} or later: `sudo do-release-upgrade`.")
        }
        (OsFamily::Linux, "fedora") => format!(
            "Upgrade to Fedora {minimum} or later: `sudo dnf system-upgrade download --releasever={minimum}`, then `sudo dnf system-upgrade reboot`."
        ),
        (OsFamily::Linux, _) => format!(
            "Upgrade the distribution to {minimum} or later following its release notes; ask IT if unsure."
        ),
    }
}

fn automatic_command(family: OsFamily, facts: &Facts) -> String {
    match family {
        OsFamily::Macos => "Turn on automatic updates: System Settings → General → Software Update → Automatic Updates \
             → turn on every switch."
            .to_owned(),
        OsFamily::Windows => "Turn on automatic updates: Settings → Windows Update → Advanced options; if a setting says \
             it is managed by your organisation, ask IT."
            .to_owned(),
        OsFamily::Linux => match facts.host.os.id.as_str() {
            "fedora" | "rhel" | "centos" | "rocky" | "almalinux" => {
                "Turn on automatic updates: `sudo dnf install dnf-automatic && sudo systemctl enable --now dnf-automatic-install.timer`."
                    .to_owned()
            }
            _ => "Turn on automatic security updates: `sudo apt install unattended-upgrades && sudo dpkg-reconfigure -plow unattended-upgrades`."
                .to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use jiff::civil::date;

    use crate::facts::*;
    use crate::{FailingSince, Finding, Policy, Status, evaluate};

    const NOW: &str = "2026-11-24T12:00:00Z";
    const PENDING_UNKNOWN: &str = "Windows keeps no list of pending updates";

    fn windows(last_installed: Option<&str>) -> Facts {
        Facts {
            host: Host {
                hostname: "desktop-7".into(),
                os: OsInfo {
                    family: OsFamily::Windows,
                    id: "windows".into(),
                    name: "Windows 11 Pro".into(),
                    version: Some("10.0.22631".into()),
                    build: Some("22631".into()),
                },
                kernel: None,
                arch: "x86_64".into(),
                hardware_id: None,
            },
            disk_encryption: Observed::unknown("not collected"),
            os_updates: Observed::Observed(OsUpdates {
                pending: Observed::unknown(PENDING_UNKNOWN),
                automatic: Observed::Observed(AutomaticUpdates {
                    enabled: true,
                    mechanism: "Windows Update".into(),
                    detail: None,
                }),
                last_installed: last_installed.map(|at| at.parse().expect("timestamp")),
            }),
            firewall: Observed::unknown("not collected"),
            ssh_keys: Observed::unknown("not collected"),
            ssh_server: Observed::unknown("not collected"),
        }
    }

    fn judge(settings: &str, facts: &Facts) -> Finding {
        let policy = Policy::parse(
            &format!("[checks.os-updates]\nseverity = \"high\"\n{settings}"),
            "test.toml",
            date(2026, 11, 24),
        )
        .expect("valid policy");
        let now: Timestamp = NOW.parse().expect("timestamp");
        let mut findings = evaluate(&policy, facts, now, &FailingSince::new());
        assert_eq!(findings.len(), 1);
        findings.remove(0)
    }

    #[test]
    fn an_old_last_update_fails_and_leaks() {
        let finding = judge("", &windows(Some("2026-09-01T00:00:00Z")));
        assert_eq!(finding.status, Status::Fail);
        assert!(finding.leak);
        assert_eq!(
            finding.summary,
            "no update installed since 2026-09-01 (84 days)"
        );
        assert!(
            finding
                .remediation
                .as_deref()
                .is_some_and(|fix| fix.contains("Settings → Windows Update")),
            "{:?}",
            finding.remediation
        );
    }

    #[test]
    fn a_recent_last_update_passes_and_keeps_the_pending_reason_as_evidence() {
        let finding = judge("", &windows(Some("2026-11-12T00:00:00Z")));
        assert_eq!(finding.status, Status::Pass);
        assert!(!finding.leak);
        assert_eq!(finding.summary, "last update installed 2026-11-12");
        assert!(
            finding
                .evidence
                .iter()
                .any(|line| line.contains(PENDING_UNKNOWN)),
            "{:?}",
            finding.evidence
        );
    }

    #[test]
    fn max_update_age_is_the_policys_to_set() {
        let facts = windows(Some("2026-10-15T00:00:00Z"));
        assert_eq!(judge("", &facts).status, Status::Pass, "40 days < 45d");
        let strict = judge("max-update-age = \"35d\"\n", &facts);
        assert_eq!(strict.status, Status::Fail);
        assert_eq!(
            strict.summary,
            "no update installed since 2026-10-15 (40 days)"
        );
    }

    #[test]
    fn with_neither_pending_nor_last_installed_known_the_check_stays_unknown() {
        let finding = judge("", &windows(None));
        assert_eq!(finding.status, Status::Unknown);
        assert!(finding.leak, "unknown leaks under the default treatment");
        assert!(
            finding.summary.contains(PENDING_UNKNOWN),
            "{}",
            finding.summary
        );
    }
}
