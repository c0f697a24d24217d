//! A whole load run: enroll the devices, send each one's first full report
//! (when heartbeats are wanted: a heartbeat needs facts the server holds),
//! then the measured phase on the open-loop schedule.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;
use shipshape_core::Policy;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Client;
use crate::device::{Device, Identity};
use crate::facts::Machine;
use crate::schedule::{Kind, Pacing, Plan};
use crate::stats::{Tally, TallySummary};

/// The policy the simulated agents judge with: the server's built-in one,
/// which a fresh server sends them.
const POLICY: &str = include_str!("../../policies/default.toml");

/// How long after the end of the measured phase a request due within it
/// is still sent: timers fire up to a millisecond late.
const LATE_DISPATCH: Duration = Duration::from_millis(50);

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `http://HOST:PORT`.
    pub server: String,
    pub enroll_token: String,
    pub devices: usize,
    /// Requests a second, all devices together.
    pub pacing: Pacing,
    /// How long the measured phase sends.
    pub duration: Duration,
    /// The share of runs whose facts did not change (heartbeats).
    pub heartbeat_share: f64,
    /// Requests in flight at most.
    pub concurrency: usize,
    pub seed: u64,
    /// How long one request may take.
    pub timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub server: String,
    pub devices: usize,
    pub seed: u64,
    /// The target rate, requests a second.
    pub rate: f64,
    pub duration_secs: f64,
    pub heartbeat_share: f64,
    pub concurrency: usize,
    pub enrollment: Phase,
    /// Each device's first full report, before the measured phase; absent
    /// when only full reports were asked for.
    pub first_reports: Option<Phase>,
    pub measured: Measured,
}

/// A setup phase: as fast as the concurrency allows, not paced.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub secs: f64,
    /// Latencies from when each request was sent.
    pub requests: TallySummary,
}

/// The paced phase.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// From the start until the last answer came.
    pub secs: f64,
    /// Requests that fell due but were not sent when the time was up (the
    /// end of the phase, give or take 50 ms): the server (or this machine)
    /// could not keep up with the rate.
    pub not_sent: u64,
    pub full: TallySummary,
    pub heartbeat: TallySummary,
}

impl Measured {
    pub fn errors(&self) -> u64 {
        self.full.error_count() + self.heartbeat.error_count()
    }
}

/// Runs the load; `progress` hears what is happening (for stderr).
pub async fn run(settings: &Settings, progress: &dyn Fn(&str)) -> anyhow::Result<Results> {
    let client = Client::new(&settings.server, settings.concurrency, settings.timeout)?;
    let policy = Policy::parse(
        POLICY,
        "policies/default.toml",
        Timestamp::now().to_zoned(TimeZone::UTC).date(),
    )
    .context("the built-in default policy does not parse")?;

    progress(&format!("enrolling {} devices", settings.devices));
    let (devices, enrollment) = enroll(&client, settings).await?;
    let shared = Arc::new(Shared {
        client,
        policy,
        devices: devices.into_iter().map(tokio::sync::Mutex::new).collect(),
        tallies: Mutex::default(),
    });

    let first_reports = if settings.heartbeat_share > 0.0 {
        progress(&format!("sending {} first full reports", settings.devices));
        Some(first_reports(&shared, settings.concurrency).await?)
    } else {
        None
    };

    progress(&format!(
        "sending {}/s for {:.1} s",
        settings.pacing.per_second(),
        settings.duration.as_secs_f64()
    ));
    let measured = measure(&shared, settings).await?;
    Ok(Results {
        server: settings.server.clone(),
        devices: settings.devices,
        seed: settings.seed,
        rate: settings.pacing.per_second(),
        duration_secs: settings.duration.as_secs_f64(),
        heartbeat_share: settings.heartbeat_share,
        concurrency: settings.concurrency,
        enrollment,
        first_reports,
        measured,
    })
}

/// What the requests of the measured phase share.
struct Shared {
    client: Client,
    policy: Policy,
    /// A device sends one run at a time, as the agent does (its outbox is
    /// locked during a flush).
    devices: Vec<tokio::sync::Mutex<Device>>,
    tallies: Mutex<Tallies>,
}

#[derive(Default)]
struct Tallies {
    full: Tally,
    heartbeat: Tally,
}

impl Shared {
    fn tally(&self, kind: Kind, record: impl FnOnce(&mut Tally)) {
        let mut tallies = self.tallies.lock().unwrap_or_else(PoisonError::into_inner);
        record(match kind {
            Kind::Full => &mut tallies.full,
            Kind::Heartbeat => &mut tallies.heartbeat,
        });
    }

    /// One run of device `index`, due at `due`, its machine changed first
    /// when `kind` is full: a heartbeat when its facts are those the server
    /// acknowledged last, else (or when the server asks for it) the full
    /// report, as `agent/src/delivery.rs` sends.
    async fn send(&self, index: usize, kind: Kind, due: Instant) {
        let mut device = self.devices[index].lock().await;
        let now = Timestamp::now();
        if kind == Kind::Full {
            device.change(now);
        }
        let run = device.run(&self.policy, self.client.base(), now);
        if run.heartbeat {
            let body = run.heartbeat_body();
            self.tally(Kind::Heartbeat, |tally| tally.sent(body.len()));
            match self
                .client
                .post_signed(&device, "/v1/heartbeats", body)
                .await
            {
                Ok(_) => {
                    self.tally(Kind::Heartbeat, |tally| tally.ok(due.elapsed()));
                    return;
                }
                Err(failure) if failure.asks_for_full() => {
                    self.tally(Kind::Heartbeat, Tally::resend_full);
                }
                Err(failure) => {
                    self.tally(Kind::Heartbeat, |tally| tally.error(failure.to_string()));
                    return;
                }
            }
        }
        let body = run.full_body();
        self.tally(Kind::Full, |tally| tally.sent(body.len()));
        match self.client.post_signed(&device, "/v1/reports", body).await {
            Ok(_) => {
                device.acknowledge(&run);
                self.tally(Kind::Full, |tally| tally.ok(due.elapsed()));
            }
            Err(failure) => self.tally(Kind::Full, |tally| tally.error(failure.to_string())),
        }
    }
}

/// Enrolls the devices, `concurrency` at a time; the first refusal stops
/// the run (a used-up token, a wrong URL), naming the device.
async fn enroll(client: &Client, settings: &Settings) -> anyhow::Result<(Vec<Device>, Phase)> {
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks = JoinSet::new();
    for index in 0..settings.devices {
        let (client, limit, token) = (
            client.clone(),
            Arc::clone(&limit),
            settings.enroll_token.clone(),
        );
        let seed = settings.seed;
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let machine = Machine::new(seed, index as u64, Timestamp::now());
            let identity = Identity::new()?;
            let request = identity.enroll_request(&token, &machine);
            let body = serde_json::to_vec(&request)?;
            let bytes = body.len();
            let sent = Instant::now();
            let id = client.enroll(body).await.map_err(|failure| {
                anyhow::anyhow!(
                    "enrolling device {index} ({}) failed: {}",
                    request.host.hostname,
                    failure.detail()
                )
            })?;
            let device = Device::new(id, identity, machine);
            anyhow::Ok((index, device, bytes, sent.elapsed()))
        });
    }
    let mut tally = Tally::default();
    let mut devices: Vec<Option<Device>> = (0..settings.devices).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, device, bytes, latency) = joined.context("an enrollment task failed")??;
        tally.sent(bytes);
        tally.ok(latency);
        devices[index] = Some(device);
    }
    let elapsed = started.elapsed();
    Ok((
        devices.into_iter().flatten().collect(),
        Phase {
            secs: elapsed.as_secs_f64(),
            requests: tally.summary(elapsed),
        },
    ))
}

/// Every device's first run, `concurrency` at a time: unchanged facts, but
/// none acknowledged yet, so each goes in full. Counted apart from the
/// measured phase.
async fn first_reports(shared: &Arc<Shared>, concurrency: usize) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for index in 0..shared.devices.len() {
        let (shared, limit) = (Arc::clone(shared), Arc::clone(&limit));
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            shared.send(index, Kind::Heartbeat, Instant::now()).await;
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a first-report task failed")??;
    }
    let elapsed = started.elapsed();
    let tallies = std::mem::take(
        &mut *shared
            .tallies
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    Ok(Phase {
        secs: elapsed.as_secs_f64(),
        requests: tallies.full.summary(elapsed),
    })
}

/// The paced phase: each request sent when it falls due (or as soon as one
/// of the `concurrency` slots frees up), timed from when it fell due.
async fn measure(shared: &Arc<Shared>, settings: &Settings) -> anyhow::Result<Measured> {
    let mut plan = Plan::new(
        settings.seed,
        shared.devices.len(),
        settings.pacing,
        settings.duration,
        settings.heartbeat_share,
    );
    let limit = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks = JoinSet::new();
    let mut not_sent = 0;
    let start = Instant::now();
    // Requests due at the very end may be dispatched a timer tick late.
    let end = start + settings.duration + LATE_DISPATCH;
    while let Some(slot) = plan.next() {
        let due = start + slot.due;
        tokio::time::sleep_until(due).await;
        let permit = Arc::clone(&limit).acquire_owned().await?;
        if Instant::now() >= end {
            not_sent = plan.remaining() + 1;
            break;
        }
        let shared = Arc::clone(shared);
        tasks.spawn(async move {
            let _permit = permit;
            shared.send(slot.device, slot.kind, due).await;
        });
        while let Some(joined) = tasks.try_join_next() {
            joined.context("a request task failed")?;
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a request task failed")?;
    }
    let elapsed = start.elapsed();
    let tallies = shared
        .tallies
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(Measured {
        secs: elapsed.as_secs_f64(),
        not_sent,
        full: tallies.full.summary(elapsed),
        heartbeat: tallies.heartbeat.summary(elapsed),
    })
}
