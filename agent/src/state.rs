//! What the agent remembers between runs: when each check started failing,
//! so grace periods count from the first failure, not from every run.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use shipshape_core::checks::CheckId;
use shipshape_core::{FailingSince, Finding, advance_failing_since};

use crate::atomic::{self, Access};

/// The first-failure times, as kept on disk.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GraceState {
    since: FailingSince,
}

impl GraceState {
    /// Loads the state; a missing or unreadable file starts afresh (grace restarts, nothing leaks silently).
    pub fn load(path: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(path) else {
            return GraceState::default();
        };
        match serde_json::from_str::<BTreeMap<CheckId, Timestamp>>(&text) {
            Ok(since) => GraceState { since },
            Err(error) => {
                tracing::warn!("ignoring {}: {error}", path.display());
                GraceState::default()
            }
        }
    }

    pub fn failing_since(&self) -> &FailingSince {
        &self.since
    }

    /// Starts the clock for newly failing checks and stops it for passing ones.
    pub fn record(&mut self, findings: &[Finding], now: Timestamp) {
        advance_failing_since(&mut self.since, findings, now);
    }

    /// Writes the state atomically: a crash leaves the old file or the new one, never half of one.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(&self.since)?;
        json.push(b'\n');
        atomic::write(path, &json, Access::Everyone)
    }
}
