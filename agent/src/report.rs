//! `shipshape report`: judge this machine under the server's policy, sign
//! the report, deliver it, and remember how that went.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shipshape_core::Verdict;
use shipshape_core::wire::{DeviceStatus, Receipt, ReportSubmission};

use crate::atomic;
use crate::cli::Format;
use crate::config::AgentConfig;
use crate::exit;
use crate::judge;
use crate::keystore::{KeyStore, Keyring};
use crate::output;
use crate::paths::Paths;
use crate::policy_source;
use crate::system::System;
use crate::transport::{RequestError, Signer, Transport};

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
        let transport = Transport::new(&config.server, config.ca_file.as_deref())?;
        let signer = Signer::new(key.into_signing_key(), config.device_id.clone());
        Ok(Enrolled {
            config,
            transport,
            signer,
        })
    }
}

/// Delivers one report. The one place a report leaves this machine: the
/// outbox, retries and circuit breaker will wrap this call.
pub fn deliver(
    enrolled: &Enrolled,
    submission: &ReportSubmission,
) -> Result<Receipt, RequestError> {
    enrolled
        .transport
        .submit_report(&enrolled.signer, submission)
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

/// Runs `shipshape report`: the exit code follows the server's grade when
/// the report was delivered (0 compliant, 1 leaky), and is 2 when it was not.
pub fn run(
    system: &dyn System,
    paths: &Paths,
    keyring: &dyn Keyring,
    format: Format,
) -> anyhow::Result<u8> {
    let enrolled = Enrolled::load(paths, keyring)?;
    let now = Timestamp::now();
    let synced = policy_source::from_server(&enrolled.transport, &enrolled.signer, paths, now)?;
    for warning in &synced.warnings {
        eprintln!("shipshape: warning: {warning}");
    }
    let judged = judge::run(system, paths, &synced.loaded, &[], now)?;
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
    let server = enrolled.config.server.to_string();
    let outcome = deliver(&enrolled, &submission);
    let last = LastReport {
        id: submission.id.clone(),
        checked_at: submission.report.checked_at,
        server: server.clone(),
        verdict: submission.report.verdict,
        status: outcome.as_ref().ok().map(|receipt| receipt.status),
        received_at: outcome.as_ref().ok().map(|receipt| receipt.received_at),
        error: outcome.as_ref().err().map(ToString::to_string),
    };
    if let Err(error) = last.save(&paths.last_report()) {
        eprintln!("shipshape: warning: could not record the outcome of this report: {error:#}");
    }
    let receipt = outcome.with_context(|| format!("report {} was not delivered", submission.id))?;
    match format {
        Format::Json => {
            let mut stdout = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut stdout, &receipt)?;
            writeln!(stdout)?;
        }
        Format::Human => println!("{}", delivered_line(&receipt, &server)),
    }
    Ok(match receipt.status {
        DeviceStatus::Leaky => exit::LEAKY,
        DeviceStatus::Compliant | DeviceStatus::Unknown | DeviceStatus::Silent => exit::SHIPSHAPE,
    })
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
