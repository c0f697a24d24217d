//! `GET /healthz` (the store answers) and `GET /metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;

use super::AppState;
use super::reports::Kind;
use crate::model::{FleetQuery, RegradeProgress, RegradeState};

/// Counters since the server started. Counting never blocks a request for
/// long: atomics, and a small map for rejection reasons.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By status class: 1xx … 5xx.
    requests: [AtomicU64; 5],
    reports_accepted: AtomicU64,
    reports_duplicate: AtomicU64,
    heartbeats_accepted: AtomicU64,
    heartbeats_duplicate: AtomicU64,
    reports_rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Reports agents dropped from full outboxes, as they told us.
    dropped_by_agents: AtomicU64,
    /// Requests refused by a limit, by which.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    enrollments_accepted: AtomicU64,
    enrollments_refused: AtomicU64,
    policy_sent: AtomicU64,
    policy_not_modified: AtomicU64,
    policy_rejected: AtomicU64,
}

impl Metrics {
    pub(super) fn request(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn report_accepted(&self, kind: Kind, duplicate: bool) {
        let counter = match (kind, duplicate) {
            (Kind::Full, false) => &self.reports_accepted,
            (Kind::Full, true) => &self.reports_duplicate,
            (Kind::Heartbeat, false) => &self.heartbeats_accepted,
            (Kind::Heartbeat, true) => &self.heartbeats_duplicate,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn report_rejected(&self, reason: &'static str) {
        increment(&self.reports_rejected, reason);
    }

    pub(super) fn dropped_by_agent(&self, count: u64) {
        self.dropped_by_agents.fetch_add(count, Ordering::Relaxed);
    }

    /// A request refused by a limit: `rate_limited`, `overloaded` or `timed_out`.
    pub(super) fn refused(&self, limit: &'static str) {
        increment(&self.refused, limit);
    }

    pub(super) fn enrollment(&self, accepted: bool) {
        let counter = if accepted {
            &self.enrollments_accepted
        } else {
            &self.enrollments_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn policy_fetch(&self, outcome: PolicyFetch) {
        let counter = match outcome {
            PolicyFetch::Sent => &self.policy_sent,
            PolicyFetch::NotModified => &self.policy_not_modified,
            PolicyFetch::Rejected => &self.policy_rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    fn render(&self, out: &mut String) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        counter(
            out,
            "shipshape_http_requests_total",
            "HTTP requests answered, by status class.",
            &["1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .zip(&self.requests)
                .map(|(class, count)| (format!("class=\"{class}\""), load(count)))
                .collect::<Vec<_>>(),
        );
        counter(
            out,
            "shipshape_reports_total",
            "Signed reports accepted: newly stored, or a retry of one already stored.",
            &[
                (
                    "outcome=\"stored\"".to_owned(),
                    load(&self.reports_accepted),
                ),
                (
                    "outcome=\"duplicate\"".to_owned(),
                    load(&self.reports_duplicate),
                ),
            ],
        );
        counter(
            out,
            "shipshape_heartbeats_total",
            "Heartbeats (a run whose facts did not change) accepted: newly stored, or a retry of one already stored.",
            &[
                (
                    "outcome=\"stored\"".to_owned(),
                    load(&self.heartbeats_accepted),
                ),
                (
                    "outcome=\"duplicate\"".to_owned(),
                    load(&self.heartbeats_duplicate),
                ),
            ],
        );
        counter(
            out,
            "shipshape_reports_rejected_total",
            "Reports and heartbeats refused, by reason (resend_full: a heartbeat naming facts the server does not hold); nothing was stored for them.",
            &by_label(&self.reports_rejected, "reason"),
        );
        counter(
            out,
            "shipshape_reports_dropped_by_agents_total",
            "Reports agents dropped from their full outboxes, as they said in their next report: runs the server never saw.",
            &[(String::new(), load(&self.dropped_by_agents))],
        );
        counter(
            out,
            "shipshape_requests_refused_total",
            "Requests refused by a limit: a device over its rate (429), too many requests in flight (503), a request over its time (408).",
            &by_label(&self.refused, "limit"),
        );
        counter(
            out,
            "shipshape_enrollments_total",
            "Enrollment requests, by outcome.",
            &[
                (
                    "outcome=\"enrolled\"".to_owned(),
                    load(&self.enrollments_accepted),
                ),
                (
                    "outcome=\"refused\"".to_owned(),
                    load(&self.enrollments_refused),
                ),
            ],
        );
        counter(
            out,
            "shipshape_policy_fetches_total",
            "Signed policy fetches, by outcome.",
            &[
                ("outcome=\"sent\"".to_owned(), load(&self.policy_sent)),
                (
                    "outcome=\"not_modified\"".to_owned(),
                    load(&self.policy_not_modified),
                ),
                (
                    "outcome=\"rejected\"".to_owned(),
                    load(&self.policy_rejected),
                ),
            ],
        );
    }
}

fn increment(counts: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    let mut counts = counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *counts.entry(key).or_default() += 1;
}

fn by_label(counts: &Mutex<BTreeMap<&'static str, u64>>, label: &str) -> Vec<(String, u64)> {
    counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(value, count)| (format!("{label}=\"{value}\""), *count))
        .collect()
}

/// How a signed `GET /v1/policy` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PolicyFetch {
    Sent,
    NotModified,
    Rejected,
}

fn counter(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    family(out, name, help, "counter", samples);
}

fn family(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// `GET /healthz`: 200 `ok` when the store answers, else 503.
pub(super) async fn healthz(State(state): State<AppState>) -> Response {
    match state.store().ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(error) => {
            tracing::error!(%error, "health check: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable: the store does not answer\n",
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: counters, the fleet by status, the re-grade's progress
/// and build information.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    state.metrics().render(&mut out);
    let query = FleetQuery {
        status: None,
        check: None,
        after: None,
        per_page: 1,
        staleness: state.staleness(Timestamp::now()),
    };
    match state.store().fleet_summary(&query).await {
        Ok(counts) => {
            let summary = counts.summary;
            family(
                &mut out,
                "shipshape_fleet_devices",
                "Enrolled devices, by status.",
                "gauge",
                &[
                    ("leaky", summary.leaky),
                    ("silent", summary.silent),
                    ("unknown", summary.unknown),
                    ("compliant", summary.compliant),
                ]
                .map(|(status, count)| (format!("status=\"{status}\""), count)),
            );
        }
        Err(error) => tracing::warn!(%error, "metrics: cannot count the fleet"),
    }
    match state.store().regrade_progress().await {
        Ok(Some(progress)) => regrade(&mut out, &progress),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "metrics: cannot read the re-grade's progress"),
    }
    family(
        &mut out,
        "shipshape_build_info",
        "The running server's version.",
        "gauge",
        &[(format!("version=\"{}\"", env!("CARGO_PKG_VERSION")), 1)],
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The re-grade of the active policy, as gauges.
fn regrade(out: &mut String, progress: &RegradeProgress) {
    family(
        out,
        "shipshape_regrade_running",
        "1 while the fleet is being re-graded under the active policy, else 0.",
        "gauge",
        &[(
            format!("policy_id=\"{}\"", progress.policy_id),
            u64::from(progress.state == RegradeState::Running),
        )],
    );
    family(
        out,
        "shipshape_regrade_devices",
        "The re-grade of the active policy: devices to look at (total), looked at (done), whose status changed (changed).",
        "gauge",
        &[
            ("total", progress.devices),
            ("done", progress.done),
            ("changed", progress.changed_status),
        ]
        .map(|(count, value)| (format!("count=\"{count}\""), value)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let metrics = Metrics::default();
        metrics.request(StatusCode::OK);
        metrics.request(StatusCode::UNAUTHORIZED);
        metrics.request(StatusCode::UNAUTHORIZED);
        metrics.report_accepted(Kind::Full, false);
        metrics.report_accepted(Kind::Full, true);
        metrics.report_accepted(Kind::Heartbeat, false);
        metrics.report_rejected("bad_signature");
        metrics.report_rejected("bad_signature");
        metrics.dropped_by_agent(3);
        metrics.dropped_by_agent(2);
        metrics.refused("overloaded");
        metrics.enrollment(true);
        metrics.policy_fetch(PolicyFetch::NotModified);
        let mut out = String::new();
        metrics.render(&mut out);
        for line in [
            "# TYPE shipshape_http_requests_total counter",
            "shipshape_http_requests_total{class=\"2xx\"} 1",
            "shipshape_http_requests_total{class=\"4xx\"} 2",
            "shipshape_reports_total{outcome=\"stored\"} 1",
            "shipshape_reports_total{outcome=\"duplicate\"} 1",
            "shipshape_heartbeats_total{outcome=\"stored\"} 1",
            "shipshape_heartbeats_total{outcome=\"duplicate\"} 0",
            "shipshape_reports_rejected_total{reason=\"bad_signature\"} 2",
            "shipshape_reports_dropped_by_agents_total 5",
            "shipshape_requests_refused_total{limit=\"overloaded\"} 1",
            "shipshape_enrollments_total{outcome=\"enrolled\"} 1",
            "shipshape_enrollments_total{outcome=\"refused\"} 0",
            "shipshape_policy_fetches_total{outcome=\"not_modified\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }
}
