//! `POST /v1/reports`: a device's signed report, graded with the server's
//! policy and stored once. A retry of a stored report gets the same receipt.

use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use shipshape_core::wire::{Receipt, ReportSubmission};

use super::{AppState, Failure, body_bytes, check_hostname, parse_json};
use crate::auth::{self, SignatureRejection, SignedRequest};
use crate::model::{FactsOrigin, IncomingReport};
use crate::store::{Recorded, StoreError};

/// The two ways a report arrives: with its facts, or as a heartbeat that
/// names facts the server already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Full,
    Heartbeat,
}

impl Kind {
    /// What the logs call it.
    fn noun(self) -> &'static str {
        match self {
            Kind::Full => "report",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

pub(super) async fn submit(
    State(state): State<AppState>,
    submitted: Submitted,
) -> Result<Json<Receipt>, Failure> {
    let validate = |submission: &ReportSubmission| {
        check_report_id(&submission.id)
            .and_then(|()| check_hostname("facts.host.hostname", &submission.facts.host.hostname))
    };
    let store = async |signed, submission, now| record(&state, signed, submission, None, now).await;
    answer(&state, Kind::Full, submitted, validate, store).await
}

/// A signed submission as it arrives: what its signature covers, and its
/// body (or why it could not be read).
pub(super) struct Submitted {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

impl<S: Send + Sync> FromRequest<S> for Submitted {
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Submitted, Infallible> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await;
        Ok(Submitted {
            method,
            uri,
            headers,
            body,
        })
    }
}

/// What the report and heartbeat handlers share: the payload `T` verified
/// and checked ([`signed_payload`]), then graded and stored by `store`, and
/// the receipt answered. A refusal is counted under its reason and logged.
pub(super) async fn answer<T: DeserializeOwned>(
    state: &AppState,
    kind: Kind,
    submitted: Submitted,
    validate: impl FnOnce(&T) -> Result<(), Failure>,
    store: impl AsyncFnOnce(SignedRequest, T, Timestamp) -> Result<Receipt, Rejected>,
) -> Result<Json<Receipt>, Failure> {
    let now = Timestamp::now();
    let accepted = async {
        let (signed, payload) = signed_payload(state, submitted, now, validate).await?;
        store(signed, payload, now).await
    };
    accepted
        .await
        .map(Json)
        .map_err(|Rejected { reason, failure }| {
            state.metrics().report_rejected(reason);
            // Routine after a restore or a full report in between: not worth an info line.
            if reason == "resend_full" {
                tracing::debug!(
                    "heartbeat names facts the server does not hold: full report asked for"
                );
            } else {
                tracing::info!(
                    reason,
                    error = failure.body.error,
                    "{} refused",
                    kind.noun()
                );
            }
            failure
        })
}

/// The path a report and a heartbeat share up to grading: the body read,
/// its signature verified (spending one of the device's requests under the
/// rate limit), then its JSON parsed and checked by `validate`. Each refusal
/// carries the reason it is counted under.
async fn signed_payload<T: DeserializeOwned>(
    state: &AppState,
    submitted: Submitted,
    now: Timestamp,
    validate: impl FnOnce(&T) -> Result<(), Failure>,
) -> Result<(SignedRequest, T), Rejected> {
    let Submitted {
        method,
        uri,
        headers,
        body,
    } = submitted;
    let body = read_body(body)?;
    let signed = signed_request(state, &method, &uri, &headers, &body, now)
        .await
        .map_err(|(reason, failure)| Rejected::new(reason, failure))?;
    let payload: T =
        parse_json(&body).map_err(|failure| Rejected::new("malformed_json", failure))?;
    validate(&payload).map_err(|failure| Rejected::new("invalid_report", failure))?;
    Ok((signed, payload))
}

/// The body, or the refusal to count: too large (413) or unreadable (400).
fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Rejected> {
    body_bytes(body).map_err(|failure| {
        let reason = if failure.status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "unreadable_body"
        };
        Rejected::new(reason, failure)
    })
}

/// How many times a report is graded again under a policy activated
/// through another server meanwhile; policies are not replaced that often.
const POLICY_RETRIES: usize = 3;

/// Grades and stores `report` under this server's copy of the policy.
async fn record_graded(state: &AppState, report: IncomingReport) -> Result<Recorded, StoreError> {
    let policy = state.inner.policy.read().await;
    state.store().record_report(report, &policy).await
}

/// Grades and stores a verified report, and answers with its receipt; a
/// heartbeat `repeats` the stored facts its submission carries.
/// Agents' dropped-report counts are counted (and logged) only when the
/// report is stored now, so a retry does not count them twice.
pub(super) async fn record(
    state: &AppState,
    signed: SignedRequest,
    submission: ReportSubmission,
    repeats: Option<FactsOrigin>,
    now: Timestamp,
) -> Result<Receipt, Rejected> {
    let kind = match repeats {
        Some(_) => Kind::Heartbeat,
        None => Kind::Full,
    };
    let report_id = submission.id.clone();
    let dropped = submission.dropped;
    let report = IncomingReport {
        device_id: signed.device_id.clone(),
        received_at: now,
        nonce: signed.nonce,
        submission,
        repeats,
    };
    let unavailable = |error: StoreError| Rejected::new("store_unavailable", error.into());
    let mut recorded = record_graded(state, report.clone())
        .await
        .map_err(unavailable)?;
    // Another server activated a newer policy: grade it again under that one.
    for _ in 0..POLICY_RETRIES {
        if recorded != Recorded::PolicyOutdated {
            break;
        }
        state.refresh_policy().await.map_err(unavailable)?;
        recorded = record_graded(state, report.clone())
            .await
            .map_err(unavailable)?;
    }
    match recorded {
        Recorded::Stored(receipt) => {
            // Debug, not info: at fleet scale, a line per report drowns the log.
            tracing::debug!(
                device_id = signed.device_id,
                report_id,
                ?kind,
                status = %receipt.status,
                "report stored"
            );
            if dropped > 0 {
                tracing::warn!(
                    device_id = signed.device_id,
                    report_id,
                    dropped,
                    "the agent dropped reports from its full outbox: they never reached the server"
                );
                state.metrics().dropped_by_agent(dropped);
            }
            state.metrics().report_accepted(kind, false);
            Ok(receipt)
        }
        Recorded::AlreadyStored(receipt) => {
            tracing::debug!(
                device_id = signed.device_id,
                report_id,
                ?kind,
                "report retried"
            );
            state.metrics().report_accepted(kind, true);
            Ok(receipt)
        }
        Recorded::ReplayedNonce => Err(Rejected::new(
            "replayed_nonce",
            Failure::unauthorized(
                "signature nonce was used before: a replayed request; sign every request, retries included, with a fresh nonce",
            ),
        )),
        Recorded::PolicyOutdated => Err(Rejected::new(
            "store_unavailable",
            Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the policy was replaced again while the report was graded: send it again",
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
pub(super) struct Rejected {
    pub(super) reason: &'static str,
    pub(super) failure: Failure,
}

impl Rejected {
    pub(super) fn new(reason: &'static str, failure: Failure) -> Rejected {
        Rejected { reason, failure }
    }
}

/// Verifies an agent's signed request and spends one of the device's
/// requests under the rate limit; on refusal, the metrics reason and the
/// failure to answer with (401; 429 over the rate limit; 503 when the
/// store is down).
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
    let signed = auth::verify_signed(state.store(), method, &target, headers, body, now)
        .await
        .map_err(|rejection| {
            let reason = rejection.reason();
            let failure = match rejection {
                SignatureRejection::Store(error) => Failure::from(error),
                other => Failure::unauthorized(other.to_string()),
            };
            (reason, failure)
        })?;
    if let Some(limiter) = &state.inner.rate_limiter
        && let Err(wait) = limiter.take(&signed.device_id, std::time::Instant::now())
    {
        let limit = limiter.limit();
        state.metrics().refused("rate_limited");
        return Err((
            "rate_limited",
            Failure::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "device `{}` sent more than {} signed requests in a burst or {} a minute; nothing was changed, retry after the time in Retry-After",
                    signed.device_id, limit.burst, limit.per_minute
                ),
                wait,
            ),
        ));
    }
    Ok(signed)
}

/// What the JSON shape alone does not say: the report id is a UUID in the
/// form the agent is told to send.
pub(super) fn check_report_id(id: &str) -> Result<(), Failure> {
    let canonical = uuid::Uuid::parse_str(id)
        .map(|parsed| parsed.hyphenated().to_string() == id)
        .unwrap_or(false);
    if canonical {
        Ok(())
    } else {
        Err(Failure::field(
            "id",
            format!(
                "report id `{id}` is not a UUID in lowercase hyphenated form (e.g. 01890a5d-ac96-774b-bcce-b302099a8057)"
            ),
        ))
    }
}
