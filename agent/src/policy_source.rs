//! Which policy a check runs under: `--policy FILE`, else the one IT
//! configured, else the last one cached from the server, else the built-in default.

use std::path::Path;

use anyhow::Context;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use shipshape_core::Policy;

use crate::paths::Paths;

/// `policies/default.toml`, compiled in so a fresh install judges something sensible.
pub const BUILT_IN: &str = include_str!("../../policies/default.toml");

/// A policy and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub policy: Policy,
    /// A file path, or `built-in`.
    pub source: String,
}

/// Reads and validates a policy file; errors name the file, line and column.
pub fn from_file(path: &Path, now: Timestamp) -> anyhow::Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read policy {}", path.display()))?;
    let origin = path.display().to_string();
    let policy = Policy::parse(&text, &origin, today(now))?;
    Ok(Loaded {
        policy,
        source: origin,
    })
}

/// The policy this run uses.
pub fn resolve(explicit: Option<&Path>, paths: &Paths, now: Timestamp) -> anyhow::Result<Loaded> {
    if let Some(path) = explicit {
        return from_file(path, now);
    }
    let configured = paths.configured_policy();
    if configured.exists() {
        return from_file(&configured, now);
    }
    let cached = paths.cached_policy();
    if cached.exists() {
        match from_file(&cached, now) {
            Ok(loaded) => return Ok(loaded),
            Err(error) => tracing::warn!("ignoring the cached server policy: {error:#}"),
        }
    }
    built_in(now)
}

/// The built-in default policy.
pub fn built_in(now: Timestamp) -> anyhow::Result<Loaded> {
    let policy = Policy::parse(BUILT_IN, "built-in default.toml", today(now))?;
    Ok(Loaded {
        policy,
        source: "built-in".to_owned(),
    })
}

/// Exceptions run through the end of their `expires` day in UTC.
fn today(now: Timestamp) -> jiff::civil::Date {
    now.to_zoned(TimeZone::UTC).date()
}
