//! HTTP to the server under test: enrollment, and signed reports and
//! heartbeats, each answer sorted into success, a refusal (with the
//! server's machine-readable code) or a failure to get one.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::CONTENT_TYPE;
use shipshape_core::wire::{ApiError, EnrollResponse, RESEND_FULL, Receipt};

use crate::device::{Device, SignError};

/// How long the agent waits to connect; the request timeout is the caller's.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A client for one server, with a pool of keep-alive connections.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// The server URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a server URL: write http://HOST:PORT or https://HOST[:PORT]")]
pub struct UrlError(String);

/// A request that did not get a successful answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server answered with an error status.
    #[error("HTTP {status}{}", .code.as_deref().map(|code| format!(" {code}")).unwrap_or_default())]
    Refused {
        status: u16,
        /// [`ApiError::code`], where the server gave one.
        code: Option<String>,
        /// [`ApiError::error`], or the body as text.
        message: String,
    },
    /// No answer within the request timeout.
    #[error("timed out")]
    TimedOut,
    /// No connection.
    #[error("connection failed")]
    Connect,
    /// An answer that is not what the API promises (a 2xx that is not a
    /// receipt), or a transport error mid-answer.
    #[error("bad answer")]
    BadAnswer(String),
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Failure {
    /// A heartbeat answered this way goes again in full at once, as the
    /// agent's delivery does: the server lacks the facts (409 resend-full)
    /// or takes no heartbeats (404, 405, 501).
    pub fn asks_for_full(&self) -> bool {
        match self {
            Failure::Refused {
                status: 409,
                code: Some(code),
                ..
            } => code == RESEND_FULL,
            Failure::Refused { status, .. } => matches!(status, 404 | 405 | 501),
            _ => false,
        }
    }

    /// The failure with what the server said, for an error message.
    pub fn detail(&self) -> String {
        match self {
            Failure::Refused { message, .. } => format!("{self}: {message}"),
            Failure::BadAnswer(reason) => format!("{self}: {reason}"),
            Failure::Sign(error) => error.to_string(),
            Failure::TimedOut | Failure::Connect => self.to_string(),
        }
    }
}

impl Client {
    /// A client for the server at `url` (`http://HOST:PORT`, or HTTPS with
    /// a certificate the OS trusts; maybe with a path prefix), keeping up to
    /// `connections` idle connections, giving each request `timeout`.
    pub fn new(url: &str, connections: usize, timeout: Duration) -> anyhow::Result<Client> {
        let base = server_base(url)?;
        // Already installed (by an earlier client) is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(connections)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("shipshape-loadgen/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client { http, base })
    }

    /// The server's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /v1/enroll` with `body`, an `EnrollRequest`: the new device's id.
    pub async fn enroll(&self, body: Vec<u8>) -> Result<String, Failure> {
        let response = self
            .http
            .post(format!("{}/v1/enroll", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(failure)?;
        let answer: EnrollResponse = read(response).await?;
        Ok(answer.device_id)
    }

    /// `POST path` with `body`, signed by `device` now; the receipt on success.
    pub async fn post_signed(
        &self,
        device: &Device,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Receipt, Failure> {
        let url = format!("{}{path}", self.base);
        let headers = device.sign(&url, &body, Timestamp::now())?;
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("content-digest", headers.content_digest)
            .header("signature-input", headers.signature_input)
            .header("signature", headers.signature)
            .body(body)
            .send()
            .await
            .map_err(failure)?;
        read(response).await
    }
}

/// `url` without a trailing slash: the signed target URIs start with it.
fn server_base(url: &str) -> Result<String, UrlError> {
    let base = url.trim().trim_end_matches('/');
    let host = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    if host.is_empty() || base.contains(['?', '#']) || base.contains(char::is_whitespace) {
        return Err(UrlError(url.to_owned()));
    }
    Ok(base.to_owned())
}

/// A 2xx answer's JSON, or the refusal.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, Failure> {
    let status = response.status();
    let body = response.bytes().await.map_err(failure)?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|error| {
            Failure::BadAnswer(format!("{status} answer is not the JSON expected: {error}"))
        });
    }
    let (message, code) = match serde_json::from_slice::<ApiError>(&body) {
        Ok(error) => (error.error, error.code),
        Err(_) => (String::from_utf8_lossy(&body).trim().to_owned(), None),
    };
    Err(Failure::Refused {
        status: status.as_u16(),
        code,
        message,
    })
}

fn failure(error: reqwest::Error) -> Failure {
    if error.is_timeout() {
        Failure::TimedOut
    } else if error.is_connect() {
        Failure::Connect
    } else {
        Failure::BadAnswer(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_lose_their_trailing_slash_and_need_a_scheme_and_host() {
        assert_eq!(
            server_base("http://127.0.0.1:8443/").unwrap(),
            "http://127.0.0.1:8443"
        );
        assert_eq!(
            server_base("https://shipshape.example.com/fleet").unwrap(),
            "https://shipshape.example.com/fleet"
        );
        for bad in [
            "127.0.0.1:8443",
            "http://",
            "ftp://host",
            "http://host/?x=1",
            "",
        ] {
            assert!(server_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_heartbeat_goes_again_in_full_when_the_server_asks_or_takes_none() {
        let refused = |status, code: Option<&str>| Failure::Refused {
            status,
            code: code.map(str::to_owned),
            message: String::new(),
        };
        assert!(refused(409, Some(RESEND_FULL)).asks_for_full());
        for status in [404, 405, 501] {
            assert!(refused(status, None).asks_for_full(), "{status}");
        }
        assert!(!refused(409, Some("other")).asks_for_full());
        assert!(!refused(409, None).asks_for_full());
        assert!(!refused(429, None).asks_for_full());
        assert!(!Failure::TimedOut.asks_for_full());
        assert_eq!(
            refused(409, Some(RESEND_FULL)).to_string(),
            "HTTP 409 resend-full"
        );
        assert_eq!(refused(503, None).to_string(), "HTTP 503");
    }
}
