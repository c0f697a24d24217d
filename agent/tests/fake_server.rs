//! A tiny HTTP/1.1 (or HTTPS) server on 127.0.0.1 for the agent's side of the protocol:
//! it records every request and answers from a closure — late, or not at
//! all, when a test wants a slow or broken server. One request per
//! connection (`Connection: close`), each on its own thread, which is all
//! the agent needs.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// When the request had arrived whole.
    pub at: Instant,
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
    /// How long to wait before answering.
    pub delay: Duration,
    /// Close the connection without a word.
    pub hang_up: bool,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap(),
            delay: Duration::ZERO,
            hang_up: false,
        }
    }

    pub fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: text.as_bytes().to_vec(),
            delay: Duration::ZERO,
            hang_up: false,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            hang_up: false,
        }
    }

    /// The connection closes with no answer (a crashed or overloaded server).
    pub fn hang_up() -> Reply {
        Reply {
            hang_up: true,
            ..Reply::empty(500)
        }
    }

    /// An error the way the server words it, with a machine-readable `code`.
    pub fn error(status: u16, message: &str, code: Option<&str>) -> Reply {
        let mut body = serde_json::json!({ "error": message });
        if let Some(code) = code {
            body["code"] = code.into();
        }
        Reply::json(status, &body)
    }

    /// This answer, `delay` late.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
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
                let (seen, tls) = (seen.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    None => serve(stream, &seen, handler.as_ref()),
                    Some(config) => {
                        let Ok(connection) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let mut tls_stream = rustls::StreamOwned::new(connection, stream);
                        serve(&mut tls_stream, &seen, handler.as_ref());
                        tls_stream.conn.send_close_notify();
                        let _ = tls_stream.flush();
                    }
                });
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
        at: Instant::now(),
    };
    seen.lock().unwrap().push(captured.clone());
    let reply = handler(&captured);
    std::thread::sleep(reply.delay);
    if reply.hang_up {
        return;
    }
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

/// A server that enrolls, serves [`POLICY`] with its ETag, acknowledges
/// every report with `status`, and takes a heartbeat for facts it holds
/// (else asks for them in full, as the real server does).
pub fn fleet(status: &'static str) -> impl Fn(&Captured) -> Reply + Send + Sync + 'static {
    let known: Mutex<HashSet<String>> = Mutex::default();
    move |request| match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/enroll") => Reply::json(201, &serde_json::json!({ "device_id": DEVICE_ID })),
        ("GET", "/v1/policy") if request.header("if-none-match") == Some(POLICY_ETAG) => {
            Reply::empty(304)
        }
        ("GET", "/v1/policy") => Reply::text(200, POLICY).with_header("etag", POLICY_ETAG),
        ("POST", "/v1/reports") => {
            let submission = submission(request);
            known
                .lock()
                .unwrap()
                .insert(shipshape_core::wire::facts_hash(&submission.facts));
            receipt(request, status)
        }
        ("POST", "/v1/heartbeats") => {
            let heartbeat = heartbeat(request);
            if known.lock().unwrap().contains(&heartbeat.facts_hash) {
                receipt(request, status)
            } else {
                Reply::error(
                    409,
                    "no facts with this hash: send the full report",
                    Some(shipshape_core::wire::RESEND_FULL),
                )
            }
        }
        ("GET", "/healthz") => Reply::text(200, "ok"),
        _ => Reply::json(404, &serde_json::json!({ "error": "no such endpoint" })),
    }
}

/// [`fleet`], except that report and heartbeat requests, numbered from 0,
/// are answered by `script` while it has an answer.
pub fn scripted(
    status: &'static str,
    script: impl Fn(usize) -> Option<Reply> + Send + Sync + 'static,
) -> impl Fn(&Captured) -> Reply + Send + Sync + 'static {
    let fleet = fleet(status);
    let count = AtomicUsize::new(0);
    move |request| {
        if is_report(request) {
            if let Some(reply) = script(count.fetch_add(1, Ordering::SeqCst)) {
                return reply;
            }
        }
        fleet(request)
    }
}

/// A report or a heartbeat.
pub fn is_report(request: &Captured) -> bool {
    request.method == "POST" && matches!(request.path.as_str(), "/v1/reports" | "/v1/heartbeats")
}

/// The report in a `POST /v1/reports`.
pub fn submission(request: &Captured) -> shipshape_core::wire::ReportSubmission {
    serde_json::from_slice(&request.body).unwrap()
}

/// The heartbeat in a `POST /v1/heartbeats`.
pub fn heartbeat(request: &Captured) -> shipshape_core::wire::Heartbeat {
    serde_json::from_slice(&request.body).unwrap()
}

/// The id of the report in a report or heartbeat request.
pub fn report_id(request: &Captured) -> String {
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// The receipt for a submitted report or heartbeat, graded `status`.
pub fn receipt(request: &Captured, status: &str) -> Reply {
    let (id, report) = if request.path == "/v1/heartbeats" {
        let heartbeat = heartbeat(request);
        (heartbeat.id, heartbeat.report)
    } else {
        let full = submission(request);
        (full.id, full.report)
    };
    let findings: Vec<_> = report
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
            "report_id": id,
            "device_id": DEVICE_ID,
            "received_at": "2026-11-24T03:00:00Z",
            "status": status,
            "findings": findings,
        }),
    )
}

/// `shipshape enroll` for the machine under `dir` with the server at
/// `server_url` and the test token, keeping the key in a file.
pub fn enroll_command(dir: &std::path::Path, server_url: &str) -> assert_cmd::Command {
    let mut command = shipshape(dir);
    command
        .args(["enroll", "--server", server_url, "--token", TOKEN])
        .args(["--key-store", "file"]);
    command
}

/// Enrolls the machine under `dir` with `server`, keeping the key in a file.
pub fn enroll(dir: &std::path::Path, server: &FakeServer) {
    enroll_command(dir, &server.url).assert().success();
    server.take_requests();
}

/// Adds `settings` to the `[delivery]` table of the agent's config under
/// `dir`, starting the table if there is none.
pub fn set_delivery(dir: &std::path::Path, settings: &str) {
    let path = dir.join("config").join("agent.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let config = if config.contains("\n[delivery]\n") || config.starts_with("[delivery]\n") {
        config.replacen("[delivery]\n", &format!("[delivery]\n{settings}\n"), 1)
    } else {
        format!("{config}\n[delivery]\n{settings}\n")
    };
    std::fs::write(&path, config).unwrap();
}

/// Fast retries for tests: 10, 20 and 40 ms instead of 3, 9 and 27 s.
pub const QUICK_RETRIES: &str = "retry-delays = [\"10ms\", \"20ms\", \"40ms\"]";

/// The public key of the device enrolled under `dir`.
pub fn device_public_key(dir: &std::path::Path) -> VerifyingKey {
    let seed: [u8; 32] = std::fs::read(dir.join("state").join("device-key"))
        .unwrap()
        .try_into()
        .unwrap();
    ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key()
}
