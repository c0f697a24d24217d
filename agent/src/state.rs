//! What the agent remembers between runs: when each check started failing,
//! so grace periods count from the first failure, not from every run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use jiff::Timestamp;
use shipshape_core::checks::CheckId;
use shipshape_core::{FailingSince, Finding, Status};

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
        for finding in findings {
            let Ok(id) = finding.check.parse::<CheckId>() else {
                continue;
            };
            match finding.status {
                Status::Fail | Status::Warn => {
                    self.since.entry(id).or_insert(now);
                }
                Status::Pass => {
                    self.since.remove(&id);
                }
                Status::Unknown | Status::Excepted | Status::Skipped => {}
            }
        }
    }

    /// Writes the state atomically: a crash leaves the old file or the new one, never half of one.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().context("state path has no directory")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let temporary = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary)
            .with_context(|| format!("could not write {}", temporary.display()))?;
        serde_json::to_writer_pretty(&mut file, &self.since)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("could not replace {}", path.display()))?;
        Ok(())
    }
}
