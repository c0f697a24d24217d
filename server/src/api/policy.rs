//! The policy the server grades with: chosen at start, served to agents
//! (`GET /v1/policy`, signed, with an ETag) and replaced by an admin
//! (`PUT /v1/policy`), which starts a re-grade of the fleet in the
//! background (`GET /v1/policy/status` shows how far it has come).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use shipshape_core::Policy;
use shipshape_core::policy::PolicyError;

use super::fleet::require_admin;
use super::health::PolicyFetch;
use super::reports::signed_request;
use super::{AppState, Failure, body_bytes};
use crate::auth;
use crate::model::{RegradeProgress, RegradeState};
use crate::store::{ActivePolicy, Store, StoreError};

/// The policy a fresh server grades with: the shipped default.
pub const BUILT_IN: &str = include_str!("../../../policies/default.toml");

/// The origin stored policies are parsed under, so an unnamed policy has
/// the same name before and after a restart ("policy"), and the origin
/// errors in a `PUT /v1/policy` body are reported at.
pub const STORED_ORIGIN: &str = "policy.toml";

/// How long a nonce is remembered: past this, `created` is out of the
/// allowed skew anyway (a signature dated up to 5 minutes ahead stays
/// acceptable for 10 minutes), so a replay is refused without it.
const NONCE_MEMORY: SignedDuration = SignedDuration::from_mins(15);

/// The policy to grade with cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum PolicySetupError {
    #[error("cannot read policy file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policy given does not validate; nothing was activated.
    #[error(transparent)]
    Invalid(PolicyError),
    /// The policy in the store no longer parses (a newer server wrote it?).
    #[error("the store's active policy does not parse; activate a valid one with --policy")]
    Stored(#[source] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The UTC day, for deciding which policy exceptions have expired.
fn today(now: Timestamp) -> Date {
    now.to_zoned(TimeZone::UTC).date()
}

/// The policy to start with: `file` when given (activated, with a re-grade
/// of the fleet to run, unless the store already has exactly it), else the
/// store's active policy, else the built-in default. The re-grade is
/// [`AppState::resume_regrade`]'s to run.
pub async fn activate_at_start(
    store: &dyn Store,
    file: Option<&Path>,
    now: Timestamp,
) -> Result<ActivePolicy, PolicySetupError> {
    let active = store.active_policy().await?;
    let (text, origin) = match (file, &active) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|source| PolicySetupError::Read {
                path: path.to_owned(),
                source,
            })?;
            (text, path.display().to_string())
        }
        (None, Some(stored)) => return parse_stored(stored.clone()),
        (None, None) => (BUILT_IN.to_owned(), "built-in default policy".to_owned()),
    };
    // The active policy again: it was validated when activated, and an
    // exception that expired since only stops applying.
    if let Some(stored) = active.filter(|stored| stored.text == text) {
        return parse_stored(stored);
    }
    Policy::parse(&text, &origin, today(now)).map_err(PolicySetupError::Invalid)?;
    let (stored, regrade) = store.activate_policy(&text, now).await?;
    tracing::info!(
        origin,
        etag = stored.etag,
        devices_to_regrade = regrade.devices,
        "policy activated"
    );
    parse_stored(stored)
}

fn parse_stored(stored: crate::model::StoredPolicy) -> Result<ActivePolicy, PolicySetupError> {
    let policy =
        Policy::parse_accepted(&stored.text, STORED_ORIGIN).map_err(PolicySetupError::Stored)?;
    Ok(ActivePolicy { policy, stored })
}

/// `GET /v1/policy` (signed): the active policy's TOML and its ETag, or 304
/// when the agent's `If-None-Match` names it.
pub(super) async fn fetch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let outcome = serve_policy(&state, &method, &uri, &headers, body).await;
    if let Err(failure) = &outcome {
        tracing::info!(error = failure.body.error, "policy fetch refused");
    }
    state.metrics().policy_fetch(match &outcome {
        Ok(response) if response.status() == StatusCode::NOT_MODIFIED => PolicyFetch::NotModified,
        Ok(_) => PolicyFetch::Sent,
        Err(_) => PolicyFetch::Rejected,
    });
    outcome
}

async fn serve_policy(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let now = Timestamp::now();
    let body = body_bytes(body)?;
    let signed = signed_request(state, method, uri, headers, &body, now)
        .await
        .map_err(|(_, failure)| failure)?;
    let forget_before = now.checked_sub(NONCE_MEMORY).unwrap_or(Timestamp::MIN);
    let fresh = state
        .store()
        .record_nonce(&signed.device_id, &signed.nonce, now, forget_before)
        .await?;
    if !fresh {
        return Err(Failure::unauthorized(
            "signature nonce was used before: a replayed request; sign every request with a fresh nonce",
        ));
    }
    let active = state.active_policy().await?;
    let etag = HeaderValue::from_str(&active.stored.etag).map_err(|_| {
        tracing::error!(
            etag = active.stored.etag,
            "stored policy ETag is not a header value"
        );
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the active policy's ETag cannot be sent",
        )
    })?;
    if if_none_match(headers, &active.stored.etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/toml; charset=utf-8"),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        active.stored.text.clone(),
    )
        .into_response())
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let etag = opaque(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == etag)
}

/// `PUT /v1/policy` (admin token): validates the TOML body, activates it
/// and answers at once, 202 with the re-grade it started (in the background:
/// follow it at `Location`); 200 with the re-grade as it stands when the
/// policy is the active one already. Reports from now on are graded by it.
pub(super) async fn replace(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let now = Timestamp::now();
    // Bearer only: a state change never rides on the browser's cookie.
    let token = auth::bearer_token(&headers).ok_or_else(Failure::admin_required)?;
    if !auth::is_admin(state.store(), token, now).await? {
        return Err(Failure::admin_required());
    }
    let body = body_bytes(body)?;
    let text = std::str::from_utf8(&body).map_err(|error| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("policy is not UTF-8 text: {error}"),
        )
    })?;
    let policy = Policy::parse(text, STORED_ORIGIN, today(now))
        .map_err(|error| Failure::new(StatusCode::BAD_REQUEST, error.to_string()))?;

    // Reports are graded under a read guard: none stored from here on is
    // graded by the old policy.
    let mut active = state.inner.policy.write().await;
    // The store's, not this server's copy: another server may have
    // activated a newer one.
    let previous = state.store().active_policy_id().await?;
    let (stored, progress) = state.store().activate_policy(text, now).await?;
    let started = Some(stored.id) != previous;
    let etag = HeaderValue::from_str(&stored.etag).ok();
    let replaced = Arc::new(ActivePolicy { policy, stored });
    *active = Arc::clone(&replaced);
    drop(active);
    let status = if started {
        tracing::info!(
            etag = replaced.stored.etag,
            devices_to_regrade = progress.devices,
            "policy replaced"
        );
        if progress.state == RegradeState::Running {
            state.regrade(replaced);
        }
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(progress)).into_response();
    let headers = response.headers_mut();
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::LOCATION,
        HeaderValue::from_static("/v1/policy/status"),
    );
    Ok(response)
}

/// `GET /v1/policy/status` (admin token or cookie): how far the re-grade of
/// the active policy has come.
pub(super) async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<RegradeProgress>, Failure> {
    require_admin(&state, &headers, Timestamp::now()).await?;
    let progress = state.store().regrade_progress().await?;
    progress.map(Json).ok_or_else(|| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no policy is active yet: the server is starting",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policy_is_valid() {
        let policy = Policy::parse(BUILT_IN, "default.toml", Date::constant(2026, 1, 1)).unwrap();
        assert_eq!(policy.name, "default");
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let mut headers = HeaderMap::new();
        assert!(!if_none_match(&headers, "\"abc\""));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(if_none_match(&headers, "\"abc\""));
        assert!(!if_none_match(&headers, "\"abd\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, "\"anything\""));
    }
}
