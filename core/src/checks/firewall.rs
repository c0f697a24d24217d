use jiff::Timestamp;

use super::parts::Parts;
use super::{Assessment, Check, CheckId, Common, check_policy, observed};
use crate::facts::{Facts, Inbound, Observed, OsFamily};

check_policy! {
    /// `[checks.firewall]`
    FirewallPolicy => CheckId::Firewall, {
        /// Unsolicited inbound traffic must be dropped or rejected by default.
        #[serde(default = "yes")]
        require_inbound_blocked: bool,
        /// macOS: stealth mode must be on (no answer to pings and port probes).
        #[serde(default)]
        require_stealth: bool,
    }
}

fn yes() -> bool {
    true
}

impl Check for FirewallPolicy {
    fn id(&self) -> CheckId {
        Self::ID
    }

    fn common(&self) -> Common<'_> {
        self.common_settings()
    }

    fn assess(&self, facts: &Facts, _now: Timestamp) -> Assessment {
        let firewall = match observed(&facts.firewall, "whether a firewall is on") {
            Ok(firewall) => firewall,
            Err(unknown) => return unknown,
        };
        let family = facts.host.os.family;
        let mut parts = Parts::default();
        parts.evidence.push(format!(
            "{}: {}, inbound {}",
            firewall.backend,
            if firewall.enabled { "on" } else { "off" },
            match firewall.inbound {
                Inbound::Blocked => "blocked",
                Inbound::Allowed => "allowed",
            }
        ));
        for profile in &firewall.profiles {
            parts.evidence.push(format!(
                "{} profile: {}, inbound {}",
                profile.name,
                if profile.enabled { "on" } else { "off" },
                if profile.inbound == Inbound::Blocked {
                    "blocked"
                } else {
                    "allowed"
                }
            ));
        }
        parts.evidence.extend(firewall.notes.iter().cloned());
        let open_profiles: Vec<&str> = firewall
            .profiles
            .iter()
            .filter(|profile| {
                !profile.enabled
                    || (self.require_inbound_blocked && profile.inbound == Inbound::Allowed)
            })
            .map(|profile| profile.name.as_str())
            .collect();
        if !firewall.enabled {
            parts.fail("no firewall is on".to_owned(), enable_command(family));
        } else if !open_profiles.is_empty() {
            parts.fail(
                format!(
                    "the {} firewall profile lets inbound traffic in",
                    open_profiles.join(", ")
                ),
                enable_command(family),
            );
        } else if self.require_inbound_blocked && firewall.inbound == Inbound::Allowed {
            parts.fail(
                format!(
                    "{} is on but lets unsolicited inbound traffic in",
                    firewall.backend
                ),
                block_inbound_command(family, &firewall.backend),
            );
        } else {
            parts.pass(format!(
                "{} blocks unsolicited inbound traffic",
                firewall.backend
            ));
        }
        if self.require_stealth && family == OsFamily::Macos {
            match &firewall.stealth {
                Some(Observed::Observed(true)) => parts.evidence.push("stealth mode on".to_owned()),
                Some(Observed::Observed(false)) => parts.fail(
                    "stealth mode is off".to_owned(),
                    "Turn on stealth mode: System Settings → Network → Firewall → Options… → Enable stealth mode \
                     (or `sudo /usr/libexec/ApplicationFirewall/socketfilterfw --setstealthmode on`)."
                        .to_owned(),
                ),
                Some(Observed::Unknown { reason }) => {
                    parts.unknown(format!("stealth mode unknown: {reason}"), reason.clone())
                }
                None => parts.unknown(
                    "stealth mode was not reported".to_owned(),
                    "Run `sudo shipshape check` for a full check.".to_owned(),
                ),
            }
        }
        parts.finish()
    }
}

fn enable_command(family: OsFamily) -> String {
    match family {
        OsFamily::Macos => "Turn on the firewall: System Settings → Network → Firewall \
             (or `sudo /usr/libexec/ApplicationFirewall/socketfilterfw --setglobalstate on`)."
            .to_owned(),
        OsFamily::Windows => "Turn on Windows Firewall for every profile: Windows Security → Firewall & network protection \
             (or `netsh advfirewall set allprofiles state on` as administrator)."
            .to_owned(),
        OsFamily::Linux => "Turn on a firewall that drops unsolicited inbound traffic, e.g. \
             `sudo apt install ufw && sudo ufw default deny incoming && sudo ufw enable` \
             (Fedora: `sudo systemctl enable --now firewalld`)."
            .to_owned(),
    }
}

fn block_inbound_command(family: OsFamily, backend: &str) -> String {
    match (family, backend) {
        (OsFamily::Windows, _) => "Block inbound by default: `netsh advfirewall set allprofiles firewallpolicy blockinbound,allowoutbound`.".to_owned(),
        (OsFamily::Macos, _) => enable_command(family),
        (_, "ufw") => "Make ufw deny inbound by default: `sudo ufw default deny incoming && sudo ufw reload`.".to_owned(),
        (_, "firewalld") => "Use a zone that rejects unsolicited traffic: `sudo firewall-cmd --set-default-zone=public`; \
             remove `--set-target=ACCEPT` overrides."
            .to_owned(),
        (_, "iptables") => "Drop inbound by default: `sudo iptables -P INPUT DROP` after allowing established traffic \
             (`sudo iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`), or switch to ufw."
            .to_owned(),
        _ => "Give the nftables input chain a drop policy (`type filter hook input priority 0; policy drop;`) \
             that accepts established traffic, or use ufw: `sudo ufw default deny incoming && sudo ufw enable`."
            .to_owned(),
    }
}
