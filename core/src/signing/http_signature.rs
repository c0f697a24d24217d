//! HTTP Message Signatures (RFC 9421), algorithm-agnostic: the signature base
//! (§2.5), its parameters (§2.3) and the `Signature-Input` and `Signature`
//! fields (§4). The caller extracts component values from its own request
//! type, so this works the same on the agent's client and the server.

use super::HeaderError;
use super::sfv::{self, BareItem, Member, Parameters};

/// A signature parameter (RFC 9421 §2.3). Parameters serialize in the order
/// given, and that order is part of what is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureParam {
    /// `created`: when the signature was made, in Unix seconds.
    Created(i64),
    /// `expires`: when the signature stops being valid, in Unix seconds.
    Expires(i64),
    /// `nonce`: a one-time value that lets the verifier spot replays.
    Nonce(String),
    /// `alg`: the signature algorithm, e.g. `ed25519`.
    Alg(String),
    /// `keyid`: which key signed.
    Keyid(String),
    /// `tag`: the application the signature is meant for.
    Tag(String),
}

impl SignatureParam {
    fn name(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Expires(_) => "expires",
            Self::Nonce(_) => "nonce",
            Self::Alg(_) => "alg",
            Self::Keyid(_) => "keyid",
            Self::Tag(_) => "tag",
        }
    }

    fn serialize(&self) -> Result<String, BuildError> {
        let value = match self {
            Self::Created(time) | Self::Expires(time) => {
                sfv::serialize_integer(*time).ok_or(BuildError::OutOfRange(self.name()))?
            }
            Self::Nonce(text) | Self::Alg(text) | Self::Keyid(text) | Self::Tag(text) => {
                sfv::serialize_string(text).ok_or(BuildError::Unprintable(self.name()))?
            }
        };
        Ok(format!(";{}={value}", self.name()))
    }

    fn parse(name: &str, value: BareItem) -> Result<Self, HeaderError> {
        let wrong_type = |name, expected| HeaderError::ParameterType { name, expected };
        match (name, value) {
            ("created", BareItem::Integer(time)) => Ok(Self::Created(time)),
            ("expires", BareItem::Integer(time)) => Ok(Self::Expires(time)),
            ("nonce", BareItem::String(text)) => Ok(Self::Nonce(text)),
            ("alg", BareItem::String(text)) => Ok(Self::Alg(text)),
            ("keyid", BareItem::String(text)) => Ok(Self::Keyid(text)),
            ("tag", BareItem::String(text)) => Ok(Self::Tag(text)),
            ("created", _) => Err(wrong_type("created", "an integer")),
            ("expires", _) => Err(wrong_type("expires", "an integer")),
            ("nonce", _) => Err(wrong_type("nonce", "a quoted string")),
            ("alg", _) => Err(wrong_type("alg", "a quoted string")),
            ("keyid", _) => Err(wrong_type("keyid", "a quoted string")),
            ("tag", _) => Err(wrong_type("tag", "a quoted string")),
            (other, _) => Err(HeaderError::UnknownParameter {
                name: other.to_owned(),
            }),
        }
    }
}

/// What one signature covers, and its parameters: a member of
/// `Signature-Input`, and the value of `@signature-params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInput {
    /// Covered component identifiers, in signing order: lowercase field names
    /// (`content-digest`) or derived components (`@method`).
    pub components: Vec<String>,
    /// Parameters, in serialization order.
    pub params: Vec<SignatureParam>,
}

impl SignatureInput {
    /// The inner list as it appears in `Signature-Input` and as the value of
    /// `@signature-params` in the signature base (RFC 9421 §2.3).
    pub fn serialize(&self) -> Result<String, BuildError> {
        let mut out = String::from("(");
        for (index, component) in self.components.iter().enumerate() {
            if !is_component_identifier(component) {
                return Err(BuildError::InvalidComponent(component.clone()));
            }
            if self.components[..index].contains(component) {
                return Err(BuildError::DuplicateComponent(component.clone()));
            }
            if index > 0 {
                out.push(' ');
            }
            out.push('"');
            out.push_str(component);
            out.push('"');
        }
        out.push(')');
        for param in &self.params {
            out.push_str(&param.serialize()?);
        }
        Ok(out)
    }

    /// The `created` parameter.
    pub fn created(&self) -> Option<i64> {
        self.params.iter().find_map(|param| match param {
            SignatureParam::Created(time) => Some(*time),
            _ => None,
        })
    }

    /// The `expires` parameter.
    pub fn expires(&self) -> Option<i64> {
        self.params.iter().find_map(|param| match param {
            SignatureParam::Expires(time) => Some(*time),
            _ => None,
        })
    }

    /// The `nonce` parameter.
    pub fn nonce(&self) -> Option<&str> {
        self.params.iter().find_map(|param| match param {
            SignatureParam::Nonce(text) => Some(text.as_str()),
            _ => None,
        })
    }

    /// The `alg` parameter.
    pub fn alg(&self) -> Option<&str> {
        self.params.iter().find_map(|param| match param {
            SignatureParam::Alg(text) => Some(text.as_str()),
            _ => None,
        })
    }

    /// The `keyid` parameter.
    pub fn keyid(&self) -> Option<&str> {
        self.params.iter().find_map(|param| match param {
            SignatureParam::Keyid(text) => Some(text.as_str()),
            _ => None,
        })
    }
}

/// A signature base or header that cannot be built from the values given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Labels are Structured Field keys.
    #[error(
        "`{0}` is not a signature label: use lowercase letters, digits and `_-.*`, starting with a letter"
    )]
    InvalidLabel(String),
    /// Component identifiers are quoted into the base and the header.
    #[error(
        "`{0}` is not a component identifier: use a lowercase field name, or `@` and a derived component name"
    )]
    InvalidComponent(String),
    /// RFC 9421 §2.5: each component is covered once.
    #[error("component `{0}` is covered twice")]
    DuplicateComponent(String),
    /// A line break in a value would let it forge further lines of the base.
    #[error("the value of `{0}` contains a line break")]
    LineBreak(String),
    /// Structured Field strings carry printable ASCII only.
    #[error("signature parameter `{0}` has characters outside printable ASCII")]
    Unprintable(&'static str),
    /// Structured Field integers have at most 15 digits.
    #[error("signature parameter `{0}` is out of range (at most 15 digits)")]
    OutOfRange(&'static str),
}

/// The signature base (RFC 9421 §2.5): one `"<identifier>": <value>` line per
/// covered component, in order, then the `@signature-params` line, with no
/// trailing newline. Values are taken as given: the caller extracts them
/// (§2.1 for fields, §2.2 for derived components).
pub fn signature_base(
    covered: &[(&str, &str)],
    params: &[SignatureParam],
) -> Result<String, BuildError> {
    let input = SignatureInput {
        components: covered.iter().map(|(id, _)| (*id).to_owned()).collect(),
        params: params.to_vec(),
    };
    let signature_params = input.serialize()?;
    let mut base = String::new();
    for (id, value) in covered {
        if value.contains(['\r', '\n']) {
            return Err(BuildError::LineBreak((*id).to_owned()));
        }
        base.push_str(&format!("\"{id}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {signature_params}"));
    Ok(base)
}

/// The `Signature-Input` value declaring one signature under `label`.
pub fn signature_input_header(label: &str, input: &SignatureInput) -> Result<String, BuildError> {
    check_label(label)?;
    Ok(format!("{label}={}", input.serialize()?))
}

/// The `Signature` value carrying one signature under `label`.
pub fn signature_header(label: &str, signature: &[u8]) -> Result<String, BuildError> {
    check_label(label)?;
    Ok(format!("{label}={}", sfv::serialize_bytes(signature)))
}

/// Reads every signature declared in a `Signature-Input` value, by label.
pub fn parse_signature_input(header: &str) -> Result<Vec<(String, SignatureInput)>, HeaderError> {
    sfv::parse_dictionary(header)?
        .into_iter()
        .map(|(label, member)| {
            let Member::InnerList(items, params) = member else {
                return Err(HeaderError::NotInnerList { label });
            };
            let input = SignatureInput {
                components: parse_components(&label, items)?,
                params: params
                    .into_iter()
                    .map(|(name, value)| SignatureParam::parse(&name, value))
                    .collect::<Result<_, _>>()?,
            };
            Ok((label, input))
        })
        .collect()
}

/// Reads every signature in a `Signature` value, by label.
pub fn parse_signature(header: &str) -> Result<Vec<(String, Vec<u8>)>, HeaderError> {
    sfv::parse_dictionary(header)?
        .into_iter()
        .map(|(label, member)| match member {
            Member::Item(BareItem::Bytes(signature), _) => Ok((label, signature)),
            _ => Err(HeaderError::NotByteSequence { key: label }),
        })
        .collect()
}

fn parse_components(
    label: &str,
    items: Vec<(BareItem, Parameters)>,
) -> Result<Vec<String>, HeaderError> {
    let mut components: Vec<String> = Vec::with_capacity(items.len());
    for (item, params) in items {
        let BareItem::String(component) = item else {
            return Err(HeaderError::ComponentNotString {
                label: label.to_owned(),
            });
        };
        if !is_component_identifier(&component) {
            return Err(HeaderError::InvalidComponent { component });
        }
        if !params.is_empty() {
            return Err(HeaderError::ComponentParameters { component });
        }
        if components.contains(&component) {
            return Err(HeaderError::DuplicateComponent { component });
        }
        components.push(component);
    }
    Ok(components)
}

/// A lowercase field name, or `@` and a derived component name (RFC 9421
/// §2.1, §2.2): both are tokens, so they quote without escapes.
fn is_component_identifier(id: &str) -> bool {
    let name = id.strip_prefix('@').unwrap_or(id);
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

fn check_label(label: &str) -> Result<(), BuildError> {
    if sfv::is_key(label) {
        Ok(())
    } else {
        Err(BuildError::InvalidLabel(label.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

    use super::*;

    /// RFC 9421 Appendix B.1.4, "Example Ed25519 Test Key", as printed there
    /// (PKCS#8 and SubjectPublicKeyInfo, PEM body).
    const TEST_KEY_ED25519_PRIVATE: &str =
        "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";
    const TEST_KEY_ED25519_PUBLIC: &str =
        "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";

    /// RFC 9421 Appendix B.2.6, "Signing a Request Using ed25519", with the
    /// RFC 8792 line wrapping undone.
    const B26_BASE: &str = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
                            \"@method\": POST\n\
                            \"@path\": /foo\n\
                            \"@authority\": example.com\n\
                            \"content-type\": application/json\n\
                            \"content-length\": 18\n\
                            \"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \
                            \"content-type\" \"content-length\");created=1618884473\
                            ;keyid=\"test-key-ed25519\"";
    const B26_SIGNATURE_INPUT: &str = "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \
                                       \"content-type\" \"content-length\");created=1618884473\
                                       ;keyid=\"test-key-ed25519\"";
    const B26_SIGNATURE: &str = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1\
                                 u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

    /// The last 32 bytes of the DER, after its fixed Ed25519 prefix.
    fn key_bytes(der_base64: &str, der_prefix: &[u8]) -> [u8; 32] {
        let der = STANDARD.decode(der_base64).unwrap();
        assert_eq!(&der[..der_prefix.len()], der_prefix);
        der[der_prefix.len()..].try_into().unwrap()
    }

    fn rfc_test_key() -> SigningKey {
        let seed = key_bytes(
            TEST_KEY_ED25519_PRIVATE,
            &[
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ],
        );
        let key = SigningKey::from_bytes(&seed);
        let public = key_bytes(
            TEST_KEY_ED25519_PUBLIC,
            &[
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ],
        );
        assert_eq!(
            key.verifying_key(),
            VerifyingKey::from_bytes(&public).unwrap()
        );
        key
    }

    fn b26_covered() -> [(&'static str, &'static str); 6] {
        // The test request of RFC 9421 Appendix B.2.
        [
            ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("@method", "POST"),
            ("@path", "/foo"),
            ("@authority", "example.com"),
            ("content-type", "application/json"),
            ("content-length", "18"),
        ]
    }

    fn b26_params() -> Vec<SignatureParam> {
        vec![
            SignatureParam::Created(1_618_884_473),
            SignatureParam::Keyid("test-key-ed25519".into()),
        ]
    }

    #[test]
    fn rfc_9421_b_2_6_reproduces_exactly() {
        let base = signature_base(&b26_covered(), &b26_params()).unwrap();
        assert_eq!(base, B26_BASE);

        let signature = rfc_test_key().sign(base.as_bytes()).to_bytes();
        assert_eq!(
            signature_header("sig-b26", &signature).unwrap(),
            B26_SIGNATURE
        );

        let input = SignatureInput {
            components: b26_covered()
                .iter()
                .map(|(id, _)| (*id).to_owned())
                .collect(),
            params: b26_params(),
        };
        assert_eq!(
            signature_input_header("sig-b26", &input).unwrap(),
            B26_SIGNATURE_INPUT
        );
    }

    #[test]
    fn rfc_9421_b_2_6_headers_parse_back() {
        let inputs = parse_signature_input(B26_SIGNATURE_INPUT).unwrap();
        let [(label, input)] = inputs.as_slice() else {
            panic!("one signature expected, got {inputs:?}");
        };
        assert_eq!(label, "sig-b26");
        assert_eq!(input.params, b26_params());
        assert_eq!(input.created(), Some(1_618_884_473));
        assert_eq!(input.keyid(), Some("test-key-ed25519"));
        assert_eq!(
            (input.alg(), input.nonce(), input.expires()),
            (None, None, None)
        );

        let signatures = parse_signature(B26_SIGNATURE).unwrap();
        let [(label, signature)] = signatures.as_slice() else {
            panic!("one signature expected, got {signatures:?}");
        };
        assert_eq!(label, "sig-b26");
        let signature = ed25519_dalek::Signature::from_slice(signature).unwrap();
        rfc_test_key()
            .verifying_key()
            .verify_strict(B26_BASE.as_bytes(), &signature)
            .unwrap();
    }

    #[test]
    fn parameters_keep_their_order_and_escape_strings() {
        let input = SignatureInput {
            components: vec!["@method".into()],
            params: vec![
                SignatureParam::Nonce("a\"b".into()),
                SignatureParam::Expires(2),
                SignatureParam::Alg("ed25519".into()),
                SignatureParam::Tag("t".into()),
                SignatureParam::Created(1),
            ],
        };
        let header = signature_input_header("s", &input).unwrap();
        assert_eq!(
            header,
            r#"s=("@method");nonce="a\"b";expires=2;alg="ed25519";tag="t";created=1"#
        );
        assert_eq!(
            parse_signature_input(&header).unwrap(),
            [("s".into(), input)]
        );
    }

    #[test]
    fn unbuildable_bases_and_headers_are_errors() {
        let params = b26_params();
        assert_eq!(
            signature_base(&[("@method", "GET\n\"@path\": /forged")], &params),
            Err(BuildError::LineBreak("@method".into()))
        );
        assert_eq!(
            signature_base(&[("Date", "x")], &params),
            Err(BuildError::InvalidComponent("Date".into()))
        );
        assert_eq!(
            signature_base(&[("@", "x")], &params),
            Err(BuildError::InvalidComponent("@".into()))
        );
        assert_eq!(
            signature_base(&[("date", "x"), ("date", "y")], &params),
            Err(BuildError::DuplicateComponent("date".into()))
        );
        assert_eq!(
            signature_base(&[], &[SignatureParam::Keyid("clé".into())]),
            Err(BuildError::Unprintable("keyid"))
        );
        assert_eq!(
            signature_base(&[], &[SignatureParam::Created(i64::MAX)]),
            Err(BuildError::OutOfRange("created"))
        );
        assert_eq!(
            signature_header("Sig", &[1]),
            Err(BuildError::InvalidLabel("Sig".into()))
        );
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let cases = [
            (
                "sig=:AAAA:",
                HeaderError::NotInnerList {
                    label: "sig".into(),
                },
            ),
            (
                "sig=(date)",
                HeaderError::ComponentNotString {
                    label: "sig".into(),
                },
            ),
            (
                "sig=(\"Date\")",
                HeaderError::InvalidComponent {
                    component: "Date".into(),
                },
            ),
            (
                "sig=(\"content-digest\";sf)",
                HeaderError::ComponentParameters {
                    component: "content-digest".into(),
                },
            ),
            (
                "sig=(\"date\" \"date\")",
                HeaderError::DuplicateComponent {
                    component: "date".into(),
                },
            ),
            (
                "sig=();foo=1",
                HeaderError::UnknownParameter { name: "foo".into() },
            ),
            (
                "sig=();created=\"1\"",
                HeaderError::ParameterType {
                    name: "created",
                    expected: "an integer",
                },
            ),
            (
                "sig=();keyid=k",
                HeaderError::ParameterType {
                    name: "keyid",
                    expected: "a quoted string",
                },
            ),
        ];
        for (header, error) in cases {
            assert_eq!(parse_signature_input(header), Err(error), "{header:?}");
        }
        assert_eq!(
            parse_signature("sig=\"AAAA\""),
            Err(HeaderError::NotByteSequence { key: "sig".into() })
        );
    }
}
