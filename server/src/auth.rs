//! Who may do what.
//!
//! - Tokens: 32 random bytes, shown once as `sse_…` (enroll) or `ssa_…`
//!   (admin), stored only as the SHA-256 of that text.
//! - The security team: an admin token as `Authorization: Bearer …`, or the
//!   `shipshape_admin` cookie the login form sets.
//! - Agents: every request signed per RFC 9421 with the device key
//!   (`keyid` = device id), verified by core; this module finds the key, the
//!   target URI and the time, and says why a request is refused.

use axum::http::{HeaderMap, Method, Uri, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};
use shipshape_core::signing::{self, ReceivedHeaders, VerifyError};

use crate::config::PublicUrl;
use crate::model::TokenKind;
use crate::store::{Store, StoreError};

/// How far `created` may be from the server's clock, either way (DESIGN §4: ±5 minutes).
pub const MAX_SKEW_SECS: i64 = 300;

/// The cookie the login form sets; it carries the admin token.
pub const ADMIN_COOKIE: &str = "shipshape_admin";

/// Prefix of enrollment tokens, so a token says what it is for.
pub const ENROLL_PREFIX: &str = "sse_";
/// Prefix of admin tokens.
pub const ADMIN_PREFIX: &str = "ssa_";

/// A new token: 32 bytes from the OS's secure random source, base64url,
/// behind its kind's prefix.
pub fn generate_token(kind: TokenKind) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let prefix = match kind {
        TokenKind::Enroll => ENROLL_PREFIX,
        TokenKind::Admin => ADMIN_PREFIX,
    };
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// What the store keeps of a token: the SHA-256 of its text, prefix included.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The admin token the login cookie carries.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == ADMIN_COOKIE)
        .map(|(_, token)| token.trim_matches('"'))
        .filter(|token| !token.is_empty())
}

/// Whether `token` is a live admin token.
pub async fn is_admin(store: &dyn Store, token: &str, now: Timestamp) -> Result<bool, StoreError> {
    store.is_admin_token(&hash_token(token), now).await
}

/// `Set-Cookie` for a logged-in admin: unreadable by scripts, never sent
/// cross-site, and over TLS only when the server speaks TLS.
pub fn login_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{ADMIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// `Set-Cookie` that forgets the login.
pub fn logout_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{ADMIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

/// The `@target-uri` a signed request must have been signed over.
///
/// With a public URL (the server behind a proxy), it is that URL followed by
/// the request's path and query; else `http(s)://` + the `Host` header (or
/// the HTTP/2 authority) + path and query: exactly the URL the agent called.
pub fn target_uri(
    public_url: Option<&PublicUrl>,
    tls: bool,
    headers: &HeaderMap,
    uri: &Uri,
) -> Option<String> {
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    if let Some(base) = public_url {
        return Some(format!("{}{path}", base.as_str()));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()))?;
    let scheme = if tls { "https" } else { "http" };
    Some(format!("{scheme}://{host}{path}"))
}

/// An agent request whose signature holds, from a device that is not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub device_id: String,
    /// To be recorded, so the same request is never accepted twice.
    pub nonce: String,
}

/// Why a signed request is refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureRejection {
    /// The signature does not hold; core says why.
    #[error("{}", describe(.0))]
    Invalid(VerifyError),
    /// The signature holds, but the device was revoked.
    #[error("device `{0}` was revoked: enroll the machine again to report from it")]
    Revoked(String),
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SignatureRejection {
    /// A stable label for logs and metrics (`shipshape_reports_rejected_total{reason=…}`).
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureRejection::Invalid(error) => match error {
                VerifyError::MissingHeader(_) => "missing_signature",
                VerifyError::MalformedHeader { .. }
                | VerifyError::LabelMismatch { .. }
                | VerifyError::CoveredComponents(_)
                | VerifyError::MissingParameter(_)
                | VerifyError::UnsupportedAlgorithm(_) => "malformed_signature",
                VerifyError::DigestMismatch => "digest_mismatch",
                VerifyError::TooOld { .. }
                | VerifyError::FromFuture { .. }
                | VerifyError::Expired { .. } => "signature_time",
                VerifyError::UnknownKey(_) => "unknown_device",
                VerifyError::BadSignature(_) => "bad_signature",
            },
            SignatureRejection::Revoked(_) => "revoked_device",
            SignatureRejection::Store(_) => "store_unavailable",
        }
    }
}

/// The error and its cause on one line: "malformed signature header:
/// carries 2 signatures, expected exactly one".
fn describe(error: &VerifyError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Verifies an agent's request: digest, signature by the key of its `keyid`,
/// `created` within [`MAX_SKEW_SECS`] of `now`, and a device that is not
/// revoked. The nonce is returned for the caller to record in the same
/// transaction as whatever the request stores.
pub async fn verify_signed(
    store: &dyn Store,
    method: &Method,
    target_uri: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<SignedRequest, SignatureRejection> {
    let content_digest = joined(headers, "content-digest");
    let signature_input = joined(headers, "signature-input");
    let signature = joined(headers, "signature");
    let received = ReceivedHeaders {
        content_digest: content_digest.as_deref(),
        signature_input: signature_input.as_deref(),
        signature: signature.as_deref(),
    };
    // The key is looked up before verifying, because the store is async and
    // core's key resolver is not; a header without one keyid finds no key,
    // and core then says what is wrong with it.
    let keyid = signature_input.as_deref().and_then(single_keyid);
    let device = match &keyid {
        Some(keyid) => store.device_key(keyid).await?,
        None => None,
    };
    let key = device.and_then(|device| VerifyingKey::from_bytes(&device.public_key).ok());
    let verified = signing::verify_request(
        method.as_str(),
        target_uri,
        body,
        received,
        |id| key.filter(|_| keyid.as_deref() == Some(id)),
        now.as_second(),
        MAX_SKEW_SECS,
    )
    .map_err(SignatureRejection::Invalid)?;
    if device.is_some_and(|device| device.revoked) {
        return Err(SignatureRejection::Revoked(verified.keyid));
    }
    Ok(SignedRequest {
        device_id: verified.keyid,
        nonce: verified.nonce,
    })
}

/// A header sent on several lines, joined with `, ` (RFC 9110 §5.3). Bytes
/// that are not text are kept visible, for the parser to refuse.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn single_keyid(signature_input: &str) -> Option<String> {
    match signing::parse_signature_input(signature_input)
        .ok()?
        .as_slice()
    {
        [(_, input)] => input.keyid().map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let enroll = generate_token(TokenKind::Enroll).unwrap();
        let admin = generate_token(TokenKind::Admin).unwrap();
        assert!(enroll.starts_with(ENROLL_PREFIX));
        assert!(admin.starts_with(ADMIN_PREFIX));
        assert_eq!(enroll.len(), ENROLL_PREFIX.len() + 43);
        assert_ne!(
            generate_token(TokenKind::Enroll).unwrap(),
            enroll,
            "two tokens must differ"
        );
        assert_eq!(hash_token(&enroll), hash_token(&format!(" {enroll}\n")));
        assert_ne!(hash_token(&enroll), hash_token(&admin));
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_and_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  ssa_x "),
        );
        assert_eq!(bearer_token(&headers), Some("ssa_x"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic ssa_x"),
        );
        assert_eq!(bearer_token(&headers), None);

        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; shipshape_admin=ssa_y; other=1"),
        );
        assert_eq!(cookie_token(&headers), Some("ssa_y"));
        headers.insert(header::COOKIE, HeaderValue::from_static("shipshape_admin="));
        assert_eq!(cookie_token(&headers), None);
    }

    #[test]
    fn cookies_are_strict() {
        assert_eq!(
            login_cookie("ssa_z", true),
            "shipshape_admin=ssa_z; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
        assert_eq!(
            logout_cookie(false),
            "shipshape_admin=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn target_uri_is_the_url_the_agent_called() {
        let uri: Uri = "/v1/reports?x=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(target_uri(None, false, &headers, &uri), None);
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert_eq!(
            target_uri(None, false, &headers, &uri).as_deref(),
            Some("http://127.0.0.1:8443/v1/reports?x=1")
        );
        assert_eq!(
            target_uri(None, true, &headers, &uri).as_deref(),
            Some("https://127.0.0.1:8443/v1/reports?x=1")
        );
        let public: PublicUrl = "https://fleet.example.com/shipshape/".parse().unwrap();
        assert_eq!(
            target_uri(Some(&public), false, &headers, &uri).as_deref(),
            Some("https://fleet.example.com/shipshape/v1/reports?x=1")
        );
        let absolute: Uri = "https://h2.example/v1/policy".parse().unwrap();
        assert_eq!(
            target_uri(None, true, &HeaderMap::new(), &absolute).as_deref(),
            Some("https://h2.example/v1/policy")
        );
    }

    #[test]
    fn rejections_explain_themselves() {
        let rejection = SignatureRejection::Invalid(VerifyError::MalformedHeader {
            header: "signature",
            reason: shipshape_core::signing::HeaderError::NotOneSignature { count: 2 },
        });
        assert_eq!(
            rejection.to_string(),
            "malformed signature header: carries 2 signatures, expected exactly one"
        );
        assert_eq!(rejection.reason(), "malformed_signature");
        assert_eq!(
            SignatureRejection::Revoked("d1".into()).reason(),
            "revoked_device"
        );
    }

    #[test]
    fn keyid_only_from_a_single_signature() {
        assert_eq!(
            single_keyid(r#"sig1=("@method");keyid="dev-1""#).as_deref(),
            Some("dev-1")
        );
        assert_eq!(
            single_keyid(r#"a=("@method");keyid="1", b=("@method");keyid="2""#),
            None
        );
        assert_eq!(single_keyid("garbage ("), None);
    }
}
