//! Getting the outbox to the server, as if the server were someone else's:
//! oldest report first; each retried after `retry-delays` (3 s, 9 s, 27 s,
//! ±20 % jitter, longer when the server says `Retry-After`) on timeouts,
//! connection errors, 5xx, 408 and 429; every attempt signed afresh. A
//! report that still fails stops the run and keeps its place in the queue.
//! A backlog starts with a `GET /healthz` upcheck. An unchanged run goes as
//! a heartbeat (its facts' hash) and in full when the server asks for it.
//! The circuit breaker ([`crate::breaker`]) decides whether to try at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shipshape_core::wire::{Heartbeat, RESEND_FULL, Receipt, ReportSubmission, facts_hash};

use crate::atomic;
use crate::breaker::{Breaker, Gate, Trouble};
use crate::config::Delivery;
use crate::outbox::{self, Outbox, Queued, Rejection};
use crate::transport::{RequestError, Signer, Transport};

/// The longest `Retry-After` honoured: a server asking for more gets the
/// report at the next run instead.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
/// How far a retry delay may stray from its nominal value, either way.
const JITTER: f64 = 0.2;

/// What delivery remembers between runs, in `delivery.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryState {
    /// Reports dropped from a full outbox that no delivered report has announced yet.
    #[serde(default)]
    pub dropped: u64,
    /// The facts hash of the last full report the server acknowledged.
    #[serde(default)]
    pub acknowledged_facts: Option<String>,
}

impl DeliveryState {
    /// The state at `path`; missing means nothing dropped, nothing acknowledged.
    pub fn load(path: &Path) -> DeliveryState {
        match std::fs::read(path) {
            Ok(text) => serde_json::from_slice(&text).unwrap_or_else(|error| {
                tracing::warn!("ignoring {}: {error}", path.display());
                DeliveryState::default()
            }),
            Err(_) => DeliveryState::default(),
        }
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        atomic::write(path, &text, atomic::Access::Owner)
    }
}

/// The three requests delivery makes; the real one is [`Network`], tests script their own.
pub trait Courier {
    /// `GET /healthz`.
    fn upcheck(&self) -> Result<(), RequestError>;
    /// `POST /v1/reports`.
    fn report(&self, submission: &ReportSubmission) -> Result<Receipt, RequestError>;
    /// `POST /v1/heartbeats`.
    fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<Receipt, RequestError>;
}

/// The server, over HTTP, every request signed as it is sent.
#[derive(Debug, Clone, Copy)]
pub struct Network<'a> {
    pub transport: &'a Transport,
    pub signer: &'a Signer,
}

impl Courier for Network<'_> {
    fn upcheck(&self) -> Result<(), RequestError> {
        self.transport.health().map(|_| ())
    }

    fn report(&self, submission: &ReportSubmission) -> Result<Receipt, RequestError> {
        self.transport.submit_report(self.signer, submission)
    }

    fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<Receipt, RequestError> {
        self.transport.submit_heartbeat(self.signer, heartbeat)
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A passing trouble: try again, not before `after` when the server said so.
    Retry { after: Option<Duration> },
    /// The server lacks the facts a heartbeat stands for (or takes no
    /// heartbeats): send the full report now.
    ResendFull,
    /// Refused for good: the report goes to `rejected/`.
    Reject,
    /// Nothing to retry here (the request could not even be signed).
    GiveUp,
}

/// How to handle `error` from a request for a report (`heartbeat` when it
/// was sent as one), at `now`.
pub fn classify(error: &RequestError, heartbeat: bool, now: Timestamp) -> Next {
    match error {
        RequestError::Unreachable { .. }
        | RequestError::TimedOut { .. }
        | RequestError::BadResponse { .. } => Next::Retry { after: None },
        RequestError::Sign(_) => Next::GiveUp,
        RequestError::Refused {
            status,
            retry_after,
            ..
        } => match status {
            409 if heartbeat && error.code() == Some(RESEND_FULL) => Next::ResendFull,
            // A server without the heartbeat endpoint still takes full reports.
            404 | 405 | 501 if heartbeat => Next::ResendFull,
            408 | 429 | 500.. => Next::Retry {
                after: retry_after
                    .as_deref()
                    .and_then(|value| parse_retry_after(value, now)),
            },
            400..=499 => Next::Reject,
            // A redirect or an odd status: not the report's fault, try later.
            _ => Next::Retry { after: None },
        },
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at [`RETRY_AFTER_CAP`];
/// `None` when it is neither.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let date = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
        Duration::try_from(date.duration_since(now)).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(RETRY_AFTER_CAP))
}

/// The wait before a retry: `nominal` moved by `jitter` (from -1 to 1) times
/// 20 %, and never shorter than what the server asked for.
pub fn backoff(nominal: Duration, jitter: f64, retry_after: Option<Duration>) -> Duration {
    let jittered = nominal.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0));
    retry_after.map_or(jittered, |asked| jittered.max(asked))
}

/// A jitter from -1 to 1 drawn from the operating system; 0 when it gives none.
pub fn random_jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX) * 2.0 - 1.0
}

/// Where a flush keeps its state and how it waits: real ones in [`deliver`],
/// instant ones in tests.
#[derive(Debug, Clone, Copy)]
pub struct Flush<'a> {
    pub outbox: &'a Outbox,
    pub state_path: &'a Path,
    /// The wait before each retry; its length is the number of retries.
    pub retry_delays: &'a [Duration],
    /// How many rejected reports to keep.
    pub keep_rejected: usize,
    /// The half-open probe: an upcheck even for one report, and a single
    /// attempt for the first.
    pub probe: bool,
    pub sleep: fn(Duration),
    pub jitter: fn() -> f64,
    pub now: fn() -> Timestamp,
}

/// What one flush did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Acknowledged by the server, in the order sent.
    pub delivered: Vec<Delivered>,
    /// Refused for good, or unreadable: moved to `rejected/`.
    pub rejected: Vec<Refused>,
    /// Why the flush stopped early; the rest stays queued.
    pub failure: Option<Trouble>,
    /// Local trouble that did not stop the flush (a file that could not be removed).
    pub warnings: Vec<String>,
    /// Whether the server answered (the upcheck, a receipt, a refusal for good).
    pub answered: bool,
}

/// A report the server acknowledged.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub id: String,
    pub receipt: Receipt,
    /// Sent as a heartbeat, the server holding its facts already.
    pub heartbeat: bool,
    pub queued_at: Option<Timestamp>,
}

/// A report that will not be sent again.
#[derive(Debug, Clone)]
pub struct Refused {
    pub id: String,
    /// The server's refusal, or why the file cannot be read.
    pub reason: String,
    /// Refused by the server (not a damaged file).
    pub by_server: bool,
    /// Where it went; `None` when even the move failed (it stays queued).
    pub moved_to: Option<PathBuf>,
}

/// Sends the outbox, oldest report first, until it is empty or a report
/// fails after its retries.
pub fn flush(courier: &dyn Courier, flush: &Flush<'_>) -> Flushed {
    let mut flushed = Flushed::default();
    let queued = match flush.outbox.queued() {
        Ok(queued) => queued,
        Err(error) => {
            flushed.warnings.push(format!(
                "could not read the outbox {}: {error}",
                flush.outbox.dir().display()
            ));
            return flushed;
        }
    };
    if queued.is_empty() {
        return flushed;
    }
    if queued.len() > 1 || flush.probe {
        if let Err(error) = courier.upcheck() {
            flushed.failure = Some(Trouble::of(&error));
            return flushed;
        }
        flushed.answered = true;
    }
    let mut state = DeliveryState::load(flush.state_path);
    for (index, entry) in queued.iter().enumerate() {
        let submission = match flush.outbox.load(entry) {
            Ok(submission) => submission,
            Err(problem) => {
                let reason = format!("the queued file {} {problem}", entry.path.display());
                flushed
                    .rejected
                    .push(reject(flush, entry, None, reason, &mut flushed.warnings));
                continue;
            }
        };
        let attempts = if flush.probe && index == 0 {
            1
        } else {
            flush.retry_delays.len() + 1
        };
        match send(courier, flush, submission, &state, attempts) {
            Sent::Acknowledged {
                receipt,
                full_hash,
                dropped,
            } => {
                flushed.answered = true;
                let heartbeat = full_hash.is_none();
                if let Some(hash) = full_hash {
                    state.acknowledged_facts = Some(hash);
                }
                state.dropped = state.dropped.saturating_sub(dropped);
                // State first: a crash before the removal only sends the report again.
                if let Err(error) = state.save(flush.state_path) {
                    flushed.warnings.push(format!("{error:#}"));
                }
                if let Err(error) = flush.outbox.remove(entry) {
                    flushed.warnings.push(format!(
                        "{error:#}: report {} was delivered and will be sent again (harmlessly)",
                        entry.id
                    ));
                }
                flushed.delivered.push(Delivered {
                    id: entry.id.clone(),
                    receipt,
                    heartbeat,
                    queued_at: entry.queued_at,
                });
            }
            Sent::Refused(error) => {
                flushed.answered = true;
                let status = match &error {
                    RequestError::Refused { status, .. } => Some(*status),
                    _ => None,
                };
                flushed.rejected.push(reject(
                    flush,
                    entry,
                    status,
                    error.to_string(),
                    &mut flushed.warnings,
                ));
            }
            Sent::Failed(error) => {
                flushed.failure = Some(Trouble::of(&error));
                break;
            }
        }
    }
    flushed
}

enum Sent {
    Acknowledged {
        receipt: Receipt,
        /// The facts hash, when the facts went in full.
        full_hash: Option<String>,
        /// The dropped count the report announced.
        dropped: u64,
    },
    Refused(RequestError),
    Failed(RequestError),
}

/// One report, as a heartbeat when its facts are those last acknowledged,
/// with up to `attempts` tries.
fn send(
    courier: &dyn Courier,
    flush: &Flush<'_>,
    mut submission: ReportSubmission,
    state: &DeliveryState,
    attempts: usize,
) -> Sent {
    submission.dropped = state.dropped;
    let hash = facts_hash(&submission.facts);
    let mut full = state.acknowledged_facts.as_deref() != Some(hash.as_str());
    let mut attempt = 0;
    loop {
        let result = if full {
            courier.report(&submission)
        } else {
            courier.heartbeat(&Heartbeat {
                id: submission.id.clone(),
                facts_hash: hash.clone(),
                report: submission.report.clone(),
                dropped: submission.dropped,
            })
        };
        let error = match result {
            Ok(receipt) => {
                return Sent::Acknowledged {
                    receipt,
                    full_hash: full.then_some(hash),
                    dropped: submission.dropped,
                };
            }
            Err(error) => error,
        };
        match classify(&error, !full, (flush.now)()) {
            Next::ResendFull => full = true,
            Next::Retry { after } if attempt + 1 < attempts => {
                let nominal = flush.retry_delays.get(attempt).copied().unwrap_or_default();
                tracing::info!("report {}: {error}; retrying", submission.id);
                (flush.sleep)(backoff(nominal, (flush.jitter)(), after));
                attempt += 1;
            }
            Next::Retry { .. } | Next::GiveUp => return Sent::Failed(error),
            Next::Reject => return Sent::Refused(error),
        }
    }
}

fn reject(
    flush: &Flush<'_>,
    entry: &Queued,
    status: Option<u16>,
    reason: String,
    warnings: &mut Vec<String>,
) -> Refused {
    let rejection = Rejection {
        rejected_at: (flush.now)(),
        status,
        reason: reason.clone(),
    };
    let moved_to = match flush.outbox.reject(entry, &rejection, flush.keep_rejected) {
        Ok(path) => Some(path),
        Err(error) => {
            warnings.push(format!("{error:#}"));
            None
        }
    };
    Refused {
        id: entry.id.clone(),
        reason,
        by_server: status.is_some(),
        moved_to,
    }
}

/// Drops the oldest reports beyond the outbox's bounds, counting them first:
/// a crash in between over-counts, it never hides a gap. Returns how many
/// were dropped.
pub fn trim(outbox: &Outbox, settings: &Delivery, state_path: &Path) -> anyhow::Result<u64> {
    let queued = outbox.queued()?;
    let over = outbox::over_limits(
        &queued,
        settings.outbox_max_reports,
        settings.outbox_max_bytes,
    );
    if over.is_empty() {
        return Ok(0);
    }
    let count = over.len() as u64;
    let mut state = DeliveryState::load(state_path);
    state.dropped = state.dropped.saturating_add(count);
    state.save(state_path)?;
    for old in over {
        outbox.remove(old)?;
    }
    Ok(count)
}

/// What a run did about delivery.
#[derive(Debug)]
pub struct Outcome {
    /// Reports dropped from the full outbox this run.
    pub trimmed: u64,
    pub sending: Sending,
    /// Reports still waiting after this run.
    pub waiting: usize,
    /// The breaker after this run.
    pub breaker: Breaker,
}

/// Whether the run sent, and how it went.
#[derive(Debug)]
pub enum Sending {
    Flushed(Flushed),
    /// The breaker is open: nothing was sent.
    BreakerOpen {
        until: Timestamp,
    },
    /// Another run holds the outbox and sends it.
    Busy,
}

/// Everything a run needs to deliver.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub outbox: &'a Outbox,
    pub state_path: &'a Path,
    pub breaker_path: &'a Path,
    pub settings: &'a Delivery,
    /// The breaker's decision, taken once at the start of the run.
    pub gate: Gate,
}

/// Trims and flushes the outbox under its lock, as the breaker allows, and
/// records the run in the breaker.
pub fn deliver(courier: &dyn Courier, run: &Run<'_>) -> anyhow::Result<Outcome> {
    let mut breaker = Breaker::load(run.breaker_path);
    let Some(_lock) = run.outbox.try_lock()? else {
        return Ok(Outcome {
            trimmed: 0,
            sending: Sending::Busy,
            waiting: run.outbox.queued()?.len(),
            breaker,
        });
    };
    let trimmed = trim(run.outbox, run.settings, run.state_path)?;
    let sending = match run.gate {
        Gate::Open { until } => Sending::BreakerOpen { until },
        Gate::Closed | Gate::HalfOpen => {
            let mut flushed = flush(
                courier,
                &Flush {
                    outbox: run.outbox,
                    state_path: run.state_path,
                    retry_delays: &run.settings.retry_delays,
                    keep_rejected: run.settings.outbox_max_reports,
                    probe: run.gate == Gate::HalfOpen,
                    sleep: std::thread::sleep,
                    jitter: random_jitter,
                    now: Timestamp::now,
                },
            );
            let before = breaker.clone();
            match &flushed.failure {
                Some(trouble) => breaker.failed(
                    trouble.clone(),
                    Timestamp::now(),
                    run.settings.breaker_failures,
                    run.settings.breaker_cooldown,
                ),
                None if flushed.answered => breaker.succeeded(),
                // Nothing reached the server (only damaged files): nothing learned.
                None => {}
            }
            if breaker != before {
                if let Err(error) = breaker.save(run.breaker_path) {
                    flushed
                        .warnings
                        .push(format!("could not record the circuit breaker: {error:#}"));
                }
            }
            Sending::Flushed(flushed)
        }
    };
    Ok(Outcome {
        trimmed,
        sending,
        waiting: run.outbox.queued()?.len(),
        breaker,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use shipshape_core::Verdict;
    use shipshape_core::facts::Facts;
    use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
    use shipshape_core::wire::DeviceStatus;

    use super::*;
    use crate::breaker::TroubleKind;
    use crate::transport::Exchange;

    thread_local! {
        static SLEPT: RefCell<Vec<Duration>> = const { RefCell::new(Vec::new()) };
    }

    fn record_sleep(duration: Duration) {
        SLEPT.with(|slept| slept.borrow_mut().push(duration));
    }

    fn slept() -> Vec<Duration> {
        SLEPT.with(|slept| std::mem::take(&mut *slept.borrow_mut()))
    }

    fn noon() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn refused(status: u16, code: Option<&str>, retry_after: Option<&str>) -> RequestError {
        RequestError::Refused {
            what: Exchange::Report,
            status,
            message: "no".to_owned(),
            hint: "",
            code: code.map(str::to_owned),
            retry_after: retry_after.map(str::to_owned),
        }
    }

    fn unreachable() -> RequestError {
        RequestError::Unreachable {
            url: "http://127.0.0.1:1/v1/reports".to_owned(),
            reason: "connection refused".to_owned(),
        }
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_and_capped() {
        let now = noon();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("3600", now), Some(RETRY_AFTER_CAP));
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_strays_at_most_a_fifth_and_never_undercuts_the_server() {
        let nine = Duration::from_secs(9);
        assert_eq!(backoff(nine, 0.0, None), nine);
        assert_eq!(backoff(nine, 1.0, None), Duration::from_millis(10_800));
        assert_eq!(backoff(nine, -1.0, None), Duration::from_millis(7_200));
        assert_eq!(backoff(nine, 5.0, None), Duration::from_millis(10_800));
        let asked = Duration::from_secs(20);
        assert_eq!(backoff(nine, 1.0, Some(asked)), asked);
        assert_eq!(backoff(nine, 0.0, Some(Duration::from_secs(1))), nine);
        for _ in 0..1_000 {
            let jitter = random_jitter();
            assert!((-1.0..=1.0).contains(&jitter), "{jitter}");
        }
    }

    #[test]
    fn passing_troubles_are_retried_and_the_rest_refused_for_good() {
        let now = noon();
        let retry = |after: Option<u64>| Next::Retry {
            after: after.map(Duration::from_secs),
        };
        assert_eq!(classify(&unreachable(), false, now), retry(None));
        let timed_out = RequestError::TimedOut {
            url: "u".to_owned(),
            after: Duration::from_secs(10),
        };
        assert_eq!(classify(&timed_out, false, now), retry(None));
        for status in [408, 500, 502, 503, 504] {
            assert_eq!(
                classify(&refused(status, None, None), false, now),
                retry(None)
            );
        }
        assert_eq!(
            classify(&refused(429, None, Some("4")), false, now),
            retry(Some(4))
        );
        assert_eq!(
            classify(&refused(503, None, Some("120")), false, now),
            retry(Some(60))
        );
        for status in [400, 401, 403, 404, 409, 413, 422] {
            assert_eq!(
                classify(&refused(status, None, None), false, now),
                Next::Reject,
                "{status}"
            );
        }
        let resend = refused(409, Some(RESEND_FULL), None);
        assert_eq!(classify(&resend, true, now), Next::ResendFull);
        assert_eq!(
            classify(&resend, false, now),
            Next::Reject,
            "a full report is never asked for in full again"
        );
        assert_eq!(
            classify(&refused(404, None, None), true, now),
            Next::ResendFull,
            "an older server without heartbeats"
        );
        assert_eq!(classify(&refused(302, None, None), false, now), retry(None));
    }

    /// A server scripted answer by answer; every call is recorded.
    #[derive(Default)]
    struct Script {
        answers: RefCell<VecDeque<Result<(), RequestError>>>,
        calls: RefCell<Vec<String>>,
    }

    impl Script {
        fn answering(answers: Vec<Result<(), RequestError>>) -> Script {
            Script {
                answers: RefCell::new(answers.into()),
                calls: RefCell::default(),
            }
        }

        fn answer(&self, call: String, id: &str) -> Result<Receipt, RequestError> {
            self.calls.borrow_mut().push(call);
            self.answers.borrow_mut().pop_front().unwrap_or(Ok(()))?;
            Ok(Receipt {
                report_id: id.to_owned(),
                device_id: "d1".to_owned(),
                received_at: noon(),
                status: DeviceStatus::Compliant,
                findings: Vec::new(),
            })
        }

        fn calls(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.borrow_mut())
        }
    }

    impl Courier for Script {
        fn upcheck(&self) -> Result<(), RequestError> {
            self.calls.borrow_mut().push("upcheck".to_owned());
            self.answers.borrow_mut().pop_front().unwrap_or(Ok(()))
        }

        fn report(&self, submission: &ReportSubmission) -> Result<Receipt, RequestError> {
            let call = format!("report {} dropped={}", submission.id, submission.dropped);
            self.answer(call, &submission.id)
        }

        fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<Receipt, RequestError> {
            let call = format!("heartbeat {} dropped={}", heartbeat.id, heartbeat.dropped);
            self.answer(call, &heartbeat.id)
        }
    }

    fn facts(hostname: &str) -> Facts {
        let unknown = serde_json::json!({ "unknown": { "reason": "not probed" } });
        serde_json::from_value(serde_json::json!({
            "host": { "hostname": hostname, "os": { "family": "linux", "id": "debian",
                      "name": "Debian GNU/Linux 12 (bookworm)", "version": "12", "build": null },
                      "kernel": "6.1.0", "arch": "x86_64", "hardware_id": null },
            "disk_encryption": unknown, "os_updates": unknown, "firewall": unknown,
            "ssh_keys": unknown, "ssh_server": unknown
        }))
        .unwrap()
    }

    fn submission(hostname: &str) -> ReportSubmission {
        let facts = facts(hostname);
        ReportSubmission {
            id: uuid::Uuid::now_v7().to_string(),
            report: CheckReport {
                schema: SCHEMA_VERSION,
                verdict: Verdict::Shipshape,
                checked_at: noon(),
                host: facts.host.clone(),
                policy: PolicyRef {
                    name: "fleet".to_owned(),
                    source: "test".to_owned(),
                },
                findings: Vec::new(),
            },
            facts,
            dropped: 0,
        }
    }

    /// Each delivered or rejected report's id with one flag of it, in order.
    fn ids_with<T>(items: &[T], id_and_flag: impl Fn(&T) -> (&String, bool)) -> Vec<(&str, bool)> {
        items
            .iter()
            .map(|item| {
                let (id, flag) = id_and_flag(item);
                (id.as_str(), flag)
            })
            .collect()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        outbox: Outbox,
        state: PathBuf,
        delays: Vec<Duration>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            Fixture {
                outbox: Outbox::new(dir.path().join("outbox")),
                state: dir.path().join("delivery.json"),
                delays: [3, 9, 27].map(Duration::from_secs).to_vec(),
                _dir: dir,
            }
        }

        /// Queues reports for these hostnames; returns their ids.
        fn queue(&self, hostnames: &[&str]) -> Vec<String> {
            hostnames
                .iter()
                .map(|hostname| {
                    let submission = submission(hostname);
                    self.outbox.enqueue(&submission).unwrap();
                    submission.id
                })
                .collect()
        }

        fn flush(&self, courier: &Script, probe: bool) -> Flushed {
            flush(
                courier,
                &Flush {
                    outbox: &self.outbox,
                    state_path: &self.state,
                    retry_delays: &self.delays,
                    keep_rejected: 10,
                    probe,
                    sleep: record_sleep,
                    jitter: || 0.0,
                    now: noon,
                },
            )
        }

        fn waiting(&self) -> Vec<String> {
            let queued = self.outbox.queued().unwrap();
            queued.into_iter().map(|queued| queued.id).collect()
        }
    }

    #[test]
    fn a_backlog_goes_oldest_first_after_an_upcheck_then_as_heartbeats() {
        let fixture = Fixture::new();
        let ids = fixture.queue(&["a", "a", "b"]);
        let server = Script::default();
        let flushed = fixture.flush(&server, false);
        assert!(flushed.failure.is_none());
        assert_eq!(
            server.calls(),
            [
                "upcheck".to_owned(),
                format!("report {} dropped=0", ids[0]),
                format!("heartbeat {} dropped=0", ids[1]),
                format!("report {} dropped=0", ids[2]),
            ]
        );
        let delivered = ids_with(&flushed.delivered, |report| (&report.id, report.heartbeat));
        assert_eq!(
            delivered,
            [
                (ids[0].as_str(), false),
                (ids[1].as_str(), true),
                (ids[2].as_str(), false)
            ]
        );
        assert!(fixture.waiting().is_empty());
        let state = DeliveryState::load(&fixture.state);
        assert_eq!(state.acknowledged_facts, Some(facts_hash(&facts("b"))));

        // One report: no upcheck; same facts as acknowledged: a heartbeat.
        let id = fixture.queue(&["b"]).remove(0);
        fixture.flush(&server, false);
        assert_eq!(server.calls(), [format!("heartbeat {id} dropped=0")]);
        assert!(slept().is_empty());
    }

    #[test]
    fn retries_wait_the_configured_delays_then_give_up_keeping_the_order() {
        let fixture = Fixture::new();
        let ids = fixture.queue(&["a", "b"]);
        let server = Script::answering(vec![
            Ok(()),
            Err(refused(503, None, None)),
            Err(unreachable()),
            Err(refused(429, None, Some("30"))),
            Err(refused(500, None, None)),
        ]);
        let flushed = fixture.flush(&server, false);
        let report = format!("report {} dropped=0", ids[0]);
        assert_eq!(
            server.calls(),
            [
                "upcheck".to_owned(),
                report.clone(),
                report.clone(),
                report.clone(),
                report
            ]
        );
        assert_eq!(
            slept(),
            [3, 9, 30].map(Duration::from_secs),
            "Retry-After: 30 outlasts the 27 s delay"
        );
        let failure = flushed.failure.expect("gave up");
        assert_eq!(failure.kind, TroubleKind::Failing);
        assert!(failure.message.contains("500"), "{failure:?}");
        assert!(flushed.delivered.is_empty());
        assert_eq!(fixture.waiting(), ids, "both stay queued, in order");
    }

    #[test]
    fn a_failed_upcheck_sends_nothing() {
        let fixture = Fixture::new();
        let ids = fixture.queue(&["a", "b"]);
        let server = Script::answering(vec![Err(unreachable())]);
        let flushed = fixture.flush(&server, false);
        assert_eq!(server.calls(), ["upcheck"]);
        assert_eq!(flushed.failure.unwrap().kind, TroubleKind::Unreachable);
        assert_eq!(fixture.waiting(), ids);
    }

    #[test]
    fn the_half_open_probe_upchecks_and_tries_the_first_report_once() {
        let fixture = Fixture::new();
        let ids = fixture.queue(&["a"]);
        let server = Script::answering(vec![Ok(()), Err(refused(503, None, None))]);
        let flushed = fixture.flush(&server, true);
        assert_eq!(
            server.calls(),
            ["upcheck".to_owned(), format!("report {} dropped=0", ids[0])]
        );
        assert!(slept().is_empty());
        assert!(flushed.failure.is_some());
        assert_eq!(fixture.waiting(), ids);
    }

    #[test]
    fn refusals_move_to_rejected_with_the_reason_and_the_rest_goes_on() {
        let fixture = Fixture::new();
        let ids = fixture.queue(&["a", "b"]);
        std::fs::write(
            fixture.outbox.dir().join(format!("{}.json", ids[1])),
            "{\"id\": \"torn",
        )
        .unwrap();
        let later = fixture.queue(&["c"]).remove(0);
        let server = Script::answering(vec![Ok(()), Err(refused(401, None, None))]);
        let flushed = fixture.flush(&server, false);
        assert!(flushed.failure.is_none());
        assert_eq!(
            server.calls(),
            [
                "upcheck".to_owned(),
                format!("report {} dropped=0", ids[0]),
                format!("report {later} dropped=0"),
            ],
            "the torn file is never sent"
        );
        let rejected = ids_with(&flushed.rejected, |report| (&report.id, report.by_server));
        assert_eq!(
            rejected,
            [(ids[0].as_str(), true), (ids[1].as_str(), false)]
        );
        assert_eq!(flushed.delivered.len(), 1);
        assert!(fixture.waiting().is_empty());
        let kept = fixture.outbox.rejected();
        assert_eq!(kept.len(), 2);
        let first = kept[0].rejection.as_ref().unwrap();
        assert_eq!(first.status, Some(401));
        assert!(first.reason.contains("401"), "{first:?}");
        let second = kept[1].rejection.as_ref().unwrap();
        assert_eq!(second.status, None);
        assert!(second.reason.contains("does not parse"), "{second:?}");
    }

    #[test]
    fn a_heartbeat_the_server_cannot_place_goes_again_in_full_at_once() {
        let fixture = Fixture::new();
        DeliveryState {
            dropped: 0,
            acknowledged_facts: Some(facts_hash(&facts("a"))),
        }
        .save(&fixture.state)
        .unwrap();
        let id = fixture.queue(&["a"]).remove(0);
        let server = Script::answering(vec![Err(refused(409, Some(RESEND_FULL), None))]);
        let flushed = fixture.flush(&server, false);
        assert_eq!(
            server.calls(),
            [
                format!("heartbeat {id} dropped=0"),
                format!("report {id} dropped=0")
            ]
        );
        assert!(slept().is_empty());
        assert!(!flushed.delivered[0].heartbeat);
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_and_the_next_delivery_announces_them() {
        let fixture = Fixture::new();
        let ids = fixture.queue(&["a", "b", "c", "d"]);
        let settings = Delivery {
            outbox_max_reports: 2,
            ..Delivery::default()
        };
        assert_eq!(trim(&fixture.outbox, &settings, &fixture.state).unwrap(), 2);
        assert_eq!(fixture.waiting(), ids[2..]);
        assert_eq!(DeliveryState::load(&fixture.state).dropped, 2);
        assert_eq!(trim(&fixture.outbox, &settings, &fixture.state).unwrap(), 0);

        let server = Script::answering(vec![Ok(()), Err(refused(503, None, None))]);
        let flushed = Fixture {
            delays: Vec::new(),
            ..fixture
        };
        let outcome = flushed.flush(&server, false);
        assert!(outcome.failure.is_some());
        assert_eq!(
            server.calls(),
            ["upcheck".to_owned(), format!("report {} dropped=2", ids[2])]
        );
        assert_eq!(
            DeliveryState::load(&flushed.state).dropped,
            2,
            "not announced yet"
        );
        flushed.flush(&server, false);
        assert_eq!(DeliveryState::load(&flushed.state).dropped, 0);
        let calls = server.calls();
        assert_eq!(calls[1], format!("report {} dropped=2", ids[2]));
        assert_eq!(calls[2], format!("report {} dropped=0", ids[3]));
    }

    #[test]
    fn runs_open_the_breaker_which_keeps_them_off_the_network_until_a_probe_closes_it() {
        let fixture = Fixture::new();
        let breaker_path = fixture.state.with_file_name("breaker.json");
        let settings = Delivery {
            retry_delays: Vec::new(),
            breaker_failures: 2,
            ..Delivery::default()
        };
        let run = |courier: &Script| {
            fixture.queue(&["a"]);
            let gate = Breaker::load(&breaker_path).gate(Timestamp::now());
            let run = Run {
                outbox: &fixture.outbox,
                state_path: &fixture.state,
                breaker_path: &breaker_path,
                settings: &settings,
                gate,
            };
            (gate, deliver(courier, &run).unwrap())
        };
        let down = Script::answering((0..10).map(|_| Err(unreachable())).collect());
        let (gate, outcome) = run(&down);
        assert_eq!(gate, Gate::Closed);
        assert_eq!(outcome.breaker.failed_runs, 1);
        let (gate, outcome) = run(&down);
        assert_eq!(gate, Gate::Closed);
        assert!(matches!(
            outcome.breaker.gate(Timestamp::now()),
            Gate::Open { .. }
        ));
        down.calls();

        let (gate, outcome) = run(&down);
        assert!(matches!(gate, Gate::Open { .. }));
        assert!(matches!(outcome.sending, Sending::BreakerOpen { .. }));
        assert!(down.calls().is_empty(), "no request while open");
        assert_eq!(outcome.waiting, 3);

        let mut breaker = Breaker::load(&breaker_path);
        breaker.open_until = Some(Timestamp::UNIX_EPOCH);
        breaker.save(&breaker_path).unwrap();
        let up = Script::default();
        let (gate, outcome) = run(&up);
        assert_eq!(gate, Gate::HalfOpen);
        assert_eq!(up.calls()[0], "upcheck");
        assert_eq!(outcome.breaker, Breaker::default());
        assert_eq!(Breaker::load(&breaker_path), Breaker::default());
        assert_eq!(outcome.waiting, 0);
    }
}
