//! Shipshape's signing profile (DESIGN §4): every agent request carries a
//! sha-256 `Content-Digest` and one Ed25519 signature covering exactly
//! `"@method" "@target-uri" "content-digest"`, with `created`, `keyid`,
//! `alg="ed25519"` and `nonce`.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::HeaderError;
use super::digest::{self, DigestError};
use super::http_signature::{
    self, BuildError, SignatureInput, SignatureParam, parse_signature, parse_signature_input,
};

/// The label the agent signs under; the server accepts any label, as long as
/// both headers agree on it.
const LABEL: &str = "sig1";
const COVERED: [&str; 3] = ["@method", "@target-uri", "content-digest"];
const ALG: &str = "ed25519";

/// The three headers a signed request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Content-Digest`.
    pub content_digest: String,
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

impl SignedHeaders {
    /// These headers as the server receives them.
    pub fn as_received(&self) -> ReceivedHeaders<'_> {
        ReceivedHeaders {
            content_digest: Some(&self.content_digest),
            signature_input: Some(&self.signature_input),
            signature: Some(&self.signature),
        }
    }
}

/// The signing headers of a received request; `None` where one is absent.
/// A field sent on several lines is passed joined with `, ` (RFC 9110 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedHeaders<'a> {
    /// `Content-Digest`.
    pub content_digest: Option<&'a str>,
    /// `Signature-Input`.
    pub signature_input: Option<&'a str>,
    /// `Signature`.
    pub signature: Option<&'a str>,
}

/// What a verified signature vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that signed (the device id).
    pub keyid: String,
    /// For the server's replay check: this module keeps no memory of nonces.
    pub nonce: String,
    /// When the request was signed, in Unix seconds.
    pub created: i64,
}

/// Why a request's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A signing header is absent.
    #[error("request has no {0} header")]
    MissingHeader(&'static str),
    /// A signing header cannot be read.
    #[error("malformed {header} header")]
    MalformedHeader {
        /// The header, lowercase.
        header: &'static str,
        /// What is wrong with it.
        #[source]
        reason: HeaderError,
    },
    /// `Content-Digest` was computed over other bytes than the body.
    #[error(
        "content-digest does not match the body: the body changed on the way, or the digest was computed over other bytes"
    )]
    DigestMismatch,
    /// The two signature headers describe different signatures.
    #[error(
        "signature-input declares signature `{input}` but the signature header carries `{signature}`"
    )]
    LabelMismatch {
        /// Label in `Signature-Input`.
        input: String,
        /// Label in `Signature`.
        signature: String,
    },
    /// The signature covers other components than the profile's three.
    #[error(
        "signature covers ({}) but must cover exactly \"@method\" \"@target-uri\" \"content-digest\"",
        .0.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" ")
    )]
    CoveredComponents(Vec<String>),
    /// A parameter the profile requires is absent.
    #[error("signature has no `{0}` parameter")]
    MissingParameter(&'static str),
    /// `alg` names another algorithm.
    #[error("signature algorithm is `{0}`, but only `ed25519` is accepted")]
    UnsupportedAlgorithm(String),
    /// `created` is further in the past than the allowed skew.
    #[error(
        "signature was created {age_secs}s ago, more than the {max_skew_secs}s allowed: a replay, or the signer's clock is behind"
    )]
    TooOld {
        /// How long ago the signature was created.
        age_secs: i64,
        /// The allowed skew.
        max_skew_secs: i64,
    },
    /// `created` is further in the future than the allowed skew.
    #[error(
        "signature was created {ahead_secs}s in the future, more than the {max_skew_secs}s allowed: the signer's clock is ahead"
    )]
    FromFuture {
        /// How far ahead `created` is.
        ahead_secs: i64,
        /// The allowed skew.
        max_skew_secs: i64,
    },
    /// The signer set `expires`, and it has passed.
    #[error("signature expired at unix time {expires}, and it is now {now}")]
    Expired {
        /// The `expires` parameter.
        expires: i64,
        /// The verifier's time.
        now: i64,
    },
    /// No key is known under `keyid`.
    #[error("unknown key id `{0}`: the device is not enrolled, or its key was revoked")]
    UnknownKey(String),
    /// The signature was not made by the key of `keyid` over this request.
    #[error(
        "signature does not verify with the key of `{0}`: the request was altered or signed with another key"
    )]
    BadSignature(String),
}

/// Signs a request: the digest of `body`, and an Ed25519 signature over
/// method, target URI and that digest. `created` and `nonce` come from the
/// caller, so this stays free of clocks and randomness. Fails only on values
/// a header cannot carry: a `keyid` or `nonce` outside printable ASCII, a
/// line break in the method or URI.
pub fn sign_request(
    method: &str,
    target_uri: &str,
    body: &[u8],
    key: &SigningKey,
    keyid: &str,
    created: i64,
    nonce: &str,
) -> Result<SignedHeaders, BuildError> {
    let content_digest = digest::content_digest(body);
    let params = vec![
        SignatureParam::Created(created),
        SignatureParam::Keyid(keyid.to_owned()),
        SignatureParam::Alg(ALG.to_owned()),
        SignatureParam::Nonce(nonce.to_owned()),
    ];
    let covered = [method, target_uri, content_digest.as_str()];
    let covered: Vec<(&str, &str)> = COVERED.into_iter().zip(covered).collect();
    let base = http_signature::signature_base(&covered, &params)?;
    let signature = key.sign(base.as_bytes()).to_bytes();
    let input = SignatureInput {
        components: COVERED.map(str::to_owned).to_vec(),
        params,
    };
    Ok(SignedHeaders {
        signature_input: http_signature::signature_input_header(LABEL, &input)?,
        signature: http_signature::signature_header(LABEL, &signature)?,
        content_digest,
    })
}

/// Verifies a signed request against the key `resolve_key` finds for its
/// `keyid`, with `created` within `max_skew_secs` of `now` (Unix seconds).
/// The nonce is returned, not checked: replay detection needs the server's
/// memory.
pub fn verify_request(
    method: &str,
    target_uri: &str,
    body: &[u8],
    headers: ReceivedHeaders<'_>,
    resolve_key: impl Fn(&str) -> Option<VerifyingKey>,
    now: i64,
    max_skew_secs: i64,
) -> Result<Verified, VerifyError> {
    let content_digest = headers
        .content_digest
        .ok_or(VerifyError::MissingHeader("content-digest"))?
        .trim_matches([' ', '\t']);
    let signature_input = headers
        .signature_input
        .ok_or(VerifyError::MissingHeader("signature-input"))?;
    let signature = headers
        .signature
        .ok_or(VerifyError::MissingHeader("signature"))?;

    let (label, signature) =
        only_one(parse_signature(signature)).map_err(malformed("signature"))?;
    let (input_label, input) =
        only_one(parse_signature_input(signature_input)).map_err(malformed("signature-input"))?;
    if input_label != label {
        return Err(VerifyError::LabelMismatch {
            input: input_label,
            signature: label,
        });
    }

    let mut components: Vec<&str> = input.components.iter().map(String::as_str).collect();
    components.sort_unstable();
    let mut expected = COVERED;
    expected.sort_unstable();
    if components != expected {
        return Err(VerifyError::CoveredComponents(input.components));
    }
    let created = input
        .created()
        .ok_or(VerifyError::MissingParameter("created"))?;
    let keyid = input
        .keyid()
        .ok_or(VerifyError::MissingParameter("keyid"))?;
    let nonce = input
        .nonce()
        .ok_or(VerifyError::MissingParameter("nonce"))?;
    match input.alg() {
        None => return Err(VerifyError::MissingParameter("alg")),
        Some(ALG) => {}
        Some(other) => return Err(VerifyError::UnsupportedAlgorithm(other.to_owned())),
    }

    let age_secs = now.saturating_sub(created);
    if age_secs > max_skew_secs {
        return Err(VerifyError::TooOld {
            age_secs,
            max_skew_secs,
        });
    }
    let ahead_secs = created.saturating_sub(now);
    if ahead_secs > max_skew_secs {
        return Err(VerifyError::FromFuture {
            ahead_secs,
            max_skew_secs,
        });
    }
    if let Some(expires) = input.expires().filter(|&expires| now > expires) {
        return Err(VerifyError::Expired { expires, now });
    }

    digest::verify_content_digest(content_digest, body).map_err(|error| match error {
        DigestError::Malformed(reason) => VerifyError::MalformedHeader {
            header: "content-digest",
            reason,
        },
        DigestError::Mismatch => VerifyError::DigestMismatch,
    })?;

    let key = resolve_key(keyid).ok_or_else(|| VerifyError::UnknownKey(keyid.to_owned()))?;
    let signature =
        Signature::from_slice(&signature).map_err(|_| VerifyError::MalformedHeader {
            header: "signature",
            reason: HeaderError::Length {
                what: "ed25519 signature",
                found: signature.len(),
                expected: Signature::BYTE_SIZE,
            },
        })?;
    let covered: Vec<(&str, &str)> = input
        .components
        .iter()
        .map(|component| {
            let value = match component.as_str() {
                "@method" => method,
                "@target-uri" => target_uri,
                _ => content_digest,
            };
            (component.as_str(), value)
        })
        .collect();
    // A base that cannot be built (a line break in the method or URI) cannot
    // have been signed either.
    let bad_signature = || VerifyError::BadSignature(keyid.to_owned());
    let base =
        http_signature::signature_base(&covered, &input.params).map_err(|_| bad_signature())?;
    key.verify_strict(base.as_bytes(), &signature)
        .map_err(|_| bad_signature())?;

    Ok(Verified {
        keyid: keyid.to_owned(),
        nonce: nonce.to_owned(),
        created,
    })
}

/// The profile sends one signature per request; more would leave it unclear
/// which one the server vouched for.
fn only_one<T>(members: Result<Vec<(String, T)>, HeaderError>) -> Result<(String, T), HeaderError> {
    <[_; 1]>::try_from(members?)
        .map(|[member]| member)
        .map_err(|members| HeaderError::NotOneSignature {
            count: members.len(),
        })
}

fn malformed(header: &'static str) -> impl Fn(HeaderError) -> VerifyError {
    move |reason| VerifyError::MalformedHeader { header, reason }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;
    use crate::signing::{StructuredFieldError, content_digest, signature_base};

    const METHOD: &str = "POST";
    const URI: &str = "https://shipshape.example/v1/reports";
    const BODY: &[u8] = br#"{"report":"r1"}"#;
    const KEYID: &str = "device-1";
    const NONCE: &str = "n-0001";
    const NOW: i64 = 1_800_000_000;
    const SKEW: i64 = 300;

    /// Deriving a public key is slow in a debug build; the fuzz loop verifies
    /// thousands of times.
    static DEVICE_PUBLIC: LazyLock<VerifyingKey> = LazyLock::new(|| device_key().verifying_key());

    fn device_key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn signed() -> SignedHeaders {
        sign_request(METHOD, URI, BODY, &device_key(), KEYID, NOW, NONCE).unwrap()
    }

    fn verify(
        method: &str,
        uri: &str,
        body: &[u8],
        headers: ReceivedHeaders<'_>,
    ) -> Result<Verified, VerifyError> {
        verify_request(
            method,
            uri,
            body,
            headers,
            |id| (id == KEYID).then(|| *DEVICE_PUBLIC),
            NOW,
            SKEW,
        )
    }

    /// A request signed by the device's own key through the generic API, with
    /// whatever components and parameters a test wants to see rejected.
    fn signed_with(components: &[&str], params: Vec<SignatureParam>) -> SignedHeaders {
        let content_digest = content_digest(BODY);
        let covered: Vec<(&str, &str)> = components
            .iter()
            .map(|&component| {
                let value = match component {
                    "@method" => METHOD,
                    "@target-uri" => URI,
                    _ => &content_digest,
                };
                (component, value)
            })
            .collect();
        let base = signature_base(&covered, &params).unwrap();
        let signature = device_key().sign(base.as_bytes()).to_bytes();
        let input = SignatureInput {
            components: components.iter().map(|&c| c.to_owned()).collect(),
            params,
        };
        SignedHeaders {
            signature_input: http_signature::signature_input_header(LABEL, &input).unwrap(),
            signature: http_signature::signature_header(LABEL, &signature).unwrap(),
            content_digest,
        }
    }

    fn profile_params() -> Vec<SignatureParam> {
        vec![
            SignatureParam::Created(NOW),
            SignatureParam::Keyid(KEYID.into()),
            SignatureParam::Alg(ALG.into()),
            SignatureParam::Nonce(NONCE.into()),
        ]
    }

    fn verify_signed_with(
        components: &[&str],
        params: Vec<SignatureParam>,
    ) -> Result<Verified, VerifyError> {
        let headers = signed_with(components, params);
        verify(METHOD, URI, BODY, headers.as_received())
    }

    #[test]
    fn sign_then_verify() {
        let headers = signed();
        assert_eq!(headers.content_digest, content_digest(BODY));
        assert_eq!(
            headers.signature_input,
            r#"sig1=("@method" "@target-uri" "content-digest");created=1800000000;keyid="device-1";alg="ed25519";nonce="n-0001""#
        );
        assert_eq!(
            verify(METHOD, URI, BODY, headers.as_received()),
            Ok(Verified {
                keyid: KEYID.into(),
                nonce: NONCE.into(),
                created: NOW
            })
        );
        // The generic path signs the same bytes, and any component order is fine.
        assert_eq!(signed_with(&COVERED, profile_params()), headers);
        let reordered = ["content-digest", "@method", "@target-uri"];
        assert!(verify_signed_with(&reordered, profile_params()).is_ok());
    }

    #[test]
    fn missing_header() {
        let headers = signed();
        let cases = [
            (
                ReceivedHeaders {
                    content_digest: None,
                    ..headers.as_received()
                },
                "content-digest",
            ),
            (
                ReceivedHeaders {
                    signature_input: None,
                    ..headers.as_received()
                },
                "signature-input",
            ),
            (
                ReceivedHeaders {
                    signature: None,
                    ..headers.as_received()
                },
                "signature",
            ),
        ];
        for (received, header) in cases {
            assert_eq!(
                verify(METHOD, URI, BODY, received),
                Err(VerifyError::MissingHeader(header))
            );
        }
    }

    #[test]
    fn garbage_headers_are_malformed() {
        let headers = signed();
        let garbage = "garbage \u{0}\u{7f}é";
        let syntax = |header| {
            matches!(
                header,
                Err(VerifyError::MalformedHeader {
                    reason: HeaderError::Syntax(StructuredFieldError { .. }),
                    ..
                })
            )
        };
        let mut received = headers.as_received();
        received.content_digest = Some(garbage);
        assert!(syntax(verify(METHOD, URI, BODY, received)));
        let mut received = headers.as_received();
        received.signature_input = Some(garbage);
        assert!(syntax(verify(METHOD, URI, BODY, received)));
        let mut received = headers.as_received();
        received.signature = Some(garbage);
        assert!(syntax(verify(METHOD, URI, BODY, received)));

        let two = format!("{}, sig2=:AAAA:", headers.signature);
        received = headers.as_received();
        received.signature = Some(&two);
        assert_eq!(
            verify(METHOD, URI, BODY, received),
            Err(VerifyError::MalformedHeader {
                header: "signature",
                reason: HeaderError::NotOneSignature { count: 2 },
            })
        );
        received.signature = Some("sig1=:AAAA:");
        assert_eq!(
            verify(METHOD, URI, BODY, received),
            Err(VerifyError::MalformedHeader {
                header: "signature",
                reason: HeaderError::Length {
                    what: "ed25519 signature",
                    found: 3,
                    expected: 64
                },
            })
        );
        received = headers.as_received();
        received.content_digest = Some("sha-512=:AAAA:");
        assert_eq!(
            verify(METHOD, URI, BODY, received),
            Err(VerifyError::MalformedHeader {
                header: "content-digest",
                reason: HeaderError::NoSha256
            })
        );
    }

    #[test]
    fn tampered_body() {
        let headers = signed();
        let tampered = br#"{"report":"r2"}"#;
        assert_eq!(
            verify(METHOD, URI, tampered, headers.as_received()),
            Err(VerifyError::DigestMismatch)
        );
        // Replacing the digest too leaves it outside what was signed.
        let digest = content_digest(tampered);
        let received = ReceivedHeaders {
            content_digest: Some(&digest),
            ..headers.as_received()
        };
        assert_eq!(
            verify(METHOD, URI, tampered, received),
            Err(VerifyError::BadSignature(KEYID.into()))
        );
    }

    #[test]
    fn forged_with_another_key() {
        let forged = sign_request(
            METHOD,
            URI,
            BODY,
            &SigningKey::from_bytes(&[8; 32]),
            KEYID,
            NOW,
            NONCE,
        )
        .unwrap();
        assert_eq!(
            verify(METHOD, URI, BODY, forged.as_received()),
            Err(VerifyError::BadSignature(KEYID.into()))
        );
    }

    #[test]
    fn changed_method_or_uri() {
        let headers = signed();
        let bad = Err(VerifyError::BadSignature(KEYID.into()));
        assert_eq!(verify("PUT", URI, BODY, headers.as_received()), bad);
        assert_eq!(
            verify(
                METHOD,
                "https://shipshape.example/v1/other",
                BODY,
                headers.as_received()
            ),
            bad
        );
        assert_eq!(
            verify(
                METHOD,
                "https://evil.example/v1/reports",
                BODY,
                headers.as_received()
            ),
            bad
        );
    }

    #[test]
    fn wrong_label() {
        let headers = signed();
        let relabelled = headers.signature.replacen("sig1=", "sig2=", 1);
        let received = ReceivedHeaders {
            signature: Some(&relabelled),
            ..headers.as_received()
        };
        assert_eq!(
            verify(METHOD, URI, BODY, received),
            Err(VerifyError::LabelMismatch {
                input: "sig1".into(),
                signature: "sig2".into()
            })
        );
    }

    #[test]
    fn other_covered_components() {
        for components in [
            &["@method", "content-digest"][..],
            &["@method", "@target-uri", "content-digest", "content-type"],
            &["@method", "@path", "content-digest"],
        ] {
            assert_eq!(
                verify_signed_with(components, profile_params()),
                Err(VerifyError::CoveredComponents(
                    components.iter().map(|&c| c.to_owned()).collect()
                ))
            );
        }
    }

    #[test]
    fn missing_parameter() {
        for (index, name) in [(0, "created"), (1, "keyid"), (2, "alg"), (3, "nonce")] {
            let mut params = profile_params();
            params.remove(index);
            assert_eq!(
                verify_signed_with(&COVERED, params),
                Err(VerifyError::MissingParameter(name))
            );
        }
    }

    #[test]
    fn alg_mismatch() {
        let mut params = profile_params();
        params[2] = SignatureParam::Alg("hmac-sha256".into());
        assert_eq!(
            verify_signed_with(&COVERED, params),
            Err(VerifyError::UnsupportedAlgorithm("hmac-sha256".into()))
        );
    }

    #[test]
    fn unknown_key() {
        let headers =
            sign_request(METHOD, URI, BODY, &device_key(), "device-2", NOW, NONCE).unwrap();
        assert_eq!(
            verify(METHOD, URI, BODY, headers.as_received()),
            Err(VerifyError::UnknownKey("device-2".into()))
        );
    }

    #[test]
    fn created_too_old_or_in_the_future() {
        let at = |created| {
            let headers =
                sign_request(METHOD, URI, BODY, &device_key(), KEYID, created, NONCE).unwrap();
            verify(METHOD, URI, BODY, headers.as_received())
        };
        assert!(at(NOW - SKEW).is_ok());
        assert!(at(NOW + SKEW).is_ok());
        assert_eq!(
            at(NOW - SKEW - 1),
            Err(VerifyError::TooOld {
                age_secs: SKEW + 1,
                max_skew_secs: SKEW
            })
        );
        assert_eq!(
            at(NOW + SKEW + 1),
            Err(VerifyError::FromFuture {
                ahead_secs: SKEW + 1,
                max_skew_secs: SKEW
            })
        );
        assert!(matches!(
            at(-999_999_999_999_999),
            Err(VerifyError::TooOld { .. })
        ));
        assert!(matches!(
            at(999_999_999_999_999),
            Err(VerifyError::FromFuture { .. })
        ));
    }

    #[test]
    fn expired() {
        let mut params = profile_params();
        params.push(SignatureParam::Expires(NOW - 1));
        assert_eq!(
            verify_signed_with(&COVERED, params),
            Err(VerifyError::Expired {
                expires: NOW - 1,
                now: NOW
            })
        );
        let mut params = profile_params();
        params.push(SignatureParam::Expires(NOW));
        assert!(verify_signed_with(&COVERED, params).is_ok());
    }

    #[test]
    fn messages_are_lowercase_fragments() {
        let error = VerifyError::CoveredComponents(vec!["@method".into()]);
        assert_eq!(
            error.to_string(),
            r#"signature covers ("@method") but must cover exactly "@method" "@target-uri" "content-digest""#
        );
        let error = VerifyError::MalformedHeader {
            header: "signature",
            reason: HeaderError::NoSha256,
        };
        assert_eq!(error.to_string(), "malformed signature header");
    }

    /// xorshift64: a fixed, dependency-free stream of pseudo-random numbers.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }
    }

    /// Every parser, and the verifier with the text in each header's place;
    /// a truncated signed header must never verify.
    fn feed(headers: &SignedHeaders, text: &str, truncated: bool) {
        let _ = crate::signing::parse_signature_input(text);
        let _ = crate::signing::parse_signature(text);
        let _ = crate::signing::verify_content_digest(text, BODY);
        for slot in 0..3 {
            let mut received = headers.as_received();
            match slot {
                0 => received.content_digest = Some(text),
                1 => received.signature_input = Some(text),
                _ => received.signature = Some(text),
            }
            let verified = verify(METHOD, URI, BODY, received);
            assert!(
                !(truncated && verified.is_ok()),
                "{text:?} verified in slot {slot}"
            );
        }
    }

    #[test]
    fn no_input_makes_a_parser_panic() {
        let headers = signed();
        let valid = [
            headers.content_digest.clone(),
            headers.signature_input.clone(),
            headers.signature.clone(),
            format!(
                "{}, sha-512=:AAAA:, unixsum=1, md5=?1;a=1.5",
                headers.content_digest
            ),
            r#"a=(1 -2.5 "s\\" tok/en:x ?0 :AA==:);p=*t, b, c=?1;q"#.to_owned(),
        ];
        for (index, text) in valid.iter().enumerate() {
            // Only the three signed headers are complete exactly as they are.
            for (end, _) in text.char_indices() {
                feed(&headers, &text[..end], index < 3);
            }
        }
        let interesting = b" \t,;=():\"\\?*-.@/+0123456789azAZ\x00\x7f\xc3\xa9";
        let mut random = XorShift(0x5eed_5eed_5eed_5eed);
        for _ in 0..10_000 {
            let mut bytes = valid[random.below(valid.len())].clone().into_bytes();
            for _ in 0..=random.below(4) {
                let at = random.below(bytes.len() + 1);
                let byte = if random.below(2) == 0 {
                    interesting[random.below(interesting.len())]
                } else {
                    random.next() as u8
                };
                match random.below(3) {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            feed(&headers, &String::from_utf8_lossy(&bytes), false);
        }
        for _ in 0..2_000 {
            let bytes: Vec<u8> = (0..random.below(64)).map(|_| random.next() as u8).collect();
            feed(&headers, &String::from_utf8_lossy(&bytes), false);
        }
    }
}
