//! Policies: which checks run, what they require, and who is excepted.
//!
//! A policy is TOML (see `policies/default.toml`, the commented reference).
//! Parsing is strict: an unknown key, a bad value, an unknown check in an
//! exception, or an exception past its expiry is an error that names the
//! file, line and column, so a typo never silently weakens a policy.

mod duration;

pub use duration::Grace;

use std::ops::Range;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::checks::{CheckId, Checks};
use crate::finding::Severity;

/// What an unknown finding means for the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownTreatment {
    /// Unknown counts as failing (the safe default: unknown is never pass).
    #[default]
    Leak,
    /// Unknown is reported but does not make the machine leaky.
    Report,
}

/// A parsed, validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Name shown in reports; the file stem when the file gives none.
    pub name: String,
    pub description: Option<String>,
    /// Failing findings at or above this severity make a machine leaky.
    pub leak_severity: Severity,
    /// Default treatment of unknown findings; a check may override it.
    pub unknown: UnknownTreatment,
    pub checks: Checks,
    pub exceptions: Vec<Exception>,
}

/// A waiver of one check for named hosts, always with a reason and an expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub check: CheckId,
    /// Hostnames, compared case-insensitively; `*` matches any run of characters.
    pub hosts: Vec<String>,
    pub reason: String,
    /// The last day the exception holds.
    pub expires: Date,
}

impl Exception {
    /// Whether this exception waives `check` on `hostname` on day `today`.
    pub fn applies(&self, check: CheckId, hostname: &str, today: Date) -> bool {
        self.check == check
            && today <= self.expires
            && self
                .hosts
                .iter()
                .any(|pattern| glob_match(pattern, hostname))
    }
}

fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A policy that cannot be used, located in its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct PolicyError {
    /// The file (or other source) the policy came from.
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PolicyFile {
    name: Option<String>,
    description: Option<String>,
    #[serde(default = "default_leak_severity")]
    leak_severity: Severity,
    #[serde(default)]
    unknown: UnknownTreatment,
    checks: Checks,
    #[serde(default)]
    exceptions: Vec<ExceptionFile>,
}

fn default_leak_severity() -> Severity {
    Severity::High
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ExceptionFile {
    check: Spanned<String>,
    hosts: Spanned<Vec<String>>,
    reason: Spanned<String>,
    expires: Spanned<toml::value::Datetime>,
}

impl Policy {
    /// Parses and validates a policy. `origin` names the source in errors;
    /// `today` decides which exceptions have expired (core reads no clock).
    pub fn parse(text: &str, origin: &str, today: Date) -> Result<Policy, PolicyError> {
        let locate = |span: Option<Range<usize>>, message: String| {
            let (line, column) = span.map_or((1, 1), |span| line_column(text, span.start));
            PolicyError {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: PolicyFile = toml::from_str(text).map_err(|error| {
            let message = match error.message() {
                "" => unexpected_character(text, error.span()),
                message => message.to_owned(),
            };
            locate(error.span(), message)
        })?;
        file.checks
            .validate()
            .map_err(|(span, message)| locate(Some(span), message))?;
        let exceptions = file
            .exceptions
            .into_iter()
            .map(|exception| exception.validate(&file.checks, today))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|(span, message)| locate(Some(span), message))?;
        let name = file.name.unwrap_or_else(|| {
            std::path::Path::new(origin).file_stem().map_or_else(
                || origin.to_owned(),
                |stem| stem.to_string_lossy().into_owned(),
            )
        });
        Ok(Policy {
            name,
            description: file.description,
            leak_severity: file.leak_severity,
            unknown: file.unknown,
            checks: file.checks,
            exceptions,
        })
    }

    /// Parses a policy that was validated once already (stored by the server,
    /// or served to the agent): an exception that has expired since simply
    /// stops applying instead of making the whole policy unusable.
    pub fn parse_accepted(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, origin, Date::MIN)
    }

    /// The exception that waives `check` on `hostname` today, if any.
    pub fn exception_for(&self, check: CheckId, hostname: &str, today: Date) -> Option<&Exception> {
        self.exceptions
            .iter()
            .find(|exception| exception.applies(check, hostname, today))
    }
}

type Located = (Range<usize>, String);

impl ExceptionFile {
    fn validate(self, checks: &Checks, today: Date) -> Result<Exception, Located> {
        let check: CheckId = self
            .check
            .get_ref()
            .parse()
            .map_err(|message| (self.check.span(), message))?;
        if checks.get(check).is_none() {
            return Err((
                self.check.span(),
                format!("exception for check `{check}`, which this policy does not run"),
            ));
        }
        if self.hosts.get_ref().is_empty()
            || self
                .hosts
                .get_ref()
                .iter()
                .any(|host| host.trim().is_empty())
        {
            return Err((
                self.hosts.span(),
                "`hosts` must list at least one non-empty hostname".to_owned(),
            ));
        }
        if self.reason.get_ref().trim().is_empty() {
            return Err((
                self.reason.span(),
                "`reason` must say why the exception exists".to_owned(),
            ));
        }
        let expires = exception_date(self.expires.get_ref())
            .map_err(|message| (self.expires.span(), message))?;
        if expires < today {
            return Err((
                self.expires.span(),
                format!(
                    "exception for `{check}` expired on {expires}: renew it with a new date or remove it"
                ),
            ));
        }
        Ok(Exception {
            check,
            hosts: self.hosts.into_inner(),
            reason: self.reason.into_inner(),
            expires,
        })
    }
}

fn exception_date(value: &toml::value::Datetime) -> Result<Date, String> {
    match (value.date, value.time) {
        (Some(date), None) => Date::new(date.year as i16, date.month as i8, date.day as i8)
            .map_err(|error| format!("`expires` is not a real date: {error}")),
        _ => Err(format!(
            "`expires` must be a plain date such as 2027-03-31, not `{value}`"
        )),
    }
}

/// What to say where the TOML parser says nothing, as it does for a control
/// character in a comment: name the character it stopped at.
fn unexpected_character(text: &str, span: Option<Range<usize>>) -> String {
    let found = span.and_then(|span| text.get(span.start..)?.chars().next());
    match found {
        Some(found) if found.is_control() => format!(
            "unexpected control character U+{:04X}: TOML allows no control character but tab, not even in a comment",
            u32::from(found)
        ),
        Some(found) => format!("unexpected character `{found}`"),
        None => "unexpected end of the policy".to_owned(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests;
