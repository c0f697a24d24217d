//! Which policy a check runs under: `--policy FILE`, else the one IT
//! configured, else the last one cached from the server, else the built-in default.
//! `shipshape report` asks the server first ([`from_server`]).

use std::path::Path;

use anyhow::Context;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use shipshape_core::Policy;

use crate::atomic;
use crate::paths::Paths;
use crate::transport::{PolicyFetch, Signer, Transport};

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
    match read_cache(paths) {
        Ok(Some((policy, _))) => {
            return Ok(Loaded {
                policy,
                source: paths.cached_policy().display().to_string(),
            });
        }
        Ok(None) => {}
        Err(error) => tracing::warn!("ignoring the cached server policy: {error:#}"),
    }
    built_in(now)
}

/// The policy `shipshape report` judges by, and what the person should know
/// about how it was found.
#[derive(Debug, Clone)]
pub struct Synced {
    pub loaded: Loaded,
    /// Warnings: the server could not be asked, the cache could not be written.
    pub warnings: Vec<String>,
    /// Errors: the server sent a policy that does not parse (the last good one stays).
    pub errors: Vec<String>,
}

/// A policy the server sent that does not parse, kept in
/// `policy-refused.json` until the server sends a good one, so that
/// `shipshape status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedPolicy {
    pub refused_at: Timestamp,
    /// The refused policy's ETag.
    pub etag: Option<String>,
    /// Why it does not parse, with its line and column.
    pub error: String,
    /// The ETag of the last good policy, still in force; `None` when none was cached.
    pub kept_etag: Option<String>,
    /// Whether a last good policy was cached at all.
    pub kept: bool,
}

impl RefusedPolicy {
    /// The refusal in force, if any.
    pub fn load(paths: &Paths) -> Option<RefusedPolicy> {
        let path = paths.refused_policy();
        let text = std::fs::read(&path).ok()?;
        serde_json::from_slice(&text)
            .map_err(|error| tracing::warn!("ignoring {}: {error}", path.display()))
            .ok()
    }

    /// "the server's policy does not parse: … — keeping the last good policy (etag …)".
    pub fn message(&self) -> String {
        let kept = match (self.kept, &self.kept_etag) {
            (true, Some(etag)) => format!("keeping the last good policy (etag {etag})"),
            (true, None) => "keeping the last good policy".to_owned(),
            (false, _) => "no good policy from the server is cached".to_owned(),
        };
        format!(
            "the server's policy does not parse: {} — {kept}",
            self.error
        )
    }
}

/// The server's active policy: asked for with the cached ETag (304 keeps the
/// cache), cached when it parses. A policy that does not parse, or a server
/// that cannot be reached, leaves the last good cached policy in force: a
/// bad push never blinds the agent. With nothing cached, [`resolve`] decides.
pub fn from_server(
    transport: &Transport,
    signer: &Signer,
    paths: &Paths,
    now: Timestamp,
) -> anyhow::Result<Synced> {
    let source = transport.server().to_string();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let cached = read_cache(paths).unwrap_or_else(|error| {
        warnings.push(format!("ignoring the cached server policy: {error:#}"));
        None
    });
    let etag = cached.as_ref().and_then(|(_, etag)| etag.as_deref());
    let fresh = match transport.fetch_policy(signer, etag) {
        Ok(PolicyFetch::NotModified) => {
            forget_refusal(paths, &mut warnings);
            None
        }
        Ok(PolicyFetch::Fresh {
            text,
            etag: fresh_etag,
        }) => match Policy::parse_accepted(&text, &format!("the policy from {source}")) {
            Ok(policy) => {
                if let Err(error) = write_cache(paths, &text, fresh_etag.as_deref()) {
                    warnings.push(format!("could not cache the server's policy: {error:#}"));
                }
                forget_refusal(paths, &mut warnings);
                Some(policy)
            }
            Err(error) => {
                let refused = RefusedPolicy {
                    refused_at: now,
                    etag: fresh_etag,
                    error: error.to_string(),
                    kept_etag: etag.map(str::to_owned),
                    kept: cached.is_some(),
                };
                errors.push(refused.message());
                if let Err(error) = remember_refusal(paths, &refused) {
                    warnings.push(format!("{error:#}"));
                }
                None
            }
        },
        Err(error) => {
            warnings.push(format!("could not fetch the policy: {error}"));
            None
        }
    };
    if let Some(policy) = fresh.or(cached.map(|(policy, _)| policy)) {
        return Ok(Synced {
            loaded: Loaded { policy, source },
            warnings,
            errors,
        });
    }
    without_server_policy(paths, now, warnings, errors)
}

/// The policy to judge by without asking the server (the circuit breaker is
/// open): the cached server policy, else as [`resolve`] decides.
pub fn offline(server: &str, paths: &Paths, now: Timestamp) -> anyhow::Result<Synced> {
    let mut warnings = Vec::new();
    match read_cache(paths) {
        Ok(Some((policy, _))) => {
            return Ok(Synced {
                loaded: Loaded {
                    policy,
                    source: server.to_owned(),
                },
                warnings,
                errors: Vec::new(),
            });
        }
        Ok(None) => {}
        Err(error) => warnings.push(format!("ignoring the cached server policy: {error:#}")),
    }
    without_server_policy(paths, now, warnings, Vec::new())
}

/// No server policy to judge by: the policy [`resolve`] decides, and a
/// warning that says which.
fn without_server_policy(
    paths: &Paths,
    now: Timestamp,
    mut warnings: Vec<String>,
    errors: Vec<String>,
) -> anyhow::Result<Synced> {
    let loaded = resolve(None, paths, now)?;
    warnings.push(format!(
        "no policy from the server yet: judging by {}",
        loaded.source
    ));
    Ok(Synced {
        loaded,
        warnings,
        errors,
    })
}

/// The ETag of the cached server policy, if any.
pub fn cached_etag(paths: &Paths) -> Option<String> {
    std::fs::read_to_string(paths.cached_policy_etag())
        .ok()
        .map(|etag| etag.trim().to_owned())
        .filter(|etag| !etag.is_empty())
}

fn remember_refusal(paths: &Paths, refused: &RefusedPolicy) -> anyhow::Result<()> {
    let mut text = serde_json::to_vec_pretty(refused)?;
    text.push(b'\n');
    atomic::write(&paths.refused_policy(), &text, atomic::Access::Everyone)
}

/// The server's policy is good again: the refusal is over.
fn forget_refusal(paths: &Paths, warnings: &mut Vec<String>) {
    let path = paths.refused_policy();
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            warnings.push(format!("could not remove {}: {error}", path.display()));
        }
        _ => {}
    }
}

/// The cached server policy and its ETag; `None` when nothing is cached.
/// The server validated it, so an exception that has expired since simply stops applying.
fn read_cache(paths: &Paths) -> anyhow::Result<Option<(Policy, Option<String>)>> {
    let path = paths.cached_policy();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("could not read {}", path.display()));
        }
    };
    let policy = Policy::parse_accepted(&text, &path.display().to_string())?;
    Ok(Some((policy, cached_etag(paths))))
}

/// Policy first, then its ETag: a crash in between leaves an old ETag, which
/// only costs one full download next time.
fn write_cache(paths: &Paths, text: &str, etag: Option<&str>) -> anyhow::Result<()> {
    atomic::write(
        &paths.cached_policy(),
        text.as_bytes(),
        atomic::Access::Everyone,
    )?;
    let etag_path = paths.cached_policy_etag();
    match etag {
        Some(etag) => atomic::write(&etag_path, etag.as_bytes(), atomic::Access::Everyone),
        None => match std::fs::remove_file(&etag_path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(error).with_context(|| format!("could not remove {}", etag_path.display()))
            }
            _ => Ok(()),
        },
    }
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
