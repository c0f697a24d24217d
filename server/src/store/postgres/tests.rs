//! The story suite and PostgreSQL's own tests, each in a fresh schema of
//! the database `SHIPSHAPE_TEST_POSTGRES_URL` names (dropped afterwards).
//! Without the variable they say they were skipped; with it, a database
//! that cannot be reached fails them.

use std::sync::Arc;

use jiff::SignedDuration;
use shipshape_core::Policy;
use shipshape_core::wire::DeviceStatus;
use tokio::task::JoinSet;

use super::read::numbered;
use super::*;
use crate::counts::Side;
use crate::grade::fixtures::{default_policy, open_firewall, shipshape};
use crate::model::{NewDevice, RegradeState, TokenKind, TransitionKind};
use crate::store::sql::fleet::{Dialect, Part, walk_rows};
use crate::store::tests::{active, device_table, every_story, fleet, query, report, t0};
use crate::store::{SqliteStore, sql};

const URL_VARIABLE: &str = "SHIPSHAPE_TEST_POSTGRES_URL";

/// A schema of its own in the test database, dropped when this is.
struct TestSchema {
    database: String,
    name: String,
}

impl TestSchema {
    /// `None` (and says so) when the variable is not set.
    async fn create() -> Option<TestSchema> {
        let Ok(database) = std::env::var(URL_VARIABLE) else {
            eprintln!("skipped: {URL_VARIABLE} is not set");
            return None;
        };
        let name = format!("shipshape_test_{}", uuid::Uuid::new_v4().simple());
        connect(&database)
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|error| panic!("cannot create schema {name}: {error:?}"));
        Some(TestSchema { database, name })
    }

    /// The URL of the database with this schema on the search path.
    fn url(&self) -> PostgresUrl {
        let separator = if self.database.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.database, self.name
        )
        .parse()
        .unwrap()
    }

    /// A plain connection into this schema.
    async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = self.url().config().connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (database, name) = (self.database.clone(), self.name.clone());
        // Its own thread and runtime: a test's runtime may be the one
        // dropping this, and cannot be blocked on.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    connect(&database)
                        .await
                        .batch_execute(&format!(
                            "SET lock_timeout = '10s'; DROP SCHEMA {name} CASCADE"
                        ))
                        .await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}: {dropped:?}", self.name);
        }
    }
}

/// A connection to the test database; it must answer.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "{URL_VARIABLE} is set, but PostgreSQL does not answer there: {}",
                error::describe(&error)
            )
        });
    tokio::spawn(connection);
    client
}

async fn fresh() -> Option<(Box<dyn Store>, TestSchema)> {
    let schema = TestSchema::create().await?;
    let store = PostgresStore::open(&schema.url()).await.unwrap();
    Some((Box::new(store), schema))
}

every_story!(fresh);

/// Two servers on one schema, as two replicas behind a load balancer are.
async fn replicas() -> Option<(Arc<PostgresStore>, Arc<PostgresStore>, TestSchema)> {
    let schema = TestSchema::create().await?;
    let url = schema.url();
    let (a, b) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
    Some((Arc::new(a.unwrap()), Arc::new(b.unwrap()), schema))
}

async fn enroll(store: &dyn Store, hostname: &str) -> String {
    let hash = *uuid::Uuid::new_v4().as_bytes();
    let mut token = [0; 32];
    token[..16].copy_from_slice(&hash);
    store
        .create_token(NewToken {
            kind: TokenKind::Enroll,
            hash: token,
            uses: Some(1),
            expires_at: None,
            created_at: t0(),
        })
        .await
        .unwrap();
    store
        .enroll(&token, new_device(hostname))
        .await
        .unwrap()
        .unwrap()
}

fn new_device(hostname: &str) -> NewDevice {
    NewDevice {
        public_key: [7; 32],
        host: shipshape(hostname, t0()).host,
        enrolled_at: t0(),
    }
}

/// Sets the maintained counts to a recount, in shard 0, after rows were
/// written directly.
const RECOUNT: &str = "DELETE FROM status_counts;
     INSERT INTO status_counts (status, shard, devices)
         SELECT status, 0, COUNT(*) FROM devices GROUP BY status;
     DELETE FROM check_counts;
     INSERT INTO check_counts (check_id, shard, devices)
         SELECT check_id, 0, COUNT(*) FROM device_leaks GROUP BY check_id;";

async fn count(schema: &TestSchema, sql: &str) -> i64 {
    schema
        .connect()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_migrate_once() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let url = schema.url();
        opening.spawn(async move { PostgresStore::open(&url).await });
    }
    while let Some(opened) = opening.join_next().await {
        opened.unwrap().unwrap().ping().await.unwrap();
    }
    let versions = "SELECT COUNT(*) FROM schema_migrations";
    assert_eq!(count(&schema, versions).await, sql::MIGRATIONS.len() as i64);
    PostgresStore::open(&schema.url()).await.unwrap();
    assert_eq!(
        count(&schema, versions).await,
        sql::MIGRATIONS.len() as i64,
        "opened again, it finds nothing to do"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_retried_through_the_other_replica_is_stored_once() {
    let Some((a, b, schema)) = replicas().await else {
        return;
    };
    let policy = Arc::new(active(default_policy()));
    let device = enroll(&*a, "anna-laptop").await;
    let at = t0() + SignedDuration::from_hours(1);
    let original = report(&device, open_firewall(shipshape("anna-laptop", at)), at);
    // The report and its retries, each signed afresh, through both replicas at once.
    let mut racing = JoinSet::new();
    for n in 0..10 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let copy = IncomingReport {
            nonce: format!("nonce-{n}"),
            ..original.clone()
        };
        let policy = policy.clone();
        racing.spawn(async move { store.record_report(copy, &policy).await.unwrap() });
    }
    let mut receipts = Vec::new();
    let mut stored = 0;
    while let Some(recorded) = racing.join_next().await {
        match recorded.unwrap() {
            Recorded::Stored(receipt) => {
                stored += 1;
                receipts.push(receipt);
            }
            Recorded::AlreadyStored(receipt) => receipts.push(receipt),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stored, 1);
    assert!(receipts.iter().all(|receipt| *receipt == receipts[0]));
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM reports").await, 1);
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM transitions").await, 1);

    // A replay through the other replica: the nonces are in the database.
    let mut replay = report(&device, shipshape("anna-laptop", at), at);
    replay.nonce = "nonce-0".to_owned();
    assert_eq!(
        b.record_report(replay, &policy).await.unwrap(),
        Recorded::ReplayedNonce
    );
    assert!(a.record_nonce(&device, "policy", at, t0()).await.unwrap());
    assert!(!b.record_nonce(&device, "policy", at, t0()).await.unwrap());
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM reports").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_one_device_racing_through_both_replicas_leave_a_consistent_history() {
    let Some((a, b, schema)) = replicas().await else {
        return;
    };
    let policy = Arc::new(active(default_policy()));
    let device = enroll(&*a, "anna-laptop").await;
    let mut racing = JoinSet::new();
    for n in 0..40 {
        let at = t0() + SignedDuration::from_mins(n);
        // The firewall opens and closes: every report may flip the leak.
        let facts = if n % 2 == 0 {
            open_firewall(shipshape("anna-laptop", at))
        } else {
            shipshape("anna-laptop", at)
        };
        let store = if n % 3 == 0 { a.clone() } else { b.clone() };
        let policy = policy.clone();
        let report = report(&device, facts, at);
        racing.spawn(async move { store.record_report(report, &policy).await.unwrap() });
    }
    while let Some(recorded) = racing.join_next().await {
        assert!(matches!(recorded.unwrap(), Recorded::Stored(_)));
    }
    // In the order they were stored, leaks spring and bail out in turn: no
    // two reports graded from the same previous state.
    let client = schema.connect().await;
    let kinds: Vec<String> = client
        .query("SELECT kind FROM transitions ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(!kinds.is_empty());
    for (n, kind) in kinds.iter().enumerate() {
        let expected = if n % 2 == 0 {
            TransitionKind::SprangLeak
        } else {
            TransitionKind::BailedOut
        };
        assert_eq!(kind, sql::transition_kind(expected), "{kinds:?}");
    }
    let detail = a
        .device(
            &device,
            crate::model::Staleness {
                now: t0(),
                stale_after: SignedDuration::from_hours(48),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.reports.len(), 40);
    let leaking = kinds.len() % 2 == 1;
    assert_eq!(detail.device.status == DeviceStatus::Leaky, leaking);
    assert_eq!(
        count(&schema, "SELECT COUNT(*) FROM device_leaks").await,
        i64::from(leaking)
    );
}

/// Both replicas run the re-grade of one policy while devices report
/// through both: each batch is stored by one of them, every device bails
/// out exactly once (by the re-grade or by its report), and the counts
/// equal a recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regrade_run_by_both_replicas_is_stored_once() {
    let Some((a, b, schema)) = replicas().await else {
        return;
    };
    let strict_text = include_str!("../../../../policies/default.toml");
    let (strict, _) = a.activate_policy(strict_text, t0()).await.unwrap();
    let strict = ActivePolicy {
        policy: default_policy(),
        stored: strict,
    };
    let at = t0() + SignedDuration::from_hours(1);
    let template = enroll(&*a, "template").await;
    let leaking = report(&template, open_firewall(shipshape("template", at)), at);
    assert!(matches!(
        a.record_report(leaking, &strict).await.unwrap(),
        Recorded::Stored(_)
    ));
    // Copies of the leaking device, written directly: enrolling this many
    // through the store takes a while.
    let copies = 2 * i64::from(crate::regrade::BATCH) + 500;
    let client = schema.connect().await;
    client
        .batch_execute(&format!(
            "INSERT INTO devices (id, public_key, hostname, sort_key, os_family, os_name,
                 os_version, hardware_id, enrolled_at, revoked_at, last_seen, last_contact,
                 status, leaking_checks, last_report_id, facts_report_id, facts_hash)
             SELECT 'copy-' || lpad(n::text, 6, '0'), public_key, 'copy-' || n,
                 'copy-' || n, os_family, os_name, os_version, hardware_id, enrolled_at,
                 revoked_at, last_seen, last_contact, status, leaking_checks, 'report-' || n,
                 'report-' || n, facts_hash
             FROM devices, generate_series(1, {copies}) AS n WHERE id = '{template}';
             INSERT INTO device_findings (device_id, findings_json)
             SELECT 'copy-' || lpad(n::text, 6, '0'), findings_json
             FROM device_findings, generate_series(1, {copies}) AS n
             WHERE device_id = '{template}';
             INSERT INTO reports (id, device_id, received_at, status, leaking_checks,
                 facts_json, agent_report_json, receipt_json)
             SELECT 'report-' || n, 'copy-' || lpad(n::text, 6, '0'), received_at, status,
                 leaking_checks, facts_json, agent_report_json, receipt_json
             FROM reports, generate_series(1, {copies}) AS n WHERE device_id = '{template}';
             INSERT INTO device_leaks (device_id, check_id, hostname, sort_key, last_contact)
             SELECT 'copy-' || lpad(n::text, 6, '0'), check_id, 'copy-' || n, 'copy-' || n,
                 last_contact
             FROM device_leaks, generate_series(1, {copies}) AS n WHERE device_id = '{template}';
             INSERT INTO grace_clocks (device_id, check_id, failing_since)
             SELECT 'copy-' || lpad(n::text, 6, '0'), check_id, failing_since
             FROM grace_clocks, generate_series(1, {copies}) AS n WHERE device_id = '{template}';
             {RECOUNT}"
        ))
        .await
        .unwrap();
    let devices = copies + 1;

    let later = at + SignedDuration::from_hours(1);
    let (lenient, started) = b
        .activate_policy(crate::store::tests::LENIENT, later)
        .await
        .unwrap();
    assert_eq!(started.devices, devices as u64);
    let lenient = Arc::new(ActivePolicy {
        policy: Policy::parse_accepted(crate::store::tests::LENIENT, "lenient.toml").unwrap(),
        stored: lenient,
    });
    let mut running = JoinSet::new();
    for store in [a.clone(), b.clone()] {
        let policy = lenient.clone();
        running.spawn(async move {
            crate::regrade::run(&*store, &policy, move || later)
                .await
                .unwrap();
        });
    }
    // Devices whose firewall was closed meanwhile report through both.
    for n in (1..copies).step_by(97) {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let policy = lenient.clone();
        let device = format!("copy-{n:06}");
        running.spawn(async move {
            let fixed = report(&device, shipshape(&format!("copy-{n}"), later), later);
            let recorded = store.record_report(fixed, &policy).await.unwrap();
            assert!(matches!(recorded, Recorded::Stored(_)), "{recorded:?}");
        });
    }
    while let Some(ran) = running.join_next().await {
        ran.unwrap();
    }

    let progress = a.regrade_progress().await.unwrap().unwrap();
    assert_eq!(progress.state, RegradeState::Done);
    assert_eq!(progress.done, devices as u64, "each device looked at once");
    let bailed_out = "SELECT COUNT(*) FROM transitions WHERE kind = 'bailed-out'";
    assert_eq!(count(&schema, bailed_out).await, devices);
    let devices_out = "SELECT COUNT(DISTINCT device_id) FROM transitions WHERE kind = 'bailed-out'";
    assert_eq!(count(&schema, devices_out).await, devices);
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM device_leaks").await, 0);
    let recount = "SELECT COUNT(*) FROM (
             SELECT status, SUM(devices) AS devices FROM status_counts GROUP BY status
         ) AS s
         WHERE s.devices <> (SELECT COUNT(*) FROM devices d WHERE d.status = s.status)";
    assert_eq!(count(&schema, recount).await, 0, "status counts agree");
    let checks = "SELECT COALESCE(SUM(devices), 0)::bigint FROM check_counts";
    assert_eq!(count(&schema, checks).await, 0, "check counts agree");
}

/// Concurrent enrollments and reports through both replicas add to their
/// device's shard of each count, so they seldom wait on one row; a device's
/// enrollment and its first report land in the same shard, and the summary
/// sums the shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_spread_over_shards_and_summed() {
    let Some((a, b, schema)) = replicas().await else {
        return;
    };
    a.create_token(NewToken {
        kind: TokenKind::Enroll,
        hash: [2; 32],
        uses: None,
        expires_at: None,
        created_at: t0(),
    })
    .await
    .unwrap();
    let policy = Arc::new(active(default_policy()));
    let mut racing = JoinSet::new();
    for n in 0..48 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let policy = policy.clone();
        racing.spawn(async move {
            let host = format!("host-{n}");
            let id = store
                .enroll(&[2; 32], new_device(&host))
                .await
                .unwrap()
                .unwrap();
            let leaking = report(&id, open_firewall(shipshape(&host, t0())), t0());
            let recorded = store.record_report(leaking, &policy).await.unwrap();
            assert!(matches!(recorded, Recorded::Stored(_)), "{recorded:?}");
        });
    }
    while let Some(ran) = racing.join_next().await {
        ran.unwrap();
    }
    let rows = |sql: &'static str| count(&schema, sql);
    assert!(
        rows("SELECT COUNT(*) FROM status_counts WHERE status = 'leaky' AND devices > 0").await > 1
    );
    assert!(
        rows("SELECT COUNT(*) FROM check_counts WHERE check_id = 'firewall' AND devices > 0").await
            > 1
    );
    assert_eq!(
        rows("SELECT COUNT(*) FROM status_counts WHERE devices <> 0 AND status = 'unknown'").await,
        0,
        "each device left the shard it was counted in at its enrollment"
    );
    let summary = b.fleet_summary(&query(t0())).await.unwrap();
    assert_eq!((summary.summary.total, summary.summary.leaky), (48, 48));
    assert_eq!(summary.failures_by_check[0].check, "firewall");
    assert_eq!(summary.failures_by_check[0].devices, 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_token_is_spent_exactly_once_across_replicas() {
    let Some((a, b, schema)) = replicas().await else {
        return;
    };
    let token = a
        .create_token(NewToken {
            kind: TokenKind::Enroll,
            hash: [1; 32],
            uses: Some(5),
            expires_at: None,
            created_at: t0(),
        })
        .await
        .unwrap();
    let mut racing = JoinSet::new();
    for n in 0..12 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        racing.spawn(async move {
            store
                .enroll(&[1; 32], new_device(&format!("host-{n}")))
                .await
                .unwrap()
        });
    }
    let mut enrolled = Vec::new();
    while let Some(answer) = racing.join_next().await {
        match answer.unwrap() {
            Ok(id) => enrolled.push(id),
            Err(refusal) => assert_eq!(refusal, EnrollRefusal::UsedUp),
        }
    }
    assert_eq!(enrolled.len(), 5);
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM devices").await, 5);
    let tokens = b.list_tokens().await.unwrap();
    assert_eq!(tokens[0].id, token.id);
    assert_eq!(tokens[0].uses_left, Some(0));

    // Revoked through one replica, refused by the other.
    assert!(a.revoke_device(&enrolled[0], t0()).await.unwrap());
    assert!(b.device_key(&enrolled[0]).await.unwrap().unwrap().revoked);
    assert!(!b.device_key(&enrolled[1]).await.unwrap().unwrap().revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostnames_sort_as_in_sqlite() {
    let Some((postgres, _keep)) = fresh().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("shipshape.db")).unwrap();
    // Non-ASCII letters are not folded ("Ébc" before "éa"), punctuation
    // counts (whatever the database's locale would say).
    let hostnames = [
        "b", "Ébc", "éa", "_under", "ab", "a-b", "Zed", "zed", "ÀB", "A", "a", "~tilde",
    ];
    for hostname in hostnames {
        enroll(&*postgres, hostname).await;
        enroll(&sqlite, hostname).await;
    }
    let everyone = FleetQuery {
        per_page: 100,
        ..query(t0())
    };
    let from_postgres = fleet(&*postgres, &everyone).await;
    let from_sqlite = fleet(&sqlite, &everyone).await;
    // By hostname with ASCII letters folded, then byte for byte.
    let mut expected: Vec<&str> = hostnames.to_vec();
    expected.sort_by_key(|hostname| (hostname.to_ascii_lowercase(), *hostname));
    let order = |page| -> Vec<&str> {
        device_table(page)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    };
    assert_eq!(order(&from_sqlite), expected);
    assert_eq!(order(&from_postgres), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_columns_compare_bytes() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    PostgresStore::open(&schema.url()).await.unwrap();
    let columns = schema
        .connect()
        .await
        .query(
            "SELECT table_name::text, column_name::text, collation_name::text
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND data_type = 'text'",
            &[],
        )
        .await
        .unwrap();
    assert!(columns.len() > 20, "{}", columns.len());
    for column in columns {
        let (table, name, collation): (String, String, Option<String>) =
            (column.get(0), column.get(1), column.get(2));
        assert_eq!(collation.as_deref(), Some("C"), "{table}.{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_pages_are_read_in_index_order() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    PostgresStore::open(&schema.url()).await.unwrap();
    let client = schema.connect().await;
    // Were a page not in an index's order, PostgreSQL would have to sort it.
    client
        .batch_execute("SET enable_seqscan = off; SET enable_sort = off")
        .await
        .unwrap();
    let (cutoff, limit, cap, walk) = (0_i64, 50_i64, 1024_i64, walk_rows(50));
    let (key, hostname, id) = ("anna", "Anna", "0190");
    let plan = async |part: Part<'_>, sql: &str| -> String {
        let named: [(&str, read::Param<'_>); 8] = [
            (":of", &part.of()),
            (":cutoff", &cutoff),
            (":key", &key),
            (":hostname", &hostname),
            (":id", &id),
            (":limit", &limit),
            (":cap", &cap),
            (":walk", &walk),
        ];
        let (sql, params) = numbered(sql, &named);
        assert!(!sql.contains(':'), "every parameter is numbered: {sql}");
        let rows = client
            .query(&format!("EXPLAIN {sql}"), &params)
            .await
            .unwrap();
        let lines: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        lines.join("\n")
    };
    // A sort node (not a merge's sort key): the rows were not in order.
    let sorts = |plan: &str| plan.contains("Sort  (");
    for (part, table_order, by_contact) in [
        (
            Part::Status(DeviceStatus::Leaky),
            "devices_in_table_order",
            "devices_by_contact",
        ),
        (
            Part::Check("firewall"),
            "device_leaks_in_table_order",
            "device_leaks_by_contact",
        ),
    ] {
        // A walk from a key: a range of the index in table order.
        let walked = plan(part, &part.walk_sql(Dialect::Postgres)).await;
        assert!(walked.contains(table_order) && !sorts(&walked), "{walked}");
        for side in [Side::Contacted, Side::Silent] {
            let dense = plan(part, &part.side_sql(Dialect::Postgres, side, true)).await;
            assert!(dense.contains(table_order) && !sorts(&dense), "{dense}");
            let counted = plan(part, &part.count_sql(side)).await;
            assert!(counted.contains(by_contact), "{counted}");
        }
    }
}

/// Silent devices of every status: many of one (walked, past a long run
/// of contacted ones) and few of the others (sorted from the contact index):
/// the silent group merges them in table order, in pages large and small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_devices_of_every_status_are_listed_in_table_order() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let store = PostgresStore::open(&schema.url()).await.unwrap();
    let silent = 2_300;
    let long_ago = (t0() - SignedDuration::from_hours(24 * 5)).as_millisecond();
    // Written directly: enrolling this many through the store takes a while.
    let client = schema.connect().await;
    // Compliant: 2,000 silent of 10,000, the first and the last thousand
    // (walked, past the 8,000 between); leaky: 100 of 30,000 and unknown:
    // 200 of 20,000 (sorted).
    client
        .execute(
            "INSERT INTO devices (id, public_key, hostname, sort_key, os_family, os_name,
                 enrolled_at, last_contact, status, leaking_checks)
             SELECT lpad(n::text, 8, '0'), 'key', host, lower(host), 'linux', 'Debian',
                 contact, contact, status, '[]'
             FROM generate_series(0, 59999) AS n,
                 LATERAL (SELECT
                     (ARRAY['Zed', 'amy', 'Bob'])[n % 3 + 1] || '-' || lpad(n::text, 5, '0')
                         AS host,
                     CASE WHEN n % 6 = 0 THEN 'compliant'
                          WHEN n % 6 <= 3 THEN 'leaky' ELSE 'unknown' END AS status,
                     CASE WHEN (n % 6 = 0 AND (n < 6000 OR n >= 54000)) OR n % 600 IN (1, 4, 5)
                          THEN $1::bigint ELSE $2::bigint END AS contact) AS devices",
            &[&long_ago, &t0().as_millisecond()],
        )
        .await
        .unwrap();
    client.batch_execute(RECOUNT).await.unwrap();
    crate::store::tests::silent_group_pages_in_table_order(&store, silent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named() {
    let url: PostgresUrl = "postgres://shipshape@127.0.0.1:1/fleet".parse().unwrap();
    let error = PostgresStore::open(&url).await.unwrap_err();
    assert!(
        error
            .0
            .contains("cannot reach PostgreSQL at 127.0.0.1:1/fleet"),
        "{error}"
    );
    assert!(error.0.contains("refused"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_without_a_schema_is_named() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url: PostgresUrl = schema
        .url()
        .to_string()
        .replace(&schema.name, "shipshape_no_such_schema")
        .parse()
        .unwrap();
    let error = PostgresStore::open(&url).await.unwrap_err();
    assert!(error.0.contains("search_path names no schema"), "{error}");
    assert!(error.0.contains("CREATE SCHEMA"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_server_is_refused() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    PostgresStore::open(&schema.url()).await.unwrap();
    schema
        .connect()
        .await
        .batch_execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
        .await
        .unwrap();
    let error = PostgresStore::open(&schema.url()).await.unwrap_err();
    assert!(
        error
            .0
            .contains("schema version 99, newer than this server's"),
        "{error}"
    );
}
