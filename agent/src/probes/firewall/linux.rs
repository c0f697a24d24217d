//! Linux: firewalld, then ufw, then the kernel's rules (nftables, which also
//! holds iptables-nft, then legacy iptables). A manager that runs decides;
//! otherwise the rules themselves do.

use std::path::Path;

use shipshape_core::facts::{Firewall, Inbound, Observed};

use super::ParseError;
use super::iptables::parse_iptables_list_rules;
use super::nft::parse_nft_ruleset;
use super::rules::Filtering;
use crate::probes::needs_root;
use crate::system::{CommandOutput, System};

/// What `ufw status verbose` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfwStatus {
    pub active: bool,
    /// The default for incoming traffic (`deny`, `reject`, `allow`); `None` when inactive.
    pub default_incoming: Option<String>,
}

/// Reads `ufw status verbose` (plain `ufw status` lacks the defaults when active).
pub fn parse_ufw_status(text: &str) -> Result<UfwStatus, ParseError> {
    let mut active = None;
    let mut default_incoming = None;
    for line in text.lines().map(str::trim) {
        if let Some(status) = line.strip_prefix("Status:") {
            active = match status.trim() {
                "active" => Some(true),
                "inactive" => Some(false),
                other => return Err(ParseError::new("ufw", format!("unknown status `{other}`"))),
            };
        } else if let Some(defaults) = line.strip_prefix("Default:") {
            default_incoming = defaults
                .split(',')
                .map(str::trim)
                .find_map(|part| part.strip_suffix("(incoming)"))
                .map(|policy| policy.trim().to_owned());
        }
    }
    match active {
        None => Err(ParseError::new("ufw", "no `Status:` line")),
        Some(true) if default_incoming.is_none() => Err(ParseError::new(
            "ufw",
            "no default incoming policy (was `status verbose` run?)",
        )),
        Some(active) => Ok(UfwStatus {
            active,
            default_incoming: if active { default_incoming } else { None },
        }),
    }
}

/// The default zone as `firewall-cmd --list-all` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewalldZone {
    pub name: String,
    /// `default`, `%%REJECT%%`, `DROP`, `REJECT` or `ACCEPT`.
    pub target: String,
    pub services: Vec<String>,
    pub ports: Vec<String>,
}

impl FirewalldZone {
    /// Every target but ACCEPT rejects or drops what the zone does not allow.
    pub fn blocks_inbound(&self) -> bool {
        self.target != "ACCEPT"
    }
}

/// Reads `firewall-cmd --list-all`.
pub fn parse_firewalld_zone(text: &str) -> Result<FirewalldZone, ParseError> {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let heading = lines
        .next()
        .ok_or_else(|| ParseError::new("firewall-cmd", "empty output"))?;
    let name = heading
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut target = None;
    let mut services = Vec::new();
    let mut ports = Vec::new();
    for line in lines {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let words = || {
            value
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        match key {
            "target" => target = Some(value.trim().to_owned()),
            "services" => services = words(),
            "ports" => ports = words(),
            _ => {}
        }
    }
    let target = target
        .ok_or_else(|| ParseError::new("firewall-cmd", format!("no target for zone `{name}`")))?;
    Ok(FirewalldZone {
        name,
        target,
        services,
        ports,
    })
}

const FIREWALL_CMD: &[&str] = &["/usr/bin/firewall-cmd", "/bin/firewall-cmd"];
const UFW: &[&str] = &["/usr/sbin/ufw", "/sbin/ufw"];
const NFT: &[&str] = &["/usr/sbin/nft", "/sbin/nft"];
const IPTABLES_LEGACY: &[&str] = &["/usr/sbin/iptables-legacy", "/sbin/iptables-legacy"];
const IPTABLES: &[&str] = &["/usr/sbin/iptables", "/sbin/iptables"];
/// Lists the legacy iptables tables the kernel has loaded.
const LEGACY_TABLES: &str = "/proc/net/ip_tables_names";

pub(super) fn probe(system: &dyn System) -> Observed<Firewall> {
    let mut notes = Vec::new();
    if let Some(decided) = firewalld(system, &mut notes) {
        return decided;
    }
    if let Some(decided) = ufw(system, &mut notes) {
        return decided;
    }
    kernel(system, notes)
}

fn firewall(backend: &str, blocked: bool, notes: Vec<String>) -> Observed<Firewall> {
    Observed::Observed(Firewall {
        backend: backend.to_owned(),
        enabled: true,
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

/// The output of a command, or the reason it gave none.
fn output_of(
    system: &dyn System,
    program: &Path,
    args: &[&str],
    what: &str,
) -> Result<CommandOutput, String> {
    let output = system
        .run(program, args)
        .map_err(|error| error.to_string())?;
    if output.success() {
        return Ok(output);
    }
    let said = format!("{} {}", output.stdout.trim(), output.stderr.trim());
    let refused = ["not permitted", "ermission denied", "root", "uthoriz"]
        .iter()
        .any(|word| said.contains(word));
    if refused || !system.is_privileged() {
        Err(needs_root(what, system))
    } else {
        Err(format!(
            "{} failed while {what}: {}",
            program.display(),
            said.trim()
        ))
    }
}

fn firewalld(system: &dyn System, notes: &mut Vec<String>) -> Option<Observed<Firewall>> {
    let program = system.find_program(FIREWALL_CMD)?;
    let state = match system.run(&program, &["--state"]) {
        Ok(output) => output,
        Err(error) => return Some(Observed::unknown(error.to_string())),
    };
    match state.stdout.trim() {
        "running" => {}
        "not running" => {
            notes.push("firewalld is installed but not running".to_owned());
            return None;
        }
        _ => {
            return Some(Observed::unknown(format!(
                "firewall-cmd --state gave no answer Shipshape understands: {} {}",
                state.stdout.trim(),
                state.stderr.trim()
            )));
        }
    }
    let zone = output_of(
        system,
        &program,
        &["--list-all"],
        "reading firewalld's default zone",
    )
    .and_then(|output| parse_firewalld_zone(&output.stdout).map_err(|error| error.to_string()));
    Some(match zone {
        Ok(zone) => {
            let mut notes = vec![format!(
                "firewalld default zone {}: target {}",
                zone.name, zone.target
            )];
            if !zone.services.is_empty() {
                notes.push(format!("services allowed in: {}", zone.services.join(" ")));
            }
            if !zone.ports.is_empty() {
                notes.push(format!("ports open: {}", zone.ports.join(" ")));
            }
            firewall("firewalld", zone.blocks_inbound(), notes)
        }
        Err(reason) => Observed::unknown(reason),
    })
}

fn ufw(system: &dyn System, notes: &mut Vec<String>) -> Option<Observed<Firewall>> {
    let program = system.find_program(UFW)?;
    if !system.is_privileged() {
        let conf = system
            .read_to_string(Path::new("/etc/ufw/ufw.conf"))
            .unwrap_or_default();
        let enabled = conf.lines().any(|line| {
            line.trim()
                .replace('"', "")
                .eq_ignore_ascii_case("ENABLED=yes")
        });
        if enabled {
            return Some(Observed::unknown(needs_root(
                "reading ufw's status (/etc/ufw/ufw.conf says it is enabled)",
                system,
            )));
        }
        notes.push("ufw is installed but disabled in /etc/ufw/ufw.conf".to_owned());
        return None;
    }
    let status = output_of(
        system,
        &program,
        &["status", "verbose"],
        "reading ufw's status",
    )
    .and_then(|output| parse_ufw_status(&output.stdout).map_err(|error| error.to_string()));
    match status {
        Ok(UfwStatus {
            active: true,
            default_incoming: Some(incoming),
        }) => Some(firewall(
            "ufw",
            incoming != "allow",
            vec![format!("ufw default incoming policy: {incoming}")],
        )),
        Ok(_) => {
            notes.push("ufw is installed but inactive".to_owned());
            None
        }
        Err(reason) => Some(Observed::unknown(reason)),
    }
}

fn kernel(system: &dyn System, mut notes: Vec<String>) -> Observed<Firewall> {
    let nft = system.find_program(NFT);
    if let Some(nft) = &nft {
        let ruleset = output_of(
            system,
            nft,
            &["-j", "list", "ruleset"],
            "reading the nftables ruleset",
        )
        .and_then(|output| parse_nft_ruleset(&output.stdout).map_err(|error| error.to_string()));
        match ruleset {
            Ok(filtering) => {
                if let Some(decided) = decide("nftables", filtering, &mut notes) {
                    return decided;
                }
            }
            Err(reason) => return Observed::unknown(reason),
        }
    }
    let iptables = if nft.is_some() {
        let legacy_tables = system
            .read_to_string(Path::new(LEGACY_TABLES))
            .unwrap_or_default();
        if legacy_tables.lines().any(|table| table.trim() == "filter") {
            system.find_program(IPTABLES_LEGACY)
        } else {
            None
        }
    } else {
        system.find_program(IPTABLES)
    };
    match (&nft, iptables) {
        (_, Some(iptables)) => {
            let rules = output_of(system, &iptables, &["-S"], "reading the iptables rules")
                .and_then(|output| {
                    parse_iptables_list_rules(&output.stdout).map_err(|error| error.to_string())
                });
            match rules {
                Ok(filtering) => {
                    if let Some(decided) = decide("iptables", filtering, &mut notes) {
                        return decided;
                    }
                }
                Err(reason) => return Observed::unknown(reason),
            }
        }
        (None, None) => {
            return Observed::unknown(
                "neither nft nor iptables is installed, so the kernel's packet filter cannot be read",
            );
        }
        (Some(_), None) => {}
    }
    Observed::Observed(Firewall {
        backend: "none".to_owned(),
        enabled: false,
        inbound: Inbound::Allowed,
        stealth: None,
        profiles: Vec::new(),
        notes,
    })
}

/// The firewall a ruleset makes, or `None` (its notes kept) when it filters nothing.
fn decide(
    backend: &str,
    filtering: Filtering,
    notes: &mut Vec<String>,
) -> Option<Observed<Firewall>> {
    notes.extend(filtering.notes);
    filtering
        .filters
        .then(|| firewall(backend, filtering.blocked, std::mem::take(notes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ufw_reject_incoming_is_read() {
        let status =
            parse_ufw_status("Status: active\nDefault: reject (incoming), allow (outgoing)\n")
                .unwrap();
        assert_eq!(status.default_incoming.as_deref(), Some("reject"));
    }

    #[test]
    fn ufw_active_without_defaults_is_an_error() {
        assert!(parse_ufw_status("Status: active\n\nTo Action From\n").is_err());
    }

    #[test]
    fn firewalld_accept_target_lets_traffic_in() {
        let zone = parse_firewalld_zone("trusted (active)\n  target: ACCEPT\n").unwrap();
        assert!(!zone.blocks_inbound());
    }
}
