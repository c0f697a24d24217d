//! `shipshape report`: judge this machine under the server's policy, queue
//! the report, send the outbox ([`crate::delivery`]), and say plainly what
//! happened.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shipshape_core::Verdict;
use shipshape_core::wire::{DeviceStatus, Receipt, ReportSubmission};

use crate::atomic;
use crate::breaker::{Breaker, Gate};
use crate::cli::Format;
use crate::config::{self, AgentConfig, Delivery};
use crate::delivery::{self, Delivered, Network, Outcome, Refused, Run, Sending};
use crate::exit;
use crate::judge;
use crate::keystore::{KeyStore, Keyring};
use crate::notify;
use crate::outbox::Outbox;
use crate::output;
use crate::paths::Paths;
use crate::policy_source;
use crate::system::System;
use crate::transport::{Signer, Timeouts, Transport};

/// This machine's enrollment, ready to sign: what `report` needs before it
/// runs a single probe.
#[derive(Debug)]
pub struct Enrolled {
    pub config: AgentConfig,
    pub transport: Transport,
    pub signer: Signer,
}

impl Enrolled {
    /// Reads the config and the device key; a machine that is not enrolled is an error.
    pub fn load(paths: &Paths, keyring: &dyn Keyring) -> anyhow::Result<Enrolled> {
        let path = paths.agent_config();
        let config = AgentConfig::load(&path)?.with_context(|| {
            format!(
                "this machine is not enrolled (there is no {}): run `shipshape enroll --server URL --token TOKEN` first",
                path.display()
            )
        })?;
        let key_file = paths.device_key_file();
        let key = KeyStore::of(config.key_store, keyring, &key_file).load()?;
        let transport = Transport::with_timeouts(
            &config.server,
            config.ca_file.as_deref(),
            Timeouts {
                connect: config.delivery.connect_timeout,
                request: config.delivery.request_timeout,
            },
        )?;
        let signer = Signer::new(key.into_signing_key(), config.device_id.clone());
        Ok(Enrolled {
            config,
            transport,
            signer,
        })
    }
}

/// What happened to the last report, kept in `last-report.json` for `shipshape status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastReport {
    pub id: String,
    /// When the checks ran.
    pub checked_at: Timestamp,
    pub server: String,
    /// This machine's own verdict.
    pub verdict: Verdict,
    /// The server's grade, when it acknowledged the report.
    pub status: Option<DeviceStatus>,
    /// When the server stored it.
    pub received_at: Option<Timestamp>,
    /// Why it was not delivered.
    pub error: Option<String>,
    /// Whether it waits in the outbox (not delivered, not refused).
    #[serde(default)]
    pub queued: bool,
}

impl LastReport {
    /// The record, or `None` when no report was attempted yet or the file is unreadable.
    pub fn load(path: &Path) -> Option<LastReport> {
        let text = std::fs::read_to_string(path).ok()?;
        match serde_json::from_str(&text) {
            Ok(last) => Some(last),
            Err(error) => {
                tracing::warn!("ignoring {}: {error}", path.display());
                None
            }
        }
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        atomic::write(path, &text, atomic::Access::Everyone)
    }
}

/// Runs `shipshape report`: judge, queue the report in the outbox, then
/// send the outbox as the circuit breaker allows. The exit code follows the
/// server's grade when this report was delivered (0 compliant, 1 leaky) and
/// this machine's own verdict when it stays queued: the network never turns
/// the check into a failure. It is 2 for real errors — not enrolled, a
/// config or outbox that cannot be used, a report the server refused for good.
pub fn run(
    system: &dyn System,
    paths: &Paths,
    keyring: &dyn Keyring,
    format: Format,
) -> anyhow::Result<u8> {
    let enrolled = Enrolled::load(paths, keyring)?;
    let settings = &enrolled.config.delivery;
    let server = enrolled.config.server.to_string();
    let now = Timestamp::now();
    let breaker_path = paths.breaker();
    let gate = Breaker::load(&breaker_path).gate(now);
    let synced = match gate {
        Gate::Open { .. } => policy_source::offline(&server, paths, now)?,
        Gate::Closed | Gate::HalfOpen => {
            policy_source::from_server(&enrolled.transport, &enrolled.signer, paths, now)?
        }
    };
    for warning in &synced.warnings {
        eprintln!("shipshape: warning: {warning}");
    }
    for error in &synced.errors {
        eprintln!("shipshape: error: {error}");
    }
    let judged = judge::run(system, paths, &synced.loaded, &[], now)?;
    notify::after_run(system, paths, &judged.report, notify::Run::default());
    if format == Format::Human {
        let mut stdout = anstream::stdout();
        output::human(&mut stdout, &judged.report).context("could not write the report")?;
        stdout.flush()?;
    }
    let submission = ReportSubmission {
        id: uuid::Uuid::now_v7().to_string(),
        facts: judged.facts,
        report: judged.report,
        dropped: 0,
    };
    let id = submission.id.clone();
    let outbox = Outbox::new(paths.outbox());
    outbox
        .enqueue(&submission)
        .with_context(|| format!("could not queue report {id} in the outbox"))?;
    let network = Network {
        transport: &enrolled.transport,
        signer: &enrolled.signer,
    };
    let outcome = delivery::deliver(
        &network,
        &Run {
            outbox: &outbox,
            state_path: &paths.delivery_state(),
            breaker_path: &breaker_path,
            settings,
            gate,
        },
    )
    .with_context(|| format!("report {id} is queued, but the outbox cannot be sent"))?;

    let fate = Fate::of(&outcome, &id);
    let now = Timestamp::now();
    let queued_because = why_queued(&outcome, now);
    let last = LastReport {
        id: id.clone(),
        checked_at: submission.report.checked_at,
        server: server.clone(),
        verdict: submission.report.verdict,
        status: fate.receipt().map(|receipt| receipt.status),
        received_at: fate.receipt().map(|receipt| receipt.received_at),
        error: match &fate {
            Fate::Delivered(_) => None,
            Fate::Rejected(refused) => Some(refused.reason.clone()),
            Fate::Queued => Some(queued_because.clone()),
        },
        queued: matches!(fate, Fate::Queued),
    };
    if let Err(error) = last.save(&paths.last_report()) {
        eprintln!("shipshape: warning: could not record the outcome of this report: {error:#}");
    }

    explain_on_stderr(&outcome, settings);
    let verdict = submission.report.verdict;
    let told = Told {
        id: &id,
        server: &server,
        verdict,
        queued_because: &queued_because,
        now,
    };
    match format {
        Format::Json => told.json(&fate, &outcome)?,
        Format::Human => told.human(&fate, &outcome)?,
    }
    let refused_by_server = match &outcome.sending {
        Sending::Flushed(flushed) => flushed.rejected.iter().any(|refused| refused.by_server),
        Sending::BreakerOpen { .. } | Sending::Busy => false,
    };
    Ok(match fate {
        _ if refused_by_server => exit::ERROR,
        Fate::Delivered(receipt) => match receipt.status {
            DeviceStatus::Leaky => exit::LEAKY,
            DeviceStatus::Compliant | DeviceStatus::Unknown | DeviceStatus::Silent => {
                exit::SHIPSHAPE
            }
        },
        Fate::Rejected(_) | Fate::Queued => match verdict {
            Verdict::Shipshape => exit::SHIPSHAPE,
            Verdict::Leaky => exit::LEAKY,
        },
    })
}

/// What `report` tells about this run's report on stdout.
struct Told<'a> {
    id: &'a str,
    server: &'a str,
    verdict: Verdict,
    queued_because: &'a str,
    now: Timestamp,
}

impl Told<'_> {
    /// The receipt when delivered, else why not.
    fn json(&self, fate: &Fate<'_>, outcome: &Outcome) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        let (queued, reason) = match fate {
            Fate::Delivered(receipt) => {
                serde_json::to_writer_pretty(&mut stdout, receipt)?;
                writeln!(stdout)?;
                return Ok(());
            }
            Fate::Rejected(refused) => (false, refused.reason.as_str()),
            Fate::Queued => (true, self.queued_because),
        };
        let not_delivered = NotDelivered {
            report_id: self.id,
            verdict: self.verdict,
            queued,
            waiting: outcome.waiting,
            reason,
        };
        serde_json::to_writer_pretty(&mut stdout, &not_delivered)?;
        writeln!(stdout)?;
        Ok(())
    }

    /// The backlog delivered, then this report: delivered, or queued and why.
    /// A refusal is on stderr already.
    fn human(&self, fate: &Fate<'_>, outcome: &Outcome) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        let now = self.now;
        if let Sending::Flushed(flushed) = &outcome.sending {
            let earlier: Vec<&Delivered> = flushed
                .delivered
                .iter()
                .filter(|delivered| delivered.id != self.id)
                .collect();
            if let Some(oldest) = earlier.first() {
                let since = oldest
                    .queued_at
                    .map(|at| format!(" (the oldest from {})", output::clock(at, now)))
                    .unwrap_or_default();
                writeln!(
                    stdout,
                    "delivered {}{since}",
                    output::plural(earlier.len(), "queued report")
                )?;
            }
        }
        match fate {
            Fate::Delivered(receipt) => {
                writeln!(stdout, "{}", delivered_line(receipt, self.server))?;
            }
            Fate::Rejected(_) => {}
            Fate::Queued => {
                writeln!(stdout, "report {} queued: {}", self.id, self.queued_because)?;
                if let (Sending::Flushed(_), Gate::Open { until }) =
                    (&outcome.sending, outcome.breaker.gate(now))
                {
                    writeln!(
                        stdout,
                        "breaker open until {} after {}: the runs until then queue reports without sending",
                        output::clock(until, now),
                        output::plural(outcome.breaker.failed_runs as usize, "failed run")
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// What became of this run's report.
enum Fate<'a> {
    Delivered(&'a Receipt),
    Rejected(&'a Refused),
    Queued,
}

impl<'a> Fate<'a> {
    fn of(outcome: &'a Outcome, id: &str) -> Fate<'a> {
        let Sending::Flushed(flushed) = &outcome.sending else {
            return Fate::Queued;
        };
        if let Some(delivered) = flushed
            .delivered
            .iter()
            .find(|delivered| delivered.id == id)
        {
            return Fate::Delivered(&delivered.receipt);
        }
        match flushed.rejected.iter().find(|refused| refused.id == id) {
            Some(refused) => Fate::Rejected(refused),
            None => Fate::Queued,
        }
    }

    fn receipt(&self) -> Option<&'a Receipt> {
        match self {
            Fate::Delivered(receipt) => Some(receipt),
            Fate::Rejected(_) | Fate::Queued => None,
        }
    }
}

/// `shipshape report --format json` when the report was not delivered.
#[derive(Serialize)]
struct NotDelivered<'a> {
    report_id: &'a str,
    /// This machine's own verdict, which the exit code follows.
    verdict: Verdict,
    /// Whether it waits in the outbox (else the server refused it for good).
    queued: bool,
    /// Reports waiting in the outbox after this run.
    waiting: usize,
    reason: &'a str,
}

/// For `shipshape check`, when reports wait in the outbox: "3 reports
/// waiting to be sent: server unreachable since 09:12 UTC, the next
/// `shipshape report` retries — cannot reach …". Reads only local state: a
/// check never touches the network.
pub fn waiting_note(paths: &Paths, now: Timestamp) -> Option<String> {
    let waiting = Outbox::new(paths.outbox()).queued().ok()?.len();
    if waiting == 0 {
        return None;
    }
    let breaker = Breaker::load(&paths.breaker());
    let why = match (&breaker.last_error, breaker.gate(now)) {
        (Some(trouble), Gate::Open { until }) => format!(
            "{}, breaker open until {} — {}",
            trouble.since(breaker.failing_since, now),
            output::clock(until, now),
            trouble.message
        ),
        (Some(trouble), Gate::Closed | Gate::HalfOpen) => format!(
            "{}, the next `shipshape report` retries — {}",
            trouble.since(breaker.failing_since, now),
            trouble.message
        ),
        (None, _) => "they go with the next `shipshape report`".to_owned(),
    };
    Some(format!(
        "{} waiting to be sent: {why}",
        output::plural(waiting, "report")
    ))
}

/// Why the report stays queued, for a person: "server unreachable since
/// 09:12 UTC; 3 reports waiting, will retry at the next run — cannot reach …".
fn why_queued(outcome: &Outcome, now: Timestamp) -> String {
    let waiting = output::plural(outcome.waiting, "report");
    let breaker = &outcome.breaker;
    let (since, error) = breaker.last_error.as_ref().map_or_else(
        || ("delivery failing".to_owned(), String::new()),
        |trouble| {
            (
                trouble.since(breaker.failing_since, now),
                format!(" — {}", trouble.message),
            )
        },
    );
    match &outcome.sending {
        Sending::Busy => {
            format!("another shipshape run is sending the outbox; {waiting} waiting")
        }
        Sending::BreakerOpen { until } => format!(
            "breaker open until {} after {}: not sending; {waiting} waiting; {since}{error}",
            output::clock(*until, now),
            output::plural(breaker.failed_runs as usize, "failed run"),
        ),
        Sending::Flushed(flushed) if flushed.failure.is_some() => {
            format!("{since}; {waiting} waiting, will retry at the next run{error}")
        }
        Sending::Flushed(_) => format!("{waiting} waiting, will retry at the next run"),
    }
}

/// Local trouble, dropped reports and refusals, on stderr.
fn explain_on_stderr(outcome: &Outcome, settings: &Delivery) {
    if outcome.trimmed > 0 {
        eprintln!(
            "shipshape: warning: the outbox was full (at most {} and {}): dropped the {}; the next delivered report tells the server",
            output::plural(settings.outbox_max_reports, "report"),
            config::size_text(settings.outbox_max_bytes),
            output::plural(
                usize::try_from(outcome.trimmed).unwrap_or(usize::MAX),
                "oldest report"
            ),
        );
    }
    let Sending::Flushed(flushed) = &outcome.sending else {
        return;
    };
    for warning in &flushed.warnings {
        eprintln!("shipshape: warning: {warning}");
    }
    for refused in &flushed.rejected {
        let place = refused.moved_to.as_ref().map_or_else(
            || "; it stays in the outbox".to_owned(),
            |path| format!("; moved to {}", path.display()),
        );
        if refused.by_server {
            eprintln!(
                "shipshape: error: report {} was not delivered: {}{place}",
                refused.id, refused.reason
            );
        } else {
            eprintln!(
                "shipshape: error: not sending {}: {}{place}",
                refused.id, refused.reason
            );
        }
    }
}

/// "report 0198… delivered to https://…: leaky (firewall, ssh-server)".
fn delivered_line(receipt: &Receipt, server: &str) -> String {
    let leaks: Vec<&str> = receipt
        .findings
        .iter()
        .filter(|finding| finding.leak)
        .map(|finding| finding.check.as_str())
        .collect();
    let detail = if leaks.is_empty() {
        String::new()
    } else {
        format!(" ({})", leaks.join(", "))
    };
    format!(
        "report {} delivered to {server}: {}{detail}",
        receipt.report_id, receipt.status
    )
}
