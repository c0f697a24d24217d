//! `shipshape status`: is this machine enrolled, can it sign, how did the
//! last report go, what waits in the outbox or was refused, is the breaker
//! open, is the server's policy in force, and does the server answer. A
//! diagnosis, so it always exits 0 and reports problems as lines, not as errors.

use std::io::Write;
use std::path::PathBuf;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::breaker::{Breaker, Gate, Trouble};
use crate::cli::Format;
use crate::config::AgentConfig;
use crate::delivery::DeliveryState;
use crate::exit;
use crate::keystore::{KeyStore, KeyStoreKind, Keyring};
use crate::outbox::{Outbox, RejectedReport};
use crate::output;
use crate::paths::Paths;
use crate::policy_source::{self, RefusedPolicy};
use crate::report::LastReport;
use crate::transport::{Timeouts, Transport};

/// How many rejected reports the human status lists, newest first.
const REJECTED_SHOWN: usize = 5;

/// Everything `status` found, as `--format json` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub config_file: PathBuf,
    pub enrolled: bool,
    /// Why the config file cannot be used, when it exists but does not parse.
    pub config_error: Option<String>,
    pub server: Option<String>,
    pub device_id: Option<String>,
    pub key: Option<KeyStatus>,
    pub last_report: Option<LastReport>,
    pub delivery: DeliveryStatus,
    /// The server's policy as cached here; `None` when not enrolled.
    pub policy: Option<PolicyStatus>,
    pub server_health: Option<Health>,
}

/// The outbox, the rejected reports and the circuit breaker.
#[derive(Debug, Serialize)]
pub struct DeliveryStatus {
    pub outbox: PathBuf,
    /// Reports waiting to be sent.
    pub queued: usize,
    pub queued_bytes: u64,
    /// When the oldest waiting report was made.
    pub oldest_queued: Option<Timestamp>,
    /// Reports dropped from a full outbox, not yet announced to the server.
    pub dropped: u64,
    /// Reports refused for good, oldest first.
    pub rejected: Vec<RejectedReport>,
    pub breaker: BreakerStatus,
}

/// The circuit breaker, as of now.
#[derive(Debug, Serialize)]
pub struct BreakerStatus {
    pub state: BreakerState,
    pub open_until: Option<Timestamp>,
    pub failed_runs: u32,
    pub failing_since: Option<Timestamp>,
    pub last_error: Option<Trouble>,
}

/// Whether runs talk to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    /// Runs queue reports without touching the network until `open_until`.
    Open,
    /// The cool-off is over: the next run probes the server.
    HalfOpen,
}

/// The server's policy as cached on this machine.
#[derive(Debug, Serialize)]
pub struct PolicyStatus {
    /// The ETag of the cached (last good) policy.
    pub cached_etag: Option<String>,
    /// A policy the server sent that does not parse, while it is not replaced.
    pub refused: Option<RefusedPolicy>,
}

/// Where the device key is, and whether it can be read.
#[derive(Debug, Serialize)]
pub struct KeyStatus {
    pub store: KeyStoreKind,
    /// The keyring's name or the file's path.
    pub location: String,
    /// Why the key cannot be used; `None` when it loads.
    pub problem: Option<String>,
}

/// The answer to `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub reachable: bool,
    pub elapsed_ms: Option<u64>,
    pub error: Option<String>,
}

/// Gathers the status: reads the config, loads the key, asks the server.
pub fn gather(paths: &Paths, keyring: &dyn Keyring) -> Status {
    let config_file = paths.agent_config();
    let last_report = LastReport::load(&paths.last_report());
    let delivery = delivery_status(paths, Timestamp::now());
    let (config, config_error) = match AgentConfig::load(&config_file) {
        Ok(config) => (config, None),
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    let Some(config) = config else {
        return Status {
            config_file,
            enrolled: false,
            config_error,
            server: None,
            device_id: None,
            key: None,
            last_report,
            delivery,
            policy: None,
            server_health: None,
        };
    };
    let key_file = paths.device_key_file();
    let store = KeyStore::of(config.key_store, keyring, &key_file);
    let key = KeyStatus {
        store: store.kind(),
        location: store.describe(),
        problem: store.load().err().map(|error| error.to_string()),
    };
    let server_health = Some(
        match Transport::with_timeouts(
            &config.server,
            config.ca_file.as_deref(),
            Timeouts {
                connect: config.delivery.connect_timeout,
                request: config.delivery.request_timeout,
            },
        )
        .map_err(|error| error.to_string())
        .and_then(|transport| transport.health().map_err(|error| error.to_string()))
        {
            Ok(elapsed) => Health {
                reachable: true,
                elapsed_ms: Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)),
                error: None,
            },
            Err(error) => Health {
                reachable: false,
                elapsed_ms: None,
                error: Some(error),
            },
        },
    );
    Status {
        config_file,
        enrolled: true,
        config_error: None,
        server: Some(config.server.to_string()),
        device_id: Some(config.device_id),
        key: Some(key),
        last_report,
        delivery,
        policy: Some(PolicyStatus {
            cached_etag: policy_source::cached_etag(paths),
            refused: RefusedPolicy::load(paths),
        }),
        server_health,
    }
}

fn delivery_status(paths: &Paths, now: Timestamp) -> DeliveryStatus {
    let outbox = Outbox::new(paths.outbox());
    let queued = outbox.queued().unwrap_or_default();
    let breaker = Breaker::load(&paths.breaker());
    let (state, open_until) = match breaker.gate(now) {
        Gate::Closed => (BreakerState::Closed, None),
        Gate::Open { until } => (BreakerState::Open, Some(until)),
        Gate::HalfOpen => (BreakerState::HalfOpen, breaker.open_until),
    };
    DeliveryStatus {
        outbox: outbox.dir().to_owned(),
        queued: queued.len(),
        queued_bytes: queued.iter().map(|queued| queued.bytes).sum(),
        oldest_queued: queued.first().and_then(|queued| queued.queued_at),
        dropped: DeliveryState::load(&paths.delivery_state()).dropped,
        rejected: outbox.rejected(),
        breaker: BreakerStatus {
            state,
            open_until,
            failed_runs: breaker.failed_runs,
            failing_since: breaker.failing_since,
            last_error: breaker.last_error,
        },
    }
}

/// Runs `shipshape status`.
pub fn run(paths: &Paths, keyring: &dyn Keyring, format: Format) -> anyhow::Result<u8> {
    let status = gather(paths, keyring);
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &status)?;
            writeln!(stdout)?;
        }
        Format::Human => human(&mut stdout, &status)?,
    }
    Ok(exit::SHIPSHAPE)
}

/// The status for a person, one aligned line per subject.
pub fn human(out: &mut impl Write, status: &Status) -> std::io::Result<()> {
    let line = |out: &mut dyn Write, label: &str, text: &str| writeln!(out, "{label:<12} {text}");
    let enrolled = match (&status.server, &status.device_id, &status.config_error) {
        (Some(server), Some(device), _) => format!("yes, with {server} as device {device}"),
        (_, _, Some(error)) => format!("unknown: the config does not parse: {error}"),
        _ => "no: run `shipshape enroll --server URL --token TOKEN`".to_owned(),
    };
    line(out, "enrolled", &enrolled)?;
    line(out, "config", &status.config_file.display().to_string())?;
    if let Some(key) = &status.key {
        let state = match &key.problem {
            None => "readable".to_owned(),
            Some(problem) => format!("NOT USABLE: {problem}"),
        };
        line(out, "device key", &format!("{} ({state})", key.location))?;
    }
    let last = match &status.last_report {
        None => "none yet".to_owned(),
        Some(last) => {
            let when = last
                .checked_at
                .to_zoned(TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%M UTC");
            match (&last.status, &last.error) {
                (Some(grade), _) => format!(
                    "{} at {when}: delivered to {}, graded {grade}",
                    last.id, last.server
                ),
                (None, Some(error)) if last.queued => {
                    format!("{} at {when}: queued, not delivered yet: {error}", last.id)
                }
                (None, Some(error)) => format!("{} at {when}: NOT delivered: {error}", last.id),
                (None, None) => format!("{} at {when}: outcome unknown", last.id),
            }
        }
    };
    line(out, "last report", &last)?;
    if status.enrolled || status.delivery.queued > 0 || !status.delivery.rejected.is_empty() {
        delivery_lines(out, &status.delivery, Timestamp::now())?;
    }
    if let Some(policy) = &status.policy {
        let text = match (&policy.refused, &policy.cached_etag) {
            (Some(refused), _) => format!(
                "ERROR since {}: {}",
                output::clock(refused.refused_at, Timestamp::now()),
                refused.message()
            ),
            (None, Some(etag)) => format!("the server's, cached (etag {etag})"),
            (None, None) => "none cached from the server yet".to_owned(),
        };
        line(out, "policy", &text)?;
    }
    if let Some(health) = &status.server_health {
        let text = match &health.error {
            Some(error) => format!("unreachable: {error}"),
            None => format!(
                "reachable (GET /healthz answered in {} ms)",
                health.elapsed_ms.unwrap_or_default()
            ),
        };
        line(out, "server", &text)?;
    }
    Ok(())
}

fn delivery_lines(
    out: &mut impl Write,
    delivery: &DeliveryStatus,
    now: Timestamp,
) -> std::io::Result<()> {
    let label = |label: &str| format!("{label:<12}");
    let outbox = if delivery.queued == 0 {
        "empty".to_owned()
    } else {
        let oldest = delivery
            .oldest_queued
            .map(|at| format!(", the oldest from {}", output::clock(at, now)))
            .unwrap_or_default();
        format!(
            "{} waiting to be sent ({} bytes){oldest}",
            output::plural(delivery.queued, "report"),
            delivery.queued_bytes
        )
    };
    let dropped = if delivery.dropped > 0 {
        format!(
            "; {} dropped from the full outbox, to be announced to the server",
            output::plural(
                usize::try_from(delivery.dropped).unwrap_or(usize::MAX),
                "report"
            )
        )
    } else {
        String::new()
    };
    writeln!(out, "{} {outbox}{dropped}", label("outbox"))?;
    if !delivery.rejected.is_empty() {
        writeln!(
            out,
            "{} {} refused for good, kept in {}:",
            label("rejected"),
            output::plural(delivery.rejected.len(), "report"),
            delivery.outbox.join("rejected").display()
        )?;
        for rejected in delivery.rejected.iter().rev().take(REJECTED_SHOWN) {
            let why = match &rejected.rejection {
                Some(rejection) => format!(
                    "refused {}: {}",
                    output::clock(rejection.rejected_at, now),
                    rejection.reason
                ),
                None => "no reason recorded".to_owned(),
            };
            writeln!(out, "{} {}: {why}", label(""), rejected.id)?;
        }
        if delivery.rejected.len() > REJECTED_SHOWN {
            writeln!(
                out,
                "{} … and {} more",
                label(""),
                delivery.rejected.len() - REJECTED_SHOWN
            )?;
        }
    }
    let breaker = &delivery.breaker;
    let streak = breaker
        .last_error
        .as_ref()
        .map_or_else(String::new, |trouble| {
            format!(
                " — {}: {}",
                trouble.since(breaker.failing_since, now),
                trouble.message
            )
        });
    let runs = output::plural(breaker.failed_runs as usize, "failed run");
    let text = match (breaker.state, breaker.open_until) {
        (BreakerState::Open, Some(until)) => format!(
            "breaker OPEN until {} after {runs}: reports are queued, not sent{streak}",
            output::clock(until, now)
        ),
        (BreakerState::HalfOpen, _) => {
            format!("breaker half-open after {runs}: the next run probes the server{streak}")
        }
        _ if breaker.failed_runs > 0 => format!("{runs} in a row{streak}"),
        _ => "ok".to_owned(),
    };
    writeln!(out, "{} {text}", label("delivery"))
}
