//! `POST /v1/reports`: a device's signed report, graded with the server's
//! policy and stored once. A retry of a stored report gets the same receipt.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use jiff::Timestamp;
use shipshape_core::wire::{Receipt, ReportSubmission};

use super::{AppState, Failure, body_bytes, check_hostname, parse_json};
use crate::auth::{self, SignatureRejection, SignedRequest};
use crate::model::IncomingReport;
use crate::store::Recorded;

pub(super) async fn submit(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Receipt>, Failure> {
    accept(&state, &method, &uri, &headers, body)
        .await
        .map_err(|Rejected { reason, failure }| {
            state.metrics().report_rejected(reason);
            tracing::info!(reason, error = failure.body.error, "report refused");
            failure
        })
}

async fn accept(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Receipt>, Rejected> {
    let now = Timestamp::now();
    let body = body_bytes(body).map_err(|failure| {
        let reason = if failure.status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "unreadable_body"
        };
        Rejected::new(reason, failure)
    })?;
    let signed = signed_request(state, method, uri, headers, &body, now)
        .await
        .map_err(|(reason, failure)| Rejected::new(reason, failure))?;
    let submission: ReportSubmission =
        parse_json(&body).map_err(|failure| Rejected::new("malformed_json", failure))?;
    check_submission(&submission).map_err(|failure| Rejected::new("invalid_report", failure))?;

    let report_id = submission.id.clone();
    let report = IncomingReport {
        device_id: signed.device_id.clone(),
        received_at: now,
        nonce: signed.nonce,
        submission,
    };
    let recorded = {
        let policy = state.inner.policy.read().await;
        state
            .store()
            .record_report(report, &policy)
            .await
            .map_err(|error| Rejected::new("store_unavailable", error.into()))?
    };
    match recorded {
        Recorded::Stored(receipt) => {
            // Debug, not info: at fleet scale, a line per report drowns the log.
            tracing::debug!(
                device_id = signed.device_id,
                report_id,
                status = %receipt.status,
                "report stored"
            );
            state.metrics().report_accepted(false);
            Ok(Json(receipt))
        }
        Recorded::AlreadyStored(receipt) => {
            tracing::debug!(device_id = signed.device_id, report_id, "report retried");
            state.metrics().report_accepted(true);
            Ok(Json(receipt))
        }
        Recorded::ReplayedNonce => Err(Rejected::new(
            "replayed_nonce",
            Failure::unauthorized(
                "signature nonce was used before: a replayed request; sign every request, retries included, with a fresh nonce",
            ),
        )),
        Recorded::IdTakenByAnotherDevice => Err(Rejected::new(
            "id_conflict",
            Failure::new(
                StatusCode::CONFLICT,
                format!(
                    "report id `{report_id}` belongs to another device's report: choose a new UUID v7 for every report"
                ),
            ),
        )),
    }
}

/// A refused report: the reason it is counted under, and the answer.
struct Rejected {
    reason: &'static str,
    failure: Failure,
}

impl Rejected {
    fn new(reason: &'static str, failure: Failure) -> Rejected {
        Rejected { reason, failure }
    }
}

/// Verifies an agent's signed request; on refusal, the metrics reason and
/// the failure to answer with (401, or 503 when the store is down).
pub(super) async fn signed_request(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<SignedRequest, (&'static str, Failure)> {
    let settings = state.settings();
    let target = auth::target_uri(settings.public_url.as_ref(), settings.tls, headers, uri)
        .ok_or_else(|| {
            (
                "malformed_signature",
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    "request has no Host header, so its signed target URI cannot be checked",
                ),
            )
        })?;
    auth::verify_signed(state.store(), method, &target, headers, body, now)
        .await
        .map_err(|rejection| {
            let reason = rejection.reason();
            let failure = match rejection {
                SignatureRejection::Store(error) => Failure::from(error),
                other => Failure::unauthorized(other.to_string()),
            };
            (reason, failure)
        })
}

/// What the JSON shape alone does not say: the id is a UUID, and the host
/// is one a machine could have.
fn check_submission(submission: &ReportSubmission) -> Result<(), Failure> {
    let canonical = uuid::Uuid::parse_str(&submission.id)
        .map(|id| id.hyphenated().to_string() == submission.id)
        .unwrap_or(false);
    if !canonical {
        return Err(Failure::field(
            "id",
            format!(
                "report id `{}` is not a UUID in lowercase hyphenated form (e.g. 01890a5d-ac96-774b-bcce-b302099a8057)",
                submission.id
            ),
        ));
    }
    check_hostname("facts.host.hostname", &submission.facts.host.hostname)
}
