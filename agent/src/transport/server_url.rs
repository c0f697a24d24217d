//! The server's address, checked once: HTTPS, or plain HTTP to this machine only.

use std::net::IpAddr;

use reqwest::Url;

/// A server base URL the agent may talk to: `https://…`, or `http://` to a
/// loopback address (tests, a local reverse proxy). Kept normalized, without
/// a trailing slash, so endpoint URLs are built and signed exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    base: String,
    loopback: bool,
}

impl ServerUrl {
    /// Checks and normalizes `text`. The error reads well after "the server URL …".
    pub fn parse(text: &str) -> Result<ServerUrl, String> {
        let url =
            Url::parse(text.trim()).map_err(|error| format!("`{text}` is not a URL: {error}"))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(format!(
                    "`{text}` uses plain http://, which would send reports unencrypted: use https://, \
                     or http:// only to this machine (127.0.0.1, ::1, localhost)"
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` uses the scheme `{other}:`, expected https://"
                ));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "`{text}` carries credentials: the agent authenticates with its device key, remove `user@`"
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{text}` has a query or fragment: give the server's base URL only"
            ));
        }
        Ok(ServerUrl {
            base: url.as_str().trim_end_matches('/').to_owned(),
            loopback: is_loopback(&url),
        })
    }

    /// The URL of an API path such as `/v1/reports`, exactly as it is sent
    /// (and so as it is signed as `@target-uri`).
    pub fn endpoint(&self, path: &str) -> Url {
        let joined = format!("{}{path}", self.base);
        // The base parsed as a URL and API paths are plain ASCII segments.
        Url::parse(&joined).unwrap_or_else(|error| panic!("endpoint `{joined}`: {error}"))
    }

    /// Whether the server is this machine: a proxy must not carry such requests.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    pub fn as_str(&self) -> &str {
        &self.base
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_to_loopback() {
        for ok in [
            "https://shipshape.example.com",
            "https://shipshape.example.com:8443/",
            "http://127.0.0.1:3000",
            "http://127.8.9.10",
            "http://[::1]:80",
            "http://localhost:3000/",
        ] {
            assert!(ServerUrl::parse(ok).is_ok(), "{ok}");
        }
        for (bad, expected) in [
            ("http://shipshape.example.com", "plain http://"),
            ("http://10.0.0.1:3000", "plain http://"),
            ("http://localhost.example.com", "plain http://"),
            ("ftp://example.com", "scheme `ftp:`"),
            ("shipshape.example.com", "not a URL"),
            ("https://user:pw@example.com", "credentials"),
            ("https://example.com/?x=1", "query"),
        ] {
            let error = ServerUrl::parse(bad).unwrap_err();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn endpoints_are_normalized_as_sent() {
        let server = ServerUrl::parse("HTTPS://Shipshape.Example.com:443/").unwrap();
        assert_eq!(server.as_str(), "https://shipshape.example.com");
        assert_eq!(
            server.endpoint("/v1/reports").as_str(),
            "https://shipshape.example.com/v1/reports"
        );
        let prefixed = ServerUrl::parse("https://example.com/shipshape/").unwrap();
        assert_eq!(
            prefixed.endpoint("/v1/policy").as_str(),
            "https://example.com/shipshape/v1/policy"
        );
        assert!(!server.is_loopback());
        let local = ServerUrl::parse("http://127.0.0.1:41234").unwrap();
        assert!(local.is_loopback());
        assert_eq!(
            local.endpoint("/v1/reports").as_str(),
            "http://127.0.0.1:41234/v1/reports"
        );
    }
}
