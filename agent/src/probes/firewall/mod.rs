//! Whether the host firewall drops unsolicited inbound traffic.
//!
//! Linux has several layers that can filter (firewalld, ufw, nftables,
//! legacy iptables); the probe asks the manager first and reads the kernel's
//! rules last. Chains that other software adds for its own traffic (Tailscale,
//! Docker, libvirt, fail2ban, …) are set aside: they never make a firewall.

mod iptables;
mod linux;
mod macos;
mod nft;
mod rules;
mod windows;

pub use iptables::parse_iptables_list_rules;
pub use linux::{FirewalldZone, UfwStatus, parse_firewalld_zone, parse_ufw_status};
pub use macos::{SocketFilter, parse_socketfilterfw};
pub use nft::parse_nft_ruleset;
pub use rules::Filtering;
pub use windows::parse_netsh_profiles;

use shipshape_core::facts::{Firewall, Observed, OsFamily};

use crate::system::System;

pub use super::ParseError;

/// Observes this fact group on the machine behind `system`.
pub fn probe(system: &dyn System) -> Observed<Firewall> {
    match system.os() {
        OsFamily::Linux => linux::probe(system),
        OsFamily::Macos => macos::probe(system),
        OsFamily::Windows => windows::probe(system),
    }
}
