//! The circuit breaker between this machine and the server, kept on disk
//! because every `shipshape report` is a separate process started by a timer.
//!
//! Closed, every run talks to the server. After `breaker-failures` failed
//! runs in a row it opens for `breaker-cooldown`: runs then queue their
//! report without touching the network. The first run after the cool-off
//! is a half-open probe: its success closes the breaker, its failure opens
//! it for another period. The transitions are pure functions of the clock
//! they are given, so tests drive them without waiting.

use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::output;
use crate::transport::RequestError;

/// The breaker as kept in `breaker.json`. All defaults: closed, no failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breaker {
    /// Runs in a row whose delivery failed.
    pub failed_runs: u32,
    /// The first failed run of the current streak.
    pub failing_since: Option<Timestamp>,
    /// Until when runs stay off the network; after it, the next run probes.
    pub open_until: Option<Timestamp>,
    /// Why the last failed run failed.
    pub last_error: Option<Trouble>,
}

/// Why a run could not deliver, as a person should read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trouble {
    pub kind: TroubleKind,
    /// The error, as [`RequestError`] words it.
    pub message: String,
}

/// Whether the server could not be reached at all, or answered with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TroubleKind {
    /// No connection, or no answer in time.
    Unreachable,
    /// An answer, but an error (5xx, 429, …) or one that makes no sense.
    Failing,
}

impl Trouble {
    pub fn of(error: &RequestError) -> Trouble {
        let kind = match error {
            RequestError::Unreachable { .. } | RequestError::TimedOut { .. } => {
                TroubleKind::Unreachable
            }
            RequestError::Refused { .. }
            | RequestError::BadResponse { .. }
            | RequestError::Sign(_) => TroubleKind::Failing,
        };
        Trouble {
            kind,
            message: error.to_string(),
        }
    }

    /// "server unreachable", "server failing".
    pub fn headline(&self) -> &'static str {
        match self.kind {
            TroubleKind::Unreachable => "server unreachable",
            TroubleKind::Failing => "server failing",
        }
    }

    /// "server unreachable since 09:12 UTC", for a streak that began `since`.
    pub fn since(&self, since: Option<Timestamp>, now: Timestamp) -> String {
        match since {
            Some(since) => format!("{} since {}", self.headline(), output::clock(since, now)),
            None => self.headline().to_owned(),
        }
    }
}

/// What the breaker allows this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Talk to the server.
    Closed,
    /// Stay off the network until then.
    Open { until: Timestamp },
    /// The cool-off is over: probe once, carefully.
    HalfOpen,
}

impl Breaker {
    /// The breaker at `path`; a missing file is a closed breaker. An
    /// unreadable one is closed too (the worst case is one more try).
    pub fn load(path: &Path) -> Breaker {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Breaker::default();
            }
            Err(error) => {
                tracing::warn!("ignoring {}: {error}", path.display());
                return Breaker::default();
            }
        };
        serde_json::from_str(&text).unwrap_or_else(|error| {
            tracing::warn!("ignoring {}: {error}", path.display());
            Breaker::default()
        })
    }

    /// Writes the breaker atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        atomic::write(path, &text, atomic::Access::Everyone)
    }

    /// What the breaker allows at `now`.
    pub fn gate(&self, now: Timestamp) -> Gate {
        match self.open_until {
            Some(until) if now < until => Gate::Open { until },
            Some(_) => Gate::HalfOpen,
            None => Gate::Closed,
        }
    }

    /// A run delivered (or the server answered for good): close, forget the streak.
    pub fn succeeded(&mut self) {
        *self = Breaker::default();
    }

    /// A run failed at `now`: after `failures` in a row, open for `cooldown`
    /// (again, when this was the half-open probe).
    pub fn failed(&mut self, trouble: Trouble, now: Timestamp, failures: u32, cooldown: Duration) {
        self.failed_runs = self.failed_runs.saturating_add(1);
        self.failing_since.get_or_insert(now);
        self.last_error = Some(trouble);
        self.open_until = (self.failed_runs >= failures).then(|| {
            SignedDuration::try_from(cooldown)
                .ok()
                .and_then(|cooldown| now.checked_add(cooldown).ok())
                .unwrap_or(Timestamp::MAX)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30 * 60);

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + minutes * 60).unwrap()
    }

    fn refused() -> Trouble {
        Trouble {
            kind: TroubleKind::Unreachable,
            message: "cannot reach http://127.0.0.1:1/v1/reports: connection refused".to_owned(),
        }
    }

    #[test]
    fn opens_after_the_configured_failures_then_probes_after_the_cooldown() {
        let mut breaker = Breaker::default();
        assert_eq!(breaker.gate(at(0)), Gate::Closed);
        breaker.failed(refused(), at(0), 3, COOLDOWN);
        breaker.failed(refused(), at(10), 3, COOLDOWN);
        assert_eq!(breaker.gate(at(11)), Gate::Closed, "two failures of three");
        assert_eq!(breaker.failing_since, Some(at(0)));
        breaker.failed(refused(), at(20), 3, COOLDOWN);
        assert_eq!(breaker.failed_runs, 3);
        assert_eq!(breaker.gate(at(21)), Gate::Open { until: at(50) });
        assert_eq!(breaker.gate(at(49)), Gate::Open { until: at(50) });
        assert_eq!(breaker.gate(at(50)), Gate::HalfOpen);
        assert_eq!(
            breaker.failing_since,
            Some(at(0)),
            "the streak's start stays"
        );
    }

    #[test]
    fn a_failed_probe_reopens_and_a_success_closes() {
        let mut breaker = Breaker::default();
        breaker.failed(refused(), at(0), 1, COOLDOWN);
        assert_eq!(breaker.gate(at(1)), Gate::Open { until: at(30) });
        assert_eq!(breaker.gate(at(31)), Gate::HalfOpen);
        let failing = Trouble {
            kind: TroubleKind::Failing,
            message: "server refused the report: 503 overloaded".to_owned(),
        };
        breaker.failed(failing.clone(), at(31), 1, COOLDOWN);
        assert_eq!(breaker.gate(at(32)), Gate::Open { until: at(61) });
        assert_eq!(breaker.last_error, Some(failing));
        assert_eq!(breaker.gate(at(61)), Gate::HalfOpen);
        breaker.succeeded();
        assert_eq!(breaker, Breaker::default());
        assert_eq!(breaker.gate(at(62)), Gate::Closed);
    }

    #[test]
    fn a_raised_threshold_closes_a_breaker_that_no_longer_qualifies() {
        let mut breaker = Breaker::default();
        breaker.failed(refused(), at(0), 1, COOLDOWN);
        breaker.failed(refused(), at(31), 5, COOLDOWN);
        assert_eq!(breaker.failed_runs, 2);
        assert_eq!(breaker.gate(at(32)), Gate::Closed);
    }

    #[test]
    fn persists_and_reads_back_and_a_damaged_file_is_a_closed_breaker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("breaker.json");
        assert_eq!(Breaker::load(&path), Breaker::default());
        let mut breaker = Breaker::default();
        breaker.failed(refused(), at(0), 1, COOLDOWN);
        breaker.save(&path).unwrap();
        assert_eq!(Breaker::load(&path), breaker);
        std::fs::write(&path, "{\"failed_runs\": ").unwrap();
        assert_eq!(Breaker::load(&path), Breaker::default());
    }
}
