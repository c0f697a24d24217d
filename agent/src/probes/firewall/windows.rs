//! Windows: Windows Defender Firewall profiles from `netsh advfirewall`.
//!
//! Windows applies the profile of each network's category, so the machine is
//! only as closed as its most open profile.

use std::path::Path;

use shipshape_core::facts::{Firewall, FirewallProfile, Inbound, Observed};

use super::ParseError;
use crate::system::System;

const NETSH: &str = r"C:\Windows\System32\netsh.exe";

/// Reads the profile blocks of `netsh advfirewall show allprofiles` (or one profile).
pub fn parse_netsh_profiles(text: &str) -> Result<Vec<FirewallProfile>, ParseError> {
    let mut profiles = Vec::new();
    let mut current: Option<(String, Option<bool>, Option<Inbound>)> = None;
    let finish = |profile: Option<(String, Option<bool>, Option<Inbound>)>,
                  profiles: &mut Vec<FirewallProfile>|
     -> Result<(), ParseError> {
        if let Some((name, enabled, inbound)) = profile {
            match (enabled, inbound) {
                (Some(enabled), Some(inbound)) => profiles.push(FirewallProfile {
                    name,
                    enabled,
                    inbound,
                }),
                _ => {
                    return Err(ParseError::new(
                        "netsh",
                        format!("{name} profile without State or Firewall Policy"),
                    ));
                }
            }
        }
        Ok(())
    };
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_suffix(" Profile Settings:") {
            finish(current.take(), &mut profiles)?;
            current = Some((name.to_owned(), None, None));
        } else if let Some((_, enabled, inbound)) = current.as_mut() {
            if let Some(state) = line.strip_prefix("State") {
                *enabled = match state.trim() {
                    "ON" => Some(true),
                    "OFF" => Some(false),
                    other => {
                        return Err(ParseError::new(
                            "netsh",
                            format!("unknown profile state `{other}`"),
                        ));
                    }
                };
            } else if let Some(policy) = line.strip_prefix("Firewall Policy") {
                let inbound_policy = policy.trim().split(',').next().unwrap_or_default();
                *inbound = Some(if inbound_policy.starts_with("BlockInbound") {
                    Inbound::Blocked
                } else if inbound_policy == "AllowInbound" {
                    Inbound::Allowed
                } else {
                    return Err(ParseError::new(
                        "netsh",
                        format!("unknown firewall policy `{}`", policy.trim()),
                    ));
                });
            }
        }
    }
    finish(current, &mut profiles)?;
    if profiles.is_empty() {
        return Err(ParseError::new(
            "netsh",
            "no `… Profile Settings:` block (is Windows set to another display language?)",
        ));
    }
    Ok(profiles)
}

pub(super) fn probe(system: &dyn System) -> Observed<Firewall> {
    let output = match system.run(Path::new(NETSH), &["advfirewall", "show", "allprofiles"]) {
        Ok(output) => output,
        Err(error) => return Observed::unknown(error.to_string()),
    };
    match parse_netsh_profiles(&output.stdout) {
        Ok(profiles) => {
            let enabled = profiles.iter().all(|profile| profile.enabled);
            let blocked = profiles
                .iter()
                .all(|profile| profile.enabled && profile.inbound == Inbound::Blocked);
            Observed::Observed(Firewall {
                backend: "windows-firewall".to_owned(),
                enabled,
                inbound: if blocked {
                    Inbound::Blocked
                } else {
                    Inbound::Allowed
                },
                stealth: None,
                profiles,
                notes: Vec::new(),
            })
        }
        Err(error) => Observed::unknown(format!("{error}{}", stderr_hint(&output.stderr))),
    }
}

fn stderr_hint(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!(" ({})", stderr.trim())
    }
}
