//! `Content-Digest` (RFC 9530 §2) with sha-256: binds the body to a
//! signature that covers only headers.

use sha2::{Digest as _, Sha256};

use super::HeaderError;
use super::sfv::{self, BareItem, Member};

/// The `Content-Digest` value for `body`: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256={}", sfv::serialize_bytes(&Sha256::digest(body)))
}

/// Why a `Content-Digest` does not vouch for a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The header cannot be read, or carries no usable sha-256 digest.
    #[error("malformed content-digest header")]
    Malformed(#[from] HeaderError),
    /// The digest is well-formed but of other bytes.
    #[error(
        "content-digest does not match the body: the body changed on the way, or the digest was computed over other bytes"
    )]
    Mismatch,
}

/// Checks the sha-256 member of a `Content-Digest` dictionary against `body`.
/// Other algorithms are ignored (RFC 9530 §2 lets a recipient ignore any
/// digest); without a sha-256 member there is nothing to check, which is an
/// error.
pub fn verify_content_digest(header: &str, body: &[u8]) -> Result<(), DigestError> {
    let expected = parse_sha256(header)?;
    if expected[..] == Sha256::digest(body)[..] {
        Ok(())
    } else {
        Err(DigestError::Mismatch)
    }
}

fn parse_sha256(header: &str) -> Result<Vec<u8>, HeaderError> {
    let members = sfv::parse_dictionary(header)?;
    let (_, member) = members
        .into_iter()
        .find(|(key, _)| key == "sha-256")
        .ok_or(HeaderError::NoSha256)?;
    let Member::Item(BareItem::Bytes(digest), _) = member else {
        return Err(HeaderError::NotByteSequence {
            key: "sha-256".into(),
        });
    };
    if digest.len() != 32 {
        return Err(HeaderError::Length {
            what: "sha-256 digest",
            found: digest.len(),
            expected: 32,
        });
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = br#"{"hello": "world"}"#;

    /// RFC 9530's examples digest this body (RFC 9421 Appendix B.2 reuses it).
    #[test]
    fn rfc_9530_hello_world() {
        assert_eq!(
            content_digest(HELLO),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        verify_content_digest(&content_digest(HELLO), HELLO).unwrap();
    }

    #[test]
    fn several_algorithms_only_sha256_is_checked() {
        let header = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:, \
                      unixsum=26869, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
        verify_content_digest(header, HELLO).unwrap();
        assert_eq!(
            verify_content_digest(header, b"{\"hello\": \"there\"}"),
            Err(DigestError::Mismatch)
        );
    }

    #[test]
    fn unusable_headers_are_malformed() {
        let cases = [
            ("sha-512=:AAAA:", HeaderError::NoSha256),
            ("", HeaderError::NoSha256),
            (
                "sha-256=\"X48E\"",
                HeaderError::NotByteSequence {
                    key: "sha-256".into(),
                },
            ),
            (
                "sha-256=:AAAA:",
                HeaderError::Length {
                    what: "sha-256 digest",
                    found: 3,
                    expected: 32,
                },
            ),
        ];
        for (header, error) in cases {
            assert_eq!(
                verify_content_digest(header, HELLO),
                Err(DigestError::Malformed(error)),
                "{header:?}"
            );
        }
        assert!(matches!(
            verify_content_digest("sha-256=:X48E", HELLO),
            Err(DigestError::Malformed(HeaderError::Syntax(_)))
        ));
    }
}
