//! The check catalog: one module per check, each holding its policy section
//! and the pure function that judges its facts.
//!
//! To add a check: a fact group in [`crate::facts`], a module here with a
//! `check_policy!` struct implementing [`Check`], an entry in [`CheckId`],
//! [`CATALOG`] and [`Checks`], a probe in the agent, and its keys in
//! `policies/default.toml`.

mod disk_encryption;
mod firewall;
mod os_updates;
mod parts;
mod ssh_keys;
mod ssh_server;

pub use disk_encryption::DiskEncryptionPolicy;
pub use firewall::FirewallPolicy;
pub use os_updates::OsUpdatesPolicy;
pub use ssh_keys::SshKeysPolicy;
pub use ssh_server::SshServerPolicy;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::facts::{Facts, Observed, OsFamily};
use crate::finding::Severity;
use crate::policy::{Grace, UnknownTreatment};

/// Identifies a check; its string form is the policy key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckId {
    DiskEncryption,
    OsUpdates,
    Firewall,
    SshKeys,
    SshServer,
}

/// A check as people see it.
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    pub id: CheckId,
    /// Short name for one-line output.
    pub title: &'static str,
    /// What the check makes sure of.
    pub description: &'static str,
}

/// Every check, in the order reports show them.
pub const CATALOG: [CheckInfo; 5] = [
    CheckInfo {
        id: CheckId::DiskEncryption,
        title: "Disk encryption",
        description: "The disks holding the system and users' files are encrypted (FileVault, BitLocker, LUKS, ZFS native encryption).",
    },
    CheckInfo {
        id: CheckId::OsUpdates,
        title: "OS updates",
        description: "The OS is at least the minimum version, security updates are not left pending, and updates install automatically.",
    },
    CheckInfo {
        id: CheckId::Firewall,
        title: "Firewall",
        description: "A host firewall is on and blocks unsolicited inbound traffic.",
    },
    CheckInfo {
        id: CheckId::SshKeys,
        title: "SSH keys",
        description: "Private SSH keys are passphrase-protected or hardware-backed, use strong algorithms and sizes, and only their owner can read them.",
    },
    CheckInfo {
        id: CheckId::SshServer,
        title: "SSH server",
        description: "An SSH server, if one runs, refuses password logins and root logins with a password.",
    },
];

impl CheckId {
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckId::DiskEncryption => "disk-encryption",
            CheckId::OsUpdates => "os-updates",
            CheckId::Firewall => "firewall",
            CheckId::SshKeys => "ssh-keys",
            CheckId::SshServer => "ssh-server",
        }
    }

    /// The catalog entry of this check.
    pub fn info(self) -> &'static CheckInfo {
        CATALOG
            .iter()
            .find(|info| info.id == self)
            .expect("every CheckId is in CATALOG")
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CATALOG
            .iter()
            .map(|info| info.id)
            .find(|id| id.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = CATALOG.iter().map(|info| info.id.as_str()).collect();
                format!(
                    "unknown check `{text}`, expected one of: {}",
                    known.join(", ")
                )
            })
    }
}

/// What a check concluded from the facts alone, before the policy's
/// platforms, grace, exceptions and unknown treatment are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub outcome: Outcome,
    pub summary: String,
    pub evidence: Vec<String>,
    /// The fix, written for the machine's OS; expected whenever the outcome is not pass.
    pub remediation: Option<String>,
}

/// The raw outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Unknown,
}

impl Assessment {
    pub fn pass(summary: impl Into<String>) -> Self {
        Self::new(Outcome::Pass, summary, None)
    }

    pub fn fail(summary: impl Into<String>, remediation: impl Into<String>) -> Self {
        Self::new(Outcome::Fail, summary, Some(remediation.into()))
    }

    pub fn unknown(summary: impl Into<String>, remediation: impl Into<String>) -> Self {
        Self::new(Outcome::Unknown, summary, Some(remediation.into()))
    }

    fn new(outcome: Outcome, summary: impl Into<String>, remediation: Option<String>) -> Self {
        Assessment {
            outcome,
            summary: summary.into(),
            evidence: Vec::new(),
            remediation,
        }
    }

    pub fn with_evidence(mut self, evidence: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(evidence);
        self
    }
}

/// The settings every check table has.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    pub severity: Severity,
    /// `None`: every platform.
    pub platforms: Option<&'a [OsFamily]>,
    pub grace: Option<Grace>,
    /// `None`: the policy-wide treatment.
    pub unknown: Option<UnknownTreatment>,
}

/// One check's policy section and its judgement of the facts.
pub trait Check {
    fn id(&self) -> CheckId;
    fn common(&self) -> Common<'_>;
    /// Judges the facts. Pure: same facts, same assessment.
    fn assess(&self, facts: &Facts, now: jiff::Timestamp) -> Assessment;
    /// Check-specific validation beyond what the types enforce, with the span of the bad value.
    fn validate(&self) -> Result<(), (Range<usize>, String)> {
        Ok(())
    }
}

/// Declares a check's policy table: the common keys plus its own, all kebab-case,
/// unknown keys rejected.
macro_rules! check_policy {
    ($(#[$meta:meta])* $name:ident => $id:expr, { $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        pub struct $name {
            pub severity: $crate::finding::Severity,
            #[serde(default)]
            pub platforms: Option<Vec<$crate::facts::OsFamily>>,
            #[serde(default)]
            pub grace: Option<$crate::policy::Grace>,
            #[serde(default)]
            pub unknown: Option<$crate::policy::UnknownTreatment>,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            pub(crate) fn common_settings(&self) -> $crate::checks::Common<'_> {
                $crate::checks::Common {
                    severity: self.severity,
                    platforms: self.platforms.as_deref(),
                    grace: self.grace,
                    unknown: self.unknown,
                }
            }

            pub(crate) const ID: $crate::checks::CheckId = $id;
        }
    };
}
pub(crate) use check_policy;

/// The checks a policy runs: a table present under `[checks]` runs, an absent one does not.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Checks {
    pub disk_encryption: Option<Spanned<DiskEncryptionPolicy>>,
    pub os_updates: Option<Spanned<OsUpdatesPolicy>>,
    pub firewall: Option<Spanned<FirewallPolicy>>,
    pub ssh_keys: Option<Spanned<SshKeysPolicy>>,
    pub ssh_server: Option<Spanned<SshServerPolicy>>,
}

impl Checks {
    /// The configured checks, in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Check> {
        CATALOG.iter().filter_map(|info| self.get(info.id))
    }

    /// The configured check with this id, if the policy runs it.
    pub fn get(&self, id: CheckId) -> Option<&dyn Check> {
        fn as_check<T: Check>(section: &Option<Spanned<T>>) -> Option<&dyn Check> {
            section
                .as_ref()
                .map(|spanned| spanned.get_ref() as &dyn Check)
        }
        match id {
            CheckId::DiskEncryption => as_check(&self.disk_encryption),
            CheckId::OsUpdates => as_check(&self.os_updates),
            CheckId::Firewall => as_check(&self.firewall),
            CheckId::SshKeys => as_check(&self.ssh_keys),
            CheckId::SshServer => as_check(&self.ssh_server),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), (Range<usize>, String)> {
        fn section<T: Check>(section: &Option<Spanned<T>>) -> Result<(), (Range<usize>, String)> {
            let Some(spanned) = section else {
                return Ok(());
            };
            let check = spanned.get_ref();
            if check.common().platforms.is_some_and(<[OsFamily]>::is_empty) {
                return Err((
                    spanned.span(),
                    format!(
                        "`platforms` of `{}` is empty: list at least one, or remove the check",
                        check.id()
                    ),
                ));
            }
            check.validate().map_err(|(span, message)| {
                // Defaults carry an empty span; point at the table instead.
                if span.is_empty() {
                    (spanned.span(), message)
                } else {
                    (span, message)
                }
            })
        }
        section(&self.disk_encryption)?;
        section(&self.os_updates)?;
        section(&self.firewall)?;
        section(&self.ssh_keys)?;
        section(&self.ssh_server)
    }
}

/// The observed value, or the assessment to give when it is unknown.
pub(crate) fn observed<'a, T>(fact: &'a Observed<T>, what: &str) -> Result<&'a T, Assessment> {
    match fact {
        Observed::Observed(value) => Ok(value),
        Observed::Unknown { reason } => Err(Assessment::new(
            Outcome::Unknown,
            format!("could not tell {what}: {reason}"),
            None,
        )),
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
