//! macOS: the application firewall, read with `socketfilterfw`.
//!
//! When on (State 1 or 2), the application firewall refuses unsolicited
//! inbound connections to every app the user has not allowed (signed
//! software may be allowed automatically), so an enabled firewall counts as
//! inbound blocked. It does not filter by port the way a packet filter does.

use std::path::Path;

use shipshape_core::facts::{Firewall, Inbound, Observed};

use super::ParseError;
use crate::system::System;

const SOCKETFILTERFW: &str = "/usr/libexec/ApplicationFirewall/socketfilterfw";

/// What `socketfilterfw --get…` lines said; each `None` when that line was absent.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketFilter {
    /// 0 off, 1 on, 2 on and blocking all non-essential incoming connections.
    pub state: Option<u8>,
    pub block_all: Option<bool>,
    pub stealth: Option<Observed<bool>>,
}

/// Reads the output of one or several `socketfilterfw --get…` options.
pub fn parse_socketfilterfw(text: &str) -> Result<SocketFilter, ParseError> {
    let mut filter = SocketFilter {
        state: None,
        block_all: None,
        stealth: None,
    };
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(at) = line.find("(State = ") {
            let digits = &line[at + "(State = ".len()..];
            let state = digits.trim_end_matches(')').trim().parse().map_err(|_| {
                ParseError::new("socketfilterfw", format!("unreadable state in `{line}`"))
            })?;
            filter.state = Some(state);
        } else if lower.contains("block all") {
            filter.block_all = Some(lower.contains("enabled") && !lower.contains("disabled"));
        } else if lower.contains("stealth") {
            filter.stealth = Some(if lower.contains("error") {
                Observed::unknown(format!(
                    "socketfilterfw reported an error for stealth mode: {line}"
                ))
            } else if lower.ends_with("enabled") || lower.ends_with("is on") {
                Observed::Observed(true)
            } else if lower.ends_with("disabled") || lower.ends_with("is off") {
                Observed::Observed(false)
            } else {
                Observed::unknown(format!(
                    "socketfilterfw printed a stealth mode line Shipshape does not know: {line}"
                ))
            });
        }
    }
    Ok(filter)
}

pub(super) fn probe(system: &dyn System) -> Observed<Firewall> {
    let program = Path::new(SOCKETFILTERFW);
    let global = match system.run(program, &["--getglobalstate"]) {
        Ok(output) => output,
        Err(error) => return Observed::unknown(error.to_string()),
    };
    let state = match parse_socketfilterfw(&global.stdout) {
        Ok(SocketFilter {
            state: Some(state), ..
        }) => state,
        Ok(_) => {
            return Observed::unknown(format!(
                "socketfilterfw --getglobalstate printed no state: {} {}",
                global.stdout.trim(),
                global.stderr.trim()
            ));
        }
        Err(error) => return Observed::unknown(error.to_string()),
    };
    let stealth = match system.run(program, &["--getstealthmode"]) {
        Ok(output) => match parse_socketfilterfw(&output.stdout) {
            Ok(SocketFilter {
                stealth: Some(stealth),
                ..
            }) => stealth,
            Ok(_) => Observed::unknown(format!(
                "socketfilterfw --getstealthmode printed no stealth mode: {} {}",
                output.stdout.trim(),
                output.stderr.trim()
            )),
            Err(error) => Observed::unknown(error.to_string()),
        },
        Err(error) => Observed::unknown(error.to_string()),
    };
    let enabled = state >= 1;
    let mut notes = vec![format!("application firewall State = {state}")];
    if state == 2 {
        notes.push("blocking all non-essential incoming connections".to_owned());
    }
    Observed::Observed(Firewall {
        backend: "socketfilterfw".to_owned(),
        enabled,
        inbound: if enabled {
            Inbound::Blocked
        } else {
            Inbound::Allowed
        },
        stealth: Some(stealth),
        profiles: Vec::new(),
        notes,
    })
}
