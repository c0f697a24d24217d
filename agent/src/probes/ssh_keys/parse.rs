//! Private key files described without their secret: bytes in, metadata out.
//!
//! OpenSSH keys keep their public half readable even under a passphrase, so
//! ssh-key gives algorithm, size and fingerprint for them. PEM and PKCS#8 keys
//! are read with the DER crates when unencrypted; an encrypted one only tells
//! its container, so the `.pub` file next to it fills in what it can.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pkcs8::der::asn1::{ObjectIdentifier, UintRef};
use pkcs8::der::{Reader as _, SliceReader};
use shipshape_core::facts::KeyFormat;
use ssh_key::public::{DsaPublicKey, EcdsaPublicKey, Ed25519PublicKey, KeyData, RsaPublicKey};
use ssh_key::{EcdsaCurve, HashAlg, Mpint, PrivateKey, PublicKey};

/// What a private key file tells about itself, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub format: KeyFormat,
    pub algorithm: Option<String>,
    pub bits: Option<u32>,
    pub encrypted: bool,
    pub hardware_backed: bool,
    pub fingerprint: Option<String>,
    pub note: Option<String>,
}

impl KeyInfo {
    fn new(format: KeyFormat, encrypted: bool) -> Self {
        KeyInfo {
            format,
            algorithm: None,
            bits: None,
            encrypted,
            hardware_backed: false,
            fingerprint: None,
            note: None,
        }
    }

    fn with_public(mut self, key: &KeyData) -> Self {
        self.algorithm = Some(key.algorithm().as_str().to_owned());
        self.bits = public_bits(key);
        self.hardware_backed =
            matches!(key, KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_));
        self.fingerprint = Some(key.fingerprint(HashAlg::Sha256).to_string());
        self
    }

    fn noted(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Fills what the key itself could not tell from its `.pub` file, if it
    /// holds a key of the family the private key's label names.
    fn or_from_public(self, public: Option<&str>, family: Option<Family>, why: &str) -> Self {
        let Some(text) = public else {
            return self.noted(format!("{why}; no .pub file next to it"));
        };
        let parsed = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .and_then(|line| PublicKey::from_openssh(line).ok());
        let Some(public_key) = parsed else {
            return self.noted(format!(
                "{why}; the .pub file next to it is not an OpenSSH public key"
            ));
        };
        let key = public_key.key_data();
        if family.is_some_and(|family| family != Family::of(key)) {
            return self.noted(format!(
                "{why}; the .pub file next to it holds a different kind of key"
            ));
        }
        let format = self.format;
        let encrypted = self.encrypted;
        KeyInfo {
            note: None,
            ..KeyInfo::new(format, encrypted)
        }
        .with_public(key)
    }
}

/// The kind of key a PEM label names, to tell whether a `.pub` file matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Dsa,
    Ecdsa,
    Other,
}

impl Family {
    fn of(key: &KeyData) -> Family {
        match key {
            KeyData::Rsa(_) => Family::Rsa,
            KeyData::Dsa(_) => Family::Dsa,
            KeyData::Ecdsa(_) => Family::Ecdsa,
            _ => Family::Other,
        }
    }
}

const PUTTY_HEADER: &str = "PuTTY-User-Key-File-";

/// The container format of `content` when it is a private key file.
pub fn private_key_format(content: &[u8]) -> Option<KeyFormat> {
    let text = String::from_utf8_lossy(content.get(..200).unwrap_or(content));
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with(PUTTY_HEADER) {
        return Some(KeyFormat::Putty);
    }
    let label = pem_label(text)?;
    match label {
        "OPENSSH PRIVATE KEY" => Some(KeyFormat::Openssh),
        "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => Some(KeyFormat::Pkcs8),
        _ if label.ends_with("PRIVATE KEY") => Some(KeyFormat::Pem),
        _ => None,
    }
}

fn pem_label(text: &str) -> Option<&str> {
    let first = text.lines().next()?.trim_end();
    first.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

/// Describes a private key file; `None` when `content` is not one.
///
/// `public` is the text of the `<key>.pub` file next to it, used only where
/// the private key cannot tell algorithm, size or fingerprint itself.
pub fn parse_private_key(content: &[u8], public: Option<&str>) -> Option<KeyInfo> {
    let format = private_key_format(content)?;
    let text = String::from_utf8_lossy(content);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    Some(match format {
        KeyFormat::Openssh => parse_openssh(text),
        KeyFormat::Putty => parse_putty(text),
        KeyFormat::Pem | KeyFormat::Pkcs8 => parse_pem(text, format, public),
    })
}

fn parse_openssh(text: &str) -> KeyInfo {
    let normalized = text.replace("\r\n", "\n");
    match PrivateKey::from_openssh(normalized.trim_end().to_owned() + "\n") {
        Ok(key) => KeyInfo::new(KeyFormat::Openssh, key.is_encrypted())
            .with_public(key.public_key().key_data()),
        Err(error) => KeyInfo::new(KeyFormat::Openssh, false)
            .noted(format!("not a readable OpenSSH key: {error}")),
    }
}

fn parse_putty(text: &str) -> KeyInfo {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(':'))
            })
            .map(str::trim)
    };
    let encrypted = field("Encryption").is_none_or(|cipher| cipher != "none");
    let info = KeyInfo::new(KeyFormat::Putty, encrypted);
    let public_lines = field("Public-Lines").and_then(|count| count.parse::<usize>().ok());
    let blob = public_lines.and_then(|count| {
        let start = text
            .lines()
            .position(|line| line.starts_with("Public-Lines:"))?
            + 1;
        let base64: String = text
            .lines()
            .skip(start)
            .take(count)
            .map(str::trim)
            .collect();
        STANDARD.decode(base64).ok()
    });
    match blob.as_deref().map(PublicKey::from_bytes) {
        Some(Ok(public_key)) => info.with_public(public_key.key_data()),
        _ => {
            let named = text
                .lines()
                .next()
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim());
            let mut info = info.noted("the public key in the PuTTY file could not be read");
            info.algorithm = named.filter(|name| !name.is_empty()).map(str::to_owned);
            info
        }
    }
}

fn parse_pem(text: &str, format: KeyFormat, public: Option<&str>) -> KeyInfo {
    let label = pem_label(text).unwrap_or_default();
    let family = match label {
        "RSA PRIVATE KEY" => Some(Family::Rsa),
        "DSA PRIVATE KEY" => Some(Family::Dsa),
        "EC PRIVATE KEY" => Some(Family::Ecdsa),
        _ => None,
    };
    let mut headers = true;
    let mut proc_encrypted = false;
    let mut body = String::new();
    for line in text.lines().skip(1).map(str::trim) {
        if line.starts_with("-----END ") {
            break;
        }
        if headers && line.contains(':') {
            proc_encrypted |= line.starts_with("Proc-Type:") && line.contains("ENCRYPTED");
            continue;
        }
        headers = false;
        body.push_str(line);
    }
    let encrypted = proc_encrypted || label == "ENCRYPTED PRIVATE KEY";
    let info = KeyInfo::new(format, encrypted);
    if encrypted {
        let labelled = KeyInfo {
            algorithm: match family {
                Some(Family::Rsa) => Some("ssh-rsa".to_owned()),
                Some(Family::Dsa) => Some("ssh-dss".to_owned()),
                _ => None,
            },
            ..info
        };
        return labelled.or_from_public(
            public,
            family,
            "encrypted: size and fingerprint not readable",
        );
    }
    let Ok(der) = STANDARD.decode(body) else {
        return info.or_from_public(public, family, "the key's base64 body is damaged");
    };
    let described = match label {
        "RSA PRIVATE KEY" => rsa_from_pkcs1(&der),
        "EC PRIVATE KEY" => ecdsa_from_sec1(&der, None),
        "DSA PRIVATE KEY" => dsa_from_der(&der),
        "PRIVATE KEY" => from_pkcs8(&der),
        other => Err(format!("unrecognised key type `{other}`")),
    };
    match described {
        Ok(Described::Public(key)) => info.with_public(&key),
        Ok(Described::Partial {
            algorithm,
            bits,
            family,
            why,
        }) => {
            let partial = KeyInfo {
                algorithm: Some(algorithm.to_owned()),
                bits,
                ..info
            };
            partial.or_from_public(public, Some(family), why)
        }
        Err(why) => info.or_from_public(public, family, &why),
    }
}

/// What an unencrypted DER key told.
enum Described {
    /// The whole public key, so fingerprint and size are known.
    Public(KeyData),
    /// Algorithm and maybe size, but not the public key.
    Partial {
        algorithm: &'static str,
        bits: Option<u32>,
        family: Family,
        why: &'static str,
    },
}

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");
const NIST_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const NIST_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const NIST_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

fn mpint(uint: UintRef<'_>) -> Result<Mpint, String> {
    Mpint::from_positive_bytes(uint.as_bytes())
        .map_err(|error| format!("bad integer in the key: {error}"))
}

fn rsa_from_pkcs1(der: &[u8]) -> Result<Described, String> {
    let key = pkcs1::RsaPrivateKey::try_from(der)
        .map_err(|error| format!("not a readable RSA key: {error}"))?;
    Ok(Described::Public(KeyData::Rsa(RsaPublicKey {
        e: mpint(key.public_exponent)?,
        n: mpint(key.modulus)?,
    })))
}

fn curve_algorithm(curve: ObjectIdentifier) -> Result<&'static str, String> {
    match curve {
        NIST_P256 => Ok("ecdsa-sha2-nistp256"),
        NIST_P384 => Ok("ecdsa-sha2-nistp384"),
        NIST_P521 => Ok("ecdsa-sha2-nistp521"),
        other => Err(format!("unsupported elliptic curve {other}")),
    }
}

fn curve_bits(curve: EcdsaCurve) -> u32 {
    match curve {
        EcdsaCurve::NistP256 => 256,
        EcdsaCurve::NistP384 => 384,
        EcdsaCurve::NistP521 => 521,
    }
}

/// A SEC1 `ECPrivateKey`; PKCS#8 gives the curve outside it, in `curve`.
fn ecdsa_from_sec1(der: &[u8], curve: Option<ObjectIdentifier>) -> Result<Described, String> {
    let key = sec1::EcPrivateKey::try_from(der)
        .map_err(|error| format!("not a readable EC key: {error}"))?;
    let curve = curve
        .or_else(|| {
            key.parameters
                .and_then(|parameters| parameters.named_curve())
        })
        .ok_or("the EC key names no curve")?;
    let algorithm = curve_algorithm(curve)?;
    match key.public_key.map(EcdsaPublicKey::from_sec1_bytes) {
        Some(Ok(point)) => Ok(Described::Public(KeyData::Ecdsa(point))),
        _ => Ok(Described::Partial {
            algorithm,
            bits: algorithm
                .rsplit("nistp")
                .next()
                .and_then(|bits| bits.parse().ok()),
            family: Family::Ecdsa,
            why: "the key holds no public point: fingerprint not readable",
        }),
    }
}

/// OpenSSL's traditional `DSA PRIVATE KEY`: SEQUENCE { version, p, q, g, y, x }.
fn dsa_from_der(der: &[u8]) -> Result<Described, String> {
    let bad = |error: pkcs8::der::Error| format!("not a readable DSA key: {error}");
    let mut reader = SliceReader::new(der).map_err(bad)?;
    let [_version, p, q, g, y] = reader
        .sequence(|inner| {
            let mut next = || inner.decode::<UintRef<'_>>();
            Ok([next()?, next()?, next()?, next()?, next()?])
        })
        .map_err(bad)?;
    Ok(Described::Public(KeyData::Dsa(DsaPublicKey {
        p: mpint(p)?,
        q: mpint(q)?,
        g: mpint(g)?,
        y: mpint(y)?,
    })))
}

fn from_pkcs8(der: &[u8]) -> Result<Described, String> {
    let info = pkcs8::PrivateKeyInfo::try_from(der)
        .map_err(|error| format!("not a readable PKCS#8 key: {error}"))?;
    match info.algorithm.oid {
        RSA_ENCRYPTION => rsa_from_pkcs1(info.private_key),
        EC_PUBLIC_KEY => {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|error| format!("the EC key names no curve: {error}"))?;
            ecdsa_from_sec1(info.private_key, Some(curve))
        }
        ED25519 => match info.public_key.map(<[u8; 32]>::try_from) {
            Some(Ok(point)) => Ok(Described::Public(KeyData::Ed25519(Ed25519PublicKey(point)))),
            _ => Ok(Described::Partial {
                algorithm: "ssh-ed25519",
                bits: Some(256),
                family: Family::Other,
                why: "the key holds no public key: fingerprint not readable",
            }),
        },
        DSA => {
            let bits = info.algorithm.parameters.and_then(|parameters| {
                let mut reader = SliceReader::new(parameters.value()).ok()?;
                reader
                    .decode::<UintRef<'_>>()
                    .ok()
                    .map(|p| bit_length(p.as_bytes()))
            });
            Ok(Described::Partial {
                algorithm: "ssh-dss",
                bits,
                family: Family::Dsa,
                why: "PKCS#8 DSA keys hold no public key: fingerprint not readable",
            })
        }
        other => Err(format!("unrecognised PKCS#8 key algorithm {other}")),
    }
}

/// Key size as `ssh-keygen -l` reports it.
fn public_bits(key: &KeyData) -> Option<u32> {
    match key {
        KeyData::Rsa(rsa) => Some(bit_length(rsa.n.as_bytes())),
        KeyData::Dsa(dsa) => Some(bit_length(dsa.p.as_bytes())),
        KeyData::Ecdsa(ecdsa) => Some(curve_bits(ecdsa.curve())),
        KeyData::Ed25519(_) | KeyData::SkEd25519(_) | KeyData::SkEcdsaSha2NistP256(_) => Some(256),
        _ => None,
    }
}

/// Bit length of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> u32 {
    let significant = bytes
        .iter()
        .position(|byte| *byte != 0)
        .map_or(&[][..], |at| &bytes[at..]);
    match significant.first() {
        Some(first) => (significant.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_ignores_leading_zero_bytes() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01, 0xff]), 9);
        assert_eq!(bit_length(&[0x00]), 0);
    }

    #[test]
    fn only_private_key_labels_count() {
        assert_eq!(
            private_key_format(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"),
            Some(KeyFormat::Openssh)
        );
        assert_eq!(
            private_key_format(b"\n-----BEGIN RSA PRIVATE KEY-----\r\n"),
            Some(KeyFormat::Pem)
        );
        assert_eq!(
            private_key_format(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            Some(KeyFormat::Pkcs8)
        );
        assert_eq!(
            private_key_format(b"PuTTY-User-Key-File-3: ssh-ed25519\n"),
            Some(KeyFormat::Putty)
        );
        assert_eq!(private_key_format(b"-----BEGIN CERTIFICATE-----\n"), None);
        assert_eq!(
            private_key_format(b"ssh-ed25519 AAAAC3Nza user@host\n"),
            None
        );
        assert_eq!(
            private_key_format(b"Host *\n  IdentityFile ~/.ssh/id_ed25519\n"),
            None
        );
    }

    #[test]
    fn encrypted_pem_without_pub_keeps_the_label_algorithm() {
        let text = "-----BEGIN DSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END DSA PRIVATE KEY-----\n";
        let info = parse_private_key(text.as_bytes(), None).expect("a private key");
        assert_eq!(info.format, KeyFormat::Pem);
        assert!(info.encrypted);
        assert_eq!(info.algorithm.as_deref(), Some("ssh-dss"));
        assert_eq!(info.bits, None);
        assert_eq!(
            info.note.as_deref(),
            Some("encrypted: size and fingerprint not readable; no .pub file next to it")
        );
    }

    #[test]
    fn encrypted_pkcs8_with_a_mismatched_pub_tells_nothing() {
        let text =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let public = "not a key\n";
        let info = parse_private_key(text.as_bytes(), Some(public)).expect("a private key");
        assert!(info.encrypted);
        assert_eq!(info.algorithm, None);
        assert!(
            info.note
                .expect("a note")
                .contains("not an OpenSSH public key")
        );
    }
}
