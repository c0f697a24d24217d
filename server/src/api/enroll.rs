//! `POST /v1/enroll`: an enrollment token buys a device id for a public key.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use shipshape_core::wire::{EnrollRequest, EnrollResponse};

use super::{AppState, Failure, body_bytes, check_hostname, parse_json};
use crate::auth;
use crate::model::{EnrollRefusal, NewDevice};

pub(super) async fn enroll(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<EnrollResponse>), Failure> {
    let outcome = enroll_device(&state, body).await;
    if !matches!(&outcome, Err(failure) if failure.status == StatusCode::SERVICE_UNAVAILABLE) {
        state.metrics().enrollment(outcome.is_ok());
    }
    outcome
}

async fn enroll_device(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<EnrollResponse>), Failure> {
    let body = body_bytes(body)?;
    let request: EnrollRequest = parse_json(&body)?;
    let public_key = parse_public_key(&request.public_key)?;
    check_hostname("host.hostname", &request.host.hostname)?;
    let hostname = request.host.hostname.clone();
    let device = NewDevice {
        public_key,
        host: request.host,
        enrolled_at: Timestamp::now(),
    };
    match state
        .store()
        .enroll(&auth::hash_token(&request.token), device)
        .await?
    {
        Ok(device_id) => {
            tracing::info!(device_id, hostname, "device enrolled");
            Ok((StatusCode::CREATED, Json(EnrollResponse { device_id })))
        }
        Err(refusal) => {
            tracing::info!(hostname, ?refusal, "enrollment refused");
            Err(Failure::unauthorized(refusal_message(refusal)))
        }
    }
}

fn refusal_message(refusal: EnrollRefusal) -> &'static str {
    match refusal {
        EnrollRefusal::UnknownToken => {
            "enrollment token is unknown: create one with `shipshape-server token create --enroll`"
        }
        EnrollRefusal::Expired => {
            "enrollment token has expired: create a new one with `shipshape-server token create --enroll`"
        }
        EnrollRefusal::UsedUp => {
            "enrollment token is used up: create a new one, or one with more `--uses`"
        }
        EnrollRefusal::Revoked => "enrollment token was revoked",
    }
}

/// A usable Ed25519 public key: 32 bytes of standard base64 that decode to
/// a curve point of full order (no weak key a forger could exploit).
fn parse_public_key(text: &str) -> Result<[u8; 32], Failure> {
    let invalid = |why: String| Failure::field("public_key", why);
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|error| invalid(format!("public key is not standard base64: {error}")))?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        invalid(format!(
            "public key is {} bytes long, an Ed25519 key is 32",
            bytes.len()
        ))
    })?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| invalid("public key is not a point on the Ed25519 curve".to_owned()))?;
    if key.is_weak() {
        return Err(invalid(
            "public key is a weak (small-order) Ed25519 key".to_owned(),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;

    #[test]
    fn public_keys() {
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let text = STANDARD.encode(key.as_bytes());
        assert_eq!(parse_public_key(&text).unwrap(), *key.as_bytes());
        for bad in ["not base64!", "AAAA", &STANDARD.encode([0u8; 32])] {
            let failure = parse_public_key(bad).unwrap_err();
            assert_eq!(failure.status, StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(failure.body.path.as_deref(), Some("public_key"));
        }
    }
}
