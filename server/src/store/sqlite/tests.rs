use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use shipshape_core::wire::DeviceStatus;

use super::*;
use crate::grade::fixtures::{default_policy, open_firewall, shipshape};
use crate::model::{FleetQuery, IncomingReport, NewDevice, NewToken, TokenKind};
use crate::store::tests::{active, device_table, every_story, failure_counts, query, report, t0};

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
    let (_, regraded) = store
        .activate_policy(
            lenient,
            &crate::grade::fixtures::policy(lenient),
            t0() + SignedDuration::from_hours(1),
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(regraded.devices, DEVICES as u64);
    println!(
        "a policy change re-graded {DEVICES} devices in {elapsed:.2?} ({:.0?} per device)",
        elapsed / DEVICES as u32
    );
}

/// The fleet page over 100,000 devices:
/// `cargo test --release -p shipshape-server fleet_of_100k -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it with --ignored --nocapture"]
async fn fleet_of_100k() {
    const DEVICES: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    let store = SqliteStore::open(&path).unwrap();
    let now = t0();
    {
        let mut connection = connect(&path, Role::Writer).unwrap();
        let transaction = connection.transaction().unwrap();
        let checks = ["firewall", "os-updates", "disk-encryption"];
        for n in 0..DEVICES {
            let id = format!("{:032x}", n * 7919 % DEVICES);
            let (status, leaks): (&str, &[&str]) = match n % 10 {
                0 => ("leaky", &checks[..1]),
                1 => ("leaky", &checks[1..]),
                2 => ("unknown", &[]),
                _ => ("compliant", &[]),
            };
            let last_contact = if n % 50 == 0 {
                now - SignedDuration::from_hours(24 * 5)
            } else {
                now - SignedDuration::from_mins((n % 600) as i64)
            };
            let hostname = format!("host-{:06}", (n * 104_729) % DEVICES);
            transaction
                .execute(
                    "INSERT INTO devices (id, public_key, hostname, os_family, os_name, os_version,
                         enrolled_at, last_seen, last_contact, status, leaking_checks, findings_json)
                     VALUES (?1, ?2, ?3, 'linux', 'Debian GNU/Linux 12 (bookworm)', '12',
                         ?4, ?5, ?5, ?6, ?7, '[]')",
                    (
                        &id,
                        hex::encode([7; 32]),
                        &hostname,
                        Ms(now - SignedDuration::from_hours(24 * 30)),
                        Ms(last_contact),
                        status,
                        serde_json::to_string(leaks).unwrap(),
                    ),
                )
                .unwrap();
            for check in leaks {
                transaction
                    .execute(
                        "INSERT INTO device_leaks (device_id, check_id, hostname, last_contact)
                         VALUES (?1, ?2, ?3, ?4)",
                        (&id, check, &hostname, Ms(last_contact)),
                    )
                    .unwrap();
            }
        }
        transaction.commit().unwrap();
        connection.execute_batch("ANALYZE").unwrap();
    }
    let staleness = Staleness {
        now,
        stale_after: SignedDuration::from_hours(48),
    };
    let query = |status, check: Option<&str>, page| FleetQuery {
        status,
        check: check.map(str::to_owned),
        page,
        per_page: 50,
        staleness,
    };
    let cases = [
        ("first page", query(None, None, 1)),
        ("page 1000", query(None, None, 1000)),
        ("leaky", query(Some(DeviceStatus::Leaky), None, 1)),
        ("silent", query(Some(DeviceStatus::Silent), None, 1)),
        ("compliant", query(Some(DeviceStatus::Compliant), None, 1)),
        ("failing firewall", query(None, Some("firewall"), 1)),
        (
            "failing os-updates, page 150",
            query(None, Some("os-updates"), 150),
        ),
        (
            "silent, failing firewall",
            query(Some(DeviceStatus::Silent), Some("firewall"), 1),
        ),
    ];
    for (name, query) in cases {
        store.fleet(&query).await.unwrap();
        let runs = 5;
        let started = Instant::now();
        let mut page = None;
        for _ in 0..runs {
            page = Some(store.fleet(&query).await.unwrap());
        }
        let each = started.elapsed() / runs;
        let page = page.unwrap();
        println!(
            "{name}: {each:.1?} per fleet page ({} devices, {} matching)",
            page.summary.total, page.matching
        );
        assert_eq!(page.summary.total, DEVICES as u64);
        assert!(
            each.as_millis() < 200,
            "{name} took {each:?}, the target is < 200 ms"
        );
    }
}

#[test]
fn the_fleet_filtered_by_a_check_is_read_from_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shipshape.db");
    drop(SqliteStore::open(&path).unwrap());
    let connection = connect(&path, Role::Reader).unwrap();
    let plan = |sql: &str| -> String {
        let mut explain = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let mut rows = explain.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps.join("\n")
    };
    let mut filtered = 0;
    for group in &sql::fleet::GROUPS {
        let page = plan(&sql::fleet::page_sql(group.devices));
        assert!(!page.contains("TEMP B-TREE"), "{:?}: {page}", group.status);
        if let Some(condition) = group.leaking {
            let page = plan(&sql::fleet::leaking_page_sql(condition));
            assert!(
                page.contains("USING COVERING INDEX device_leaks_in_table_order (check_id=?)")
                    && !page.contains("SCAN")
                    && !page.contains("TEMP B-TREE"),
                "{:?}: {page}",
                group.status
            );
            filtered += 1;
        }
    }
    assert_eq!(filtered, 2, "the leaky and the silent group");
    let silent = plan(sql::fleet::SILENT_LEAKING);
    assert!(
        silent.contains(
            "USING COVERING INDEX device_leaks_by_contact (check_id=? AND last_contact<?)"
        ) && !silent.contains("SCAN"),
        "{silent}"
    );
}

#[tokio::test]
async fn leaks_stored_before_version_2_are_found_by_the_check_filter() {
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

    let store = SqliteStore::open(&path).unwrap();
    let filtered = |check: &str| FleetQuery {
        check: Some(check.to_owned()),
        ..query(t0())
    };
    let page = store.fleet(&filtered("firewall")).await.unwrap();
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
    let page = store.fleet(&filtered("os-updates")).await.unwrap();
    assert_eq!(page.devices.len(), 1);
    assert_eq!(page.devices[0].hostname, "zulu");
}
