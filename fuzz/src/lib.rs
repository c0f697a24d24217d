//! What the fuzz targets share with the tool that writes their seeds: the
//! fixed key and clock of the `signature_headers` target, and how its input
//! encodes a request.
//!
//! A request is its fields one per line, in the order of [`Request`]'s
//! fields, then the body as the raw rest of the input:
//!
//! ```text
//! POST
//! https://shipshape.example/v1/reports
//! sha-256=:…:
//! sig1=("@method" "@target-uri" "content-digest");created=…;keyid="…";alg="ed25519";nonce="…"
//! sig1=:…:
//! {"id":"…"}
//! ```
//!
//! An input that ends before a header leaves that header absent.

use ed25519_dalek::SigningKey;

/// The device key the target verifies with. It signed the seeds, so they
/// verify; nothing else it verifies can be new, since Ed25519 cannot be forged.
pub const DEVICE_KEY: [u8; 32] = [7; 32];

/// The verifier's clock, in Unix seconds (2027-01-15T08:00:00Z).
pub const NOW: i64 = 1_800_000_000;

/// The allowed clock skew, as the server allows it.
pub const MAX_SKEW_SECS: i64 = 300;

/// The signing key of [`DEVICE_KEY`].
pub fn device_key() -> SigningKey {
    SigningKey::from_bytes(&DEVICE_KEY)
}

/// A request as the server receives it: method, target URI, the three
/// signing headers (absent when `None`) and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub target_uri: &'a str,
    pub content_digest: Option<&'a str>,
    pub signature_input: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// Reads a request from fuzz input; `None` when a line before the body
    /// is not UTF-8, since header values reach the parsers as `&str`.
    pub fn decode(data: &'a [u8]) -> Option<Self> {
        let mut parts = data.splitn(6, |&byte| byte == b'\n');
        let mut line = || parts.next().map(std::str::from_utf8).transpose().ok();
        let method = line()?.unwrap_or_default();
        let target_uri = line()?.unwrap_or_default();
        let content_digest = line()?;
        let signature_input = line()?;
        let signature = line()?;
        let body = parts.next().unwrap_or_default();
        Some(Request {
            method,
            target_uri,
            content_digest,
            signature_input,
            signature,
            body,
        })
    }

    /// The fuzz input [`Request::decode`] reads back as this request (when
    /// no field before the body contains a line break).
    pub fn encode(&self) -> Vec<u8> {
        let headers = [self.content_digest, self.signature_input, self.signature];
        let present = headers.iter().map_while(|header| *header);
        let mut lines: Vec<&[u8]> = [self.method, self.target_uri]
            .into_iter()
            .chain(present)
            .map(str::as_bytes)
            .collect();
        if headers.iter().all(Option::is_some) {
            lines.push(self.body);
        }
        lines.join(&b'\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode_agree() {
        let full = Request {
            method: "POST",
            target_uri: "https://shipshape.example/v1/reports",
            content_digest: Some("sha-256=:AAAA:"),
            signature_input: Some("sig1=()"),
            signature: Some("sig1=:AAAA:"),
            body: b"{\n}",
        };
        assert_eq!(Request::decode(&full.encode()), Some(full));
        let no_signature = Request {
            signature: None,
            body: b"",
            ..full
        };
        assert_eq!(Request::decode(&no_signature.encode()), Some(no_signature));
        assert_eq!(Request::decode(b"POST\n\xff\n"), None);
    }

    /// The fuzzer starts from requests the device key signed: if the signing
    /// profile changes, `cargo run --example seeds` makes them verify again.
    #[test]
    fn signed_seeds_verify() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/signature_headers");
        let public = device_key().verifying_key();
        for name in [
            "seed-signed-report",
            "seed-signed-heartbeat",
            "seed-signed-policy",
        ] {
            let data = std::fs::read(dir.join(name)).unwrap();
            let request = Request::decode(&data).unwrap();
            let headers = shipshape_core::signing::ReceivedHeaders {
                content_digest: request.content_digest,
                signature_input: request.signature_input,
                signature: request.signature,
            };
            let verified = shipshape_core::signing::verify_request(
                request.method,
                request.target_uri,
                request.body,
                headers,
                |_| Some(public),
                NOW,
                MAX_SKEW_SECS,
            );
            assert!(verified.is_ok(), "{name}: {verified:?}");
        }
    }
}
