//! Server benchmark: signed report ingestion. (The fleet views, the CSV
//! export and the re-grade at scale are the `fleet` benchmark's.)
//!
//! ```sh
//! cargo bench -p shipshape-server --bench ingest               # full run
//! cargo bench -p shipshape-server --bench ingest -- --quick    # a smoke run
//! ```
//!
//! 1. **Ingestion.** A real server (the same router and SQLite store as
//!    `shipshape-server serve`, on a database on disk) on 127.0.0.1; `devices`
//!    simulated devices enroll over HTTP, then send `reports` signed full
//!    reports with `concurrency` requests in flight. Requests are signed
//!    before the clock starts, so the number is the server's, not the
//!    client's signing speed (both share this machine's cores). Afterwards the
//!    database must hold exactly one row per report: nothing lost.
//!
//! Target on the 2-core dev machine: ≥ 1,000 reports/s.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use jiff::{SignedDuration, Timestamp};
use shipshape_core::Facts;
use shipshape_core::report::CheckReport;
use shipshape_core::signing::sign_request;
use shipshape_core::wire::{EnrollRequest, EnrollResponse, ReportSubmission};
use shipshape_server::model::TokenKind;
use shipshape_server::store::{SqliteStore, Store};

use common::{FACTS, REPORT, app_state, listen, percentiles, token};

struct Settings {
    devices: usize,
    reports: usize,
    concurrency: usize,
}

impl Settings {
    fn from_args() -> Settings {
        let quick = std::env::args().any(|arg| arg == "--quick");
        if quick {
            Settings {
                devices: 50,
                reports: 2_000,
                concurrency: 32,
            }
        } else {
            Settings {
                devices: 500,
                reports: 20_000,
                concurrency: 64,
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(ingestion(&settings))
}

/// A served store: its address, and the store for direct inspection.
struct Served {
    base: String,
    store: Arc<dyn Store>,
}

async fn serve(path: &Path) -> anyhow::Result<Served> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path)?);
    let state = app_state(store.clone(), SignedDuration::from_hours(48)).await?;
    let base = listen(state).await?;
    Ok(Served { base, store })
}

fn device_key(index: usize) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(index as u64).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// The captured facts and report, as device number `index` would send them.
fn submission(index: usize) -> anyhow::Result<ReportSubmission> {
    let hostname = format!("bench-{index:06}");
    let mut facts: Facts = serde_json::from_str(FACTS)?;
    facts.host.hostname.clone_from(&hostname);
    let mut report: CheckReport = serde_json::from_str(REPORT)?;
    report.host.hostname = hostname;
    report.checked_at = Timestamp::now();
    Ok(ReportSubmission {
        id: uuid::Uuid::now_v7().to_string(),
        facts,
        report,
        dropped: 0,
    })
}

struct Signed {
    body: Vec<u8>,
    headers: [(&'static str, String); 3],
}

async fn ingestion(settings: &Settings) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let served = serve(&dir.path().join("shipshape.db")).await?;
    let client = reqwest::Client::new();
    let enroll = token(served.store.as_ref(), TokenKind::Enroll).await?;

    let mut ids = Vec::with_capacity(settings.devices);
    for index in 0..settings.devices {
        let host = submission(index)?.facts.host;
        let request = EnrollRequest {
            token: enroll.clone(),
            public_key: STANDARD.encode(device_key(index).verifying_key().as_bytes()),
            host,
        };
        let response = client
            .post(format!("{}/v1/enroll", served.base))
            .json(&request)
            .send()
            .await?
            .error_for_status()?;
        ids.push(response.json::<EnrollResponse>().await?.device_id);
    }

    let url = format!("{}/v1/reports", served.base);
    let created = Timestamp::now().as_second();
    let mut requests = Vec::with_capacity(settings.reports);
    for number in 0..settings.reports {
        let device = number % settings.devices;
        let body = serde_json::to_vec(&submission(device)?)?;
        let signed = sign_request(
            "POST",
            &url,
            &body,
            &device_key(device),
            &ids[device],
            created,
            &format!("bench-{number}"),
        )?;
        requests.push(Signed {
            body,
            headers: [
                ("content-digest", signed.content_digest),
                ("signature-input", signed.signature_input),
                ("signature", signed.signature),
            ],
        });
    }
    let body_bytes: usize = requests.iter().map(|request| request.body.len()).sum();

    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..settings.concurrency).map(|_| {
        let (requests, next, client, url) =
            (requests.clone(), next.clone(), client.clone(), url.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let number = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(number) else {
                    return Ok::<_, anyhow::Error>(latencies);
                };
                let sent = Instant::now();
                let mut builder = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(request.body.clone());
                for (name, value) in &request.headers {
                    builder = builder.header(*name, value);
                }
                let response = builder.send().await?;
                let status = response.status();
                anyhow::ensure!(
                    status.is_success(),
                    "report {number} refused: {status} {}",
                    response.text().await.unwrap_or_default()
                );
                response.bytes().await?;
                latencies.push(sent.elapsed());
            }
        })
    });
    let mut latencies = Vec::with_capacity(settings.reports);
    for worker in workers.collect::<Vec<_>>() {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed();

    let stored: i64 = rusqlite::Connection::open(dir.path().join("shipshape.db"))?.query_row(
        "SELECT COUNT(*) FROM reports",
        [],
        |row| row.get(0),
    )?;
    println!(
        "ingestion: {} signed full reports ({} B each on average) from {} devices, {} in flight",
        settings.reports,
        body_bytes / settings.reports,
        settings.devices,
        settings.concurrency
    );
    println!(
        "  {:.0} reports/s over {:.2} s; latency {}",
        settings.reports as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        percentiles(&mut latencies)
    );
    println!(
        "  stored {stored} of {} acknowledged reports{}",
        settings.reports,
        if stored == settings.reports as i64 {
            ": nothing lost"
        } else {
            ": LOST REPORTS"
        }
    );
    anyhow::ensure!(stored == settings.reports as i64, "reports were lost");
    Ok(())
}
