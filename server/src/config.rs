//! The server's settings: command-line flags over the config file over
//! defaults. The config file is strict TOML (`deny_unknown_fields`), and
//! every error in it names the file, line and column.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::SignedDuration;
use serde::Deserialize;
use shipshape_core::policy::Grace;

use crate::store::PostgresUrl;

/// Where the server listens unless told otherwise: loopback only, so a
/// fresh install is not reachable from the network by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// How long a device may stay quiet before it counts as silent.
pub const DEFAULT_STALE_AFTER: SignedDuration = SignedDuration::from_hours(48);

/// Signed requests a device may make per minute, sustained: an agent makes
/// two per run (policy, report), so this only bites a runaway or a replay.
pub const DEFAULT_RATE_LIMIT: u32 = 60;

/// Signed requests a device may make at once before the per-minute rate
/// applies: room for an agent flushing a small backlog.
pub const DEFAULT_RATE_LIMIT_BURST: u32 = 10;

/// Requests handled at once; more are refused with 503 instead of queueing.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// How long a request may take, from its headers to the answer, before it
/// is answered with 408; also how long a client may take to send headers.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid config, at this place.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A setting given on the command line or in the config file that is not valid.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("`{0}` is not a database: write sqlite:PATH or postgres://USER@HOST:PORT/DATABASE")]
    Database(String),
    #[error("{0}")]
    Postgres(String),
    #[error("`{0}` is not a listen address: write IP:PORT, e.g. 127.0.0.1:8443 or 0.0.0.0:8443")]
    Listen(String),
    #[error("stale-after: {0}")]
    StaleAfter(String),
    #[error(
        "`{0}` is not a public URL: write the scheme, host and optional path prefix the agents use, e.g. https://shipshape.example.com"
    )]
    PublicUrl(String),
    #[error("--tls-cert and --tls-key go together: give both, or neither for plain HTTP")]
    TlsPair,
    #[error(
        "rate-limit-burst = 0 would refuse every signed request: give at least 1, or rate-limit = 0 to turn the rate limit off"
    )]
    RateLimitBurst,
    #[error(
        "max-concurrent-requests = 0 would refuse every request: give at least 1 (default {DEFAULT_MAX_CONCURRENT_REQUESTS})"
    )]
    MaxConcurrentRequests,
    #[error("request-timeout: {0}")]
    RequestTimeout(String),
}

/// The config file (`--config FILE`): the same settings as the flags.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// `IP:PORT` to listen on.
    pub listen: Option<String>,
    /// `sqlite:PATH` or `postgres://USER@HOST:PORT/DATABASE`.
    pub db: Option<String>,
    /// PEM certificate chain; relative to the config file.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key; relative to the config file.
    pub tls_key: Option<PathBuf>,
    /// "48h", "7d", …
    pub stale_after: Option<String>,
    /// The URL agents reach the server at, when a proxy sits in between.
    pub public_url: Option<String>,
    /// The policy to grade with; relative to the config file.
    pub policy: Option<PathBuf>,
    /// Signed requests per device per minute; 0 turns the limit off.
    pub rate_limit: Option<u32>,
    /// Signed requests a device may make at once before the rate applies.
    pub rate_limit_burst: Option<u32>,
    /// Requests handled at once; more are answered 503 at once.
    pub max_concurrent_requests: Option<usize>,
    /// "30s", "1m", …: the longest a request may take.
    pub request_timeout: Option<String>,
}

impl FileConfig {
    /// Reads and parses `path`; relative paths in it are taken relative to
    /// the file's directory, so the config means the same from anywhere.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = FileConfig::parse(&text).map_err(|(span, message)| {
            let (line, column) = span.map_or((1, 1), |span| line_column(&text, span.start));
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let resolve = |file: Option<PathBuf>| file.map(|file| base.join(file));
        Ok(FileConfig {
            tls_cert: resolve(config.tls_cert),
            tls_key: resolve(config.tls_key),
            policy: resolve(config.policy),
            ..config
        })
    }

    fn parse(text: &str) -> Result<FileConfig, (Option<Range<usize>>, String)> {
        toml::from_str(text).map_err(|error| (error.span(), error.message().to_owned()))
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |last| last.chars().count())
        + 1;
    (line, column)
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// Shared by several server replicas.
    Postgres(PostgresUrl),
}

impl std::str::FromStr for Database {
    type Err = SettingError;

    /// `sqlite:PATH` or `sqlite://PATH` (so `sqlite:///var/lib/x.db` is
    /// absolute), or a `postgres://` (`postgresql://`) URL.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return text
                .parse()
                .map(Database::Postgres)
                .map_err(SettingError::Postgres);
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .filter(|path| !path.is_empty())
            .ok_or_else(|| SettingError::Database(text.to_owned()))?;
        Ok(Database::Sqlite(PathBuf::from(path)))
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Database::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl Database {
    /// The embedded database in the system data directory when running as
    /// root (a service), else in the user's data directory.
    pub fn default_location() -> Database {
        let system = || PathBuf::from("/var/lib/shipshape-server");
        let dir = if running_as_root() {
            system()
        } else {
            directories::ProjectDirs::from("", "", "shipshape-server")
                .map_or_else(system, |dirs| dirs.data_dir().to_owned())
        };
        Database::Sqlite(dir.join("shipshape.db"))
    }
}

#[cfg(unix)]
fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(unix))]
fn running_as_root() -> bool {
    false
}

/// The URL agents use to reach the server, without a trailing slash: the
/// signed `@target-uri` is this plus the request's path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// The base, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for PublicUrl {
    type Err = SettingError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || SettingError::PublicUrl(text.to_owned());
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(invalid)?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty()
            || text.contains(['?', '#'])
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        Ok(PublicUrl(text.trim_end_matches('/').to_owned()))
    }
}

/// The certificate and key to serve HTTPS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A per-device limit on signed requests: a token bucket that holds
/// `burst` requests and refills at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per minute; at least 1.
    pub per_minute: u32,
    /// Requests allowed at once; at least 1.
    pub burst: u32,
}

/// What keeps one client, or too many, from wearing the server down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per device, on signed requests; `None` is unlimited.
    pub rate: Option<RateLimit>,
    /// Requests handled at once (more get 503); `None` is unlimited.
    pub max_concurrent_requests: Option<usize>,
    /// The longest a request may take (then 408); `None` is no limit.
    pub request_timeout: Option<Duration>,
}

impl Limits {
    /// No limits at all: for tests and benchmarks that drive the API hard
    /// on purpose. `serve` always runs with limits.
    pub const NONE: Limits = Limits {
        rate: None,
        max_concurrent_requests: None,
        request_timeout: None,
    };
}

impl Default for Limits {
    /// What `serve` uses unless the config file says otherwise.
    fn default() -> Self {
        Limits {
            rate: Some(RateLimit {
                per_minute: DEFAULT_RATE_LIMIT,
                burst: DEFAULT_RATE_LIMIT_BURST,
            }),
            max_concurrent_requests: Some(DEFAULT_MAX_CONCURRENT_REQUESTS),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
        }
    }
}

/// Everything `serve` runs with, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub db: Database,
    pub tls: Option<TlsFiles>,
    pub stale_after: SignedDuration,
    pub public_url: Option<PublicUrl>,
    pub policy: Option<PathBuf>,
    pub limits: Limits,
}

/// What the command line says; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub listen: Option<String>,
    pub db: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub stale_after: Option<String>,
    pub public_url: Option<String>,
    pub policy: Option<PathBuf>,
}

impl ServeSettings {
    /// Flags win over the file, the file over the defaults.
    pub fn resolve(flags: Overrides, file: FileConfig) -> Result<ServeSettings, SettingError> {
        let limits = resolve_limits(&file)?;
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen
            .parse()
            .map_err(|_| SettingError::Listen(listen.clone()))?;
        let db = resolve_database(flags.db, file.db)?;
        let tls = match (
            flags.tls_cert.or(file.tls_cert),
            flags.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(SettingError::TlsPair),
        };
        let stale_after = resolve_stale_after(flags.stale_after, file.stale_after)?;
        let public_url = flags
            .public_url
            .or(file.public_url)
            .map(|url| url.parse())
            .transpose()?;
        Ok(ServeSettings {
            listen,
            db,
            tls,
            stale_after,
            public_url,
            policy: flags.policy.or(file.policy),
            limits,
        })
    }
}

/// The limits from the config file, else the defaults.
fn resolve_limits(file: &FileConfig) -> Result<Limits, SettingError> {
    let per_minute = file.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT);
    let burst = file.rate_limit_burst.unwrap_or(DEFAULT_RATE_LIMIT_BURST);
    let rate = match (per_minute, burst) {
        (0, _) => None,
        (_, 0) => return Err(SettingError::RateLimitBurst),
        (per_minute, burst) => Some(RateLimit { per_minute, burst }),
    };
    let max_concurrent_requests = match file.max_concurrent_requests {
        Some(0) => return Err(SettingError::MaxConcurrentRequests),
        Some(count) => count,
        None => DEFAULT_MAX_CONCURRENT_REQUESTS,
    };
    let request_timeout = match &file.request_timeout {
        None => DEFAULT_REQUEST_TIMEOUT,
        Some(text) => {
            let Grace(duration) = text.parse().map_err(SettingError::RequestTimeout)?;
            Duration::try_from(duration)
                .ok()
                .filter(|timeout| !timeout.is_zero())
                .ok_or_else(|| {
                    SettingError::RequestTimeout(format!(
                        "`{text}` would time out every request: give a positive duration such as \"30s\""
                    ))
                })?
        }
    };
    Ok(Limits {
        rate,
        max_concurrent_requests: Some(max_concurrent_requests),
        request_timeout: Some(request_timeout),
    })
}

/// The database from the flag, else the file, else the default location.
pub fn resolve_database(
    flag: Option<String>,
    file: Option<String>,
) -> Result<Database, SettingError> {
    flag.or(file)
        .map_or_else(|| Ok(Database::default_location()), |db| db.parse())
}

/// `stale-after` from the flag, else the file, else 48 hours.
pub fn resolve_stale_after(
    flag: Option<String>,
    file: Option<String>,
) -> Result<SignedDuration, SettingError> {
    match flag.or(file) {
        None => Ok(DEFAULT_STALE_AFTER),
        Some(text) => {
            let Grace(duration) = text.parse().map_err(SettingError::StaleAfter)?;
            if duration.is_zero() {
                return Err(SettingError::StaleAfter(format!(
                    "`{text}` would make every device silent: give a positive duration such as \"48h\""
                )));
            }
            Ok(duration)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            "sqlite:data/x.db".parse::<Database>().unwrap(),
            Database::Sqlite("data/x.db".into())
        );
        assert_eq!(
            "sqlite:///var/lib/x.db".parse::<Database>().unwrap(),
            Database::Sqlite("/var/lib/x.db".into())
        );
        for bad in ["x.db", "sqlite:", "mysql://db/shipshape"] {
            assert!(
                matches!(bad.parse::<Database>(), Err(SettingError::Database(_))),
                "{bad}"
            );
        }
        for url in [
            "postgres://ship@db.example.com:5432/fleet",
            "postgresql://ship@db.example.com/fleet?options=-csearch_path%3Dship",
        ] {
            let db: Database = url.parse().unwrap();
            assert!(matches!(db, Database::Postgres(_)), "{url}");
            assert_eq!(db.to_string(), url, "shown as given");
        }
        let db: Database = "postgres://ship:s3cret@db/fleet".parse().unwrap();
        assert_eq!(db.to_string(), "postgres://ship:***@db/fleet");
        for bad in [
            "postgres://ship@db/fleet?sslmode=verify-full",
            "postgres://ship@db:x/fleet",
        ] {
            assert!(
                matches!(bad.parse::<Database>(), Err(SettingError::Postgres(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Database::default_location(),
            Database::Sqlite(path) if path.ends_with("shipshape.db")
        ));
    }

    #[test]
    fn public_urls() {
        let url: PublicUrl = "https://fleet.example.com/shipshape/".parse().unwrap();
        assert_eq!(url.as_str(), "https://fleet.example.com/shipshape");
        for bad in [
            "fleet.example.com",
            "https://",
            "https://x/?a=1",
            "ftp://x",
            "https://a b",
        ] {
            assert!(bad.parse::<PublicUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = FileConfig {
            listen: Some("0.0.0.0:9000".into()),
            db: Some("sqlite:/srv/file.db".into()),
            stale_after: Some("7d".into()),
            ..FileConfig::default()
        };
        let flags = Overrides {
            db: Some("sqlite:/srv/flag.db".into()),
            ..Overrides::default()
        };
        let settings = ServeSettings::resolve(flags, file).unwrap();
        assert_eq!(settings.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(settings.db, Database::Sqlite("/srv/flag.db".into()));
        assert_eq!(settings.stale_after, SignedDuration::from_hours(7 * 24));
        assert_eq!(settings.tls, None);

        let defaults = ServeSettings::resolve(Overrides::default(), FileConfig::default()).unwrap();
        assert_eq!(defaults.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(defaults.stale_after, DEFAULT_STALE_AFTER);
    }

    #[test]
    fn bad_settings_are_refused() {
        let with = |flags: Overrides| ServeSettings::resolve(flags, FileConfig::default());
        assert!(matches!(
            with(Overrides {
                listen: Some("localhost".into()),
                ..Overrides::default()
            }),
            Err(SettingError::Listen(_))
        ));
        assert!(matches!(
            with(Overrides {
                tls_cert: Some("cert.pem".into()),
                ..Overrides::default()
            }),
            Err(SettingError::TlsPair)
        ));
        for stale in ["soon", "0s", "-1h"] {
            assert!(
                matches!(
                    with(Overrides {
                        stale_after: Some(stale.into()),
                        ..Overrides::default()
                    }),
                    Err(SettingError::StaleAfter(_))
                ),
                "{stale}"
            );
        }
    }

    #[test]
    fn limits_come_from_the_file_or_the_defaults() {
        let resolve = |file: FileConfig| ServeSettings::resolve(Overrides::default(), file);
        let defaults = resolve(FileConfig::default()).unwrap().limits;
        assert_eq!(defaults, Limits::default());
        assert_eq!(
            defaults.rate,
            Some(RateLimit {
                per_minute: DEFAULT_RATE_LIMIT,
                burst: DEFAULT_RATE_LIMIT_BURST
            })
        );

        let file: FileConfig = toml::from_str(
            "rate-limit = 120\nrate-limit-burst = 5\nmax-concurrent-requests = 8\nrequest-timeout = \"5s\"\n",
        )
        .unwrap();
        let limits = resolve(file).unwrap().limits;
        assert_eq!(
            limits,
            Limits {
                rate: Some(RateLimit {
                    per_minute: 120,
                    burst: 5
                }),
                max_concurrent_requests: Some(8),
                request_timeout: Some(Duration::from_secs(5)),
            }
        );

        let off = resolve(FileConfig {
            rate_limit: Some(0),
            rate_limit_burst: Some(0),
            ..FileConfig::default()
        })
        .unwrap();
        assert_eq!(off.limits.rate, None, "rate-limit = 0 turns it off");
    }

    #[test]
    fn limits_that_would_refuse_everything_are_refused() {
        let resolve = |file: FileConfig| ServeSettings::resolve(Overrides::default(), file);
        assert!(matches!(
            resolve(FileConfig {
                rate_limit_burst: Some(0),
                ..FileConfig::default()
            }),
            Err(SettingError::RateLimitBurst)
        ));
        assert!(matches!(
            resolve(FileConfig {
                max_concurrent_requests: Some(0),
                ..FileConfig::default()
            }),
            Err(SettingError::MaxConcurrentRequests)
        ));
        for timeout in ["0s", "soon", "-5s"] {
            let error = resolve(FileConfig {
                request_timeout: Some(timeout.into()),
                ..FileConfig::default()
            })
            .unwrap_err();
            assert!(
                matches!(&error, SettingError::RequestTimeout(message) if message.contains(timeout)),
                "{timeout}: {error}"
            );
        }
    }

    #[test]
    fn config_file_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\n\nstale-afte = \"48h\"\n").unwrap();
        let error = FileConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "{}:3:1: unknown field `stale-afte`",
                path.display()
            )),
            "{error}"
        );

        std::fs::write(&path, "listen = 8443\n").unwrap();
        let error = FileConfig::load(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}:1:10: invalid type", path.display())),
            "{error}"
        );
    }

    #[test]
    fn config_file_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            "tls-cert = \"tls/cert.pem\"\ntls-key = \"/etc/key.pem\"\npolicy = \"policy.toml\"\npublic-url = \"https://x.example\"\n",
        )
        .unwrap();
        let config = FileConfig::load(&path).unwrap();
        assert_eq!(config.tls_cert, Some(dir.path().join("tls/cert.pem")));
        assert_eq!(config.tls_key, Some(PathBuf::from("/etc/key.pem")));
        assert_eq!(config.policy, Some(dir.path().join("policy.toml")));
        assert_eq!(config.public_url.as_deref(), Some("https://x.example"));
    }
}
