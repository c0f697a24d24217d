//! The `postgres://` URL the server is given: checked when it is read, shown
//! with its password hidden.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

use super::error::describe;

/// How long opening a connection may take unless the URL says
/// (`connect_timeout=SECONDS`): an unreachable host fails instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL connection URL, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]`
/// (or `postgresql://`), with the parameters libpq's URLs take that
/// tokio-postgres knows: `options=-csearch_path%3DSCHEMA` puts the tables
/// in a schema of their own, `connect_timeout`, `application_name`, ….
/// TLS is not spoken to PostgreSQL: `sslmode=require`, `verify-ca` and
/// `verify-full` are refused rather than quietly ignored.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    text: String,
}

impl FromStr for PostgresUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(format!(
                "`{}` is not a PostgreSQL URL: write postgres://USER@HOST:PORT/DATABASE",
                redacted(text)
            ));
        }
        if let Some(mode) = parameter(text, "sslmode")
            && matches!(mode, "require" | "verify-ca" | "verify-full")
        {
            return Err(format!(
                "sslmode={mode}: shipshape-server does not speak TLS to PostgreSQL yet; connect \
                 over a trusted network or a Unix socket with sslmode=disable, or through a TLS \
                 tunnel (stunnel, ssh -L)"
            ));
        }
        let config = tokio_postgres::Config::from_str(text).map_err(|error| {
            format!(
                "`{}` is not a valid PostgreSQL URL: {}",
                redacted(text),
                describe(&error)
            )
        })?;
        if config.get_hosts().is_empty() {
            return Err(format!(
                "`{}` names no host: write postgres://USER@HOST:PORT/DATABASE",
                redacted(text)
            ));
        }
        Ok(PostgresUrl {
            text: text.to_owned(),
        })
    }
}

impl PostgresUrl {
    /// The connection settings, with the server's defaults for what the URL
    /// leaves out: an application name and a connect timeout.
    pub(in crate::store) fn config(&self) -> tokio_postgres::Config {
        let mut config =
            tokio_postgres::Config::from_str(&self.text).expect("checked when the URL was parsed");
        if config.get_application_name().is_none() {
            config.application_name("shipshape-server");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config
    }

    /// Where the database is, for messages: `host:port/database`.
    pub(in crate::store) fn target(&self) -> String {
        let config = self.config();
        let ports = config.get_ports();
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(n, host)| {
                let port = ports.get(n).or(ports.first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    #[cfg(unix)]
                    Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
                }
            })
            .collect();
        let database = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or_default();
        format!("{}/{database}", hosts.join(","))
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redacted(&self.text))
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// The value of the query parameter `key`, as written.
fn parameter<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = text.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == key)
        .map(|(_, value)| value)
}

/// `text` with any password in it (`user:PASSWORD@`, `password=…`) hidden,
/// so the URL can be logged and shown in errors.
fn redacted(text: &str) -> String {
    let (base, query) = match text.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (text, None),
    };
    let mut shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let authority = match authority.rsplit_once('@') {
                Some((credentials, hosts)) => match credentials.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{hosts}"),
                    None => authority.to_owned(),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_owned(),
                _ => pair.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&pairs.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        let url: PostgresUrl =
            "postgres://ship:s3cret@db.example.com:6432/fleet?options=-csearch_path%3Dship"
                .parse()
                .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://ship:***@db.example.com:6432/fleet?options=-csearch_path%3Dship"
        );
        assert_eq!(url.target(), "db.example.com:6432/fleet");
        let config = url.config();
        assert_eq!(config.get_options(), Some("-csearch_path=ship"));
        assert_eq!(config.get_application_name(), Some("shipshape-server"));
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert!(!format!("{url:?}").contains("s3cret"));

        let url: PostgresUrl =
            "postgresql://ship@localhost/fleet?password=s3cret&connect_timeout=3"
                .parse()
                .unwrap();
        assert_eq!(
            url.to_string(),
            "postgresql://ship@localhost/fleet?password=***&connect_timeout=3"
        );
        assert_eq!(url.target(), "localhost:5432/fleet");
        assert_eq!(
            url.config().get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
    }

    #[test]
    fn tls_and_malformed_urls_are_refused_with_the_reason() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let error = format!("postgres://ship@db/fleet?sslmode={mode}")
                .parse::<PostgresUrl>()
                .unwrap_err();
            assert!(error.contains(&format!("sslmode={mode}")), "{error}");
            assert!(error.contains("does not speak TLS"), "{error}");
        }
        "postgres://ship@db/fleet?sslmode=disable"
            .parse::<PostgresUrl>()
            .unwrap();

        let error = "postgres://ship:s3cret@db:port/fleet"
            .parse::<PostgresUrl>()
            .unwrap_err();
        assert!(error.contains("not a valid PostgreSQL URL"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        let error = "postgres://ship@db/fleet?colour=blue"
            .parse::<PostgresUrl>()
            .unwrap_err();
        assert!(error.contains("colour"), "{error}");
        let error = "postgres:///fleet".parse::<PostgresUrl>().unwrap_err();
        assert!(error.contains("names no host"), "{error}");
        let error = "mysql://db/fleet".parse::<PostgresUrl>().unwrap_err();
        assert!(error.contains("not a PostgreSQL URL"), "{error}");
    }
}
