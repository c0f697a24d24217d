//! The signing headers of a request (see `shipshape_fuzz` for how the input
//! encodes one): no parser panics, what parses serializes back to the same
//! value, and `verify_request` accepts nothing but what the device key
//! signed with `sign_request`.

#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use shipshape_core::signing::{
    ReceivedHeaders, Verified, parse_signature, parse_signature_input, sign_request,
    signature_header, signature_input_header, verify_content_digest, verify_request,
};
use shipshape_fuzz::{MAX_SKEW_SECS, NOW, Request, device_key};

static DEVICE_KEY: LazyLock<SigningKey> = LazyLock::new(device_key);

fuzz_target!(|data: &[u8]| {
    let Some(request) = Request::decode(data) else {
        return;
    };
    let headers = ReceivedHeaders {
        content_digest: request.content_digest,
        signature_input: request.signature_input,
        signature: request.signature,
    };
    for header in [
        headers.content_digest,
        headers.signature_input,
        headers.signature,
    ] {
        let Some(header) = header else { continue };
        let _ = verify_content_digest(header, request.body);
        signature_input_round_trip(header);
        signature_round_trip(header);
    }
    let public = DEVICE_KEY.verifying_key();
    let verified = verify_request(
        request.method,
        request.target_uri,
        request.body,
        headers,
        |_| Some(public),
        NOW,
        MAX_SKEW_SECS,
    );
    if let Ok(verified) = verified {
        assert_signed_by_device(&request, &verified);
    }
});

/// A parsed `Signature-Input` serializes into a header that parses the same.
fn signature_input_round_trip(header: &str) {
    let Ok(members) = parse_signature_input(header) else {
        return;
    };
    let serialized: Vec<String> = members
        .iter()
        .map(|(label, input)| {
            signature_input_header(label, input)
                .unwrap_or_else(|error| panic!("{header:?} parses but does not serialize: {error}"))
        })
        .collect();
    let serialized = serialized.join(", ");
    assert_eq!(
        parse_signature_input(&serialized),
        Ok(members),
        "{header:?} serializes as {serialized:?}, which parses differently"
    );
}

/// A parsed `Signature` serializes into a header that parses the same.
fn signature_round_trip(header: &str) {
    let Ok(members) = parse_signature(header) else {
        return;
    };
    let serialized: Vec<String> = members
        .iter()
        .map(|(label, signature)| {
            signature_header(label, signature)
                .unwrap_or_else(|error| panic!("{header:?} parses but does not serialize: {error}"))
        })
        .collect();
    let serialized = serialized.join(", ");
    assert_eq!(
        parse_signature(&serialized),
        Ok(members),
        "{header:?} serializes as {serialized:?}, which parses differently"
    );
}

/// A verified request is one `sign_request` made with the device key: the
/// same digest, the same covered components and parameters, and (Ed25519
/// signatures being deterministic, and `verify_request` strict about their
/// encoding) the same signature bytes. Anything else would be a forgery.
fn assert_signed_by_device(request: &Request<'_>, verified: &Verified) {
    let expected = sign_request(
        request.method,
        request.target_uri,
        request.body,
        &DEVICE_KEY,
        &verified.keyid,
        verified.created,
        &verified.nonce,
    )
    .expect("what verifies can be signed");
    let (Some(digest), Some(input), Some(signature)) = (
        request.content_digest,
        request.signature_input,
        request.signature,
    ) else {
        panic!("{request:?} verified without every signing header");
    };
    assert_eq!(digest.trim_matches([' ', '\t']), expected.content_digest);
    assert_eq!(
        parse_signature_input(input).map(only),
        parse_signature_input(&expected.signature_input).map(only)
    );
    assert_eq!(
        parse_signature(signature).map(only),
        parse_signature(&expected.signature).map(only)
    );
}

/// The value of the one member a verified header has.
fn only<T>(members: Vec<(String, T)>) -> T {
    let [(_label, value)] = <[_; 1]>::try_from(members)
        .unwrap_or_else(|members| panic!("{} members, expected one", members.len()));
    value
}
