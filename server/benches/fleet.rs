//! Server benchmark: the fleet views, the CSV export and the re-grade at
//! scale, on SQLite or PostgreSQL.
//!
//! ```sh
//! cargo bench -p shipshape-server --bench fleet                  # 100,000 and 1,000,000 devices
//! cargo bench -p shipshape-server --bench fleet -- --quick       # 5,000 and 20,000: a smoke run
//! cargo bench -p shipshape-server --bench fleet -- --devices 100000 --keep ../target/bench-fleet
//! cargo bench -p shipshape-server --bench fleet -- --devices 1000000 --keep ../target/bench-fleet --only csv
//! cargo bench -p shipshape-server --bench fleet -- --db postgres://postgres@127.0.0.1:5432/test \
//!     --devices 100000 --keep
//! ```
//!
//! For each fleet size a database is filled through the store's own writes
//! (enrollment, then one signed-and-verified-shaped report per device graded
//! by the built-in policy: the real captured facts, varied so that 60 % of
//! the devices are compliant, 20 % leak on the firewall, 20 % on disk
//! encryption, 10 % have updates in grace, 2 % are silent and 1 % never
//! reported). On SQLite (the default) it is a file: `--keep DIR` (relative
//! to `server/`) keeps the databases and reuses a full one. With
//! `--db postgres://…` each size gets a schema of its own in that database,
//! `bench_fleet_<devices>` (created if missing, the store's tables migrated
//! into it): dropped and made afresh unless `--keep` (no directory) keeps and
//! reuses it; it is vacuumed and analyzed before the timings, as autovacuum
//! would. `--only pages|csv|regrade` runs one part.
//!
//! Then, over HTTP on 127.0.0.1 (the same router as `serve`):
//! 1. the fleet page (HTML) and `/v1/fleet` (JSON): the first page, a deep
//!    page (a cursor three quarters into the table), the worst check filter
//!    (the most-failed check, first and deep page) and the silent devices
//!    (first and deep page); 30 requests each, p50/p95/p99; then the same
//!    with a server whose stale-after is a minute, where nearly every device
//!    is silent (as after an outage);
//! 2. `/v1/fleet.csv` of the whole fleet: time, size, and the process's
//!    peak resident memory while it streams;
//! 3. re-grades (`PUT /v1/policy`, then `/v1/policy/status` polled until
//!    done): a policy that changes every device's findings (every `high`
//!    severity made `critical`), back to the default (every device again),
//!    the firewall check made `medium` (every device's findings change, and
//!    the devices leaking on the firewall alone become compliant), and that
//!    policy under another text (no device's grade changes: reading and
//!    grading alone); the fleet page is timed while they run.
//!
//! Targets (2-core machine): fleet page < 100 ms at 1M devices, 1M-row CSV
//! < 10 s, 1M-device re-grade < 60 s.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use shipshape_core::Facts;
use shipshape_core::facts::{Inbound, Observed, VolumeEncryption};
use shipshape_core::report::CheckReport;
use shipshape_core::wire::{DeviceStatus, ReportSubmission};
use shipshape_server::api::policy;
use shipshape_server::auth::hash_token;
use shipshape_server::keyset::FleetCursor;
use shipshape_server::model::{FleetQuery, IncomingReport, NewDevice, Staleness, TokenKind};
use shipshape_server::store::{PostgresStore, PostgresUrl, SqliteStore, Store};

use common::{FACTS, REPORT, app_state, listen, percentiles, token};

const STALE_AFTER: SignedDuration = SignedDuration::from_hours(48);

struct Settings {
    sizes: Vec<usize>,
    /// The base URL of a PostgreSQL database; SQLite files when `None`.
    postgres: Option<String>,
    keep: Option<PathBuf>,
    only: Option<String>,
}

impl Settings {
    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }
}

impl Settings {
    fn from_args() -> anyhow::Result<Settings> {
        let args: Vec<String> = std::env::args().collect();
        let value = |name: &str| {
            args.iter()
                .position(|arg| arg == name)
                .and_then(|at| args.get(at + 1))
                .cloned()
        };
        let sizes = match value("--devices") {
            Some(sizes) => sizes
                .split(',')
                .map(|size| size.parse::<usize>())
                .collect::<Result<_, _>>()?,
            None if args.iter().any(|arg| arg == "--quick") => vec![5_000, 20_000],
            None => vec![100_000, 1_000_000],
        };
        let postgres = value("--db");
        let keep = match &postgres {
            // A flag for PostgreSQL: the schema stays in its database.
            Some(_) if args.iter().any(|arg| arg == "--keep") => Some(PathBuf::new()),
            Some(_) => None,
            None => value("--keep").map(PathBuf::from),
        };
        if let Some(url) = &postgres {
            anyhow::ensure!(
                url.starts_with("postgres://") || url.starts_with("postgresql://"),
                "--db {url}: give a postgres:// URL (SQLite is the default)"
            );
        }
        Ok(Settings {
            sizes,
            postgres,
            keep,
            only: value("--only"),
        })
    }
}

fn main() -> anyhow::Result<()> {
    let settings = Settings::from_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for &devices in &settings.sizes {
            fleet(devices, &settings).await?;
        }
        Ok(())
    })
}

/// A served store: its address, the store, and an admin token.
struct Served {
    base: String,
    store: Arc<dyn Store>,
    admin: String,
}

/// Where a fleet size's database is.
enum Database {
    Sqlite(PathBuf),
    /// A schema of the database at `url`.
    Postgres {
        base: String,
        schema: String,
    },
}

impl Database {
    fn url(base: &str, schema: &str) -> String {
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}options=-csearch_path%3D{schema}")
    }

    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Database::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
            Database::Postgres { base, schema } => {
                let url: PostgresUrl = Database::url(base, schema)
                    .parse()
                    .map_err(|error: String| anyhow::anyhow!(error))?;
                Arc::new(PostgresStore::open(&url).await?)
            }
        })
    }

    /// Vacuums and gathers the planner's statistics on PostgreSQL, as
    /// autovacuum does on a running server (the test database may have it
    /// off): index-only scans need the visibility map a vacuum sets.
    async fn vacuum(&self) -> anyhow::Result<()> {
        if let Database::Postgres { base, schema } = self {
            postgres(&Database::url(base, schema))
                .await?
                .batch_execute(
                    "VACUUM (ANALYZE) devices, device_leaks, device_findings, reports, status_counts, \
                     check_counts",
                )
                .await?;
        }
        Ok(())
    }

    /// How much room its tables and indexes take, in bytes.
    async fn size(&self) -> anyhow::Result<u64> {
        Ok(match self {
            Database::Sqlite(path) => ["", "-wal"]
                .iter()
                .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
                .map(|metadata| metadata.len())
                .sum(),
            Database::Postgres { base, schema } => {
                let size: i64 = postgres(base)
                    .await?
                    .query_one(
                        "SELECT CAST(COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS BIGINT)
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = $1 AND c.relkind = 'r'",
                        &[schema],
                    )
                    .await?
                    .try_get(0)?;
                u64::try_from(size)?
            }
        })
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres { schema, .. } => write!(f, "PostgreSQL schema {schema}"),
        }
    }
}

/// A plain connection to the database at `url`.
async fn postgres(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn serve(database: &Database, stale_after: SignedDuration) -> anyhow::Result<Served> {
    let store = database.open().await?;
    let state = app_state(store.clone(), stale_after).await?;
    state.resume_regrade().await;
    let base = listen(state).await?;
    let admin = token(store.as_ref(), TokenKind::Admin).await?;
    Ok(Served { base, store, admin })
}

async fn fleet(devices: usize, settings: &Settings) -> anyhow::Result<()> {
    let dir;
    let database = match (&settings.postgres, settings.keep.as_deref()) {
        (Some(base), keep) => {
            let schema = format!("bench_fleet_{devices}");
            let client = postgres(base).await?;
            if keep.is_none() {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await?;
            }
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
            Database::Postgres {
                base: base.clone(),
                schema,
            }
        }
        (None, Some(keep)) => {
            std::fs::create_dir_all(keep)?;
            Database::Sqlite(keep.join(format!("fleet-{devices}.db")))
        }
        (None, None) => {
            dir = tempfile::tempdir()?;
            Database::Sqlite(dir.path().join("shipshape.db"))
        }
    };
    let served = serve(&database, STALE_AFTER).await?;
    let now = Timestamp::now();
    let everything = FleetQuery {
        status: None,
        check: None,
        after: None,
        per_page: 1,
        staleness: Staleness {
            now,
            stale_after: STALE_AFTER,
        },
    };
    let enrolled = served.store.fleet_summary(&everything).await?.summary.total;
    if enrolled as usize != devices {
        anyhow::ensure!(
            enrolled == 0,
            "{database} holds {enrolled} devices, not {devices}"
        );
        seed(&served.store, devices).await?;
    } else {
        println!("fleet of {devices}: reusing {database}");
    }
    database.vacuum().await?;
    let counts = served.store.fleet_summary(&everything).await?;
    let summary = &counts.summary;
    println!(
        "fleet of {devices} devices: {} leaky, {} silent, {} unknown, {} compliant; database {:.1} GB",
        summary.leaky,
        summary.silent,
        summary.unknown,
        summary.compliant,
        database.size().await? as f64 / 1e9
    );
    let worst = counts
        .failures_by_check
        .first()
        .map(|failures| failures.check.clone())
        .ok_or_else(|| anyhow::anyhow!("no check fails"))?;

    if settings.runs("pages") {
        pages(&served, devices, &worst, "").await?;
        // The same fleet where a device is silent after a minute: nearly all
        // of them are (a server that was down), and the silent group is walked.
        let quiet = serve(&database, SignedDuration::from_mins(1)).await?;
        pages(&quiet, devices, &worst, "nearly all silent, ").await?;
    }
    if settings.runs("csv") {
        csv(&served, devices).await?;
    }
    if settings.runs("regrade") {
        regrades(&served, devices).await?;
    }
    if let (Database::Postgres { base, schema }, None) = (&database, &settings.keep) {
        postgres(base)
            .await?
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await?;
    }
    Ok(())
}

/// The machine's load (runnable processes, averaged over a minute): the
/// benchmark shares two cores, so a figure taken under load reads as such.
fn load() -> String {
    let average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "load {}",
        average.split_whitespace().next().unwrap_or("unknown")
    )
}

/// The captured facts, as device number `index` would send them.
fn facts(index: usize, at: Timestamp) -> anyhow::Result<Facts> {
    let mut facts: Facts = serde_json::from_str(FACTS)?;
    facts.host.hostname = hostname(index);
    if index % 10 == 9 {
        // As captured: an unencrypted disk, no readable firewall, updates
        // pending and automatic updates off.
        return Ok(facts);
    }
    if let Observed::Observed(disk) = &mut facts.disk_encryption
        && index % 10 != 7
    {
        for volume in &mut disk.volumes {
            volume.encryption = VolumeEncryption::Encrypted;
            volume.method = Some("dm-crypt LUKS2".to_owned());
        }
    }
    if let Observed::Observed(updates) = &mut facts.os_updates
        && index % 10 != 8
    {
        if let Observed::Observed(pending) = &mut updates.pending {
            pending.total = 0;
            pending.security = 0;
            pending.security_packages.clear();
            pending.metadata_updated = Some(at - SignedDuration::from_hours(3));
        }
        if let Observed::Observed(automatic) = &mut updates.automatic {
            automatic.enabled = true;
            automatic.detail = None;
        }
    }
    facts.firewall = Observed::Observed(shipshape_core::facts::Firewall {
        backend: "nftables".to_owned(),
        enabled: true,
        inbound: if index % 10 == 6 {
            Inbound::Allowed
        } else {
            Inbound::Blocked
        },
        stealth: None,
        profiles: Vec::new(),
        notes: Vec::new(),
    });
    Ok(facts)
}

fn hostname(index: usize) -> String {
    format!("bench-{index:07}")
}

/// Enrolls `devices` devices and stores a report for 99 % of them, 256 at
/// a time, through the store's own writes. Each of 16 enrollment tokens
/// serves 16 of the workers: enrollment locks its token's row (PostgreSQL),
/// and one token would make every enrollment wait for the one before.
async fn seed(store: &Arc<dyn Store>, devices: usize) -> anyhow::Result<()> {
    let mut hashes = Vec::new();
    for _ in 0..16 {
        hashes.push(hash_token(&token(store.as_ref(), TokenKind::Enroll).await?));
    }
    let active = Arc::new(policy::activate_at_start(store.as_ref(), None, Timestamp::now()).await?);
    let report: Arc<CheckReport> = Arc::new(serde_json::from_str(REPORT)?);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let seeded = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..256 {
        let hash = hashes[worker % hashes.len()];
        let (store, active, report) = (Arc::clone(store), Arc::clone(&active), Arc::clone(&report));
        let (next, seeded) = (Arc::clone(&next), Arc::clone(&seeded));
        workers.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= devices {
                    return Ok::<_, anyhow::Error>(());
                }
                let now = Timestamp::now();
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&(index as u64).to_le_bytes());
                // Those that never report enrolled lately: unknown, not silent.
                let reports = index % 100 != 1;
                let device = NewDevice {
                    public_key: key,
                    host: facts(index, now)?.host,
                    enrolled_at: now
                        - SignedDuration::from_hours(if reports { 24 * 30 } else { 1 }),
                };
                let id = store
                    .enroll(&hash, device)
                    .await?
                    .map_err(|refusal| anyhow::anyhow!("enrollment refused: {refusal:?}"))?;
                if reports {
                    let at = if index % 50 == 0 {
                        now - SignedDuration::from_hours(24 * 5)
                    } else {
                        now - SignedDuration::from_mins((index % 600) as i64)
                    };
                    let facts = facts(index, at)?;
                    let mut report = CheckReport::clone(&report);
                    report.host = facts.host.clone();
                    report.checked_at = at;
                    let incoming = IncomingReport {
                        device_id: id,
                        received_at: at,
                        nonce: format!("seed-{index}"),
                        submission: ReportSubmission {
                            id: uuid::Uuid::now_v7().to_string(),
                            facts,
                            report,
                            dropped: 0,
                        },
                        repeats: None,
                    };
                    store.record_report(incoming, &active).await?;
                }
                let done = seeded.fetch_add(1, Ordering::Relaxed) + 1;
                if done % 100_000 == 0 {
                    println!(
                        "  seeded {done} devices in {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
    }
    while let Some(result) = workers.join_next().await {
        result??;
    }
    println!(
        "fleet of {devices}: seeded through the store in {:.0} s ({:.0} devices/s)",
        started.elapsed().as_secs_f64(),
        devices as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Times `path` (GET with the admin token) `runs` times; the size and the
/// latencies.
async fn time_get(
    client: &reqwest::Client,
    served: &Served,
    path: &str,
    runs: usize,
) -> anyhow::Result<(usize, Vec<Duration>)> {
    let url = format!("{}{path}", served.base);
    let mut latencies = Vec::with_capacity(runs);
    let mut size = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let response = client.get(&url).bearer_auth(&served.admin).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        size = response.bytes().await?.len();
        latencies.push(started.elapsed());
    }
    Ok((size, latencies))
}

async fn pages(served: &Served, devices: usize, worst: &str, label: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    println!(
        "  {devices}: {label}pages, 30 requests each ({} at the start)",
        load()
    );
    // Three quarters into the compliant group, and into the worst check's
    // leaky group: their keys are known from the hostnames.
    let deep = |group: DeviceStatus| {
        FleetCursor {
            group,
            hostname: hostname(devices * 3 / 4),
            id: "~".to_owned(),
        }
        .encode()
    };
    let compliant = deep(DeviceStatus::Compliant);
    let leaky = deep(DeviceStatus::Leaky);
    let silent = deep(DeviceStatus::Silent);
    let cases = [
        ("HTML fleet page, first page", "/".to_owned()),
        (
            "HTML fleet page, deep page (cursor)",
            format!("/?after={compliant}"),
        ),
        (
            "HTML fleet page, worst check filter",
            format!("/?check={worst}"),
        ),
        (
            "HTML fleet page, worst check filter, deep page",
            format!("/?check={worst}&after={leaky}"),
        ),
        (
            "HTML fleet page, silent devices",
            "/?status=silent".to_owned(),
        ),
        (
            "HTML fleet page, silent devices, deep page",
            format!("/?status=silent&after={silent}"),
        ),
        ("JSON /v1/fleet, first page", "/v1/fleet".to_owned()),
        (
            "JSON /v1/fleet, deep page (cursor)",
            format!("/v1/fleet?after={compliant}"),
        ),
        (
            "JSON /v1/fleet, worst check filter",
            format!("/v1/fleet?check={worst}"),
        ),
        (
            "JSON /v1/fleet, 1000 devices a page",
            "/v1/fleet?per_page=1000".to_owned(),
        ),
    ];
    for (name, path) in cases {
        time_get(&client, served, &path, 3).await?;
        let (size, mut latencies) = time_get(&client, served, &path, 30).await?;
        println!(
            "  {devices}: {label}{name} ({size} B): {}",
            percentiles(&mut latencies)
        );
    }
    Ok(())
}

/// The resident memory of this process, in bytes.
fn resident() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

async fn csv(served: &Served, devices: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let peak = Arc::new(AtomicU64::new(0));
    let before = resident();
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(resident(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let mut response = client
        .get(format!("{}/v1/fleet.csv", served.base))
        .bearer_auth(&served.admin)
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "CSV: {}", response.status());
    let first_byte = started.elapsed();
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len();
        lines += chunk.iter().filter(|&&byte| byte == b'\n').count();
    }
    let elapsed = started.elapsed();
    sampler.abort();
    anyhow::ensure!(
        lines == devices + 1,
        "the CSV has {lines} lines, not {}",
        devices + 1
    );
    println!(
        "  {devices}: CSV of every device: {:.2} s ({:.0} rows/s, {:.0} MB, first byte after {:.0} ms); \
         resident memory {:.0} MB before, at most {:.0} MB while streaming; {} at the end",
        elapsed.as_secs_f64(),
        devices as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1e6,
        first_byte.as_secs_f64() * 1000.0,
        before as f64 / 1e6,
        peak.load(Ordering::Relaxed) as f64 / 1e6,
        load(),
    );
    Ok(())
}

async fn regrades(served: &Served, devices: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let stamp = Timestamp::now().as_millisecond();
    let default = policy::BUILT_IN;
    let critical = default.replace("severity = \"high\"", "severity = \"critical\"");
    let firewall_medium = default.replace(
        "[checks.firewall]\nseverity = \"high\"",
        "[checks.firewall]\nseverity = \"medium\"",
    );
    let runs = [
        (
            "every device's findings change",
            format!("{critical}\n# run {stamp}\n"),
        ),
        (
            "every device's findings change back",
            format!("{default}\n# run {stamp}\n"),
        ),
        (
            "an open firewall stops leaking (every device's findings change)",
            format!("{firewall_medium}\n# run {stamp}\n"),
        ),
        (
            "no device's grade changes",
            format!("{firewall_medium}\n# run {stamp}, again\n"),
        ),
    ];
    for (name, text) in runs {
        let started = Instant::now();
        let put = client
            .put(format!("{}/v1/policy", served.base))
            .bearer_auth(&served.admin)
            .body(text)
            .send()
            .await?;
        anyhow::ensure!(
            put.status().as_u16() == 202,
            "PUT /v1/policy: {}",
            put.status()
        );
        let answered = started.elapsed();
        let mut while_running = Vec::new();
        let progress = loop {
            let progress: serde_json::Value = client
                .get(format!("{}/v1/policy/status", served.base))
                .bearer_auth(&served.admin)
                .send()
                .await?
                .json()
                .await?;
            if progress["state"] != "running" {
                break progress;
            }
            let (_, latencies) = time_get(&client, served, "/", 1).await?;
            while_running.extend(latencies);
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let elapsed = started.elapsed();
        anyhow::ensure!(progress["state"] == "done", "re-grade ended {progress}");
        anyhow::ensure!(
            progress["done"].as_u64() == Some(devices as u64),
            "re-grade looked at {} devices",
            progress["done"]
        );
        println!(
            "  {devices}: re-grade, {name}: {:.1} s ({:.0} devices/s; {} changed status); \
             PUT answered in {:.0} ms; fleet page meanwhile {}; {} at the end",
            elapsed.as_secs_f64(),
            devices as f64 / elapsed.as_secs_f64(),
            progress["changed_status"],
            answered.as_secs_f64() * 1000.0,
            if while_running.is_empty() {
                "not sampled".to_owned()
            } else {
                percentiles(&mut while_running)
            },
            load()
        );
    }
    Ok(())
}
