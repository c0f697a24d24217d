//! Host firewalls: nftables, ufw, firewalld and none on Linux; the
//! application firewall on macOS; the three Windows Firewall profiles.

use rand::Rng;
use shipshape_core::facts::{Firewall, FirewallProfile, Inbound, Observed, OsFamily};

use super::{People, pick};

pub(super) fn firewall(
    rng: &mut impl Rng,
    family: OsFamily,
    people: &People,
) -> Observed<Firewall> {
    match family {
        OsFamily::Linux => linux(rng, people),
        OsFamily::Macos => macos(rng),
        OsFamily::Windows => windows(rng),
    }
}

fn linux(rng: &mut impl Rng, people: &People) -> Observed<Firewall> {
    if !people.root && rng.gen_bool(0.5) {
        return Observed::unknown("`nft` needs root: run `sudo shipshape check` for a full check");
    }
    let mut notes = Vec::new();
    if rng.gen_bool(0.25) {
        notes.push("ignored chain DOCKER-USER (Docker)".to_owned());
    }
    if rng.gen_bool(0.15) {
        notes.push("ignored chain ts-input (Tailscale)".to_owned());
    }
    let (backend, blocked) = match *pick(rng, &[(35, 0), (30, 1), (20, 2), (7, 3), (8, 4)]) {
        0 => ("nftables", true),
        1 => {
            let active = rng.gen_bool(0.9);
            if !active {
                notes.push("ufw is installed but inactive".to_owned());
            }
            (if active { "ufw" } else { "none" }, active)
        }
        2 => {
            notes.insert(
                0,
                "firewalld default zone public: target default".to_owned(),
            );
            notes.push("services allowed in: dhcpv6-client mdns ssh".to_owned());
            ("firewalld", true)
        }
        3 => ("iptables", true),
        _ => ("none", false),
    };
    Observed::Observed(Firewall {
        backend: backend.to_owned(),
        enabled: blocked,
        inbound: if blocked {
            Inbound::Blocked
        } else {
            Inbound::Allowed
        },
        stealth: None,
        profiles: Vec::new(),
        notes,
    })
}

fn macos(rng: &mut impl Rng) -> Observed<Firewall> {
    let enabled = rng.gen_bool(0.88);
    Observed::Observed(Firewall {
        backend: "socketfilterfw".to_owned(),
        enabled,
        inbound: if enabled {
            Inbound::Blocked
        } else {
            Inbound::Allowed
        },
        stealth: Some(Observed::Observed(enabled && rng.gen_bool(0.3))),
        profiles: Vec::new(),
        notes: Vec::new(),
    })
}

fn windows(rng: &mut impl Rng) -> Observed<Firewall> {
    let mut profiles: Vec<FirewallProfile> = ["Domain", "Private", "Public"]
        .into_iter()
        .map(|name| FirewallProfile {
            name: name.to_owned(),
            enabled: true,
            inbound: Inbound::Blocked,
        })
        .collect();
    if rng.gen_bool(0.08) {
        // Someone turned off the profile that was in their way.
        let profile = &mut profiles[rng.gen_range(0..3)];
        profile.enabled = false;
        profile.inbound = Inbound::Allowed;
    }
    let enabled = profiles.iter().all(|profile| profile.enabled);
    Observed::Observed(Firewall {
        backend: "windows-firewall".to_owned(),
        enabled,
        inbound: if enabled {
            Inbound::Blocked
        } else {
            Inbound::Allowed
        },
        stealth: None,
        profiles,
        notes: Vec::new(),
    })
}
