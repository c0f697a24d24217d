use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Observed;

/// Whether the OS keeps itself patched. The OS version itself is in [`super::Host`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsUpdates {
    pub pending: Observed<PendingUpdates>,
    pub automatic: Observed<AutomaticUpdates>,
    /// When the newest update was installed, where the OS tells: Windows
    /// hotfix history. Judged by age where pending updates cannot be read.
    pub last_installed: Option<Timestamp>,
}

/// Updates the package manager (or OS updater) already knows about, read
/// from local metadata only: checking never touches the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingUpdates {
    /// `apt`, `dnf`, `zypper`, `pacman`, `softwareupdate`, `windows-update`.
    pub manager: String,
    pub total: u32,
    /// How many of `total` fix security issues (0 where the source cannot tell).
    pub security: u32,
    /// Names of the pending security updates, for evidence.
    pub security_packages: Vec<String>,
    /// Held back / kept back: they need a manual decision and are not counted in `total`.
    pub held_back: u32,
    /// When the metadata these numbers come from was last refreshed; stale
    /// metadata under-reports.
    pub metadata_updated: Option<Timestamp>,
}

/// Whether updates install on their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomaticUpdates {
    pub enabled: bool,
    /// What does it: "unattended-upgrades", "dnf-automatic", "SoftwareUpdate", "Windows Update (AUOptions=4)".
    pub mechanism: String,
    pub detail: Option<String>,
}
