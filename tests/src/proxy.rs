//! A fault-injecting HTTP/1.1 proxy on loopback, between the agent and the
//! server: the hostile network the agent must survive, switchable while a
//! test runs.
//!
//! The agent is enrolled with the proxy's URL. The proxy passes the `Host`
//! header through, so the server checks signatures against the URL the agent
//! signed. Each connection carries one exchange (`Connection: close` both
//! ways), which is what lets the proxy cut, delay, hold or replace any single
//! answer. Random faults come from a seeded generator: with one agent talking,
//! the same seed injects the same faults into the same exchanges.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the proxy waits on a silent peer before giving up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request or response head the proxy reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The largest body the proxy reads: more than the server accepts.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the proxy does to the exchanges passing through it. The
/// probabilities are drawn per exchange, in this order: `drop_request`,
/// `fail_before`, `drop_response`, `fail_after`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The connection is closed without an answer (the server unreachable).
    pub down: bool,
    /// Exchanges wait at the proxy while this holds; [`Proxy::wait_held`]
    /// tells when one arrived.
    pub hold: Option<Hold>,
    /// Only requests whose `METHOD PATH` starts with this are held:
    /// `"POST "` (reports and heartbeats), `"GET /v1/policy"`; any request
    /// when `None`.
    pub hold_only: Option<&'static str>,
    /// Every answer waits this long before it is sent.
    pub delay: Duration,
    /// The chance that the request is cut halfway on its way to the server
    /// and the connection closed: the agent gets no answer.
    pub drop_request: f64,
    /// The chance of a 500 or 503 before the server saw the request.
    pub fail_before: f64,
    /// The chance that the server handles the request and the connection is
    /// closed halfway through its answer.
    pub drop_response: f64,
    /// The chance that the server handles the request and the agent gets a
    /// 503 instead of its answer.
    pub fail_after: f64,
    /// A replacement for the policy the server sends: `GET /v1/policy` goes
    /// to the server without `If-None-Match` (so it answers 200), and a 200
    /// answer's body and ETag become these. A bad push, served from a
    /// server whose own policy is fine.
    pub policy: Option<PushedPolicy>,
}

/// Where an exchange waits while [`Faults::hold`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Before the request is forwarded: the server never sees it.
    Requests,
    /// After the server answered, before the answer is passed on: the
    /// server has handled a request whose sender has no answer yet.
    Answers,
}

/// The body and ETag served instead of the server's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedPolicy {
    pub text: String,
    pub etag: String,
}

/// One exchange through the proxy, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The request's body, as the agent sent it.
    pub body: Vec<u8>,
    /// When the proxy had read the whole request.
    pub arrived: Instant,
    pub outcome: Outcome,
}

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server's answer (status), passed on whole.
    Answered(u16),
    /// The proxy was down, or the server could not be reached: no answer.
    Unreachable,
    /// The request was cut on its way: no answer.
    DroppedRequest,
    /// The proxy answered this status without asking the server.
    FailedBefore(u16),
    /// The server answered (status); the connection was cut halfway through
    /// the answer.
    DroppedResponse(u16),
    /// The server answered (status); the agent got a 503 instead.
    FailedAfter(u16),
    /// The server's policy (status 200) was replaced by [`Faults::policy`].
    PolicyReplaced,
    /// The agent hung up (or the proxy stopped) while the exchange was held
    /// or under way.
    Abandoned,
}

impl Outcome {
    /// Whether the server saw the whole request (and may have acted on it).
    pub fn reached_server(self) -> bool {
        matches!(
            self,
            Outcome::Answered(_)
                | Outcome::DroppedResponse(_)
                | Outcome::FailedAfter(_)
                | Outcome::PolicyReplaced
        )
    }
}

/// A proxy on `127.0.0.1`, stopped when dropped.
#[derive(Debug)]
pub struct Proxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: Mutex<String>,
    control: Mutex<Control>,
    /// Notified when the faults change or an exchange starts waiting.
    changed: Condvar,
    rng: Mutex<SplitMix64>,
    log: Mutex<Vec<Exchange>>,
    connections: AtomicUsize,
    stopping: AtomicBool,
}

/// What the test controls, under one lock.
#[derive(Debug, Default)]
struct Control {
    faults: Faults,
    /// Counts the calls of [`Proxy::set_faults`].
    generation: u64,
    /// The generation in force when each held exchange arrived.
    held: Vec<u64>,
}

impl Control {
    /// Exchanges held under the current faults.
    fn held_now(&self) -> usize {
        self.held
            .iter()
            .filter(|generation| **generation == self.generation)
            .count()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler thread must not take the test's proxy with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT`), passing everything
    /// through until [`Proxy::set_faults`]; random faults are drawn from `seed`.
    pub fn start(upstream: &str, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(authority(upstream)),
            control: Mutex::new(Control::default()),
            changed: Condvar::new(),
            rng: Mutex::new(SplitMix64(seed)),
            log: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept(&listener, &shared))
        };
        Proxy {
            address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`: the URL the agent talks to.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Forwards to another server from the next connection on.
    pub fn set_upstream(&self, upstream: &str) {
        *lock(&self.shared.upstream) = authority(upstream);
    }

    /// Changes the faults from the next exchange on; held exchanges go on
    /// when the new faults no longer hold them.
    pub fn set_faults(&self, faults: Faults) {
        let mut control = lock(&self.shared.control);
        control.faults = faults;
        control.generation += 1;
        self.shared.changed.notify_all();
    }

    /// How many connections the proxy accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The exchanges finished so far, in the order they finished.
    pub fn log(&self) -> Vec<Exchange> {
        lock(&self.shared.log).clone()
    }

    /// Waits until at least `count` exchanges that arrived since the faults
    /// were last set are held (not ones an earlier hold released that have
    /// yet to move on); false after `timeout`.
    pub fn wait_held(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut control = lock(&self.shared.control);
        while control.held_now() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            control = self
                .shared
                .changed
                .wait_timeout(control, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// How many exchanges that arrived since the faults were last set are held now.
    pub fn held(&self) -> usize {
        lock(&self.shared.control).held_now()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Wakes the acceptor, which then sees `stopping`.
        drop(TcpStream::connect(self.address));
        if let Some(acceptor) = self.acceptor.take() {
            drop(acceptor.join());
        }
    }
}

/// `127.0.0.1:PORT` from `http://127.0.0.1:PORT`.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(shared);
        thread::spawn(move || {
            let mut exchange = Exchange {
                method: String::new(),
                path: String::new(),
                body: Vec::new(),
                arrived: Instant::now(),
                outcome: Outcome::Abandoned,
            };
            exchange.outcome = serve(&shared, stream, &mut exchange).unwrap_or(Outcome::Abandoned);
            if !exchange.method.is_empty() {
                lock(&shared.log).push(exchange);
            }
        });
    }
}

/// An HTTP message: its first line, headers and (de-chunked) body.
#[derive(Debug)]
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn remove_header(&mut self, name: &str) {
        self.headers
            .retain(|(key, _)| !key.eq_ignore_ascii_case(name));
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.remove_header(name);
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// The status of a response.
    fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or(0)
    }

    /// The message as sent on a connection that closes after it: framed by
    /// `Content-Length`. `with_length` is false for answers that have no body.
    fn to_bytes(&self, with_length: bool) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (name, value) in &self.headers {
            if [
                "connection",
                "keep-alive",
                "transfer-encoding",
                "content-length",
            ]
            .iter()
            .any(|hop| name.eq_ignore_ascii_case(hop))
            {
                continue;
            }
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if with_length {
            out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        out.push_str("connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Reads one message. A request without framing has no body; a response
/// (`until_eof`) without framing runs to the end of the connection.
fn read_message(reader: &mut impl BufRead, until_eof: bool) -> io::Result<Message> {
    let mut head = Vec::new();
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("the connection closed inside a message head"));
        }
        head.extend_from_slice(line.as_bytes());
        if head.len() > MAX_HEAD_BYTES {
            return Err(invalid("message head too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        lines.push(line.to_owned());
    }
    let mut lines = lines.into_iter();
    let start = lines.next().ok_or_else(|| invalid("empty message"))?;
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid("header without a colon"))?;
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut message = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let is_response = until_eof;
    if is_response && matches!(message.status(), 100..=199 | 204 | 304) {
        return Ok(message);
    }
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    if chunked {
        message.body = read_chunked(reader)?;
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad content-length"))?;
        if length > MAX_BODY_BYTES {
            return Err(invalid("body too large"));
        }
        message.body = vec![0; length];
        reader.read_exact(&mut message.body)?;
    } else if is_response {
        reader
            .take(MAX_BODY_BYTES as u64)
            .read_to_end(&mut message.body)?;
    }
    Ok(message)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if body.len() + size > MAX_BODY_BYTES {
            return Err(invalid("body too large"));
        }
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut end = [0u8; 2];
        reader.read_exact(&mut end)?;
    }
}

/// Handles one connection: one exchange. `Err` means a peer went away.
fn serve(shared: &Shared, client: TcpStream, exchange: &mut Exchange) -> io::Result<Outcome> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let faults = lock(&shared.control).faults.clone();
    if faults.down {
        // Counted as a connection, not logged as an exchange.
        client.shutdown(Shutdown::Both).ok();
        return Ok(Outcome::Unreachable);
    }
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request = read_message(&mut reader, false)?;
    let mut words = request.start.split(' ');
    exchange.method = words.next().unwrap_or_default().to_owned();
    exchange.path = words.next().unwrap_or_default().to_owned();
    exchange.body.clone_from(&request.body);
    exchange.arrived = Instant::now();
    let arrived = lock(&shared.control).generation;
    let mut client = client;

    let request_line = format!("{} {}", exchange.method, exchange.path);
    wait_while_held(shared, Hold::Requests, &request_line, arrived)?;
    let faults = lock(&shared.control).faults.clone();
    let (drop_request, fail_before, drop_response, fail_after) = {
        let mut rng = lock(&shared.rng);
        (
            rng.chance(faults.drop_request),
            rng.chance(faults.fail_before)
                .then(|| rng.pick(&[500, 503])),
            rng.chance(faults.drop_response),
            rng.chance(faults.fail_after),
        )
    };
    let replace_policy = faults
        .policy
        .clone()
        .filter(|_| exchange.method == "GET" && exchange.path.starts_with("/v1/policy"));
    if replace_policy.is_some() {
        request.remove_header("if-none-match");
    }

    if let Some(status) = fail_before {
        thread::sleep(faults.delay);
        client.write_all(&injected(status).to_bytes(true))?;
        return Ok(Outcome::FailedBefore(status));
    }
    let upstream = lock(&shared.upstream).clone();
    let Ok(mut server) = TcpStream::connect(&upstream) else {
        client.shutdown(Shutdown::Both).ok();
        return Ok(Outcome::Unreachable);
    };
    server.set_read_timeout(Some(IO_TIMEOUT))?;
    server.set_write_timeout(Some(IO_TIMEOUT))?;
    let with_length = !request.body.is_empty() || request.header("content-length").is_some();
    let bytes = request.to_bytes(with_length);
    if drop_request {
        server.write_all(&bytes[..bytes.len() / 2])?;
        server.shutdown(Shutdown::Both).ok();
        client.shutdown(Shutdown::Both).ok();
        return Ok(Outcome::DroppedRequest);
    }
    server.write_all(&bytes)?;
    let mut response = read_message(&mut BufReader::new(server), true)?;
    let status = response.status();

    wait_while_held(shared, Hold::Answers, &request_line, arrived)?;
    thread::sleep(faults.delay);
    let has_body = !matches!(status, 100..=199 | 204 | 304);
    if drop_response {
        let bytes = response.to_bytes(has_body);
        client.write_all(&bytes[..bytes.len() / 2])?;
        client.shutdown(Shutdown::Both).ok();
        return Ok(Outcome::DroppedResponse(status));
    }
    if fail_after {
        client.write_all(&injected(503).to_bytes(true))?;
        return Ok(Outcome::FailedAfter(status));
    }
    let outcome = match replace_policy {
        Some(pushed) if status == 200 => {
            response.body = pushed.text.into_bytes();
            response.set_header("etag", &pushed.etag);
            Outcome::PolicyReplaced
        }
        _ => Outcome::Answered(status),
    };
    client.write_all(&response.to_bytes(has_body))?;
    client.flush()?;
    Ok(outcome)
}

/// Waits while the faults hold `request` (`METHOD PATH`) at `stage`; `Err`
/// when the proxy stops. `arrived` is the generation of the faults when the
/// request arrived.
fn wait_while_held(shared: &Shared, stage: Hold, request: &str, arrived: u64) -> io::Result<()> {
    let mut control = lock(&shared.control);
    let held = |faults: &Faults| {
        faults.hold == Some(stage)
            && faults
                .hold_only
                .is_none_or(|only| request.starts_with(only))
    };
    if !held(&control.faults) {
        return Ok(());
    }
    control.held.push(arrived);
    shared.changed.notify_all();
    while held(&control.faults) && !shared.stopping.load(Ordering::SeqCst) {
        control = shared
            .changed
            .wait(control)
            .unwrap_or_else(PoisonError::into_inner);
    }
    if let Some(at) = control.held.iter().position(|held| *held == arrived) {
        control.held.swap_remove(at);
    }
    if shared.stopping.load(Ordering::SeqCst) {
        return Err(io::Error::other("the proxy stopped"));
    }
    Ok(())
}

/// An error answer made up by the proxy, as a load balancer would send it.
fn injected(status: u16) -> Message {
    let reason = if status == 503 {
        "Service Unavailable"
    } else {
        "Internal Server Error"
    };
    Message {
        start: format!("HTTP/1.1 {status} {reason}"),
        headers: vec![("content-type".to_owned(), "text/plain".to_owned())],
        body: format!("{status} {reason} (injected by the test proxy)\n").into_bytes(),
    }
}

/// A small seeded generator (SplitMix64): the same seed, the same faults.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`; draws nothing when `p` is 0.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        // 53 random bits: exactly representable in an f64.
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    fn pick(&mut self, choices: &[u16]) -> u16 {
        let len = u64::try_from(choices.len()).unwrap_or(1).max(1);
        let index = usize::try_from(self.next() % len).unwrap_or(0);
        choices[index]
    }
}
