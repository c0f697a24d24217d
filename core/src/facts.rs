//! What probes observed, without judgement.
//!
//! Every fact group is either [`Observed`] or unknown with a reason a person
//! can act on ("`nft` needs root: run `sudo shipshape check`"). Facts never
//! carry secrets: for SSH keys only metadata, never key material.

mod disk;
mod firewall;
mod host;
mod ssh;
mod updates;

pub use disk::{DiskEncryption, Volume, VolumeEncryption};
pub use firewall::{Firewall, FirewallProfile, Inbound};
pub use host::{Host, OsFamily, OsInfo};
pub use ssh::{KeyFormat, ServiceState, SshKey, SshKeys, SshServer, SshdConfig};
pub use updates::{AutomaticUpdates, OsUpdates, PendingUpdates};

use serde::{Deserialize, Serialize};

/// Everything one run of the agent observed about one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    pub host: Host,
    pub disk_encryption: Observed<DiskEncryption>,
    pub os_updates: Observed<OsUpdates>,
    pub firewall: Observed<Firewall>,
    pub ssh_keys: Observed<SshKeys>,
    pub ssh_server: Observed<SshServer>,
}

/// A fact that was either observed or could not be, with the reason why.
///
/// Unknown is never pass: the policy decides what an unknown means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Observed<T> {
    Observed(T),
    Unknown { reason: String },
}

impl<T> Observed<T> {
    /// An unknown fact with a reason a person can act on.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Observed::Unknown {
            reason: reason.into(),
        }
    }

    /// The observed value, if there is one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Observed::Observed(value) => Some(value),
            Observed::Unknown { .. } => None,
        }
    }

    /// Why the fact is unknown, if it is.
    pub fn unknown_reason(&self) -> Option<&str> {
        match self {
            Observed::Observed(_) => None,
            Observed::Unknown { reason } => Some(reason),
        }
    }
}

impl<T, E: std::fmt::Display> From<Result<T, E>> for Observed<T> {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(value) => Observed::Observed(value),
            Err(error) => Observed::unknown(error.to_string()),
        }
    }
}
