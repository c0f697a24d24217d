use serde::{Deserialize, Serialize};

use super::Observed;

/// The host firewall as it filters unsolicited inbound traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// `nftables`, `iptables`, `ufw`, `firewalld`, `socketfilterfw`, `windows-firewall`, or `none`.
    pub backend: String,
    pub enabled: bool,
    /// What happens to unsolicited inbound traffic that no rule allows.
    pub inbound: Inbound,
    /// macOS stealth mode; `None` on other platforms.
    pub stealth: Option<Observed<bool>>,
    /// Windows profiles (domain/private/public); empty elsewhere.
    pub profiles: Vec<FirewallProfile>,
    /// What the probe looked at and set aside ("ignored chain ts-input (Tailscale)").
    pub notes: Vec<String>,
}

/// The fate of inbound traffic no rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inbound {
    /// Dropped or rejected.
    Blocked,
    Allowed,
}

/// One Windows firewall profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallProfile {
    pub name: String,
    pub enabled: bool,
    pub inbound: Inbound,
}
