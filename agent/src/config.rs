//! `agent.toml`: which server this machine reports to, as which device, and
//! where its key is. `shipshape enroll` writes it; an administrator may read
//! or edit it, so it is strict TOML whose errors name the line and column.
//!
//! ```toml
//! server = "https://shipshape.example.com"
//! device-id = "0198c6a2-…"
//! key-store = "keyring"            # or "file"
//! ca-file = "/etc/shipshape/ca.pem" # optional: trust only this CA
//!
//! [delivery]                        # optional, every key too; defaults shown
//! retry-delays = ["3s", "9s", "27s"] # waits before each retry of a report
//! breaker-failures = 3              # failed runs in a row that open the breaker
//! breaker-cooldown = "30m"          # how long an open breaker keeps off the network
//! outbox-max-reports = 500          # queued reports kept; the oldest go first
//! outbox-max-bytes = "50MiB"        # or a number of bytes
//! connect-timeout = "2s"
//! request-timeout = "10s"
//!
//! [notify]                          # optional
//! enabled = true                    # false: no desktop notification when a leak springs or is bailed out
//! ```
//!
//! It holds no secret; it is still written 0600, since nobody else needs it.
//! `shipshape enroll` keeps existing `[delivery]` and `[notify]` tables.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::atomic;
use crate::keystore::KeyStoreKind;
use crate::transport::ServerUrl;

/// The agent's enrollment, as read from `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub server: ServerUrl,
    /// The id the server gave this device; signed requests carry it as `keyid`.
    pub device_id: String,
    pub key_store: KeyStoreKind,
    /// A PEM file of the only CA certificates trusted for the server.
    pub ca_file: Option<PathBuf>,
    /// How reports travel: retries, breaker, outbox bounds, timeouts.
    pub delivery: Delivery,
    /// Whether the employee hears of new leaks through desktop notifications.
    pub notify: Notify,
}

/// The `[delivery]` table, with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// How long to wait before each retry of a report: one entry per retry.
    pub retry_delays: Vec<Duration>,
    /// Failed runs in a row that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps the agent off the network.
    pub breaker_cooldown: Duration,
    /// The most reports the outbox keeps; beyond it the oldest are dropped.
    pub outbox_max_reports: usize,
    /// The most bytes the outbox keeps; beyond it the oldest are dropped.
    pub outbox_max_bytes: u64,
    /// How long to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// How long one whole request may take, body included.
    pub request_timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            retry_delays: vec![
                Duration::from_secs(3),
                Duration::from_secs(9),
                Duration::from_secs(27),
            ],
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(30 * 60),
            outbox_max_reports: 500,
            outbox_max_bytes: 50 * MIB,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        }
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// The `[notify]` table: whether the employee is told of a new leak (and of
/// bailing out) with a desktop notification. `shipshape check` reads it even
/// on a machine that is not enrolled, so an administrator can turn it off
/// in a file that holds nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify {
    pub enabled: bool,
}

impl Default for Notify {
    fn default() -> Self {
        Notify { enabled: true }
    }
}

/// The longest wait `[delivery]` accepts for a retry or a timeout: beyond it
/// a timer run would outlive its interval.
const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// A config file that cannot be used, located in its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    server: Spanned<String>,
    device_id: Spanned<String>,
    key_store: KeyStoreKind,
    ca_file: Option<Spanned<PathBuf>>,
    delivery: Option<DeliveryFile>,
    notify: Option<NotifyFile>,
}

/// A file read only for its `[delivery]` table (`shipshape enroll` keeps it).
#[derive(Deserialize)]
struct DeliveryOnly {
    delivery: Option<DeliveryFile>,
}

/// A file read only for its `[notify]` table.
#[derive(Deserialize)]
struct NotifyOnly {
    notify: Option<NotifyFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct NotifyFile {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DeliveryFile {
    retry_delays: Option<Vec<Spanned<String>>>,
    breaker_failures: Option<Spanned<i64>>,
    breaker_cooldown: Option<Spanned<String>>,
    outbox_max_reports: Option<Spanned<i64>>,
    outbox_max_bytes: Option<Spanned<toml::Value>>,
    connect_timeout: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ConfigOut<'a> {
    server: &'a str,
    device_id: &'a str,
    key_store: KeyStoreKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    delivery: toml::Table,
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    notify: toml::Table,
}

impl AgentConfig {
    /// Parses and checks a config; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<AgentConfig, ConfigError> {
        let locate = locator(text, origin);
        let file: ConfigFile = toml::from_str(text)
            .map_err(|error| locate(error.span(), error.message().to_owned()))?;
        let server = ServerUrl::parse(file.server.get_ref())
            .map_err(|message| locate(Some(file.server.span()), format!("server: {message}")))?;
        check_device_id(file.device_id.get_ref())
            .map_err(|message| locate(Some(file.device_id.span()), message))?;
        let ca_file = match file.ca_file {
            Some(path) if path.get_ref().is_relative() => {
                return Err(locate(
                    Some(path.span()),
                    format!(
                        "ca-file `{}` must be an absolute path",
                        path.get_ref().display()
                    ),
                ));
            }
            Some(path) => Some(path.into_inner()),
            None => None,
        };
        let delivery = match file.delivery {
            Some(table) => Delivery::from_file(table, &locate)?,
            None => Delivery::default(),
        };
        Ok(AgentConfig {
            server,
            device_id: file.device_id.into_inner(),
            key_store: file.key_store,
            ca_file,
            delivery,
            notify: file.notify.map(Notify::from_file).unwrap_or_default(),
        })
    }

    /// The file's text, with a header saying where it came from.
    pub fn to_toml(&self) -> String {
        let out = ConfigOut {
            server: self.server.as_str(),
            device_id: &self.device_id,
            key_store: self.key_store,
            ca_file: self.ca_file.as_deref(),
            delivery: self.delivery.changed(),
            notify: self.notify.changed(),
        };
        // Strings, a path, an enum and a table of those: TOML can always represent them.
        let body =
            toml::to_string(&out).unwrap_or_else(|error| panic!("agent config to TOML: {error}"));
        format!("# Written by `shipshape enroll`. Enroll again to change it.\n{body}")
    }

    /// Reads the config at `path`; `None` when this machine is not enrolled.
    pub fn load(path: &Path) -> anyhow::Result<Option<AgentConfig>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("could not read {}", path.display()));
            }
        };
        Ok(Some(AgentConfig::parse(
            &text,
            &path.display().to_string(),
        )?))
    }

    /// Writes the config atomically, readable by its owner only.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        atomic::write(path, self.to_toml().as_bytes(), atomic::Access::Owner)
    }
}

impl Delivery {
    /// The `[delivery]` table of a config file that may be incomplete (a
    /// half-written or hand-seeded `agent.toml`), so that enrolling keeps it.
    /// `Ok(None)` when the file is not TOML or has no such table; an error
    /// when the table is there but wrong.
    pub fn of_text(text: &str, origin: &str) -> Result<Option<Delivery>, ConfigError> {
        let Ok(file) = toml::from_str::<toml::Table>(text) else {
            return Ok(None);
        };
        if !file.contains_key("delivery") {
            return Ok(None);
        }
        let locate = locator(text, origin);
        let only: DeliveryOnly = toml::from_str(text)
            .map_err(|error| locate(error.span(), error.message().to_owned()))?;
        only.delivery
            .map(|table| Delivery::from_file(table, &locate))
            .transpose()
    }

    fn from_file(
        file: DeliveryFile,
        locate: &dyn Fn(Option<Range<usize>>, String) -> ConfigError,
    ) -> Result<Delivery, ConfigError> {
        let mut delivery = Delivery::default();
        let wait = |key: &str, text: &Spanned<String>, zero_ok: bool| {
            parse_wait(text.get_ref(), zero_ok)
                .map_err(|message| locate(Some(text.span()), format!("{key}: {message}")))
        };
        let count = |key: &str, value: &Spanned<i64>| {
            u32::try_from(*value.get_ref())
                .ok()
                .filter(|count| *count >= 1)
                .ok_or_else(|| {
                    locate(
                        Some(value.span()),
                        format!(
                            "{key} must be a whole number from 1 up, not {}",
                            value.get_ref()
                        ),
                    )
                })
        };
        if let Some(delays) = file.retry_delays {
            if delays.len() > 10 {
                return Err(locate(
                    delays.get(10).map(Spanned::span),
                    format!(
                        "retry-delays lists {} retries: at most 10, or a run could outlive its timer",
                        delays.len()
                    ),
                ));
            }
            delivery.retry_delays = delays
                .iter()
                .map(|delay| wait("retry-delays", delay, true))
                .collect::<Result<_, _>>()?;
        }
        if let Some(failures) = file.breaker_failures {
            delivery.breaker_failures = count("breaker-failures", &failures)?;
        }
        if let Some(cooldown) = file.breaker_cooldown {
            delivery.breaker_cooldown = parse_duration(cooldown.get_ref())
                .and_then(|duration| {
                    if duration.is_zero() {
                        Err(format!(
                            "`{}` would never keep the agent off the network: give e.g. \"30m\"",
                            cooldown.get_ref()
                        ))
                    } else {
                        Ok(duration)
                    }
                })
                .map_err(|message| {
                    locate(
                        Some(cooldown.span()),
                        format!("breaker-cooldown: {message}"),
                    )
                })?;
        }
        if let Some(reports) = file.outbox_max_reports {
            delivery.outbox_max_reports = count("outbox-max-reports", &reports)? as usize;
        }
        if let Some(bytes) = file.outbox_max_bytes {
            delivery.outbox_max_bytes = parse_size(bytes.get_ref()).map_err(|message| {
                locate(Some(bytes.span()), format!("outbox-max-bytes: {message}"))
            })?;
        }
        if let Some(timeout) = file.connect_timeout {
            delivery.connect_timeout = wait("connect-timeout", &timeout, false)?;
        }
        if let Some(timeout) = file.request_timeout {
            delivery.request_timeout = wait("request-timeout", &timeout, false)?;
        }
        Ok(delivery)
    }

    /// The keys whose values differ from the defaults, as `agent.toml` writes them.
    fn changed(&self) -> toml::Table {
        let default = Delivery::default();
        let mut table = toml::Table::new();
        let text = |duration: Duration| toml::Value::String(format_duration(duration));
        if self.retry_delays != default.retry_delays {
            let delays = self.retry_delays.iter().map(|delay| text(*delay)).collect();
            table.insert("retry-delays".into(), toml::Value::Array(delays));
        }
        if self.breaker_failures != default.breaker_failures {
            table.insert(
                "breaker-failures".into(),
                toml::Value::Integer(self.breaker_failures.into()),
            );
        }
        if self.breaker_cooldown != default.breaker_cooldown {
            table.insert("breaker-cooldown".into(), text(self.breaker_cooldown));
        }
        if self.outbox_max_reports != default.outbox_max_reports {
            table.insert(
                "outbox-max-reports".into(),
                toml::Value::Integer(i64::try_from(self.outbox_max_reports).unwrap_or(i64::MAX)),
            );
        }
        if self.outbox_max_bytes != default.outbox_max_bytes {
            table.insert(
                "outbox-max-bytes".into(),
                format_size(self.outbox_max_bytes),
            );
        }
        if self.connect_timeout != default.connect_timeout {
            table.insert("connect-timeout".into(), text(self.connect_timeout));
        }
        if self.request_timeout != default.request_timeout {
            table.insert("request-timeout".into(), text(self.request_timeout));
        }
        table
    }
}

impl Notify {
    /// The `[notify]` table of a config file that may be incomplete or hold
    /// nothing else. `Ok(None)` when the file is not TOML or has no such
    /// table; an error when the table is there but wrong.
    pub fn of_text(text: &str, origin: &str) -> Result<Option<Notify>, ConfigError> {
        let Ok(file) = toml::from_str::<toml::Table>(text) else {
            return Ok(None);
        };
        if !file.contains_key("notify") {
            return Ok(None);
        }
        let locate = locator(text, origin);
        let only: NotifyOnly = toml::from_str(text)
            .map_err(|error| locate(error.span(), error.message().to_owned()))?;
        Ok(only.notify.map(Notify::from_file))
    }

    fn from_file(file: NotifyFile) -> Notify {
        Notify {
            enabled: file.enabled.unwrap_or(Notify::default().enabled),
        }
    }

    /// The keys whose values differ from the defaults, as `agent.toml` writes them.
    fn changed(&self) -> toml::Table {
        let mut table = toml::Table::new();
        if self.enabled != Notify::default().enabled {
            table.insert("enabled".into(), toml::Value::Boolean(self.enabled));
        }
        table
    }
}

/// A duration such as "3s", "50ms", "30m" or "2h".
fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration: write e.g. \"50ms\", \"3s\" or \"30m\"");
    let span: Span = text.trim().parse().map_err(|_| invalid())?;
    let duration = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| invalid())?;
    Duration::try_from(duration).map_err(|_| format!("`{text}` is negative"))
}

/// A wait for a retry or a timeout: at most [`MAX_WAIT`].
fn parse_wait(text: &str, zero_ok: bool) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() && !zero_ok {
        return Err(format!("`{text}` would give up at once: give e.g. \"2s\""));
    }
    if duration > MAX_WAIT {
        return Err(format!(
            "`{text}` is longer than {}: a timer run would outlive its interval",
            format_duration(MAX_WAIT)
        ));
    }
    Ok(duration)
}

fn format_duration(duration: Duration) -> String {
    SignedDuration::try_from(duration)
        .map_or_else(|_| format!("{}s", duration.as_secs()), |d| format!("{d:#}"))
}

/// A size: a number of bytes, or a string such as "50MiB", "512KiB", "1GiB".
fn parse_size(value: &toml::Value) -> Result<u64, String> {
    let bytes = match value {
        toml::Value::Integer(bytes) => {
            u64::try_from(*bytes).map_err(|_| format!("{bytes} is negative"))?
        }
        toml::Value::String(text) => {
            let trimmed = text.trim();
            let digits = trimmed
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(trimmed.len());
            let (number, unit) = trimmed.split_at(digits);
            let unit_size = match unit.trim() {
                "" | "B" => 1,
                "KiB" => KIB,
                "MiB" => MIB,
                "GiB" => GIB,
                _ => {
                    return Err(format!(
                        "`{text}` is not a size: write a number of bytes, or e.g. \"512KiB\", \"50MiB\", \"1GiB\""
                    ));
                }
            };
            number
                .parse::<u64>()
                .ok()
                .and_then(|number| number.checked_mul(unit_size))
                .ok_or_else(|| format!("`{text}` is not a size: write e.g. \"50MiB\""))?
        }
        other => {
            return Err(format!(
                "expected a number of bytes or a string such as \"50MiB\", found {}",
                other.type_str()
            ));
        }
    };
    if bytes < KIB {
        return Err(format!(
            "{bytes} bytes cannot hold a report: give at least \"1KiB\""
        ));
    }
    Ok(bytes)
}

fn format_size(bytes: u64) -> toml::Value {
    match binary_units(bytes) {
        Some(text) => toml::Value::String(text),
        None => toml::Value::Integer(i64::try_from(bytes).unwrap_or(i64::MAX)),
    }
}

/// A size for a person: "50MiB", "512KiB", else "5000 bytes".
pub fn size_text(bytes: u64) -> String {
    binary_units(bytes).unwrap_or_else(|| format!("{bytes} bytes"))
}

fn binary_units(bytes: u64) -> Option<String> {
    [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)]
        .into_iter()
        .find(|(_, size)| bytes > 0 && bytes % size == 0)
        .map(|(unit, size)| format!("{}{unit}", bytes / size))
}

/// A device id travels in the `keyid` signature parameter: printable ASCII, no quotes.
pub fn check_device_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 200 {
        return Err(format!(
            "device-id must be 1 to 200 characters, not {}",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\\'))
    {
        return Err(format!(
            "device-id `{}` contains {bad:?}: only printable ASCII without quotes or backslashes",
            id.escape_debug()
        ));
    }
    Ok(())
}

/// Makes errors about `text`, read from `origin`, that point at the line and
/// column where a span starts (the top of the file when there is no span).
fn locator<'a>(
    text: &'a str,
    origin: &'a str,
) -> impl Fn(Option<Range<usize>>, String) -> ConfigError + 'a {
    move |span, message| {
        let (line, column) = span.map_or((1, 1), |span| line_column(text, span.start));
        ConfigError {
            origin: origin.to_owned(),
            line,
            column,
            message,
        }
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentConfig {
        AgentConfig {
            server: ServerUrl::parse("https://shipshape.example.com").unwrap(),
            device_id: "0198c6a2-7f3e-7cc0-9b1e-2d3c4b5a6978".to_owned(),
            key_store: KeyStoreKind::File,
            ca_file: Some(PathBuf::from("/etc/shipshape/ca.pem")),
            delivery: Delivery::default(),
            notify: Notify::default(),
        }
    }

    const HEAD: &str = "server = \"https://a.example\"\ndevice-id = \"d1\"\nkey-store = \"file\"\n";

    #[test]
    fn the_delivery_table_sets_what_it_names_and_defaults_the_rest() {
        let text = format!(
            "{HEAD}\n[delivery]\nretry-delays = [\"50ms\", \"100ms\", \"200ms\"]\nbreaker-failures = 2\n\
             breaker-cooldown = \"2s\"\noutbox-max-reports = 4\noutbox-max-bytes = \"64KiB\"\n\
             request-timeout = \"1.5s\"\n"
        );
        let config = AgentConfig::parse(&text, "agent.toml").unwrap();
        let delivery = &config.delivery;
        assert_eq!(
            delivery.retry_delays,
            [50, 100, 200].map(Duration::from_millis)
        );
        assert_eq!(delivery.breaker_failures, 2);
        assert_eq!(delivery.breaker_cooldown, Duration::from_secs(2));
        assert_eq!(delivery.outbox_max_reports, 4);
        assert_eq!(delivery.outbox_max_bytes, 64 * 1024);
        assert_eq!(delivery.request_timeout, Duration::from_millis(1500));
        assert_eq!(
            delivery.connect_timeout,
            Delivery::default().connect_timeout
        );

        let written = config.to_toml();
        assert!(written.contains("[delivery]"), "{written}");
        assert!(
            written.contains("outbox-max-bytes = \"64KiB\""),
            "{written}"
        );
        assert!(
            written.contains("request-timeout = \"1s 500ms\""),
            "{written}"
        );
        assert!(
            !written.contains("connect-timeout"),
            "defaults are not written: {written}"
        );
        assert_eq!(AgentConfig::parse(&written, "agent.toml").unwrap(), config);

        let bytes = format!("{HEAD}[delivery]\noutbox-max-bytes = 5000\nretry-delays = []\n");
        let config = AgentConfig::parse(&bytes, "agent.toml").unwrap();
        assert_eq!(config.delivery.outbox_max_bytes, 5000);
        assert!(config.delivery.retry_delays.is_empty());
        assert_eq!(AgentConfig::parse(&config.to_toml(), "x").unwrap(), config);
        assert!(!sample().to_toml().contains("[delivery]"));
    }

    #[test]
    fn delivery_errors_name_the_line_and_column() {
        let cases = [
            (
                "retry-delays = [\"3s\", \"soon\"]\n",
                "agent.toml:5:23: retry-delays: `soon` is not a duration",
            ),
            (
                "retry-delays = [\"1h\"]\n",
                "agent.toml:5:17: retry-delays: `1h` is longer than 10m",
            ),
            (
                "breaker-failures = 0\n",
                "agent.toml:5:20: breaker-failures must be a whole number from 1 up, not 0",
            ),
            (
                "breaker-cooldown = \"0s\"\n",
                "agent.toml:5:20: breaker-cooldown: `0s` would never keep",
            ),
            (
                "outbox-max-reports = -1\n",
                "agent.toml:5:22: outbox-max-reports must be a whole number",
            ),
            (
                "outbox-max-bytes = \"50MB\"\n",
                "agent.toml:5:20: outbox-max-bytes: `50MB` is not a size",
            ),
            (
                "outbox-max-bytes = 10\n",
                "agent.toml:5:20: outbox-max-bytes: 10 bytes cannot hold a report",
            ),
            (
                "outbox-max-bytes = true\n",
                "agent.toml:5:20: outbox-max-bytes: expected a number of bytes",
            ),
            (
                "connect-timeout = \"0s\"\n",
                "agent.toml:5:19: connect-timeout: `0s` would give up at once",
            ),
            ("retries = 3\n", "agent.toml:5:1: unknown field `retries`"),
        ];
        for (line, expected) in cases {
            let text = format!("{HEAD}[delivery]\n{line}");
            let error = AgentConfig::parse(&text, "agent.toml")
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(expected), "{line:?}\n{error}");
        }
    }

    #[test]
    fn the_delivery_table_of_an_incomplete_file_is_found() {
        let seeded = "[delivery]\nbreaker-failures = 5\n";
        let delivery = Delivery::of_text(seeded, "agent.toml").unwrap().unwrap();
        assert_eq!(delivery.breaker_failures, 5);
        assert_eq!(
            Delivery::of_text("server = 1\n", "agent.toml").unwrap(),
            None
        );
        assert_eq!(
            Delivery::of_text("server = \"x\n", "agent.toml").unwrap(),
            None
        );
        let error = Delivery::of_text("[delivery]\nbreaker-failures = \"x\"\n", "agent.toml")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("agent.toml:2:20: "), "{error}");
    }

    #[test]
    fn the_notify_table_turns_notifications_off_and_survives_a_rewrite() {
        assert!(
            AgentConfig::parse(HEAD, "agent.toml")
                .unwrap()
                .notify
                .enabled
        );
        let off = AgentConfig::parse(&format!("{HEAD}[notify]\nenabled = false\n"), "x").unwrap();
        assert!(!off.notify.enabled);
        let written = off.to_toml();
        assert!(written.contains("[notify]\nenabled = false"), "{written}");
        assert_eq!(AgentConfig::parse(&written, "x").unwrap(), off);
        assert!(
            !sample().to_toml().contains("[notify]"),
            "defaults are not written"
        );
        let empty = AgentConfig::parse(&format!("{HEAD}[notify]\n"), "x").unwrap();
        assert!(empty.notify.enabled);
    }

    #[test]
    fn the_notify_table_of_a_file_that_holds_nothing_else_is_found() {
        let only = Notify::of_text("[notify]\nenabled = false\n", "agent.toml").unwrap();
        assert_eq!(only, Some(Notify { enabled: false }));
        let enrolled = format!("{HEAD}[notify]\nenabled = true\n");
        assert_eq!(
            Notify::of_text(&enrolled, "agent.toml").unwrap(),
            Some(Notify { enabled: true })
        );
        assert_eq!(Notify::of_text(HEAD, "agent.toml").unwrap(), None);
        assert_eq!(
            Notify::of_text("server = \"x\n", "agent.toml").unwrap(),
            None
        );
        for (text, expected) in [
            (
                "[notify]\nenabled = \"no\"\n",
                "agent.toml:2:11: invalid type: string \"no\", expected a boolean",
            ),
            (
                "[notify]\nenable = false\n",
                "agent.toml:2:1: unknown field `enable`",
            ),
        ] {
            let error = Notify::of_text(text, "agent.toml").unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}\n{error}");
            let error = AgentConfig::parse(&format!("{HEAD}{text}"), "agent.toml")
                .unwrap_err()
                .to_string();
            assert!(error.contains("agent.toml:5:"), "{text:?}\n{error}");
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("agent.toml");
        assert_eq!(AgentConfig::load(&path).unwrap(), None);
        let config = sample();
        config.save(&path).unwrap();
        assert_eq!(AgentConfig::load(&path).unwrap(), Some(config.clone()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("key-store = \"file\""), "{text}");
        let without_ca = AgentConfig {
            ca_file: None,
            key_store: KeyStoreKind::Keyring,
            ..config
        };
        without_ca.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("ca-file"), "{text}");
        assert_eq!(AgentConfig::load(&path).unwrap(), Some(without_ca));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let cases = [
            (
                "server = \"https://a.example\"\ndevice-id = \"d1\"\nkey-store = \"file\"\nserver-url = \"x\"\n",
                "agent.toml:4:1: unknown field `server-url`",
            ),
            (
                "server = \"https://a.example\"\ndevice-id = \"d1\"\nkey-store = \"vault\"\n",
                "agent.toml:3:13: unknown variant `vault`",
            ),
            (
                "device-id = \"d1\"\nkey-store = \"file\"\nserver = \"http://10.1.2.3:8080\"\n",
                "agent.toml:3:10: server: `http://10.1.2.3:8080` uses plain http://",
            ),
            (
                "server = \"https://a.example\"\nkey-store = \"file\"\n",
                "agent.toml:1:1: missing field `device-id`",
            ),
            (
                "server = \"https://a.example\"\ndevice-id = \"has space\"\nkey-store = \"file\"\n",
                "agent.toml:2:13: device-id `has space` contains ' '",
            ),
            (
                "server = \"https://a.example\"\ndevice-id = \"d1\"\nkey-store = \"file\"\nca-file = \"ca.pem\"\n",
                "agent.toml:4:11: ca-file `ca.pem` must be an absolute path",
            ),
            ("server = \"https://a.example\n", "agent.toml:1:"),
        ];
        for (text, expected) in cases {
            let error = AgentConfig::parse(text, "agent.toml")
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(expected), "{text:?}\n{error}");
        }
    }

    #[test]
    fn a_config_that_does_not_parse_is_an_error_not_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "server = 1\n").unwrap();
        let error = AgentConfig::load(&path).unwrap_err();
        assert!(
            format!("{error:#}").contains("agent.toml:1:10"),
            "{error:#}"
        );
    }
}
