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
    for (what, tally) in [
        ("full reports", &measured.full),
        ("heartbeats", &measured.heartbeat),
    ] {
        // A kind the run did not send (a full-report-only run) is left out.
        if tally.sent > 0 {
            row(&mut out, what, tally);
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::run::Measured;
    use crate::stats::Tally;

    fn results(full: &Tally, heartbeat: &Tally, not_sent: u64) -> Results {
        let second = Duration::from_secs(1);
        let mut enrolled = Tally::default();
        enrolled.sent(300);
        enrolled.ok(Duration::from_millis(3));
        Results {
            server: "http://127.0.0.1:8443".to_owned(),
            devices: 1,
            seed: 1,
            rate: 3.0,
            duration_secs: 1.0,
            heartbeat_share: 0.0,
            concurrency: 8,
            enrollment: Phase {
                secs: 0.01,
                requests: enrolled.summary(second),
            },
            first_reports: None,
            measured: Measured {
                secs: 1.0,
                not_sent,
                full: full.summary(second),
                heartbeat: heartbeat.summary(second),
            },
        }
    }

    #[test]
    fn a_full_report_run_shows_its_row_its_errors_and_what_was_not_sent() {
        let mut full = Tally::default();
        for _ in 0..3 {
            full.sent(4_000);
        }
        full.ok(Duration::from_millis(2));
        full.error("HTTP 429".to_owned());
        full.error("HTTP 429".to_owned());
        let text = human(&results(&full, &Tally::default(), 4));
        assert!(
            text.contains("\n  full reports          3        1 "),
            "{text}"
        );
        assert!(!text.contains("  heartbeats "), "{text}");
        assert!(
            text.contains("errors:\n  full reports: HTTP 429 × 2\n"),
            "{text}"
        );
        assert!(text.contains("not sent: 4 requests"), "{text}");
    }

    #[test]
    fn a_clean_run_says_so_and_its_json_has_every_count() {
        let mut heartbeat = Tally::default();
        heartbeat.sent(2_000);
        heartbeat.ok(Duration::from_millis(1));
        let results = results(&Tally::default(), &heartbeat, 0);
        let text = human(&results);
        assert!(text.contains("errors: none"), "{text}");
        assert!(!text.contains("not sent"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&json(&results)).unwrap();
        assert_eq!(json["measured"]["heartbeat"]["ok"], 1);
        assert_eq!(json["measured"]["heartbeat"]["mean_body_bytes"], 2_000);
        assert_eq!(json["measured"]["full"]["sent"], 0);
        assert_eq!(json["enrollment"]["requests"]["ok"], 1);
        assert_eq!(json["first_reports"], serde_json::Value::Null);
    }
}
