//! Talking to the server: one blocking HTTPS client (rustls with the ring
//! provider), request signing, and errors a person can act on.
//!
//! Every call here is one attempt. Retries, the outbox and the circuit
//! breaker belong to the caller ([`crate::delivery`]), so they sit in one
//! place above this layer.

mod server_url;

pub use server_url::ServerUrl;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{CONTENT_TYPE, ETAG, HeaderValue, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use shipshape_core::signing::{BuildError, SignedHeaders, sign_request};
use shipshape_core::wire::{
    ApiError, EnrollRequest, EnrollResponse, Heartbeat, Receipt, ReportSubmission,
};

/// How long `GET /healthz` may take at most: an upcheck must be quick.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read from the server: a policy or a receipt is far smaller.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// A client for one server.
#[derive(Debug, Clone)]
pub struct Transport {
    client: Client,
    server: ServerUrl,
    timeouts: Timeouts,
}

/// How long the agent waits for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For a TCP (and TLS) connection.
    pub connect: Duration,
    /// For one whole request, body included.
    pub request: Duration,
}

impl Default for Timeouts {
    /// Connect within 2 s, answer within 10 s.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(10),
        }
    }
}

/// A client that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("could not read the CA file {}: {reason}", .path.display())]
    CaFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("could not set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("could not set up the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// What a request was for, to name it in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Enrollment,
    Report,
    Heartbeat,
    Policy,
    Health,
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Exchange::Enrollment => "enrollment",
            // To a person, a heartbeat is the report in its compact form.
            Exchange::Report | Exchange::Heartbeat => "report",
            Exchange::Policy => "policy request",
            Exchange::Health => "health check",
        })
    }
}

/// One request that did not get the answer it wanted.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No connection: refused, unresolvable, TLS failure, no route.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Connected, but the answer did not come in time.
    #[error("{url} did not answer within {}", seconds(*.after))]
    TimedOut { url: String, after: Duration },
    /// The server answered with an error status.
    #[error("server refused the {what}: {status} {message}{hint}")]
    Refused {
        what: Exchange,
        status: u16,
        /// The server's `ApiError`, or the body or status text when it sent none.
        message: String,
        /// What to do about it, starting with " — "; may be empty.
        hint: &'static str,
        /// The server's machine-readable reason ([`ApiError::code`]).
        code: Option<String>,
        /// The `Retry-After` header, as sent, when the server asked to wait.
        retry_after: Option<String>,
    },
    /// An answer that is not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse { url: String, reason: String },
    /// The request could not be signed.
    #[error("could not sign the request: {0}")]
    Sign(#[from] SignError),
}

/// What `GET /v1/policy` brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFetch {
    /// 304: the cached policy is current.
    NotModified,
    /// 200: the server's active policy, as TOML text, and its ETag.
    Fresh { text: String, etag: Option<String> },
}

impl Transport {
    /// A client for `server`. With `ca_file`, only the CA certificates in that
    /// PEM file are trusted (pinning a private CA); otherwise the operating
    /// system's verifier and trust store decide. The usual proxy variables
    /// (`HTTPS_PROXY`, `NO_PROXY`) are honoured, except for a loopback server.
    pub fn new(server: &ServerUrl, ca_file: Option<&Path>) -> Result<Transport, TransportError> {
        Transport::with_timeouts(server, ca_file, Timeouts::default())
    }

    /// As [`Transport::new`], waiting for the server as long as `timeouts` say.
    pub fn with_timeouts(
        server: &ServerUrl,
        ca_file: Option<&Path>,
        timeouts: Timeouts,
    ) -> Result<Transport, TransportError> {
        let mut builder = Client::builder();
        if server.is_loopback() {
            // HTTPS_PROXY and friends apply to real servers, not to this machine.
            builder = builder.no_proxy();
        }
        let client = builder
            .tls_backend_preconfigured(tls_config(ca_file)?)
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .user_agent(concat!("shipshape/", env!("CARGO_PKG_VERSION")))
            // A signed request is bound to its URL: never follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Transport {
            client,
            server: server.clone(),
            timeouts,
        })
    }

    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// `POST /v1/enroll` (unsigned: the token vouches for the request).
    pub fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, RequestError> {
        let url = self.server.endpoint("/v1/enroll");
        let body = to_json(request);
        let response = self.send(
            Exchange::Enrollment,
            &url,
            self.client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body),
        )?;
        read_json(&url, response)
    }

    /// `GET /v1/policy`, signed, with the cached policy's ETag.
    pub fn fetch_policy(
        &self,
        signer: &Signer,
        etag: Option<&str>,
    ) -> Result<PolicyFetch, RequestError> {
        let url = self.server.endpoint("/v1/policy");
        let mut request = signer.sign(self.client.get(url.clone()), "GET", &url, Vec::new())?;
        if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = self.send(Exchange::Policy, &url, request)?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(PolicyFetch::NotModified);
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = String::from_utf8(read_body(&url, response)?).map_err(|_| {
            RequestError::BadResponse {
                url: url.to_string(),
                reason: "the policy is not UTF-8 text".to_owned(),
            }
        })?;
        Ok(PolicyFetch::Fresh { text, etag })
    }

    /// `POST /v1/reports`, signed. A 2xx answer carries the receipt.
    pub fn submit_report(
        &self,
        signer: &Signer,
        submission: &ReportSubmission,
    ) -> Result<Receipt, RequestError> {
        let url = self.server.endpoint("/v1/reports");
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json");
        let request = signer.sign(request, "POST", &url, to_json(submission))?;
        let response = self.send(Exchange::Report, &url, request)?;
        read_json(&url, response)
    }

    /// `POST /v1/heartbeats`, signed. A 2xx answer carries the receipt; a
    /// server that lacks the facts answers 409 with the code
    /// [`shipshape_core::wire::RESEND_FULL`] ([`RequestError::code`]).
    pub fn submit_heartbeat(
        &self,
        signer: &Signer,
        heartbeat: &Heartbeat,
    ) -> Result<Receipt, RequestError> {
        let url = self.server.endpoint("/v1/heartbeats");
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json");
        let request = signer.sign(request, "POST", &url, to_json(heartbeat))?;
        let response = self.send(Exchange::Heartbeat, &url, request)?;
        read_json(&url, response)
    }

    /// `GET /healthz` within [`HEALTH_TIMEOUT`] (or the request timeout, when
    /// shorter): how long the server took to say it is up.
    pub fn health(&self) -> Result<Duration, RequestError> {
        let url = self.server.endpoint("/healthz");
        let started = Instant::now();
        self.send(Exchange::Health, &url, self.client.get(url.clone()))?;
        Ok(started.elapsed())
    }

    /// Sends a request; a status other than 2xx and 304 becomes [`RequestError::Refused`].
    fn send(
        &self,
        what: Exchange,
        url: &Url,
        request: RequestBuilder,
    ) -> Result<Response, RequestError> {
        let timeout = match what {
            Exchange::Health => self.timeouts.request.min(HEALTH_TIMEOUT),
            _ => self.timeouts.request,
        };
        let response = request
            .timeout(timeout)
            .send()
            .map_err(|error| failure(url, &error, self.timeouts.connect, timeout))?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        Err(refusal(what, url, response))
    }
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TransportError> {
    // Chosen here, not taken from a process-wide default that another crate could set.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match ca_file {
        Some(path) => builder
            .with_root_certificates(pinned_roots(path)?)
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(platform_verifier(provider)?))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The operating system's own verifier on macOS and Windows (enterprise
/// roots, revocation, policy), the system trust store through webpki
/// elsewhere: a fleet's CA is managed by IT, not compiled into the agent.
fn platform_verifier(
    provider: Arc<CryptoProvider>,
) -> Result<rustls_platform_verifier::Verifier, TransportError> {
    Ok(rustls_platform_verifier::Verifier::new(provider)?)
}

fn pinned_roots(path: &Path) -> Result<rustls::RootCertStore, TransportError> {
    let ca_error = |reason: String| TransportError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certificates =
        CertificateDer::pem_file_iter(path).map_err(|error| ca_error(error.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|error| ca_error(error.to_string()))?;
        roots
            .add(certificate)
            .map_err(|error| ca_error(format!("not a usable CA certificate: {error}")))?;
    }
    if roots.is_empty() {
        return Err(ca_error(
            "it holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_owned(),
        ));
    }
    Ok(roots)
}

/// Signs requests as one device: its key and its id (`keyid`).
pub struct Signer {
    key: SigningKey,
    keyid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keyid", &self.keyid)
            .finish_non_exhaustive()
    }
}

/// A request that cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the operating system gave no random bytes for the nonce: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl Signer {
    pub fn new(key: SigningKey, keyid: String) -> Signer {
        Signer { key, keyid }
    }

    /// The three signature headers for `method` `url` with `body`, created
    /// now, with a fresh random nonce.
    pub fn headers(
        &self,
        method: &str,
        url: &Url,
        body: &[u8],
    ) -> Result<SignedHeaders, SignError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(SignError::Random)?;
        let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce);
        let created = jiff::Timestamp::now().as_second();
        Ok(sign_request(
            method,
            url.as_str(),
            body,
            &self.key,
            &self.keyid,
            created,
            &nonce,
        )?)
    }

    /// Adds the body and its signature headers to `request`.
    fn sign(
        &self,
        request: RequestBuilder,
        method: &str,
        url: &Url,
        body: Vec<u8>,
    ) -> Result<RequestBuilder, SignError> {
        let headers = self.headers(method, url, &body)?;
        Ok(request
            .header("content-digest", headers.content_digest)
            .header("signature-input", headers.signature_input)
            .header("signature", headers.signature)
            .body(body))
    }
}

fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    // Wire types are plain structs with string keys: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_else(|error| panic!("wire type to JSON: {error}"))
}

fn read_body(url: &Url, response: Response) -> Result<Vec<u8>, RequestError> {
    let mut body = Vec::new();
    response
        .take(MAX_RESPONSE_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|error| RequestError::BadResponse {
            url: url.to_string(),
            reason: format!("the answer broke off: {}", innermost(&error)),
        })?;
    if body.len() as u64 > MAX_RESPONSE_BYTES {
        return Err(RequestError::BadResponse {
            url: url.to_string(),
            reason: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
        });
    }
    Ok(body)
}

fn read_json<T: serde::de::DeserializeOwned>(
    url: &Url,
    response: Response,
) -> Result<T, RequestError> {
    let body = read_body(url, response)?;
    serde_json::from_slice(&body).map_err(|error| RequestError::BadResponse {
        url: url.to_string(),
        reason: format!(
            "{error}: this agent ({}) and the server may be different versions",
            env!("CARGO_PKG_VERSION")
        ),
    })
}

impl RequestError {
    /// The server's machine-readable reason for a refusal, if it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            RequestError::Refused { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// "2 s", "0.5 s".
fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

fn refusal(what: Exchange, url: &Url, response: Response) -> RequestError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned());
    let mut code = None;
    let message = match read_body(url, response) {
        Ok(body) => match serde_json::from_slice::<ApiError>(&body) {
            Ok(error) => {
                code = error.code;
                match error.path {
                    Some(path) => format!("{} (at `{path}`)", error.error),
                    None => error.error,
                }
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                let text = text.trim();
                if text.is_empty() || text.len() > 200 {
                    status.canonical_reason().unwrap_or_default().to_owned()
                } else {
                    text.to_owned()
                }
            }
        },
        Err(_) => status.canonical_reason().unwrap_or_default().to_owned(),
    };
    RequestError::Refused {
        what,
        status: status.as_u16(),
        hint: hint(what, status, &message),
        message,
        code,
        retry_after,
    }
}

/// What to do about a refusal, unless the server's message already says it
/// (the word each hint turns on is in the message).
fn hint(what: Exchange, status: StatusCode, message: &str) -> &'static str {
    let (word, hint) = match (what, status.as_u16()) {
        (Exchange::Enrollment, 401 | 403) => (
            "token",
            " — ask for a new enrollment token (`shipshape-server token create --enroll`)",
        ),
        (_, 401 | 403) => ("enroll", " — re-enroll with `shipshape enroll`"),
        (_, 400 | 422) => (
            "version",
            " — this agent and the server may be different versions",
        ),
        (_, 404) => (
            "URL",
            " — is the server URL right? It should be the Shipshape server's base URL",
        ),
        (_, 409) => (
            "already",
            " — another report was already stored under this id",
        ),
        (_, 413) => ("larger", " — the report is larger than the server accepts"),
        (_, 429 | 500..) => ("later", " — the server is busy or failing; try again later"),
        _ => return "",
    };
    if message.to_lowercase().contains(&word.to_lowercase()) {
        ""
    } else {
        hint
    }
}

fn failure(url: &Url, error: &reqwest::Error, connect: Duration, after: Duration) -> RequestError {
    let url = url.to_string();
    match (error.is_timeout(), error.is_connect()) {
        (true, true) => RequestError::Unreachable {
            url,
            reason: format!("no connection within {}", seconds(connect)),
        },
        (true, false) => RequestError::TimedOut { url, after },
        _ => RequestError::Unreachable {
            url,
            reason: innermost(error),
        },
    }
}

/// The root cause of a transport error, in words: reqwest and hyper wrap it
/// in several layers whose messages say little ("client error (Connect)").
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current: &(dyn std::error::Error + 'static) = error;
    loop {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(_) => format!(
                    "the server's certificate is not trusted ({tls}): if it uses a private CA, enroll again with --ca-file"
                ),
                other => format!("TLS failed: {other}"),
            };
        }
        let io = current.downcast_ref::<std::io::Error>();
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return "connection refused (is the server running, and is this its port?)".to_owned();
        }
        // An io::Error's `source()` skips the error it wraps: step into it.
        let next = match io.and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
        match next {
            Some(next) => current = next,
            None => return current.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shipshape_core::signing::verify_request;

    #[test]
    fn signed_headers_verify_with_the_device_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key();
        let signer = Signer::new(key, "device-1".to_owned());
        let url = Url::parse("http://127.0.0.1:4000/v1/reports").unwrap();
        let body = br#"{"id":"r1"}"#;
        let headers = signer.headers("POST", &url, body).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let verified = verify_request(
            "POST",
            url.as_str(),
            body,
            headers.as_received(),
            |keyid| (keyid == "device-1").then_some(public),
            now,
            300,
        )
        .unwrap();
        assert_eq!(verified.keyid, "device-1");
        assert_eq!(verified.nonce.len(), 22, "16 bytes, base64url unpadded");

        let again = signer.headers("POST", &url, body).unwrap();
        assert_ne!(
            again.signature_input, headers.signature_input,
            "fresh nonce"
        );
        let tampered = verify_request(
            "POST",
            url.as_str(),
            br#"{"id":"r2"}"#,
            headers.as_received(),
            |_| Some(public),
            now,
            300,
        );
        assert!(tampered.is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = tls_config(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let missing = tls_config(Some(&dir.path().join("missing.pem")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("could not read the CA file"), "{missing}");
    }

    #[test]
    fn refusals_read_as_actionable_messages() {
        let error = RequestError::Refused {
            what: Exchange::Report,
            status: 401,
            message: "device revoked".to_owned(),
            hint: hint(Exchange::Report, StatusCode::UNAUTHORIZED, "device revoked"),
            code: None,
            retry_after: None,
        };
        assert_eq!(
            error.to_string(),
            "server refused the report: 401 device revoked — re-enroll with `shipshape enroll`"
        );
        let said = "device `d1` was revoked: enroll the machine again to report from it";
        assert_eq!(hint(Exchange::Report, StatusCode::UNAUTHORIZED, said), "");
        assert_eq!(
            hint(Exchange::Enrollment, StatusCode::UNAUTHORIZED, "unknown"),
            " — ask for a new enrollment token (`shipshape-server token create --enroll`)"
        );
        assert_eq!(hint(Exchange::Report, StatusCode::OK, "fine"), "");
    }
}
