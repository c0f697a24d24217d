use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use shipshape_core::wire::{DeviceStatus, facts_hash};

use super::*;
use crate::grade::fixtures::{default_policy, open_firewall, shipshape};
use crate::model::{FleetQuery, IncomingReport, NewDevice, NewToken, TokenKind};
use crate::store::sql::fleet::{self, Dialect};
use crate::store::tests::{
    active, device_table, every_story, failure_counts, fleet, query, report, t0,
};

async fn fresh() -> Option<(Box<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("shipshape.db")).unwrap();
    Some((Box::new(store), dir))
}

every_story!(fresh);

fn token(hash: [u8; 32], uses: Option<u32>) -> NewToken {
    NewToken {
        kind: TokenKind::Enroll,
        hash,
        uses,
        expires_at: None,
        created_at: t0(),
    }
}

async fn enroll(store: &SqliteStore, hash: [u8; 32], hostname: &str) -> String {
    store
        .enroll(
            &hash,
            NewDevice {
                public_key: [7; 32],
                host: shipshape(hostname, t0()).host,
                enrolled_at: t0(),
            },
        )
        .await
        .unwrap()
        .unwrap()
}

/// Report `n` of a fleet in which every fourth host leaves its firewall open.
fn numbered_report(device_id: &str, n: u64, at: Timestamp) -> IncomingReport {
    let facts = if n.is_multiple_of(4) {
        open_firewall(shipshape(&format!("host-{n}"), at))
    } else {
        shipshape(&format!("host-{n}"), at)
    };
    report(device_id, facts, at)
}

#[tokio::test]
async fn reopening_keeps_everything_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    let created = {
        let store = SqliteStore::open(&path).unwrap();
        store.create_token(token([1; 32], Some(3))).await.unwrap()
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.list_tokens().await.unwrap(), vec![created]);
    drop(store);

    let connection = Connection::open(&path).unwrap();
    let versions: i64 = connection
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(versions, sql::MIGRATIONS.len() as i64);
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_database_from_a_newer_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    drop(SqliteStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)",
            [],
        )
        .unwrap();
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(
        error
            .0
            .contains("schema version 99, newer than this server's"),
        "{error}"
    );
}

#[test]
fn a_directory_that_does_not_exist_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("shipshape.db");
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(error.0.contains("could not open the database"), "{error}");
    assert!(error.0.contains("missing"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_an_unknown_device_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("shipshape.db")).unwrap());
    store.create_token(token([1; 32], None)).await.unwrap();
    let device = enroll(&store, [1; 32], "anna").await;
    let policy = Arc::new(active(default_policy()));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64 {
        let (store, policy) = (store.clone(), policy.clone());
        let owner = if n % 8 == 0 { "not-enrolled" } else { &device };
        let report = numbered_report(owner, n, t0() + SignedDuration::from_secs(n as i64));
        tasks.spawn(async move { (n, store.record_report(report, &policy).await) });
    }
    let mut stored = 0;
    while let Some(joined) = tasks.join_next().await {
        let (n, outcome) = joined.unwrap();
        if n % 8 == 0 {
            let error = outcome.unwrap_err();
            assert!(error.0.contains("not-enrolled is not enrolled"), "{error}");
        } else {
            assert!(matches!(outcome.unwrap(), Recorded::Stored(_)));
            stored += 1;
        }
    }
    assert_eq!(stored, 56);
    let count: i64 = Connection::open(dir.path().join("shipshape.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM reports", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 56);
    store.ping().await.unwrap();
}

/// A device whose facts were stored before schema version 4 has no hash
/// stored: a heartbeat's hash is checked against the stored facts, and the
/// heartbeat stores the hash for the next one.
#[tokio::test]
async fn facts_stored_without_a_hash_are_hashed_when_a_heartbeat_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_token(token([1; 32], None)).await.unwrap();
    let device = enroll(&store, [1; 32], "anna").await;
    let policy = active(default_policy());
    let full = numbered_report(&device, 1, t0());
    let full_id = full.submission.id.clone();
    let facts = full.submission.facts.clone();
    let hash = facts_hash(&facts);
    store.record_report(full, &policy).await.unwrap();
    let stored_hash = |connection: &Connection| -> Option<String> {
        connection
            .query_row(
                "SELECT facts_hash FROM devices WHERE id = ?1",
                [&device],
                |row| row.get(0),
            )
            .unwrap()
    };
    let connection = Connection::open(&path).unwrap();
    assert_eq!(stored_hash(&connection), Some(hash.clone()));
    connection
        .execute("UPDATE devices SET facts_hash = NULL", [])
        .unwrap();

    let other = facts_hash(&numbered_report(&device, 2, t0()).submission.facts);
    assert_eq!(store.current_facts(&device, &other).await.unwrap(), None);
    let current = store
        .current_facts(&device, &hash)
        .await
        .unwrap()
        .expect("the stored facts have this hash");
    assert_eq!(current.origin.report_id, full_id);
    assert_eq!(current.facts, facts);

    let mut heartbeat = numbered_report(&device, 1, t0() + SignedDuration::from_mins(5));
    heartbeat.repeats = Some(current.origin);
    store.record_report(heartbeat, &policy).await.unwrap();
    assert_eq!(stored_hash(&connection), Some(hash));
}

/// Ingestion throughput through the store alone (no HTTP, no signatures):
/// `cargo test --release -p shipshape-server ingest_throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it with --ignored --nocapture"]
async fn ingest_throughput() {
    const DEVICES: usize = 1_000;
    const REPORTS: usize = 20_000;
    const IN_FLIGHT: usize = 256;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("shipshape.db")).unwrap());
    store.create_token(token([1; 32], None)).await.unwrap();
    let mut devices = Vec::new();
    for n in 0..DEVICES {
        devices.push(enroll(&store, [1; 32], &format!("host-{n}")).await);
    }
    let reports: Vec<IncomingReport> = (0..REPORTS)
        .map(|n| {
            numbered_report(
                &devices[n % DEVICES],
                n as u64,
                t0() + SignedDuration::from_millis(n as i64),
            )
        })
        .collect();
    let size = serde_json::to_string(&reports[0].submission).unwrap().len();
    let policy = Arc::new(active(default_policy()));
    let semaphore = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for report in reports {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let (store, policy) = (store.clone(), policy.clone());
        tasks.spawn(async move {
            let recorded = store.record_report(report, &policy).await;
            drop(permit);
            recorded
        });
    }
    let mut stored = 0;
    while let Some(joined) = tasks.join_next().await {
        if let Recorded::Stored(_) = joined.unwrap().unwrap() {
            stored += 1;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(stored, REPORTS);
    println!(
        "{REPORTS} reports of {size} bytes from {DEVICES} devices, {IN_FLIGHT} in flight: \
         {elapsed:.2?}, {:.0} reports/s",
        REPORTS as f64 / elapsed.as_secs_f64()
    );

    let lenient = "leak-severity = \"critical\"\n[checks.firewall]\nseverity = \"high\"\n";
    let started = Instant::now();
    let at = t0() + SignedDuration::from_hours(1);
    let (stored, _) = store.activate_policy(lenient, at).await.unwrap();
    let active = crate::store::ActivePolicy {
        policy: crate::grade::fixtures::policy(lenient),
        stored,
    };
    let regraded = crate::regrade::run(store.as_ref(), &active, || at)
        .await
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(regraded.done, DEVICES as u64);
    println!(
        "a policy change re-graded {DEVICES} devices in {elapsed:.2?} ({:.0?} per device)",
        elapsed / DEVICES as u32
    );
}

/// The plans SQLite chooses for the fleet's reads, one step per line.
fn plans(path: &std::path::Path) -> impl Fn(&str) -> String {
    let connection = connect(path, Role::Reader).unwrap();
    move |sql: &str| {
        let mut explain = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let mut rows = explain.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("\n")
    }
}

#[test]
fn every_page_of_the_fleet_is_a_range_of_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    drop(SqliteStore::open(&path).unwrap());
    let plan = plans(&path);
    // A scan of a table or an index; the rows of a subquery may be scanned.
    let scans = |steps: &str| steps.contains("SCAN devices") || steps.contains("SCAN device_leaks");
    let in_order = |sql: &str, range: &str| {
        let steps = plan(sql);
        assert!(
            steps.contains(&format!("INDEX {range}"))
                && !scans(&steps)
                && !steps.contains("TEMP B-TREE"),
            "{sql}\n{steps}"
        );
    };
    use crate::counts::Side;
    use fleet::Part;
    for (part, table_order, by_contact, of, id) in [
        (
            Part::Status(DeviceStatus::Leaky),
            "devices_in_table_order",
            "devices_by_contact",
            "status",
            "id",
        ),
        (
            Part::Check("firewall"),
            "device_leaks_in_table_order",
            "device_leaks_by_contact",
            "check_id",
            "device_id",
        ),
    ] {
        let walk = format!("{table_order} ({of}=? AND (sort_key,hostname,{id})>(?,?,?))");
        in_order(&part.walk_sql(Dialect::Sqlite), &walk);
        for side in [Side::Contacted, Side::Silent] {
            in_order(&part.side_sql(Dialect::Sqlite, side, true), &walk);
            let range = match side {
                Side::Contacted => format!("{by_contact} ({of}=? AND last_contact>?)"),
                Side::Silent => format!("{by_contact} ({of}=? AND last_contact<?)"),
            };
            // The few devices of a side: a range of the contact index, sorted.
            for sql in [
                part.side_sql(Dialect::Sqlite, side, false),
                part.count_sql(side),
            ] {
                let steps = plan(&sql);
                assert!(
                    steps.contains(&format!("COVERING INDEX {range}")) && !scans(&steps),
                    "{sql}\n{steps}"
                );
            }
        }
    }
}

/// Silent devices of every status: many of one (walked, past a long run
/// of contacted ones) and few of the others (sorted from the contact index):
/// the silent group merges them in table order, in pages large and small.
#[tokio::test]
async fn silent_devices_of_every_status_are_listed_in_table_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    let store = SqliteStore::open(&path).unwrap();
    let silent = 2_300;
    let long_ago = t0() - SignedDuration::from_hours(24 * 5);
    {
        // Written directly: enrolling this many through the store takes a while.
        let mut connection = connect(&path, Role::Writer).unwrap();
        let transaction = connection.transaction().unwrap();
        // Compliant: 2,000 silent of 10,000, the first and the last
        // thousand (walked, past the 8,000 between); leaky: 100 of 30,000
        // and unknown: 200 of 20,000 (sorted).
        for n in 0..60_000 {
            let (status, silent) = match n % 6 {
                0 => ("compliant", !(6_000..54_000).contains(&n)),
                1..=3 => ("leaky", n % 600 == 1),
                _ => ("unknown", n % 600 == 4 || n % 600 == 5),
            };
            let hostname = format!("{}-{n:05}", ["Zed", "amy", "Bob"][n % 3]);
            let contact = if silent { long_ago } else { t0() };
            transaction
                .execute(
                    "INSERT INTO devices (id, public_key, hostname, sort_key, os_family, os_name,
                         enrolled_at, last_contact, status, leaking_checks)
                     VALUES (?1, ?2, ?3, lower(?3), 'linux', 'Debian', ?4, ?4, ?5, '[]')",
                    (
                        format!("{n:08}"),
                        hex::encode([7; 32]),
                        &hostname,
                        Ms(contact),
                        status,
                    ),
                )
                .unwrap();
        }
        transaction
            .execute_batch(
                "DELETE FROM status_counts;
                 INSERT INTO status_counts (status, shard, devices)
                     SELECT status, 0, COUNT(*) FROM devices GROUP BY status;",
            )
            .unwrap();
        transaction.commit().unwrap();
    }
    crate::store::tests::silent_group_pages_in_table_order(&store, silent).await;
}

/// A database of version 1 is migrated: the check filter finds its leaks
/// (version 2), its devices have sort keys, their findings a table of their
/// own and its counts are filled, and its active policy's re-grade counts
/// as done (version 3).
#[tokio::test]
async fn a_database_of_version_1_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    let recently = t0() - SignedDuration::from_hours(1);
    let long_ago = t0() - SignedDuration::from_hours(24 * 5);
    {
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE schema_migrations (
                     version BIGINT PRIMARY KEY,
                     applied_at BIGINT NOT NULL
                 );
                 INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0);",
            )
            .unwrap();
        connection.execute_batch(sql::MIGRATIONS[0]).unwrap();
        for (id, hostname, last_contact, leaks) in [
            ("1", "zulu", recently, &["firewall", "os-updates"][..]),
            ("2", "Yankee", long_ago, &["firewall"][..]),
            ("3", "xray", recently, &[][..]),
        ] {
            let status = if leaks.is_empty() {
                "compliant"
            } else {
                "leaky"
            };
            connection
                .execute(
                    "INSERT INTO devices (id, public_key, hostname, os_family, os_name,
                         enrolled_at, last_seen, last_contact, status, leaking_checks, findings_json)
                     VALUES (?1, ?2, ?3, 'linux', 'Debian', ?4, ?4, ?4, ?5, ?6, '[]')",
                    (
                        id,
                        hex::encode([7; 32]),
                        hostname,
                        Ms(last_contact),
                        status,
                        serde_json::to_string(leaks).unwrap(),
                    ),
                )
                .unwrap();
            for check in leaks {
                connection
                    .execute(
                        "INSERT INTO device_leaks (device_id, check_id) VALUES (?1, ?2)",
                        (id, check),
                    )
                    .unwrap();
            }
        }
    }

    {
        let connection = Connection::open(&path).unwrap();
        for activated_at in [1, 2] {
            connection
                .execute(
                    "INSERT INTO policies (policy_text, etag, activated_at)
                     VALUES ('', '\"etag\"', ?1)",
                    [activated_at],
                )
                .unwrap();
        }
    }

    let store = SqliteStore::open(&path).unwrap();
    let everything = fleet(&store, &query(t0())).await;
    assert_eq!(
        device_table(&everything),
        [
            ("zulu", DeviceStatus::Leaky),
            ("Yankee", DeviceStatus::Silent),
            ("xray", DeviceStatus::Compliant)
        ]
    );
    let summary = &everything.summary;
    assert_eq!(
        (
            summary.total,
            summary.leaky,
            summary.silent,
            summary.compliant
        ),
        (3, 1, 1, 1)
    );
    let progress = store.regrade_progress().await.unwrap().unwrap();
    assert_eq!(
        (progress.policy_id, progress.state),
        (2, crate::model::RegradeState::Done)
    );
    let filtered = |check: &str| FleetQuery {
        check: Some(check.to_owned()),
        ..query(t0())
    };
    let page = fleet(&store, &filtered("firewall")).await;
    let table = device_table(&page);
    assert_eq!(
        table,
        [
            ("zulu", DeviceStatus::Leaky),
            ("Yankee", DeviceStatus::Silent)
        ]
    );
    assert_eq!(page.matching, 2);
    let failures = failure_counts(&page);
    assert_eq!(failures, [("firewall", 2), ("os-updates", 1)]);
    let page = fleet(&store, &filtered("os-updates")).await;
    assert_eq!(page.devices.len(), 1);
    assert_eq!(page.devices[0].hostname, "zulu");
    // The findings moved to a table of their own (version 3): every device
    // still has them.
    for id in ["1", "2", "3"] {
        let device = store.device(id, query(t0()).staleness).await.unwrap();
        assert!(
            device.is_some_and(|device| device.findings.is_empty()),
            "{id}"
        );
    }
}
