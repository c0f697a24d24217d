//! The results as a person reads them (`--format human`) or as JSON.

use std::fmt::Write as _;

use crate::run::{Phase, Results};
use crate::stats::TallySummary;

/// The results as pretty JSON, with a final newline.
pub fn json(results: &Results) -> String {
    let mut text = serde_json::to_string_pretty(results).expect("results serialize to JSON");
    text.push('\n');
    text
}

/// The results as a table and a few lines.
pub fn human(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "shipshape-loadgen · {} · {} devices · {}/s for {} s · {:.0} % heartbeats · ≤ {} in flight · seed {}",
        results.server,
        results.devices,
        results.rate,
        results.duration_secs,
        results.heartbeat_share * 100.0,
        results.concurrency,
        results.seed
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "setup (as fast as the concurrency allows)");
    phase(&mut out, "enrollments", &results.enrollment);
    if let Some(first) = &results.first_reports {
        phase(&mut out, "first reports", first);
    }
    let measured = &results.measured;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "measured: {:.2} s; latency from when each request was due",
        measured.secs
    );
    let _ = writeln!(
        out,
        "  {:<14} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "sent", "ok", "ok/s", "bytes", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    row(&mut out, "full reports", &measured.full);
    row(&mut out, "heartbeats", &measured.heartbeat);
    if measured.heartbeat.resend_full > 0 {
        let _ = writeln!(
            out,
            "  {} heartbeats were answered \"resend full\" and went again in full (counted among full reports)",
            measured.heartbeat.resend_full
        );
    }
    let _ = writeln!(out);
    let mut tallies = vec![("enrollments", &results.enrollment.requests)];
    if let Some(first) = &results.first_reports {
        tallies.push(("first reports", &first.requests));
    }
    tallies.push(("full reports", &measured.full));
    tallies.push(("heartbeats", &measured.heartbeat));
    let mut errors = Vec::new();
    for (what, tally) in tallies {
        for (error, count) in &tally.errors {
            errors.push(format!("  {what}: {error} × {count}"));
        }
    }
    if errors.is_empty() {
        let _ = writeln!(out, "errors: none");
    } else {
        let _ = writeln!(out, "errors:");
        for line in errors {
            let _ = writeln!(out, "{line}");
        }
    }
    if measured.not_sent > 0 {
        let _ = writeln!(
            out,
            "not sent: {} requests fell due but were still waiting when the time was up: the rate is above what the server (or this machine) sustains",
            measured.not_sent
        );
    }
    out
}

fn phase(out: &mut String, what: &str, phase: &Phase) {
    let requests = &phase.requests;
    let _ = writeln!(
        out,
        "  {what:<14} {} of {} in {:.2} s ({:.0}/s), p50 {:.1} ms, p99 {:.1} ms",
        requests.ok,
        requests.sent,
        phase.secs,
        requests.ok_per_sec,
        requests.latency.p50_ms,
        requests.latency.p99_ms
    );
}

fn row(out: &mut String, what: &str, tally: &TallySummary) {
    let latency = &tally.latency;
    let _ = writeln!(
        out,
        "  {what:<14} {:>8} {:>8} {:>9.1} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        tally.sent,
        tally.ok,
        tally.ok_per_sec,
        tally.mean_body_bytes,
        latency.p50_ms,
        latency.p90_ms,
        latency.p99_ms,
        latency.max_ms
    );
}
