//! `POST /v1/heartbeats`: a signed run whose facts did not change since the
//! device's last report, sent as their hash instead of in full.
//!
//! When the hash is that of the device's last stored facts, the heartbeat
//! is graded with those facts and stored as a report that names them (they
//! are kept once, in the full report that brought them), through the same
//! path as a full one: idempotent on its id, its nonce recorded, last-seen
//! and transitions updated. Otherwise (a first report, a database restored from
//! a backup, a full report with other facts in between) the answer is 409
//! with the code [`RESEND_FULL`] and nothing is stored — not even the nonce,
//! so the full report the agent sends next goes through at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use shipshape_core::wire::{Heartbeat, RESEND_FULL, Receipt, ReportSubmission};

use super::reports::{Kind, Rejected, Submitted, answer, check_report_id, record};
use super::{AppState, Failure};
use crate::auth::SignedRequest;

pub(super) async fn submit(
    State(state): State<AppState>,
    submitted: Submitted,
) -> Result<Json<Receipt>, Failure> {
    let validate = |heartbeat: &Heartbeat| {
        check_report_id(&heartbeat.id).and_then(|()| check_hash(&heartbeat.facts_hash))
    };
    let store = async |signed: SignedRequest, heartbeat: Heartbeat, now| {
        let current = state
            .store()
            .current_facts(&signed.device_id, &heartbeat.facts_hash)
            .await
            .map_err(|error| Rejected::new("store_unavailable", error.into()))?
            .ok_or_else(|| Rejected::new("resend_full", resend_full(&heartbeat.facts_hash)))?;
        let submission = ReportSubmission {
            id: heartbeat.id,
            facts: current.facts,
            report: heartbeat.report,
            dropped: heartbeat.dropped,
        };
        record(&state, signed, submission, Some(current.origin), now).await
    };
    answer(&state, Kind::Heartbeat, submitted, validate, store).await
}

/// A hash as [`facts_hash`] writes it: 64 lowercase hex digits.
fn check_hash(hash: &str) -> Result<(), Failure> {
    let well_formed = hash.len() == 64
        && hash
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    if well_formed {
        Ok(())
    } else {
        Err(Failure::field(
            "facts_hash",
            format!("facts hash `{hash}` is not a SHA-256 in lowercase hex (64 characters)"),
        ))
    }
}

fn resend_full(hash: &str) -> Failure {
    let mut failure = Failure::new(
        StatusCode::CONFLICT,
        format!(
            "the server holds no facts with hash {hash} for this device: nothing was stored; resend the full report"
        ),
    );
    failure.body.code = Some(RESEND_FULL.to_owned());
    failure
}
