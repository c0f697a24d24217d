//! The story every storage backend must tell the same way, written against
//! `&dyn Store`. A backend runs it with [`every_story!`], given an async
//! function that returns a fresh, empty store and whatever keeps it alive,
//! or `None` when the backend cannot be tested here (having said why).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use jiff::{SignedDuration, Timestamp};
use shipshape_core::facts::Facts;
use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
use shipshape_core::wire::{DeviceStatus, Receipt, ReportSubmission, facts_hash};
use shipshape_core::{FailingSince, Policy, Status, Verdict, evaluate};

use super::{ActivePolicy, Recorded, Store};
use crate::grade::fixtures::{
    default_policy, open_firewall, pending_security_update, policy, shipshape, unknown_firewall,
};
use crate::keyset::{rank, sort_key};
use crate::model::{
    CurrentFacts, DeviceDetail, DeviceRow, EnrollRefusal, FactsOrigin, FleetPage, FleetQuery,
    IncomingReport, NewDevice, NewToken, RegradeProgress, RegradeState, Staleness, StoredPolicy,
    Summary, TokenKind, TransitionKind,
};

/// Generates one `#[tokio::test]` per story for the backend `$fresh`
/// builds: `async fn() -> Option<(impl Deref<Target = impl Store>, impl Any)>`.
macro_rules! every_story {
    ($fresh:path) => {
        $crate::store::tests::every_story!(@each $fresh;
            enrollment_spends_tokens_and_refuses_without_spending,
            admin_tokens_expire_and_are_revoked,
            a_report_is_graded_by_the_server_and_acknowledged,
            a_retry_gets_the_same_receipt_and_stores_nothing_twice,
            a_replayed_nonce_stores_nothing,
            a_report_id_belongs_to_one_device,
            grace_counts_across_reports_and_transitions_are_logged,
            a_policy_change_regrades_every_device,
            the_fleet_is_counted_filtered_sorted_and_paged,
            the_fleet_filtered_by_a_check_follows_every_change,
            revoked_devices_stay_listed,
            concurrent_reports_are_each_stored_exactly_once,
            keyset_pages_list_every_device_once_in_order_while_reports_arrive,
            the_counts_equal_a_recount_after_every_kind_of_write,
            a_regrade_goes_in_batches_resumes_and_is_superseded,
            a_report_during_a_regrade_keeps_its_grade,
            simulating_a_policy_changes_nothing,
            a_report_graded_by_a_replaced_policy_is_refused,
            a_heartbeat_repeats_the_stored_facts,
        );
    };
    (@each $fresh:path; $($story:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let Some((store, _keep)) = $fresh().await else {
                    return;
                };
                $crate::store::tests::$story(&*store).await;
            }
        )*
    };
}
pub(crate) use every_story;

pub(crate) fn t0() -> Timestamp {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn hours(n: i64) -> SignedDuration {
    SignedDuration::from_hours(n)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn staleness(now: Timestamp) -> Staleness {
    Staleness {
        now,
        stale_after: hours(48),
    }
}

pub(crate) fn active(policy: Policy) -> ActivePolicy {
    ActivePolicy {
        policy,
        stored: StoredPolicy {
            id: 1,
            text: String::new(),
            etag: "\"test\"".into(),
            activated_at: t0(),
        },
    }
}

fn secret(byte: u8) -> [u8; 32] {
    [byte; 32]
}

async fn enroll_token(store: &dyn Store, hash: [u8; 32], uses: Option<u32>) -> String {
    store
        .create_token(NewToken {
            kind: TokenKind::Enroll,
            hash,
            uses,
            expires_at: None,
            created_at: t0() - days(1),
        })
        .await
        .unwrap()
        .id
}

fn new_device(hostname: &str, key: u8, at: Timestamp) -> NewDevice {
    NewDevice {
        public_key: [key; 32],
        host: shipshape(hostname, at).host,
        enrolled_at: at,
    }
}

/// Enrolls a device with a single-use token of its own.
async fn enroll(store: &dyn Store, hostname: &str, at: Timestamp) -> String {
    let hash = *uuid::Uuid::new_v4().as_bytes();
    let mut token = [0; 32];
    token[..16].copy_from_slice(&hash);
    enroll_token(store, token, Some(1)).await;
    store
        .enroll(&token, new_device(hostname, token[0], at))
        .await
        .unwrap()
        .unwrap()
}

/// A report with a fresh id and nonce; the agent judged it with the default policy.
pub(crate) fn report(device_id: &str, facts: Facts, at: Timestamp) -> IncomingReport {
    let findings = evaluate(&default_policy(), &facts, at, &FailingSince::new());
    IncomingReport {
        device_id: device_id.to_owned(),
        received_at: at,
        nonce: uuid::Uuid::new_v4().to_string(),
        submission: ReportSubmission {
            id: uuid::Uuid::now_v7().to_string(),
            report: CheckReport {
                schema: SCHEMA_VERSION,
                verdict: Verdict::of(&findings),
                checked_at: at,
                host: facts.host.clone(),
                policy: PolicyRef {
                    name: "default".into(),
                    source: "built-in".into(),
                },
                findings,
            },
            facts,
            dropped: 0,
        },
        repeats: None,
    }
}

async fn stored(store: &dyn Store, report: IncomingReport, policy: &ActivePolicy) -> Receipt {
    match store.record_report(report, policy).await.unwrap() {
        Recorded::Stored(receipt) => receipt,
        other => panic!("expected the report to be stored, got {other:?}"),
    }
}

async fn detail(store: &dyn Store, device_id: &str, now: Timestamp) -> DeviceDetail {
    store
        .device(device_id, staleness(now))
        .await
        .unwrap()
        .expect("the device exists")
}

pub(crate) fn query(now: Timestamp) -> FleetQuery {
    FleetQuery {
        status: None,
        check: None,
        after: None,
        per_page: 50,
        staleness: staleness(now),
    }
}

/// The fleet report for `query`: its counts and one page.
pub(crate) async fn fleet(store: &dyn Store, query: &FleetQuery) -> FleetPage {
    crate::api::fleet_page(store, query).await.unwrap()
}

/// The silent group of a fleet with `silent` silent devices of every
/// status: three pages of 1,000 and pages of 10 list the same devices once,
/// in table order, and the counts agree.
pub(crate) async fn silent_group_pages_in_table_order(store: &dyn Store, silent: usize) {
    let query = FleetQuery {
        status: Some(DeviceStatus::Silent),
        per_page: 1000,
        ..query(t0())
    };
    let (rows, pages) = every_page(store, &query).await;
    assert_eq!((rows.len(), pages), (silent, 3));
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|row| (row.hostname.to_ascii_lowercase(), row.id.clone()))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(rows.iter().all(|row| row.status == DeviceStatus::Silent));
    let small = FleetQuery {
        per_page: 10,
        ..query.clone()
    };
    let (small_pages, pages) = every_page(store, &small).await;
    assert_eq!(pages, silent / 10);
    assert!(small_pages == rows, "the same devices in the same order");
    let counts = store.fleet_summary(&query).await.unwrap();
    assert_eq!(
        (counts.summary.silent, counts.matching),
        (silent as u64, silent as u64)
    );
}

/// Every device `query` matches from its `after` on, following each page's
/// `next`, with how many pages that took.
pub(crate) async fn every_page(store: &dyn Store, query: &FleetQuery) -> (Vec<DeviceRow>, usize) {
    let mut query = query.clone();
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.fleet_devices(&query).await.unwrap();
        pages += 1;
        assert!(page.devices.len() <= query.per_page as usize);
        assert!(pages <= 1000, "paging does not end: {:?}", page.next);
        rows.extend(page.devices);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return (rows, pages),
        }
    }
}

/// The `n`th page (1-based) of `query`, reached by following `next`.
async fn nth_page(store: &dyn Store, query: &FleetQuery, n: usize) -> FleetPage {
    let mut query = query.clone();
    for _ in 1..n {
        let page = store.fleet_devices(&query).await.unwrap();
        query.after = page.next;
        assert!(query.after.is_some(), "there is no page {n}");
    }
    fleet(store, &query).await
}

/// Runs the re-grade of the stored policy `text` to its end, grading at `at`.
async fn regrade(
    store: &dyn Store,
    text: &str,
    stored: &StoredPolicy,
    at: Timestamp,
) -> RegradeProgress {
    let active = ActivePolicy {
        policy: policy(text),
        stored: stored.clone(),
    };
    crate::regrade::run(store, &active, || at)
        .await
        .unwrap()
        .expect("a re-grade")
}

/// A fleet page's device table, in order, as (hostname, status).
pub(crate) fn device_table(page: &FleetPage) -> Vec<(&str, DeviceStatus)> {
    page.devices
        .iter()
        .map(|row| (row.hostname.as_str(), row.status))
        .collect()
}

/// A fleet page's failures by check, in order, as (check, devices).
pub(crate) fn failure_counts(page: &FleetPage) -> Vec<(&str, u64)> {
    page.failures_by_check
        .iter()
        .map(|failures| (failures.check.as_str(), failures.devices))
        .collect()
}

pub(crate) async fn enrollment_spends_tokens_and_refuses_without_spending(store: &dyn Store) {
    let token = secret(1);
    let id = enroll_token(store, token, Some(2)).await;
    let first = store
        .enroll(&token, new_device("anna-laptop", 1, t0()))
        .await
        .unwrap()
        .unwrap();
    let second = store
        .enroll(&token, new_device("ben-laptop", 2, t0()))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(
        store
            .enroll(&token, new_device("carl-laptop", 3, t0()))
            .await
            .unwrap(),
        Err(EnrollRefusal::UsedUp)
    );
    let key = store.device_key(&first).await.unwrap().unwrap();
    assert_eq!(key.public_key, [1; 32]);
    assert!(!key.revoked);
    assert_eq!(store.device_key("no-such-device").await.unwrap(), None);

    assert_eq!(
        store
            .enroll(&secret(9), new_device("x", 9, t0()))
            .await
            .unwrap(),
        Err(EnrollRefusal::UnknownToken)
    );

    let expiring = secret(3);
    let expiring_id = store
        .create_token(NewToken {
            kind: TokenKind::Enroll,
            hash: expiring,
            uses: Some(5),
            expires_at: Some(t0() + hours(1)),
            created_at: t0(),
        })
        .await
        .unwrap()
        .id;
    assert_eq!(
        store
            .enroll(&expiring, new_device("late", 4, t0() + hours(2)))
            .await
            .unwrap(),
        Err(EnrollRefusal::Expired)
    );
    store
        .enroll(
            &expiring,
            new_device("early", 5, t0() + SignedDuration::from_mins(59)),
        )
        .await
        .unwrap()
        .unwrap();

    let revoked = secret(4);
    let revoked_id = enroll_token(store, revoked, None).await;
    assert!(store.revoke_token(&revoked_id, t0()).await.unwrap());
    assert!(!store.revoke_token("no-such-token", t0()).await.unwrap());
    assert_eq!(
        store
            .enroll(&revoked, new_device("y", 6, t0()))
            .await
            .unwrap(),
        Err(EnrollRefusal::Revoked)
    );

    let admin = secret(5);
    store
        .create_token(NewToken {
            kind: TokenKind::Admin,
            hash: admin,
            uses: None,
            expires_at: None,
            created_at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .enroll(&admin, new_device("z", 7, t0()))
            .await
            .unwrap(),
        Err(EnrollRefusal::UnknownToken),
        "an admin token does not enroll"
    );

    let tokens = store.list_tokens().await.unwrap();
    let uses_of = |id: &str| {
        tokens
            .iter()
            .find(|token| token.id == id)
            .map(|token| token.uses_left)
            .unwrap()
    };
    assert_eq!(uses_of(&id), Some(0));
    assert_eq!(
        uses_of(&expiring_id),
        Some(4),
        "the refusal after expiry spent nothing"
    );
    assert_eq!(uses_of(&revoked_id), None, "unlimited");
    let revoked_info = tokens.iter().find(|token| token.id == revoked_id).unwrap();
    assert_eq!(revoked_info.revoked_at, Some(t0()));
    assert_eq!(tokens.len(), 4);
}

pub(crate) async fn admin_tokens_expire_and_are_revoked(store: &dyn Store) {
    let admin = store
        .create_token(NewToken {
            kind: TokenKind::Admin,
            hash: secret(1),
            uses: None,
            expires_at: Some(t0() + days(30)),
            created_at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(admin.kind, TokenKind::Admin);
    assert_eq!(admin.created_at, t0());
    enroll_token(store, secret(2), None).await;

    assert!(store.is_admin_token(&secret(1), t0()).await.unwrap());
    assert!(
        !store.is_admin_token(&secret(2), t0()).await.unwrap(),
        "an enrollment token is no admin"
    );
    assert!(!store.is_admin_token(&secret(3), t0()).await.unwrap());
    assert!(
        !store
            .is_admin_token(&secret(1), t0() + days(31))
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_token(&admin.id, t0() + hours(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_token(&admin.id, t0() + hours(2))
            .await
            .unwrap(),
        "revoking twice is fine"
    );
    assert!(!store.is_admin_token(&secret(1), t0()).await.unwrap());
    let listed = store.list_tokens().await.unwrap();
    let listed = listed.iter().find(|token| token.id == admin.id).unwrap();
    assert_eq!(
        listed.revoked_at,
        Some(t0() + hours(1)),
        "the first revocation counts"
    );
}

pub(crate) async fn a_report_is_graded_by_the_server_and_acknowledged(store: &dyn Store) {
    store.ping().await.unwrap();
    let device = enroll(store, "enrolled-name", t0()).await;
    let before = detail(store, &device, t0()).await;
    assert_eq!(before.device.status, DeviceStatus::Unknown);
    assert_eq!(before.device.last_seen, None);
    assert!(before.findings.is_empty() && before.reports.is_empty());

    // The agent judged by the default policy (leaky: firewall open); the
    // server's policy does not run the firewall check.
    let lenient = active(policy(
        "[checks.disk-encryption]\nseverity = \"critical\"\n",
    ));
    let at = t0() + hours(1) + SignedDuration::from_nanos(123_456);
    let incoming = report(&device, open_firewall(shipshape("anna-laptop", at)), at);
    assert_eq!(incoming.submission.report.verdict, Verdict::Leaky);
    let report_id = incoming.submission.id.clone();
    let receipt = stored(store, incoming, &lenient).await;
    assert_eq!(receipt.report_id, report_id);
    assert_eq!(receipt.device_id, device);
    assert_eq!(receipt.status, DeviceStatus::Compliant);
    assert_eq!(receipt.findings.len(), 1, "the server's findings");
    assert_eq!(receipt.findings[0].check, "disk-encryption");
    assert!(receipt.received_at <= at && at.duration_since(receipt.received_at) < hours(1));

    let after = detail(store, &device, at).await;
    assert_eq!(
        after.device.hostname, "anna-laptop",
        "named by its latest facts"
    );
    assert_eq!(after.device.os, "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(after.device.status, DeviceStatus::Compliant);
    assert_eq!(after.device.last_seen, Some(receipt.received_at));
    assert_eq!(after.device.enrolled_at, t0());
    assert_eq!(after.findings, receipt.findings);
    assert_eq!(after.reports.len(), 1);
    assert_eq!(after.reports[0].id, report_id);
    assert_eq!(after.reports[0].status, DeviceStatus::Compliant);
    assert!(after.transitions.is_empty());

    let page = fleet(store, &query(at)).await;
    assert_eq!(page.summary.total, 1);
    assert_eq!(page.summary.compliant, 1);
    assert_eq!(page.devices[0], after.device);

    let unknown = report("never-enrolled", shipshape("ghost", at), at);
    assert!(
        store.record_report(unknown, &lenient).await.is_err(),
        "a report of an unknown device is an error, not a new device"
    );
}

pub(crate) async fn a_retry_gets_the_same_receipt_and_stores_nothing_twice(store: &dyn Store) {
    let policy = active(default_policy());
    let device = enroll(store, "anna-laptop", t0()).await;
    let at = t0() + hours(1);
    let first = report(&device, open_firewall(shipshape("anna-laptop", at)), at);
    let mut retry = first.clone();
    let receipt = stored(store, first, &policy).await;

    // The retry comes later, signed afresh (new nonce), and its facts are
    // ignored: the report was already stored.
    retry.nonce = "a-fresh-nonce".into();
    retry.received_at = at + hours(1);
    retry.submission.facts = shipshape("renamed", at);
    assert_eq!(
        store.record_report(retry.clone(), &policy).await.unwrap(),
        Recorded::AlreadyStored(receipt.clone())
    );
    let after = detail(store, &device, at + hours(1)).await;
    assert_eq!(after.reports.len(), 1);
    assert_eq!(after.device.last_seen, Some(receipt.received_at));
    assert_eq!(after.device.hostname, "anna-laptop");
    assert_eq!(after.device.status, DeviceStatus::Leaky);
    assert_eq!(after.transitions.len(), 1);

    // The retry's own nonce is spent: replaying the retry is refused.
    assert_eq!(
        store.record_report(retry, &policy).await.unwrap(),
        Recorded::ReplayedNonce
    );
}

pub(crate) async fn a_replayed_nonce_stores_nothing(store: &dyn Store) {
    let policy = active(default_policy());
    let device = enroll(store, "anna-laptop", t0()).await;
    let at = t0() + hours(1);
    let first = report(&device, shipshape("anna-laptop", at), at);
    let nonce = first.nonce.clone();
    stored(store, first.clone(), &policy).await;

    assert_eq!(
        store.record_report(first, &policy).await.unwrap(),
        Recorded::ReplayedNonce,
        "the very same request again"
    );
    let mut other = report(&device, open_firewall(shipshape("anna-laptop", at)), at);
    other.nonce = nonce;
    assert_eq!(
        store.record_report(other, &policy).await.unwrap(),
        Recorded::ReplayedNonce
    );
    let after = detail(store, &device, at).await;
    assert_eq!(after.reports.len(), 1);
    assert_eq!(after.device.status, DeviceStatus::Compliant);

    // Nonces of other requests (GET /v1/policy) share the same memory.
    assert!(
        store
            .record_nonce(&device, "policy-nonce", at, at - hours(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_nonce(&device, "policy-nonce", at, at - hours(1))
            .await
            .unwrap()
    );
    let mut reusing = report(&device, shipshape("anna-laptop", at), at);
    reusing.nonce = "policy-nonce".into();
    assert_eq!(
        store.record_report(reusing, &policy).await.unwrap(),
        Recorded::ReplayedNonce
    );
    let other_device = enroll(store, "ben-laptop", t0()).await;
    assert!(
        store
            .record_nonce(&other_device, "policy-nonce", at, at - hours(1))
            .await
            .unwrap(),
        "nonces are per device"
    );
}

pub(crate) async fn a_report_id_belongs_to_one_device(store: &dyn Store) {
    let policy = active(default_policy());
    let anna = enroll(store, "anna-laptop", t0()).await;
    let ben = enroll(store, "ben-laptop", t0()).await;
    let at = t0() + hours(1);
    let original = report(&anna, shipshape("anna-laptop", at), at);
    stored(store, original.clone(), &policy).await;

    let mut stolen = report(&ben, open_firewall(shipshape("ben-laptop", at)), at);
    stolen.submission.id = original.submission.id.clone();
    let nonce = stolen.nonce.clone();
    assert_eq!(
        store.record_report(stolen, &policy).await.unwrap(),
        Recorded::IdTakenByAnotherDevice
    );
    let ben_after = detail(store, &ben, at).await;
    assert!(ben_after.reports.is_empty());
    assert_eq!(ben_after.device.last_seen, None);

    let mut honest = report(&ben, shipshape("ben-laptop", at), at);
    honest.nonce = nonce;
    stored(store, honest, &policy).await;
}

pub(crate) async fn grace_counts_across_reports_and_transitions_are_logged(store: &dyn Store) {
    let policy = active(default_policy());
    let device = enroll(store, "anna-laptop", t0()).await;
    let pending = |at| pending_security_update(shipshape("anna-laptop", at));
    let os_updates = |receipt: &Receipt| {
        receipt
            .findings
            .iter()
            .find(|finding| finding.check == "os-updates")
            .unwrap()
            .status
    };

    let first = stored(store, report(&device, pending(t0()), t0()), &policy).await;
    assert_eq!(os_updates(&first), Status::Warn);
    assert_eq!(first.status, DeviceStatus::Compliant);

    let at = t0() + days(13);
    let within = stored(store, report(&device, pending(at), at), &policy).await;
    assert_eq!(
        os_updates(&within),
        Status::Warn,
        "grace counts from the first report"
    );
    assert!(
        within
            .findings
            .iter()
            .any(|finding| finding.summary.contains("grace until 2026-12-08 12:00 UTC"))
    );

    let at = t0() + days(15);
    let over = report(&device, pending(at), at);
    let leaking_report = over.submission.id.clone();
    let after = stored(store, over, &policy).await;
    assert_eq!(os_updates(&after), Status::Fail);
    assert_eq!(after.status, DeviceStatus::Leaky);

    let at = t0() + days(16);
    let again = stored(store, report(&device, pending(at), at), &policy).await;
    assert_eq!(again.status, DeviceStatus::Leaky);

    let at = t0() + days(17);
    let fix = report(&device, shipshape("anna-laptop", at), at);
    let fixing_report = fix.submission.id.clone();
    let fixed = stored(store, fix, &policy).await;
    assert_eq!(fixed.status, DeviceStatus::Compliant);

    let history = detail(store, &device, at).await;
    let transitions: Vec<_> = history
        .transitions
        .iter()
        .map(|transition| {
            (
                transition.check.as_str(),
                transition.kind,
                transition.at,
                transition.report_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        vec![
            (
                "os-updates",
                TransitionKind::BailedOut,
                t0() + days(17),
                Some(fixing_report.as_str())
            ),
            (
                "os-updates",
                TransitionKind::SprangLeak,
                t0() + days(15),
                Some(leaking_report.as_str())
            ),
        ],
        "newest first, and never a repeat of a known state"
    );
    let statuses: Vec<DeviceStatus> = history.reports.iter().map(|r| r.status).collect();
    use DeviceStatus::{Compliant, Leaky};
    assert_eq!(statuses, [Compliant, Leaky, Leaky, Compliant, Compliant]);
    assert_eq!(history.reports[1].failing_checks, ["os-updates"]);

    // A new failure starts a new grace period.
    let at = t0() + days(20);
    let relapse = stored(store, report(&device, pending(at), at), &policy).await;
    assert_eq!(os_updates(&relapse), Status::Warn);
}

pub(crate) async fn a_policy_change_regrades_every_device(store: &dyn Store) {
    assert_eq!(store.active_policy().await.unwrap(), None);
    assert_eq!(store.regrade_progress().await.unwrap(), None);
    let strict_text = include_str!("../../../policies/default.toml");
    let strict = default_policy();
    let (first, progress) = store.activate_policy(strict_text, t0()).await.unwrap();
    assert_eq!(first.activated_at, t0());
    assert!(
        first.etag.starts_with('"') && first.etag.ends_with('"') && first.etag.len() > 10,
        "{}",
        first.etag
    );
    assert_eq!(
        (progress.policy_id, progress.state, progress.devices),
        (first.id, RegradeState::Done, 0),
        "no device: nothing to re-grade"
    );
    let strict_active = ActivePolicy {
        policy: strict.clone(),
        stored: first.clone(),
    };

    let leaky = enroll(store, "leaky", t0()).await;
    let clean = enroll(store, "clean", t0()).await;
    let never_reported = enroll(store, "new", t0()).await;
    let at = t0() + hours(1);
    stored(
        store,
        report(&leaky, open_firewall(shipshape("leaky", at)), at),
        &strict_active,
    )
    .await;
    stored(
        store,
        report(&clean, shipshape("clean", at), at),
        &strict_active,
    )
    .await;

    let lenient_text = "leak-severity = \"critical\"\n[checks.firewall]\nseverity = \"high\"\n";
    let later = at + hours(1);
    let (second, started) = store.activate_policy(lenient_text, later).await.unwrap();
    assert!(second.id > first.id);
    assert_ne!(second.etag, first.etag);
    assert_eq!(store.active_policy().await.unwrap(), Some(second.clone()));
    assert_eq!(
        (
            started.policy_id,
            started.state,
            started.devices,
            started.done
        ),
        (second.id, RegradeState::Running, 3, 0)
    );
    assert_eq!(started.started_at, later);
    assert_eq!(store.regrade_progress().await.unwrap(), Some(started));
    assert_eq!(
        detail(store, &leaky, later).await.device.status,
        DeviceStatus::Leaky,
        "activating stores the policy; the re-grade does the grading"
    );

    let done = regrade(store, lenient_text, &second, later).await;
    assert_eq!(done.state, RegradeState::Done);
    assert_eq!(
        (done.devices, done.done),
        (3, 3),
        "every device looked at once"
    );
    assert_eq!(done.changed_status, 1);
    assert_eq!(done.finished_at, Some(later));
    assert_eq!(store.regrade_progress().await.unwrap(), Some(done.clone()));

    let after = detail(store, &leaky, later).await;
    assert_eq!(after.device.status, DeviceStatus::Compliant);
    assert!(after.device.failing_checks.is_empty());
    assert_eq!(after.findings.len(), 1, "findings under the new policy");
    assert_eq!(after.findings[0].status, Status::Fail);
    assert!(!after.findings[0].leak);
    assert_eq!(after.transitions[0].kind, TransitionKind::BailedOut);
    assert_eq!(after.transitions[0].check, "firewall");
    assert_eq!(after.transitions[0].at, later);
    assert_eq!(after.transitions[0].report_id, None, "caused by the policy");
    assert_eq!(
        after.reports[0].status,
        DeviceStatus::Leaky,
        "history is not rewritten"
    );
    let page = fleet(store, &query(later)).await;
    assert!(page.failures_by_check.is_empty());
    assert_eq!(
        detail(store, &never_reported, later).await.device.status,
        DeviceStatus::Unknown
    );
    // Running it again finds it done and changes nothing.
    assert_eq!(
        regrade(store, lenient_text, &second, later + hours(1)).await,
        done
    );

    // The same text again changes nothing and adds no history.
    let (same, progress) = store
        .activate_policy(lenient_text, later + hours(1))
        .await
        .unwrap();
    assert_eq!(same, second);
    assert_eq!(progress, done);

    // Back to the strict policy: the leak springs again.
    let (third, _) = store
        .activate_policy(strict_text, later + hours(2))
        .await
        .unwrap();
    assert!(third.id > second.id);
    assert_eq!(third.etag, first.etag, "the same text has the same ETag");
    let done = regrade(store, strict_text, &third, later + hours(2)).await;
    assert_eq!(done.changed_status, 1);
    let after = detail(store, &leaky, later + hours(2)).await;
    assert_eq!(after.device.status, DeviceStatus::Leaky);
    assert_eq!(after.device.failing_checks, ["firewall"]);
    assert_eq!(after.transitions[0].kind, TransitionKind::SprangLeak);
    assert_eq!(after.transitions[0].at, later + hours(2));
}

pub(crate) async fn the_fleet_is_counted_filtered_sorted_and_paged(store: &dyn Store) {
    let now = t0() + days(10);
    let reporting = active(policy(
        &include_str!("../../../policies/default.toml")
            .replace("unknown = \"leak\"", "unknown = \"report\""),
    ));
    let recently = now - hours(1);
    let long_ago = now - days(5);
    let mut expected = Vec::new();
    for (hostname, facts, at, status) in [
        (
            "zeta",
            open_firewall(shipshape("zeta", recently)),
            recently,
            DeviceStatus::Leaky,
        ),
        (
            "alpha",
            open_firewall(pending_security_update(shipshape("alpha", recently))),
            recently,
            DeviceStatus::Leaky,
        ),
        (
            "gone-leaky",
            open_firewall(shipshape("gone-leaky", long_ago)),
            long_ago,
            DeviceStatus::Silent,
        ),
        (
            "mystery",
            unknown_firewall(shipshape("mystery", recently)),
            recently,
            DeviceStatus::Unknown,
        ),
        (
            "beta",
            shipshape("beta", recently),
            recently,
            DeviceStatus::Compliant,
        ),
        (
            "Carl",
            shipshape("Carl", recently),
            recently,
            DeviceStatus::Compliant,
        ),
    ] {
        let device = enroll(store, hostname, long_ago - days(1)).await;
        stored(store, report(&device, facts, at), &reporting).await;
        expected.push((hostname, status));
    }
    enroll(store, "never-reported-old", long_ago).await;
    enroll(store, "never-reported-new", now - hours(2)).await;

    let page = fleet(store, &query(now)).await;
    let summary = &page.summary;
    assert_eq!(
        (
            summary.total,
            summary.leaky,
            summary.silent,
            summary.unknown,
            summary.compliant
        ),
        (8, 2, 2, 2, 2)
    );
    let failures = failure_counts(&page);
    assert_eq!(
        failures,
        [("firewall", 3)],
        "silent devices count by their last grade; a pending update is still in grace"
    );
    let table = device_table(&page);
    use DeviceStatus::{Compliant, Leaky, Silent, Unknown};
    assert_eq!(
        table,
        [
            ("alpha", Leaky),
            ("zeta", Leaky),
            ("gone-leaky", Silent),
            ("never-reported-old", Silent),
            ("mystery", Unknown),
            ("never-reported-new", Unknown),
            ("beta", Compliant),
            ("Carl", Compliant),
        ]
    );
    assert_eq!(page.matching, 8);
    let alpha = &page.devices[0];
    assert_eq!(alpha.failing_checks, ["firewall"]);
    assert_eq!(alpha.last_seen, Some(recently));
    assert_eq!(page.devices[3].last_seen, None);

    let filtered = |status, check: Option<&str>, per_page| FleetQuery {
        status,
        check: check.map(str::to_owned),
        after: None,
        per_page,
        staleness: staleness(now),
    };
    let hostnames = |page: &crate::model::FleetPage| -> Vec<String> {
        page.devices
            .iter()
            .map(|row| row.hostname.clone())
            .collect()
    };

    let silent = fleet(store, &filtered(Some(Silent), None, 50)).await;
    assert_eq!(hostnames(&silent), ["gone-leaky", "never-reported-old"]);
    assert_eq!(silent.matching, 2);
    assert_eq!(
        silent.summary, page.summary,
        "the summary is the whole fleet's"
    );

    let leaky = fleet(store, &filtered(Some(Leaky), None, 50)).await;
    assert_eq!(hostnames(&leaky), ["alpha", "zeta"]);

    let firewall = fleet(store, &filtered(None, Some("firewall"), 50)).await;
    assert_eq!(hostnames(&firewall), ["alpha", "zeta", "gone-leaky"]);
    assert_eq!(firewall.matching, 3);

    let leaky_firewall = fleet(store, &filtered(Some(Silent), Some("firewall"), 50)).await;
    assert_eq!(hostnames(&leaky_firewall), ["gone-leaky"]);

    let none = fleet(store, &filtered(None, Some("ssh-keys"), 50)).await;
    assert!(none.devices.is_empty());
    assert_eq!(none.matching, 0);

    let first_page = fleet(store, &filtered(None, None, 3)).await;
    assert_eq!(hostnames(&first_page), ["alpha", "zeta", "gone-leaky"]);
    assert_eq!((first_page.per_page, first_page.matching), (3, 8));
    let second_page = nth_page(store, &filtered(None, None, 3), 2).await;
    assert_eq!(
        hostnames(&second_page),
        ["never-reported-old", "mystery", "never-reported-new"]
    );
    assert_eq!(second_page.matching, 8);
    let last_page = nth_page(store, &filtered(None, None, 3), 3).await;
    assert_eq!(hostnames(&last_page), ["beta", "Carl"]);
    assert_eq!(last_page.next, None, "the last page has no next");
    let exactly_full = nth_page(store, &filtered(None, None, 4), 2).await;
    assert_eq!(
        hostnames(&exactly_full),
        ["mystery", "never-reported-new", "beta", "Carl"]
    );
    assert_eq!(
        exactly_full.next, None,
        "a full last page has no next either"
    );

    // Time passes: everyone goes silent.
    let much_later = fleet(store, &query(now + days(3))).await;
    assert_eq!(much_later.summary.silent, 8);
}

pub(crate) async fn the_fleet_filtered_by_a_check_follows_every_change(store: &dyn Store) {
    use DeviceStatus::{Leaky, Silent};
    let strict_text = include_str!("../../../policies/default.toml");
    let graded = active(default_policy());
    let now = t0() + days(10);
    let recently = now - hours(3);
    let long_ago = now - days(5);
    let mut devices = std::collections::HashMap::new();
    for (hostname, facts, at) in [
        (
            "delta",
            open_firewall(shipshape("delta", recently)),
            recently,
        ),
        (
            "Bravo",
            open_firewall(shipshape("Bravo", recently)),
            recently,
        ),
        ("echo", open_firewall(shipshape("echo", long_ago)), long_ago),
        (
            "alpha",
            open_firewall(shipshape("alpha", long_ago)),
            long_ago,
        ),
        ("charlie", shipshape("charlie", recently), recently),
    ] {
        let device = enroll(store, hostname, long_ago - days(1)).await;
        stored(store, report(&device, facts, at), &graded).await;
        devices.insert(hostname, device);
    }
    // Failing the firewall check, in table order: leaky first, then silent,
    // each group by hostname; `per_page` devices from page `page`.
    let firewall = async |status, page, per_page, now| {
        let query = FleetQuery {
            status,
            check: Some("firewall".to_owned()),
            after: None,
            per_page,
            staleness: staleness(now),
        };
        let page = nth_page(store, &query, page).await;
        let rows: Vec<(String, DeviceStatus)> = page
            .devices
            .iter()
            .map(|row| (row.hostname.clone(), row.status))
            .collect();
        (rows, page.matching)
    };
    let rows = |expected: &[(&str, DeviceStatus)]| -> Vec<(String, DeviceStatus)> {
        expected
            .iter()
            .map(|&(hostname, status)| (hostname.to_owned(), status))
            .collect()
    };

    assert_eq!(
        firewall(None, 1, 3, now).await,
        (
            rows(&[("Bravo", Leaky), ("delta", Leaky), ("alpha", Silent)]),
            4
        ),
        "a page spanning the leaky and the silent group"
    );
    assert_eq!(
        firewall(None, 2, 3, now).await,
        (rows(&[("echo", Silent)]), 4)
    );
    assert_eq!(
        firewall(Some(Silent), 1, 1, now).await,
        (rows(&[("alpha", Silent)]), 2)
    );
    assert_eq!(
        firewall(Some(Silent), 2, 1, now).await,
        (rows(&[("echo", Silent)]), 2)
    );
    assert_eq!(
        firewall(Some(DeviceStatus::Compliant), 1, 3, now).await,
        (rows(&[]), 0),
        "a device leaking on a check is never compliant"
    );

    // Echo reports again, under a new name: it is leaky again, and sorts by
    // its new name.
    stored(
        store,
        report(
            &devices["echo"],
            open_firewall(shipshape("able", recently)),
            recently,
        ),
        &graded,
    )
    .await;
    // Delta's firewall is fixed: it leaves the filtered table.
    stored(
        store,
        report(&devices["delta"], shipshape("delta", recently), recently),
        &graded,
    )
    .await;
    // Charlie springs the leak and is renamed in the same report.
    stored(
        store,
        report(
            &devices["charlie"],
            open_firewall(shipshape("carol", recently)),
            recently,
        ),
        &graded,
    )
    .await;
    let after_reports = rows(&[
        ("able", Leaky),
        ("Bravo", Leaky),
        ("carol", Leaky),
        ("alpha", Silent),
    ]);
    assert_eq!(firewall(None, 1, 50, now).await, (after_reports.clone(), 4));
    assert_eq!(
        firewall(Some(Leaky), 2, 2, now).await,
        (rows(&[("carol", Leaky)]), 3)
    );

    // A policy under which the open firewall does not leak empties the
    // filtered table; back to the strict one, every leak returns with the
    // device's current name and last contact.
    let lenient_text = "leak-severity = \"critical\"\n[checks.firewall]\nseverity = \"high\"\n";
    let (lenient, _) = store.activate_policy(lenient_text, now).await.unwrap();
    regrade(store, lenient_text, &lenient, now).await;
    assert_eq!(firewall(None, 1, 50, now).await, (rows(&[]), 0));
    let (strict, _) = store
        .activate_policy(strict_text, now + hours(1))
        .await
        .unwrap();
    regrade(store, strict_text, &strict, now + hours(1)).await;
    assert_eq!(firewall(None, 1, 50, now).await, (after_reports, 4));

    // Time passes: every device goes silent, in one group by hostname.
    assert_eq!(
        firewall(None, 1, 50, now + days(2)).await,
        (
            rows(&[
                ("able", Silent),
                ("alpha", Silent),
                ("Bravo", Silent),
                ("carol", Silent),
            ]),
            4
        )
    );
}

pub(crate) async fn revoked_devices_stay_listed(store: &dyn Store) {
    let policy = active(default_policy());
    let device = enroll(store, "lost-laptop", t0()).await;
    stored(
        store,
        report(&device, open_firewall(shipshape("lost-laptop", t0())), t0()),
        &policy,
    )
    .await;
    assert!(store.revoke_device(&device, t0() + hours(1)).await.unwrap());
    assert!(!store.revoke_device("no-such-device", t0()).await.unwrap());
    assert!(store.device_key(&device).await.unwrap().unwrap().revoked);
    let page = fleet(store, &query(t0() + hours(2))).await;
    assert_eq!(page.devices.len(), 1);
    assert!(page.devices[0].revoked);
    assert_eq!(page.devices[0].status, DeviceStatus::Leaky);
    assert!(detail(store, &device, t0()).await.device.revoked);
}

pub(crate) async fn concurrent_reports_are_each_stored_exactly_once(store: &dyn Store) {
    let policy = active(default_policy());
    let mut devices = Vec::new();
    for n in 0..20 {
        devices.push(enroll(store, &format!("host-{n:02}"), t0()).await);
    }
    let mut reports = Vec::new();
    for n in 0..200 {
        let device = &devices[n % devices.len()];
        let at = t0() + SignedDuration::from_secs(n as i64);
        let facts = if n % 3 == 0 {
            open_firewall(shipshape("x", at))
        } else {
            shipshape("x", at)
        };
        reports.push(report(device, facts, at));
    }
    // Each report twice, as a retry racing its original, with its own nonce.
    let retries: Vec<IncomingReport> = reports
        .iter()
        .map(|report| IncomingReport {
            nonce: format!("retry-{}", report.nonce),
            ..report.clone()
        })
        .collect();
    let calls = reports
        .iter()
        .chain(&retries)
        .map(|report| store.record_report(report.clone(), &policy));
    let answers = join_all(calls.collect()).await;
    let mut stored = 0;
    let mut retried = 0;
    for answer in &answers {
        match answer.as_ref().unwrap() {
            Recorded::Stored(_) => stored += 1,
            Recorded::AlreadyStored(_) => retried += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored, retried), (200, 200));
    let (originals, copies) = answers.split_at(200);
    for (original, copy) in originals.iter().zip(copies) {
        let receipt = |answer: &Recorded| match answer {
            Recorded::Stored(receipt) | Recorded::AlreadyStored(receipt) => receipt.clone(),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            receipt(original.as_ref().unwrap()),
            receipt(copy.as_ref().unwrap())
        );
    }
    for device in &devices {
        let history = detail(store, device, t0()).await;
        assert_eq!(history.reports.len(), 10, "{device}");
    }
    let page = fleet(store, &query(t0() + hours(1))).await;
    assert_eq!(page.summary.total, 20);
}

/// The policy of the stories that need unknown devices: the default one,
/// with unknown findings reported rather than leaking.
fn reporting_text() -> String {
    include_str!("../../../policies/default.toml")
        .replace("unknown = \"leak\"", "unknown = \"report\"")
}

pub(crate) const LENIENT: &str =
    "leak-severity = \"critical\"\n[checks.firewall]\nseverity = \"high\"\n";

/// Where a row sorts in the device table: group, key, hostname, id.
fn table_key(row: &DeviceRow) -> (u8, String, String, String) {
    (
        rank(row.status),
        sort_key(&row.hostname),
        row.hostname.clone(),
        row.id.clone(),
    )
}

fn ids(rows: &[DeviceRow]) -> Vec<&str> {
    rows.iter().map(|row| row.id.as_str()).collect()
}

pub(crate) async fn keyset_pages_list_every_device_once_in_order_while_reports_arrive(
    store: &dyn Store,
) {
    let graded = active(policy(&reporting_text()));
    let now = t0() + days(10);
    let recently = now - hours(1);
    let long_ago = now - days(5);
    // Mixed case, shared hostnames (ordered by id), every group.
    let mut reported = Vec::new();
    for n in 0..30_u32 {
        let hostname = match n % 5 {
            0 => format!("Host-{n:02}"),
            1 => format!("host-{n:02}"),
            2 => "twin".to_owned(),
            3 => format!("z{:02}", 30 - n),
            _ => format!("A{n}"),
        };
        let kind = n % 4;
        let at = if kind == 3 { long_ago } else { recently };
        let facts = |hostname: &str, at| match kind {
            1 => shipshape(hostname, at),
            2 => unknown_firewall(shipshape(hostname, at)),
            _ => open_firewall(shipshape(hostname, at)),
        };
        let device = enroll(store, &hostname, long_ago - days(1)).await;
        stored(store, report(&device, facts(&hostname, at), at), &graded).await;
        reported.push((device, hostname, kind, at));
    }
    for n in 0..3 {
        enroll(store, &format!("never-{n}"), long_ago).await;
    }
    let all = FleetQuery {
        per_page: 1000,
        ..query(now)
    };
    let (before, pages) = every_page(store, &all).await;
    assert_eq!((before.len(), pages), (33, 1));
    let keys: Vec<_> = before.iter().map(table_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "one page is in table order");
    let groups: Vec<DeviceStatus> = before.iter().map(|row| row.status).collect();
    assert!(groups.contains(&DeviceStatus::Unknown) && groups.contains(&DeviceStatus::Silent));

    // Page by page, while every listed device reports again (graded the
    // same, so its place stays) and new devices enroll.
    for (filter, per_page) in [(None, 4), (Some("firewall"), 3)] {
        let query = FleetQuery {
            check: filter.map(str::to_owned),
            per_page,
            ..query(now)
        };
        let (expected, _) = every_page(
            store,
            &FleetQuery {
                per_page: 1000,
                ..query.clone()
            },
        )
        .await;
        let mut walked = Vec::new();
        let mut cursor = query.clone();
        let mut minute = 0;
        loop {
            let page = store.fleet_devices(&cursor).await.unwrap();
            assert!(page.devices.len() <= per_page as usize);
            assert!(walked.len() < 1000, "paging does not end: {:?}", page.next);
            for row in &page.devices {
                if let Some((device, hostname, kind, at)) =
                    reported.iter().find(|(device, ..)| *device == row.id)
                {
                    minute += 1;
                    let at = *at + SignedDuration::from_mins(minute);
                    let facts = match kind {
                        1 => shipshape(hostname, at),
                        2 => unknown_firewall(shipshape(hostname, at)),
                        _ => open_firewall(shipshape(hostname, at)),
                    };
                    stored(store, report(device, facts, at), &graded).await;
                }
            }
            enroll(store, &format!("new-{minute}"), now - hours(2)).await;
            walked.extend(page.devices);
            match page.next {
                Some(next) => cursor.after = Some(next),
                None => break,
            }
        }
        let keys: Vec<_> = walked.iter().map(table_key).collect();
        assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]),
            "{filter:?}: in table order, no device twice: {keys:?}"
        );
        let originals: Vec<DeviceRow> = walked
            .iter()
            .filter(|row| !row.hostname.starts_with("new-"))
            .cloned()
            .collect();
        assert_eq!(
            ids(&originals),
            ids(&expected),
            "{filter:?}: every device that was there, exactly once"
        );
    }
}

/// Asserts the fleet's counts (as the store keeps them) equal a recount
/// of the device table, for every filter.
async fn assert_counts_agree(store: &dyn Store, now: Timestamp, after: &str) {
    let everything = FleetQuery {
        per_page: 7,
        ..query(now)
    };
    let (rows, _) = every_page(store, &everything).await;
    let mut recount = Summary::default();
    let mut checks = std::collections::BTreeMap::<String, u64>::new();
    for row in &rows {
        recount.total += 1;
        match row.status {
            DeviceStatus::Leaky => recount.leaky += 1,
            DeviceStatus::Silent => recount.silent += 1,
            DeviceStatus::Unknown => recount.unknown += 1,
            DeviceStatus::Compliant => recount.compliant += 1,
        }
        for check in &row.failing_checks {
            *checks.entry(check.clone()).or_default() += 1;
        }
    }
    let counts = store.fleet_summary(&everything).await.unwrap();
    assert_eq!(counts.summary, recount, "after {after}");
    let kept: std::collections::BTreeMap<String, u64> = counts
        .failures_by_check
        .iter()
        .map(|failures| (failures.check.clone(), failures.devices))
        .collect();
    assert_eq!(kept, checks, "after {after}");
    assert_eq!(counts.matching, recount.total, "after {after}");
    for status in crate::keyset::GROUPS {
        for check in [None, Some("firewall"), Some("os-updates")] {
            let filtered = FleetQuery {
                status: Some(status),
                check: check.map(str::to_owned),
                ..everything.clone()
            };
            let listed = every_page(store, &filtered).await.0;
            let expected: Vec<&DeviceRow> = rows
                .iter()
                .filter(|row| row.status == status)
                .filter(|row| {
                    check.is_none_or(|check| row.failing_checks.iter().any(|c| c == check))
                })
                .collect();
            assert_eq!(
                listed.len(),
                expected.len(),
                "after {after}: {status} {check:?}"
            );
            let matching = store.fleet_summary(&filtered).await.unwrap().matching;
            assert_eq!(
                matching,
                expected.len() as u64,
                "after {after}: {status} {check:?}"
            );
        }
    }
}

pub(crate) async fn the_counts_equal_a_recount_after_every_kind_of_write(store: &dyn Store) {
    let reporting = reporting_text();
    let (stored_policy, _) = store.activate_policy(&reporting, t0()).await.unwrap();
    let graded = ActivePolicy {
        policy: policy(&reporting),
        stored: stored_policy,
    };
    let now = t0() + days(20);
    assert_counts_agree(store, now, "nothing").await;
    let ada = enroll(store, "ada", t0()).await;
    let bob = enroll(store, "Bob", now - hours(5)).await;
    assert_counts_agree(store, now, "enrollments").await;

    let at = now - hours(4);
    let first = report(&ada, open_firewall(shipshape("ada", at)), at);
    stored(store, first.clone(), &graded).await;
    assert_counts_agree(store, now, "a leak").await;
    let mut retry = first.clone();
    retry.nonce = "retry".into();
    assert!(matches!(
        store.record_report(retry, &graded).await.unwrap(),
        Recorded::AlreadyStored(_)
    ));
    assert_eq!(
        store.record_report(first, &graded).await.unwrap(),
        Recorded::ReplayedNonce
    );
    assert_counts_agree(store, now, "a retry and a replay").await;

    let at = now - days(19);
    stored(
        store,
        report(&bob, unknown_firewall(shipshape("Bob", at)), at),
        &graded,
    )
    .await;
    assert_counts_agree(store, now, "an unknown report, long ago (silent)").await;
    let at = now - hours(3);
    stored(
        store,
        report(
            &bob,
            open_firewall(pending_security_update(shipshape("bob", at))),
            at,
        ),
        &graded,
    )
    .await;
    assert_counts_agree(store, now, "a second check failing, in grace").await;
    let later = now + days(15);
    stored(
        store,
        report(
            &bob,
            open_firewall(pending_security_update(shipshape("bob", later))),
            later,
        ),
        &graded,
    )
    .await;
    assert_counts_agree(store, later, "a second leak past grace").await;
    let at = later + hours(1);
    stored(
        store,
        report(&ada, shipshape("ada-renamed", at), at),
        &graded,
    )
    .await;
    assert_counts_agree(store, at, "a fix and a new name").await;
    assert!(store.revoke_device(&ada, at).await.unwrap());
    assert_counts_agree(store, at, "a revocation").await;

    let (lenient, _) = store.activate_policy(LENIENT, at).await.unwrap();
    regrade(store, LENIENT, &lenient, at).await;
    assert_counts_agree(store, at, "a lenient policy's re-grade").await;
    let (strict, _) = store.activate_policy(&reporting, at).await.unwrap();
    regrade(store, &reporting, &strict, at).await;
    assert_counts_agree(store, at, "a strict policy's re-grade").await;
    assert_counts_agree(store, at + days(3), "time passing: all silent").await;
}

pub(crate) async fn a_regrade_goes_in_batches_resumes_and_is_superseded(store: &dyn Store) {
    let strict_text = include_str!("../../../policies/default.toml");
    let (strict, _) = store.activate_policy(strict_text, t0()).await.unwrap();
    let graded = ActivePolicy {
        policy: default_policy(),
        stored: strict.clone(),
    };
    let at = t0() + hours(1);
    let mut devices = Vec::new();
    for n in 0..5 {
        let hostname = format!("host-{n}");
        let device = enroll(store, &hostname, t0()).await;
        stored(
            store,
            report(&device, open_firewall(shipshape(&hostname, at)), at),
            &graded,
        )
        .await;
        devices.push(device);
    }
    devices.push(enroll(store, "never-reported", t0()).await);
    devices.sort();
    let status = async |device: &str| detail(store, device, at).await.device.status;

    // A first server re-grades two devices, then stops.
    let later = at + hours(1);
    let (lenient, started) = store.activate_policy(LENIENT, later).await.unwrap();
    assert_eq!((started.devices, started.after.as_str()), (6, ""));
    let states = store.device_states("", 2).await.unwrap();
    assert_eq!(ids_of(&states), devices[..2], "the first two, in id order");
    assert_eq!(store.device_states(&devices[4], 10).await.unwrap().len(), 1);
    assert!(
        store
            .device_states(&devices[5], 10)
            .await
            .unwrap()
            .is_empty()
    );
    let first =
        crate::regrade::grade_batch(&policy(LENIENT), lenient.id, String::new(), &states, later);
    assert_eq!(
        first.changes.len(),
        2,
        "both leaked under the strict policy"
    );
    let saved = store.save_regrade(first.clone()).await.unwrap().unwrap();
    assert_eq!(
        (
            saved.state,
            saved.done,
            saved.changed_status,
            saved.after.as_str()
        ),
        (RegradeState::Running, 2, 2, devices[1].as_str())
    );
    assert_eq!(status(&devices[0]).await, DeviceStatus::Compliant);
    assert_eq!(
        status(&devices[2]).await,
        DeviceStatus::Leaky,
        "not re-graded yet"
    );
    assert_eq!(
        store.save_regrade(first).await.unwrap(),
        None,
        "a batch read from where the re-grade no longer stands is refused"
    );
    assert_eq!(store.regrade_progress().await.unwrap(), Some(saved));

    // Another server resumes where it stood: each device is re-graded once.
    let done = regrade(store, LENIENT, &lenient, later).await;
    assert_eq!(
        (done.state, done.devices, done.done, done.changed_status),
        (RegradeState::Done, 6, 6, 5)
    );
    for device in &devices {
        let history = detail(store, device, later).await;
        let by_policy = history
            .transitions
            .iter()
            .filter(|t| t.report_id.is_none())
            .count();
        let reported = device != "never-reported" && !history.reports.is_empty();
        assert_eq!(
            by_policy,
            usize::from(reported),
            "{device}: {:?}",
            history.transitions
        );
    }

    // A newer policy supersedes an unfinished re-grade: its batches are refused.
    let (strict_again, _) = store
        .activate_policy(strict_text, later + hours(1))
        .await
        .unwrap();
    let states = store.device_states("", 3).await.unwrap();
    let batch = crate::regrade::grade_batch(
        &default_policy(),
        strict_again.id,
        String::new(),
        &states,
        later + hours(1),
    );
    let saved = store.save_regrade(batch).await.unwrap().unwrap();
    assert_eq!(saved.done, 3);
    let (lenient_again, _) = store
        .activate_policy(LENIENT, later + hours(2))
        .await
        .unwrap();
    let rest = store.device_states(&saved.after, 10).await.unwrap();
    let refused = crate::regrade::grade_batch(
        &default_policy(),
        strict_again.id,
        saved.after.clone(),
        &rest,
        later + hours(1),
    );
    assert!(!refused.changes.is_empty());
    assert_eq!(store.save_regrade(refused).await.unwrap(), None);
    assert_eq!(
        status(&devices[4]).await,
        DeviceStatus::Compliant,
        "nothing of it stored"
    );
    let strict_active = ActivePolicy {
        policy: default_policy(),
        stored: strict_again,
    };
    let current = crate::regrade::run(store, &strict_active, || later + hours(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (current.policy_id, current.state, current.done),
        (lenient_again.id, RegradeState::Running, 0),
        "the superseded re-grade does nothing and says which one runs"
    );
    assert_eq!(status(&devices[0]).await, DeviceStatus::Leaky);
    let done = regrade(store, LENIENT, &lenient_again, later + hours(2)).await;
    assert_eq!((done.done, done.changed_status), (6, 3));
    for device in &devices {
        assert_ne!(status(device).await, DeviceStatus::Leaky, "{device}");
    }
}

fn ids_of(states: &[crate::model::DeviceState]) -> Vec<String> {
    states.iter().map(|state| state.id.clone()).collect()
}

pub(crate) async fn a_report_during_a_regrade_keeps_its_grade(store: &dyn Store) {
    let strict_text = include_str!("../../../policies/default.toml");
    let (strict, _) = store.activate_policy(strict_text, t0()).await.unwrap();
    let at = t0() + hours(1);
    let device = enroll(store, "ada", t0()).await;
    let strict_active = ActivePolicy {
        policy: default_policy(),
        stored: strict,
    };
    stored(
        store,
        report(&device, open_firewall(shipshape("ada", at)), at),
        &strict_active,
    )
    .await;

    let later = at + hours(1);
    let (lenient, _) = store.activate_policy(LENIENT, later).await.unwrap();
    let states = store.device_states("", 10).await.unwrap();
    let batch =
        crate::regrade::grade_batch(&policy(LENIENT), lenient.id, String::new(), &states, later);
    assert_eq!(batch.changes.len(), 1);
    // The device reports (graded by the new policy) before the batch is stored.
    let lenient_active = ActivePolicy {
        policy: policy(LENIENT),
        stored: lenient,
    };
    let fixed = later + SignedDuration::from_mins(5);
    let receipt = stored(
        store,
        report(&device, shipshape("ada", fixed), fixed),
        &lenient_active,
    )
    .await;
    assert_eq!(receipt.findings[0].status, Status::Pass);
    let progress = store.save_regrade(batch).await.unwrap().unwrap();
    assert_eq!((progress.done, progress.changed_status), (1, 0));
    let after = detail(store, &device, fixed).await;
    assert_eq!(
        after.findings, receipt.findings,
        "the report's grade stands"
    );
    let causes: Vec<Option<&str>> = after
        .transitions
        .iter()
        .map(|transition| transition.report_id.as_deref())
        .collect();
    assert_eq!(causes.len(), 2, "{causes:?}");
    assert!(
        causes.iter().all(Option::is_some),
        "no transition from the stale batch"
    );
    assert_counts_agree(store, fixed, "a stale batch").await;
}

pub(crate) async fn simulating_a_policy_changes_nothing(store: &dyn Store) {
    let graded = active(default_policy());
    let at = t0() + hours(1);
    let mut devices = Vec::new();
    for (hostname, facts) in [
        ("open", open_firewall(shipshape("open", at))),
        ("clean", shipshape("clean", at)),
        ("pending", pending_security_update(shipshape("pending", at))),
    ] {
        let device = enroll(store, hostname, t0()).await;
        stored(store, report(&device, facts, at), &graded).await;
        devices.push(device);
    }
    devices.push(enroll(store, "never", t0()).await);
    let snapshot = async || {
        let mut details = Vec::new();
        for device in &devices {
            details.push(detail(store, device, at).await);
        }
        (
            fleet(store, &query(at)).await,
            details,
            store.regrade_progress().await.unwrap(),
            store.active_policy().await.unwrap(),
        )
    };
    let before = snapshot().await;

    let lenient = crate::simulate::simulate(store, &policy(LENIENT), at)
        .await
        .unwrap();
    assert_eq!(
        (
            lenient.devices,
            lenient.graded,
            lenient.leaky_now,
            lenient.would_leak
        ),
        (4, 3, 1, 0)
    );
    assert_eq!((lenient.newly_leaky, lenient.no_longer_leaky), (0, 1));
    assert!(lenient.springs.is_empty());
    let bails: Vec<(&str, &[String])> = lenient
        .bails_out
        .iter()
        .map(|device| (device.hostname.as_str(), device.checks.as_slice()))
        .collect();
    assert_eq!(bails, [("open", &["firewall".to_owned()][..])]);

    let no_grace =
        "[checks.firewall]\nseverity = \"high\"\n[checks.os-updates]\nseverity = \"high\"\n";
    let strict = crate::simulate::simulate(store, &policy(no_grace), at)
        .await
        .unwrap();
    assert_eq!(
        (
            strict.would_leak,
            strict.newly_leaky,
            strict.no_longer_leaky
        ),
        (2, 1, 0)
    );
    let springs: Vec<(&str, &[String])> = strict
        .springs
        .iter()
        .map(|device| (device.hostname.as_str(), device.checks.as_slice()))
        .collect();
    assert_eq!(springs, [("pending", &["os-updates".to_owned()][..])]);
    assert!(strict.bails_out.is_empty());

    assert!(before == snapshot().await, "a simulation stores nothing");
}

/// Polls every future in one task until all are done: many requests in
/// flight at once without `'static` bounds.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Another server activated a newer policy: a report graded by the old one
/// stores nothing, its nonce included, and is stored once graded again.
pub(crate) async fn a_report_graded_by_a_replaced_policy_is_refused(store: &dyn Store) {
    assert_eq!(store.active_policy_id().await.unwrap(), None);
    let strict_text = include_str!("../../../policies/default.toml");
    let (strict, _) = store.activate_policy(strict_text, t0()).await.unwrap();
    assert_eq!(store.active_policy_id().await.unwrap(), Some(strict.id));
    let device = enroll(store, "ada", t0()).await;
    let (lenient, _) = store.activate_policy(LENIENT, t0()).await.unwrap();
    assert_eq!(store.active_policy_id().await.unwrap(), Some(lenient.id));

    let at = t0() + hours(1);
    let leaking = report(&device, open_firewall(shipshape("ada", at)), at);
    let outdated = ActivePolicy {
        policy: default_policy(),
        stored: strict,
    };
    assert_eq!(
        store
            .record_report(leaking.clone(), &outdated)
            .await
            .unwrap(),
        Recorded::PolicyOutdated
    );
    let unchanged = detail(store, &device, at).await;
    assert!(unchanged.reports.is_empty(), "{:?}", unchanged.reports);
    assert_eq!(unchanged.device.status, DeviceStatus::Unknown);
    let hash = facts_hash(&leaking.submission.facts);
    assert_eq!(store.current_facts(&device, &hash).await.unwrap(), None);

    let current = ActivePolicy {
        policy: policy(LENIENT),
        stored: lenient,
    };
    let receipt = stored(store, leaking, &current).await;
    assert_eq!(receipt.status, DeviceStatus::Compliant, "graded leniently");
    assert_counts_agree(store, at, "a refused report").await;
}

/// A heartbeat finds the device's current facts by their hash, and is
/// stored without a copy of them: they stay in the full report that brought
/// them, where re-grading finds them, until other facts arrive.
pub(crate) async fn a_heartbeat_repeats_the_stored_facts(store: &dyn Store) {
    let strict_text = include_str!("../../../policies/default.toml");
    let (strict, _) = store.activate_policy(strict_text, t0()).await.unwrap();
    let strict_active = ActivePolicy {
        policy: default_policy(),
        stored: strict,
    };
    let device = enroll(store, "ada", t0()).await;
    let at = t0() + hours(1);
    let leaking = open_firewall(shipshape("ada", at));
    let hash = facts_hash(&leaking);
    assert_eq!(
        store.current_facts(&device, &hash).await.unwrap(),
        None,
        "no report yet"
    );

    let full = report(&device, leaking.clone(), at);
    let full_id = full.submission.id.clone();
    stored(store, full, &strict_active).await;
    let origin = FactsOrigin {
        report_id: full_id.clone(),
        hash: hash.clone(),
    };
    let current = store.current_facts(&device, &hash).await.unwrap();
    assert_eq!(
        current,
        Some(CurrentFacts {
            origin: origin.clone(),
            facts: leaking.clone(),
        })
    );
    let other_hash = facts_hash(&shipshape("ada", at));
    assert_ne!(other_hash, hash);
    assert_eq!(
        store.current_facts(&device, &other_hash).await.unwrap(),
        None
    );
    assert_eq!(
        store.current_facts("no-such-device", &hash).await.unwrap(),
        None
    );

    let later = at + hours(1);
    let mut heartbeat = report(&device, leaking.clone(), later);
    heartbeat.repeats = Some(origin.clone());
    let heartbeat_id = heartbeat.submission.id.clone();
    let receipt = stored(store, heartbeat, &strict_active).await;
    assert_eq!(receipt.status, DeviceStatus::Leaky);
    let shown = detail(store, &device, later).await;
    assert_eq!(
        shown
            .reports
            .iter()
            .map(|report| report.id.as_str())
            .collect::<Vec<_>>(),
        [heartbeat_id.as_str(), full_id.as_str()],
        "the heartbeat is a report of its own"
    );
    assert_eq!(shown.device.last_seen, Some(later));
    assert_eq!(
        store.current_facts(&device, &hash).await.unwrap(),
        Some(CurrentFacts {
            origin,
            facts: leaking,
        }),
        "the facts stay where the full report stored them"
    );

    let (lenient, _) = store.activate_policy(LENIENT, later).await.unwrap();
    let progress = regrade(store, LENIENT, &lenient, later).await;
    assert_eq!((progress.done, progress.changed_status), (1, 1));
    assert_eq!(
        detail(store, &device, later).await.device.status,
        DeviceStatus::Compliant,
        "re-graded from the facts the heartbeat repeated"
    );

    let lenient_active = ActivePolicy {
        policy: policy(LENIENT),
        stored: lenient,
    };
    let fixed = shipshape("ada", later);
    let newer = report(&device, fixed.clone(), later + hours(1));
    let newer_id = newer.submission.id.clone();
    stored(store, newer, &lenient_active).await;
    assert_eq!(store.current_facts(&device, &hash).await.unwrap(), None);
    let current = store
        .current_facts(&device, &facts_hash(&fixed))
        .await
        .unwrap();
    assert_eq!(
        current.map(|current| current.origin.report_id),
        Some(newer_id),
        "new facts are the full report's own"
    );
}
