//! The part of Structured Field Values (RFC 8941) that signing headers use:
//! parsing a Dictionary (§4.2.2) and serializing strings, integers and byte
//! sequences (§4.1).
//!
//! Header values arrive from the network, so parsing works on bytes with
//! bounds-checked lookups and never panics. Unlike RFC 8941, which keeps the
//! last of duplicate keys, a repeated dictionary key or parameter is an error:
//! two `sha-256` digests or two `created` times are an attack, not a typo.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

/// Byte sequences as RFC 8941 §4.2.7 asks: tolerate missing `=` padding and
/// non-zero pad bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Largest magnitude of a Structured Field Integer (RFC 8941 §3.3.1).
const MAX_INTEGER: i64 = 999_999_999_999_999;

/// A header value that is not a Structured Field Dictionary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a structured-field dictionary: expected {expected} at byte {at}")]
pub struct StructuredFieldError {
    /// Byte offset into the header value.
    pub at: usize,
    /// What the parser was looking for there.
    pub expected: &'static str,
}

/// A bare item, as far as signing reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BareItem {
    Integer(i64),
    String(String),
    Bytes(Vec<u8>),
    /// A token, decimal or boolean: checked, then ignored.
    Other,
}

pub(super) type Parameters = Vec<(String, BareItem)>;

/// An item or inner list with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Member {
    Item(BareItem, Parameters),
    InnerList(Vec<(BareItem, Parameters)>, Parameters),
}

/// Parses a Dictionary (RFC 8941 §4.2.2), keeping members in order.
pub(super) fn parse_dictionary(input: &str) -> Result<Vec<(String, Member)>, StructuredFieldError> {
    let mut parser = Parser {
        input: input.as_bytes(),
        pos: 0,
    };
    parser.skip_sp();
    let mut members: Vec<(String, Member)> = Vec::new();
    while !parser.at_end() {
        let key_at = parser.pos;
        let key = parser.key()?;
        let member = if parser.eat(b'=') {
            parser.member()?
        } else {
            Member::Item(BareItem::Other, parser.parameters()?)
        };
        if members.iter().any(|(existing, _)| *existing == key) {
            return Err(parser.error_at(key_at, "a key not used before in the header"));
        }
        members.push((key, member));
        parser.skip_ows();
        if parser.at_end() {
            break;
        }
        if !parser.eat(b',') {
            return Err(parser.error("`,` between members"));
        }
        parser.skip_ows();
        if parser.at_end() {
            return Err(parser.error("a member after `,`"));
        }
    }
    Ok(members)
}

/// Serializes a String (RFC 8941 §4.1.6); `None` if it has characters outside
/// printable ASCII, which a String cannot carry.
pub(super) fn serialize_string(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if !(' '..='~').contains(&c) {
            return None;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Some(out)
}

/// Serializes an Integer (RFC 8941 §4.1.4); `None` if it is out of range.
pub(super) fn serialize_integer(value: i64) -> Option<String> {
    (-MAX_INTEGER..=MAX_INTEGER)
        .contains(&value)
        .then(|| value.to_string())
}

/// Serializes a Byte Sequence (RFC 8941 §4.1.8).
pub(super) fn serialize_bytes(value: &[u8]) -> String {
    format!(":{}:", STANDARD.encode(value))
}

/// Whether `key` is a valid dictionary or parameter key (RFC 8941 §3.1.2).
pub(super) fn is_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes
        .first()
        .is_some_and(|&first| first.is_ascii_lowercase() || first == b'*')
        && bytes.iter().all(|&b| is_key_char(b))
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'*')
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while self.eat(b' ') || self.eat(b'\t') {}
    }

    /// Takes bytes while `accept` holds; they are ASCII, so the slice is text.
    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        self.input
            .get(start..self.pos)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
    }

    fn error(&self, expected: &'static str) -> StructuredFieldError {
        self.error_at(self.pos, expected)
    }

    fn error_at(&self, at: usize, expected: &'static str) -> StructuredFieldError {
        StructuredFieldError { at, expected }
    }

    fn key(&mut self) -> Result<String, StructuredFieldError> {
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
        {
            return Err(self.error("a key (lowercase letter or `*`)"));
        }
        Ok(self.take_while(is_key_char).to_owned())
    }

    fn member(&mut self) -> Result<Member, StructuredFieldError> {
        if self.eat(b'(') {
            let mut items = Vec::new();
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    return Ok(Member::InnerList(items, self.parameters()?));
                }
                let bare = self.bare_item()?;
                items.push((bare, self.parameters()?));
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return Err(self.error("a space or `)` after a list item"));
                }
            }
        }
        let bare = self.bare_item()?;
        Ok(Member::Item(bare, self.parameters()?))
    }

    fn parameters(&mut self) -> Result<Parameters, StructuredFieldError> {
        let mut parameters: Parameters = Vec::new();
        while self.eat(b';') {
            self.skip_sp();
            let key_at = self.pos;
            let key = self.key()?;
            let value = if self.eat(b'=') {
                self.bare_item()?
            } else {
                BareItem::Other
            };
            if parameters.iter().any(|(existing, _)| *existing == key) {
                return Err(self.error_at(key_at, "a parameter not used before on this item"));
            }
            parameters.push((key, value));
        }
        Ok(parameters)
    }

    fn bare_item(&mut self) -> Result<BareItem, StructuredFieldError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string(),
            Some(b':') => self.bytes(),
            Some(b'?') => self.boolean(),
            Some(b) if b.is_ascii_alphabetic() || b == b'*' => {
                self.take_while(|b| is_tchar(b) || b == b':' || b == b'/');
                Ok(BareItem::Other)
            }
            _ => Err(self.error("an item (number, string, token, byte sequence or boolean)")),
        }
    }

    /// RFC 8941 §4.2.4: at most 15 integer digits; a decimal has at most 12
    /// before the point and 1 to 3 after it.
    fn number(&mut self) -> Result<BareItem, StructuredFieldError> {
        let negative = self.eat(b'-');
        let integer = self.take_while(|b| b.is_ascii_digit()).to_owned();
        if integer.is_empty() {
            return Err(self.error("a digit"));
        }
        if self.eat(b'.') {
            let fraction = self.take_while(|b| b.is_ascii_digit());
            if integer.len() > 12 || fraction.is_empty() || fraction.len() > 3 {
                return Err(self
                    .error("a decimal with at most 12 digits before the point and 1 to 3 after"));
            }
            return Ok(BareItem::Other);
        }
        if integer.len() > 15 {
            return Err(self.error("an integer of at most 15 digits"));
        }
        let magnitude: i64 = integer
            .parse()
            .map_err(|_| self.error("an integer of at most 15 digits"))?;
        Ok(BareItem::Integer(if negative {
            -magnitude
        } else {
            magnitude
        }))
    }

    fn string(&mut self) -> Result<BareItem, StructuredFieldError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("a closing `\"`")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(BareItem::String(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(escaped @ (b'"' | b'\\')) => out.push(char::from(escaped)),
                        _ => return Err(self.error("`\"` or `\\` after `\\` in a string")),
                    }
                }
                Some(b @ b' '..=b'~') => out.push(char::from(b)),
                Some(_) => return Err(self.error("printable ASCII in a string")),
            }
            self.pos += 1;
        }
    }

    fn bytes(&mut self) -> Result<BareItem, StructuredFieldError> {
        self.pos += 1; // the opening colon
        let start = self.pos;
        let encoded = self.take_while(is_base64_char).to_owned();
        if !self.eat(b':') {
            return Err(self.error("base64 ending in `:`"));
        }
        LENIENT
            .decode(encoded)
            .map(BareItem::Bytes)
            .map_err(|_| self.error_at(start, "valid base64"))
    }

    fn boolean(&mut self) -> Result<BareItem, StructuredFieldError> {
        self.pos += 1; // the question mark
        if self.eat(b'0') || self.eat(b'1') {
            Ok(BareItem::Other)
        } else {
            Err(self.error("`0` or `1` after `?`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_with_every_kind_of_member() {
        let parsed =
            parse_dictionary(r#"a=1, b=-2;x=?0, c=("p" "q\"";r=:AQI:);s, d, e=tok/en:1, f=1.25"#)
                .unwrap();
        let keys: Vec<&str> = parsed.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(parsed[0].1, Member::Item(BareItem::Integer(1), vec![]));
        let Member::InnerList(items, params) = &parsed[2].1 else {
            panic!("c is an inner list");
        };
        assert_eq!(items[1].0, BareItem::String("q\"".into()));
        assert_eq!(items[1].1, vec![("r".into(), BareItem::Bytes(vec![1, 2]))]);
        assert_eq!(params, &vec![("s".into(), BareItem::Other)]);
    }

    #[test]
    fn rejects_what_rfc_8941_rejects_and_repeated_keys() {
        for bad in [
            "a=1,",
            "a=1 b=2",
            "A=1",
            "a=\"unterminated",
            "a=\"bad\\escape\"",
            "a=1234567890123456",
            "a=1.2345",
            "a=:not base64!:",
            "a=?2",
            "a=(1 2",
            "a=(1,2)",
            "a=1, a=2",
            "a=1;p;p",
            "a=é",
        ] {
            assert!(parse_dictionary(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serializes_strings_integers_and_bytes() {
        assert_eq!(serialize_string(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(serialize_string("tab\there"), None);
        assert_eq!(serialize_integer(-MAX_INTEGER).unwrap(), "-999999999999999");
        assert_eq!(serialize_integer(MAX_INTEGER + 1), None);
        assert_eq!(serialize_bytes(&[1, 2]), ":AQI=:");
    }
}
