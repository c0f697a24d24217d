//! Request signing: the agent signs every request and the server verifies it,
//! with the same code on both sides.
//!
//! - [`content_digest`] / [`verify_content_digest`]: RFC 9530 `Content-Digest`
//!   (sha-256) ties the body to the headers.
//! - [`signature_base`], [`SignatureInput`] and the header builders and
//!   parsers: RFC 9421 HTTP Message Signatures, generic enough to reproduce
//!   the RFC's own Ed25519 example.
//! - [`sign_request`] / [`verify_request`]: Shipshape's profile on top, one
//!   Ed25519 signature over method, target URI and digest.
//!
//! Pure like the rest of core: the caller passes the time, the nonce and the
//! keys. Header values come from the network, so every parser returns an
//! error, never panics, on any input.

mod digest;
mod http_signature;
mod profile;
mod sfv;

pub use digest::{DigestError, content_digest, verify_content_digest};
pub use http_signature::{
    BuildError, SignatureInput, SignatureParam, parse_signature, parse_signature_input,
    signature_base, signature_header, signature_input_header,
};
pub use profile::{
    ReceivedHeaders, SignedHeaders, Verified, VerifyError, sign_request, verify_request,
};
pub use sfv::StructuredFieldError;

/// A signing header (`Content-Digest`, `Signature-Input`, `Signature`) that
/// cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not a Structured Field Dictionary at all.
    #[error(transparent)]
    Syntax(#[from] StructuredFieldError),
    /// `Content-Digest` without the one algorithm Shipshape checks.
    #[error("no sha-256 digest (other algorithms are not checked)")]
    NoSha256,
    /// A digest or signature that is not `:base64:`.
    #[error("`{key}` is not a byte sequence (`:base64:`)")]
    NotByteSequence {
        /// The dictionary key: algorithm or signature label.
        key: String,
    },
    /// A digest or signature of the wrong size.
    #[error("{what} is {found} bytes long, expected {expected}")]
    Length {
        /// What was measured.
        what: &'static str,
        /// Its length.
        found: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A `Signature-Input` member that is not `(...)`.
    #[error("`{label}` is not a parenthesized list of covered components")]
    NotInnerList {
        /// The signature label.
        label: String,
    },
    /// A covered component that is not `"quoted"`.
    #[error("`{label}` covers a component that is not a quoted string")]
    ComponentNotString {
        /// The signature label.
        label: String,
    },
    /// A covered component that is neither a field name nor a derived component.
    #[error(
        "`{component}` is not a component identifier: expected a lowercase field name, or `@` and a derived component name"
    )]
    InvalidComponent {
        /// The component as sent.
        component: String,
    },
    /// Component parameters (`;sf`, `;key=...`) are not implemented.
    #[error("component `{component}` has parameters, which are not supported")]
    ComponentParameters {
        /// The component.
        component: String,
    },
    /// RFC 9421 §2.5 forbids covering a component twice.
    #[error("component `{component}` is covered twice")]
    DuplicateComponent {
        /// The component.
        component: String,
    },
    /// A signature parameter RFC 9421 §2.3 does not define.
    #[error("unknown signature parameter `{name}`")]
    UnknownParameter {
        /// The parameter name.
        name: String,
    },
    /// A signature parameter of the wrong type.
    #[error("signature parameter `{name}` must be {expected}")]
    ParameterType {
        /// The parameter name.
        name: &'static str,
        /// The type it must have.
        expected: &'static str,
    },
    /// Shipshape requests carry exactly one signature.
    #[error("carries {count} signatures, expected exactly one")]
    NotOneSignature {
        /// How many there are.
        count: usize,
    },
}
