//! The real `serve` under the limits that need a socket: a request in
//! flight when SIGTERM arrives is still answered and stored, and a client
//! that never finishes its headers is cut off.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use shipshape_core::signing::sign_request;
use shipshape_core::wire::{EnrollResponse, Receipt};
use shipshape_server::model::Staleness;
use shipshape_server::store::{SqliteStore, Store as _};

use crate::cli::{run, spawn_serve};
use crate::support::{enroll_request, leaky_submission, random_bytes};

/// A running `serve` whose log lines arrive on a channel as it writes them.
struct Serving {
    child: Child,
    address: String,
    log: mpsc::Receiver<String>,
}

impl Serving {
    fn start(db: &Path, extra: &[&str]) -> Serving {
        let (mut child, address) = spawn_serve(db, extra, "http");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Serving {
            child,
            address,
            log,
        }
    }

    /// Waits (at most 10 s) for a log line containing `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(error) => panic!("no log line with {text:?}: {error}"),
            }
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.address).expect("serve accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// One request on its own connection; the status and the body.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut stream = self.connect();
        stream
            .write_all(&head(&self.address, method, path, headers, body.len()))
            .unwrap();
        stream.write_all(body).unwrap();
        read_answer(&mut stream)
    }

    fn terminate(&self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .expect("SIGTERM sent");
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // A test that failed early leaves no server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn head(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    length: usize,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Reads a whole answer (the server closes the connection after it); the
/// final status and the body, past any 100 Continue.
fn read_answer(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("an answer");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let final_answer = text
        .split_inclusive("\r\n\r\n")
        .skip_while(|part| part.starts_with("HTTP/1.1 100"))
        .collect::<String>();
    let (head, body) = final_answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.as_bytes().to_vec())
}

#[test]
fn a_request_in_flight_when_sigterm_arrives_is_answered_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let created = run(&db, &["token", "create", "--enroll"]);
    assert!(created.status.success());
    let token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let mut serving = Serving::start(&db, &[]);

    let key = SigningKey::from_bytes(&random_bytes());
    let enroll = serde_json::to_vec(&enroll_request(&token, &key, "ada-laptop")).unwrap();
    let (status, body) = serving.exchange("POST", "/v1/enroll", &[], &enroll);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let EnrollResponse { device_id } = serde_json::from_slice(&body).unwrap();

    let submission = leaky_submission("ada-laptop");
    let report = serde_json::to_vec(&submission).unwrap();
    let url = format!("http://{}/v1/reports", serving.address);
    let signed = sign_request(
        "POST",
        &url,
        &report,
        &key,
        &device_id,
        Timestamp::now().as_second(),
        &uuid::Uuid::new_v4().to_string(),
    )
    .unwrap();
    let headers = [
        ("Expect", "100-continue".to_owned()),
        ("Content-Digest", signed.content_digest),
        ("Signature-Input", signed.signature_input),
        ("Signature", signed.signature),
    ];
    let mut stream = serving.connect();
    stream
        .write_all(&head(
            &serving.address,
            "POST",
            "/v1/reports",
            &headers,
            report.len(),
        ))
        .unwrap();
    // 100 Continue: the handler is reading the body, the request is in flight.
    let mut interim = [0; 25];
    stream.read_exact(&mut interim).unwrap();
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    let (first, rest) = report.split_at(report.len() / 2);
    stream.write_all(first).unwrap();

    serving.terminate();
    serving.wait_for_log("shutting down");
    stream.write_all(rest).unwrap();
    let (status, body) = read_answer(&mut stream);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let receipt: Receipt = serde_json::from_slice(&body).unwrap();
    assert_eq!(receipt.report_id, submission.id);

    let exit = serving.child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    serving.wait_for_log("stopped");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let detail = runtime.block_on(async {
        let store = SqliteStore::open(&db).unwrap();
        store
            .device(
                &device_id,
                Staleness {
                    now: Timestamp::now(),
                    stale_after: SignedDuration::from_hours(48),
                },
            )
            .await
            .unwrap()
            .expect("the device is stored")
    });
    assert_eq!(detail.reports.len(), 1);
    assert_eq!(
        detail.reports[0].id, submission.id,
        "the answered report is stored"
    );
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "request-timeout = \"1s\"\n").unwrap();
    let serving = Serving::start(&db, &["--config", config.to_str().unwrap()]);
    serving.wait_for_log("serving");

    let mut stream = serving.connect();
    let started = Instant::now();
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", serving.address).as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    // Closed by the server: the end of the stream, or a reset.
    let _ = stream.read_to_end(&mut answer);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(8),
        "cut off after {elapsed:?}"
    );
    assert!(!String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

    // Complete requests are still served.
    let mut stream = serving.connect();
    stream
        .write_all(
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                serving.address
            )
            .as_bytes(),
        )
        .unwrap();
    let (status, _) = read_answer(&mut stream);
    assert_eq!(status, 200);
}
