//! A tiny HTTP/1.1 (or HTTPS) server on 127.0.0.1 for the agent's side of the protocol:
//! it records every request and answers from a closure. One request per
//! connection (`Connection: close`), which is all the agent needs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ed25519_dalek::VerifyingKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use shipshape_core::signing::{ReceivedHeaders, Verified, VerifyError, verify_request};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Verifies the request's signature as the server would, for `base` (`http://127.0.0.1:PORT`).
    pub fn verify(&self, base: &str, key: VerifyingKey) -> Result<Verified, VerifyError> {
        let headers = ReceivedHeaders {
            content_digest: self.header("content-digest"),
            signature_input: self.header("signature-input"),
            signature: self.header("signature"),
        };
        verify_request(
            &self.method,
            &format!("{base}{}", self.path),
            &self.body,
            headers,
            |_| Some(key),
            jiff::Timestamp::now().as_second(),
            300,
        )
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap(),
        }
    }

    pub fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: text.as_bytes().to_vec(),
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Captured) -> Reply + Send + Sync;

/// A running fake server; its thread lives as long as the test process.
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    requests: Arc<Mutex<Vec<Captured>>>,
    handler: Arc<Mutex<Arc<Handler>>>,
}

impl FakeServer {
    /// Plain HTTP on `http://127.0.0.1:PORT`.
    pub fn start(handler: impl Fn(&Captured) -> Reply + Send + Sync + 'static) -> FakeServer {
        FakeServer::listen(None, handler)
    }

    /// HTTPS on `https://127.0.0.1:PORT` with the certificate in `fixtures/tls/server.pem`,
    /// signed by `fixtures/tls/ca.pem`.
    pub fn start_tls(handler: impl Fn(&Captured) -> Reply + Send + Sync + 'static) -> FakeServer {
        let dir = tls_fixtures();
        let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        FakeServer::listen(Some(Arc::new(config)), handler)
    }

    fn listen(
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: impl Fn(&Captured) -> Reply + Send + Sync + 'static,
    ) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Arc<Handler>>> = Arc::new(Mutex::new(Arc::new(handler)));
        let (seen, answer) = (requests.clone(), handler.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = answer.lock().unwrap().clone();
                match &tls {
                    None => serve(stream, &seen, handler.as_ref()),
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                            continue;
                        };
                        let mut tls_stream = rustls::StreamOwned::new(connection, stream);
                        serve(&mut tls_stream, &seen, handler.as_ref());
                        tls_stream.conn.send_close_notify();
                        let _ = tls_stream.flush();
                    }
                }
            }
        });
        FakeServer {
            url,
            requests,
            handler,
        }
    }

    /// Answers from now on with `handler`.
    pub fn answer(&self, handler: impl Fn(&Captured) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    /// Every request so far, oldest first, and forgets them.
    pub fn take_requests(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

/// `agent/tests/fixtures/tls`.
pub fn tls_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

fn serve(stream: impl Read + Write, seen: &Mutex<Vec<Captured>>, handler: &Handler) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let captured = Captured {
        method,
        path,
        headers,
        body,
    };
    let reply = handler(&captured);
    seen.lock().unwrap().push(captured);
    let mut stream = reader.into_inner();
    let mut head = format!(
        "HTTP/1.1 {} Fake\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
}

/// A loopback URL where nothing listens.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// The token tests enroll with; it must never show up in any output.
pub const TOKEN: &str = "enroll-secret-7f3a9c";
/// The device id the fake server hands out.
pub const DEVICE_ID: &str = "0198c6a2-7f3e-7cc0-9b1e-2d3c4b5a6978";
/// The fake server's policy: one cheap check, so reports run fast anywhere.
pub const POLICY: &str = "name = \"fleet\"\n\n[checks.ssh-server]\nseverity = \"high\"\n";
pub const POLICY_ETAG: &str = "\"fleet-v1\"";

/// `shipshape` with its own config and state directories under `dir`, and
/// a D-Bus session address that leads nowhere, so no test ever touches the
/// keyring of the person running it.
pub fn shipshape(dir: &std::path::Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("shipshape").unwrap();
    command
        .env("SHIPSHAPE_STATE_DIR", dir.join("state"))
        .env("SHIPSHAPE_CONFIG_DIR", dir.join("config"))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", dir.join("no-bus").display()),
        )
        .env_remove("SHIPSHAPE_ENROLL_TOKEN")
        .env_remove("SHIPSHAPE_LOG");
    command
}

/// A server that enrolls, serves [`POLICY`] with its ETag, and acknowledges
/// every report with `status`.
pub fn fleet(status: &'static str) -> impl Fn(&Captured) -> Reply + Send + Sync + 'static {
    move |request| match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/enroll") => Reply::json(201, &serde_json::json!({ "device_id": DEVICE_ID })),
        ("GET", "/v1/policy") if request.header("if-none-match") == Some(POLICY_ETAG) => {
            Reply::empty(304)
        }
        ("GET", "/v1/policy") => Reply::text(200, POLICY).with_header("etag", POLICY_ETAG),
        ("POST", "/v1/reports") => receipt(request, status),
        ("GET", "/healthz") => Reply::text(200, "ok"),
        _ => Reply::json(404, &serde_json::json!({ "error": "no such endpoint" })),
    }
}

/// The receipt for a submitted report, graded `status`.
pub fn receipt(request: &Captured, status: &str) -> Reply {
    let submission: shipshape_core::wire::ReportSubmission =
        serde_json::from_slice(&request.body).unwrap();
    let findings: Vec<_> = submission
        .report
        .findings
        .iter()
        .map(|finding| {
            let mut finding = finding.clone();
            finding.leak = status == "leaky";
            finding
        })
        .collect();
    Reply::json(
        200,
        &serde_json::json!({
            "report_id": submission.id,
            "device_id": DEVICE_ID,
            "received_at": "2026-11-24T03:00:00Z",
            "status": status,
            "findings": findings,
        }),
    )
}

/// Enrolls the machine under `dir` with `server`, keeping the key in a file.
pub fn enroll(dir: &std::path::Path, server: &FakeServer) {
    shipshape(dir)
        .args(["enroll", "--server", &server.url, "--token", TOKEN])
        .args(["--key-store", "file"])
        .assert()
        .success();
    server.take_requests();
}

/// The public key of the device enrolled under `dir`.
pub fn device_public_key(dir: &std::path::Path) -> VerifyingKey {
    let seed: [u8; 32] = std::fs::read(dir.join("state").join("device-key"))
        .unwrap()
        .try_into()
        .unwrap();
    ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key()
}
