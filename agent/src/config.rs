//! `agent.toml`: which server this machine reports to, as which device, and
//! where its key is. `shipshape enroll` writes it; an administrator may read
//! or edit it, so it is strict TOML whose errors name the line and column.
//!
//! ```toml
//! server = "https://shipshape.example.com"
//! device-id = "0198c6a2-…"
//! key-store = "keyring"            # or "file"
//! ca-file = "/etc/shipshape/ca.pem" # optional: trust only this CA
//! ```
//!
//! It holds no secret; it is still written 0600, since nobody else needs it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context;
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
}

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
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ConfigOut<'a> {
    server: &'a str,
    device_id: &'a str,
    key_store: KeyStoreKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<&'a Path>,
}

impl AgentConfig {
    /// Parses and checks a config; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<AgentConfig, ConfigError> {
        let locate = |span: Option<Range<usize>>, message: String| {
            let (line, column) = span.map_or((1, 1), |span| line_column(text, span.start));
            ConfigError {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        };
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
        Ok(AgentConfig {
            server,
            device_id: file.device_id.into_inner(),
            key_store: file.key_store,
            ca_file,
        })
    }

    /// The file's text, with a header saying where it came from.
    pub fn to_toml(&self) -> String {
        let out = ConfigOut {
            server: self.server.as_str(),
            device_id: &self.device_id,
            key_store: self.key_store,
            ca_file: self.ca_file.as_deref(),
        };
        // Strings, a path and an enum: TOML can always represent them.
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
