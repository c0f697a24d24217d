//! One simulated device: its key and id, its machine, and the agent's
//! memory between runs — when each failing check started failing (grace),
//! and the facts hash of its last acknowledged full report, which decides
//! whether a run goes in full or as a heartbeat (as `agent/src/delivery.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use jiff::Timestamp;
use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
use shipshape_core::signing::{BuildError, SignedHeaders, sign_request};
use shipshape_core::wire::{EnrollRequest, Heartbeat, ReportSubmission, facts_hash};
use shipshape_core::{FailingSince, Policy, Verdict, advance_failing_since, evaluate};

use crate::facts::Machine;

/// A device's key, before it is enrolled.
#[derive(Debug)]
pub struct Identity {
    key: SigningKey,
}

/// A new Ed25519 key or nonce could not be drawn from the operating system.
#[derive(Debug, thiserror::Error)]
#[error("the operating system gave no random bytes: {0}")]
pub struct NoRandomness(getrandom::Error);

impl Identity {
    /// A new Ed25519 key from the operating system's random source.
    pub fn new() -> Result<Identity, NoRandomness> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(NoRandomness)?;
        Ok(Identity {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// `POST /v1/enroll`'s body for this key, describing `machine`.
    pub fn enroll_request(&self, token: &str, machine: &Machine) -> EnrollRequest {
        EnrollRequest {
            token: token.to_owned(),
            public_key: STANDARD.encode(self.key.verifying_key().as_bytes()),
            host: machine.facts().host.clone(),
        }
    }
}

/// An enrolled device.
#[derive(Debug)]
pub struct Device {
    /// The id the server gave at enrollment: the `keyid` of its signatures.
    pub id: String,
    key: SigningKey,
    machine: Machine,
    /// [`facts_hash`] of the machine's current facts.
    hash: String,
    failing_since: FailingSince,
    /// The facts hash of the last full report the server acknowledged.
    acknowledged: Option<String>,
}

/// One run of the agent: its report, ready to go in full or as a heartbeat.
#[derive(Debug)]
pub struct Run {
    submission: ReportSubmission,
    hash: String,
    /// The server holds these facts already: the run goes as a heartbeat.
    pub heartbeat: bool,
}

impl Device {
    pub fn new(id: String, identity: Identity, machine: Machine) -> Device {
        let hash = facts_hash(machine.facts());
        Device {
            id,
            key: identity.key,
            machine,
            hash,
            failing_since: FailingSince::new(),
            acknowledged: None,
        }
    }

    /// Something changes on the machine before its next run.
    pub fn change(&mut self, now: Timestamp) {
        self.machine.change(now);
        self.hash = facts_hash(self.machine.facts());
    }

    /// Checks the machine at `now` under `policy` (fetched from `server`),
    /// as the agent's `shipshape report` does, keeping the grace clocks.
    pub fn run(&mut self, policy: &Policy, server: &str, now: Timestamp) -> Run {
        let facts = self.machine.facts();
        let findings = evaluate(policy, facts, now, &self.failing_since);
        advance_failing_since(&mut self.failing_since, &findings, now);
        let report = CheckReport {
            schema: SCHEMA_VERSION,
            verdict: Verdict::of(&findings),
            checked_at: now,
            host: facts.host.clone(),
            policy: PolicyRef {
                name: policy.name.clone(),
                source: server.to_owned(),
            },
            findings,
        };
        let id = uuid::Uuid::now_v7().to_string();
        Run {
            heartbeat: self.acknowledged.as_deref() == Some(self.hash.as_str()),
            hash: self.hash.clone(),
            submission: ReportSubmission {
                id,
                facts: facts.clone(),
                report,
                dropped: 0,
            },
        }
    }

    /// The server stored `run` in full: later runs with the same facts go
    /// as heartbeats.
    pub fn acknowledge(&mut self, run: &Run) {
        self.acknowledged = Some(run.hash.clone());
    }

    /// The signature headers for `POST url` with `body`, signed at `now`
    /// with a fresh random nonce, as the agent signs.
    pub fn sign(&self, url: &str, body: &[u8], now: Timestamp) -> Result<SignedHeaders, SignError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|error| SignError::Random(NoRandomness(error)))?;
        Ok(sign_request(
            "POST",
            url,
            body,
            &self.key,
            &self.id,
            now.as_second(),
            &URL_SAFE_NO_PAD.encode(nonce),
        )?)
    }
}

/// A request that cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Random(NoRandomness),
    #[error("cannot sign the request: {0}")]
    Build(#[from] BuildError),
}

/// Why serializing a report cannot fail: every map in it has string keys.
const SERIALIZES: &str = "a report serializes: its maps all have string keys";

impl Run {
    /// `POST /v1/reports`'s body: the facts in full.
    pub fn full_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.submission).expect(SERIALIZES)
    }

    /// `POST /v1/heartbeats`' body: the facts' hash instead of the facts.
    pub fn heartbeat_body(&self) -> Vec<u8> {
        serde_json::to_vec(&Heartbeat {
            id: self.submission.id.clone(),
            facts_hash: self.hash.clone(),
            report: self.submission.report.clone(),
            dropped: self.submission.dropped,
        })
        .expect(SERIALIZES)
    }

    /// The agent's verdict in this run.
    pub fn verdict(&self) -> Verdict {
        self.submission.report.verdict
    }
}

#[cfg(test)]
mod tests;
