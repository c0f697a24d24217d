//! `shipshape status`: is this machine enrolled, can it sign, how did the
//! last report go, and does the server answer. A diagnosis, so it always
//! exits 0 and reports problems as lines, not as errors.

use std::io::Write;
use std::path::PathBuf;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::cli::Format;
use crate::config::AgentConfig;
use crate::exit;
use crate::keystore::{KeyStore, KeyStoreKind, Keyring};
use crate::paths::Paths;
use crate::report::LastReport;
use crate::transport::Transport;

/// Everything `status` found, as `--format json` prints it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub config_file: PathBuf,
    pub enrolled: bool,
    /// Why the config file cannot be used, when it exists but does not parse.
    pub config_error: Option<String>,
    pub server: Option<String>,
    pub device_id: Option<String>,
    pub key: Option<KeyStatus>,
    pub last_report: Option<LastReport>,
    pub server_health: Option<Health>,
}

/// Where the device key is, and whether it can be read.
#[derive(Debug, Serialize)]
pub struct KeyStatus {
    pub store: KeyStoreKind,
    /// The keyring's name or the file's path.
    pub location: String,
    /// Why the key cannot be used; `None` when it loads.
    pub problem: Option<String>,
}

/// The answer to `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub reachable: bool,
    pub elapsed_ms: Option<u64>,
    pub error: Option<String>,
}

/// Gathers the status: reads the config, loads the key, asks the server.
pub fn gather(paths: &Paths, keyring: &dyn Keyring) -> Status {
    let config_file = paths.agent_config();
    let last_report = LastReport::load(&paths.last_report());
    let (config, config_error) = match AgentConfig::load(&config_file) {
        Ok(config) => (config, None),
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    let Some(config) = config else {
        return Status {
            config_file,
            enrolled: false,
            config_error,
            server: None,
            device_id: None,
            key: None,
            last_report,
            server_health: None,
        };
    };
    let key_file = paths.device_key_file();
    let store = KeyStore::of(config.key_store, keyring, &key_file);
    let key = KeyStatus {
        store: store.kind(),
        location: store.describe(),
        problem: store.load().err().map(|error| error.to_string()),
    };
    let server_health = Some(
        match Transport::new(&config.server, config.ca_file.as_deref())
            .map_err(|error| error.to_string())
            .and_then(|transport| transport.health().map_err(|error| error.to_string()))
        {
            Ok(elapsed) => Health {
                reachable: true,
                elapsed_ms: Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)),
                error: None,
            },
            Err(error) => Health {
                reachable: false,
                elapsed_ms: None,
                error: Some(error),
            },
        },
    );
    Status {
        config_file,
        enrolled: true,
        config_error: None,
        server: Some(config.server.to_string()),
        device_id: Some(config.device_id),
        key: Some(key),
        last_report,
        server_health,
    }
}

/// Runs `shipshape status`.
pub fn run(paths: &Paths, keyring: &dyn Keyring, format: Format) -> anyhow::Result<u8> {
    let status = gather(paths, keyring);
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &status)?;
            writeln!(stdout)?;
        }
        Format::Human => human(&mut stdout, &status)?,
    }
    Ok(exit::SHIPSHAPE)
}

/// The status for a person, one aligned line per subject.
pub fn human(out: &mut impl Write, status: &Status) -> std::io::Result<()> {
    let line = |out: &mut dyn Write, label: &str, text: &str| writeln!(out, "{label:<12} {text}");
    let enrolled = match (&status.server, &status.device_id, &status.config_error) {
        (Some(server), Some(device), _) => format!("yes, with {server} as device {device}"),
        (_, _, Some(error)) => format!("unknown: the config does not parse: {error}"),
        _ => "no: run `shipshape enroll --server URL --token TOKEN`".to_owned(),
    };
    line(out, "enrolled", &enrolled)?;
    line(out, "config", &status.config_file.display().to_string())?;
    if let Some(key) = &status.key {
        let state = match &key.problem {
            None => "readable".to_owned(),
            Some(problem) => format!("NOT USABLE: {problem}"),
        };
        line(out, "device key", &format!("{} ({state})", key.location))?;
    }
    let last = match &status.last_report {
        None => "none yet".to_owned(),
        Some(last) => {
            let when = last
                .checked_at
                .to_zoned(TimeZone::UTC)
                .strftime("%Y-%m-%d %H:%M UTC");
            match (&last.status, &last.error) {
                (Some(grade), _) => format!(
                    "{} at {when}: delivered to {}, graded {grade}",
                    last.id, last.server
                ),
                (None, Some(error)) => format!("{} at {when}: NOT delivered: {error}", last.id),
                (None, None) => format!("{} at {when}: outcome unknown", last.id),
            }
        }
    };
    line(out, "last report", &last)?;
    if let Some(health) = &status.server_health {
        let text = match &health.error {
            Some(error) => format!("unreachable: {error}"),
            None => format!(
                "reachable (GET /healthz answered in {} ms)",
                health.elapsed_ms.unwrap_or_default()
            ),
        };
        line(out, "server", &text)?;
    }
    Ok(())
}
