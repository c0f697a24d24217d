//! What a run counts: per kind of request, how many were sent and
//! answered, their latencies (an HDR histogram, microseconds, 3 significant
//! figures) and the errors by what went wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency recorded as itself; longer ones count as this.
const LATENCY_CEILING_MICROS: u64 = 10 * 60 * 1_000_000;

/// Latencies, in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, LATENCY_CEILING_MICROS, 3)
                .expect("1 µs to 10 min at 3 significant figures is a valid histogram"),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(micros.clamp(1, LATENCY_CEILING_MICROS));
    }

    pub fn summary(&self) -> LatencySummary {
        let millis = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: self.histogram.len(),
            p50_ms: millis(self.histogram.value_at_quantile(0.50)),
            p90_ms: millis(self.histogram.value_at_quantile(0.90)),
            p99_ms: millis(self.histogram.value_at_quantile(0.99)),
            max_ms: millis(self.histogram.max()),
            mean_ms: self.histogram.mean() / 1000.0,
        }
    }
}

/// Percentiles of the latencies, in milliseconds (0 when none were recorded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// One kind of request: full reports, heartbeats, enrollments.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    sent: u64,
    ok: u64,
    body_bytes: u64,
    latencies: Latencies,
    errors: BTreeMap<String, u64>,
    /// Heartbeats the server answered 409 resend-full (not an error: the
    /// device sends the full report at once, counted among full reports).
    resend_full: u64,
}

impl Tally {
    /// A request of `body_bytes` went out.
    pub fn sent(&mut self, body_bytes: usize) {
        self.sent += 1;
        self.body_bytes += u64::try_from(body_bytes).unwrap_or(u64::MAX);
    }

    /// A request was answered with success after `latency`.
    pub fn ok(&mut self, latency: Duration) {
        self.ok += 1;
        self.latencies.record(latency);
    }

    /// A request failed; `what` says how ("HTTP 429", "timed out").
    pub fn error(&mut self, what: String) {
        *self.errors.entry(what).or_default() += 1;
    }

    /// A heartbeat was answered "resend the full report".
    pub fn resend_full(&mut self) {
        self.resend_full += 1;
    }

    /// The counts, with throughput over `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> TallySummary {
        let seconds = elapsed.as_secs_f64();
        TallySummary {
            sent: self.sent,
            ok: self.ok,
            ok_per_sec: if seconds > 0.0 {
                self.ok as f64 / seconds
            } else {
                0.0
            },
            mean_body_bytes: self.body_bytes.checked_div(self.sent).unwrap_or(0),
            latency: self.latencies.summary(),
            errors: self.errors.clone(),
            resend_full: self.resend_full,
        }
    }
}

/// A tally's figures, as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TallySummary {
    pub sent: u64,
    /// Answered with success (2xx).
    pub ok: u64,
    pub ok_per_sec: f64,
    pub mean_body_bytes: u64,
    /// Of the successful requests, from when each was due.
    pub latency: LatencySummary,
    /// Failed requests by what went wrong.
    pub errors: BTreeMap<String, u64>,
    pub resend_full: u64,
}

impl TallySummary {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_spread() {
        let mut latencies = Latencies::default();
        // 1 ms … 100 ms, one each: p50 is 50 ms, p90 90 ms, p99 99 ms.
        for millis in 1..=100 {
            latencies.record(Duration::from_millis(millis));
        }
        let summary = latencies.summary();
        assert_eq!(summary.count, 100);
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.001;
        assert!(close(summary.p50_ms, 50.0), "{summary:?}");
        assert!(close(summary.p90_ms, 90.0), "{summary:?}");
        assert!(close(summary.p99_ms, 99.0), "{summary:?}");
        assert!(close(summary.max_ms, 100.0), "{summary:?}");
        assert!(close(summary.mean_ms, 50.5), "{summary:?}");
    }

    #[test]
    fn one_slow_request_in_a_hundred_shows_at_p99_and_max_only() {
        let mut latencies = Latencies::default();
        for _ in 0..98 {
            latencies.record(Duration::from_micros(2_000));
        }
        latencies.record(Duration::from_secs(3));
        latencies.record(Duration::from_secs(3));
        let summary = latencies.summary();
        assert!((summary.p90_ms - 2.0).abs() < 0.01, "{summary:?}");
        assert!((summary.p99_ms - 3_000.0).abs() < 3.0, "{summary:?}");
        assert!((summary.max_ms - 3_000.0).abs() < 3.0, "{summary:?}");
    }

    #[test]
    fn latencies_beyond_the_ceiling_count_at_the_ceiling() {
        let mut latencies = Latencies::default();
        latencies.record(Duration::from_secs(3_600));
        latencies.record(Duration::ZERO);
        let summary = latencies.summary();
        assert_eq!(summary.count, 2);
        assert!(summary.max_ms >= 600_000.0 * 0.999, "{summary:?}");
    }

    #[test]
    fn an_empty_tally_reads_as_zeros() {
        let summary = Tally::default().summary(Duration::from_secs(1));
        assert_eq!(summary.sent, 0);
        assert_eq!(summary.ok_per_sec, 0.0);
        assert_eq!(summary.mean_body_bytes, 0);
        assert_eq!(summary.latency.count, 0);
        assert_eq!(summary.latency.p99_ms, 0.0);
    }

    #[test]
    fn a_tally_counts_throughput_sizes_and_errors_by_what_went_wrong() {
        let mut tally = Tally::default();
        for _ in 0..10 {
            tally.sent(4_000);
        }
        tally.sent(4_010);
        for _ in 0..8 {
            tally.ok(Duration::from_millis(5));
        }
        tally.error("HTTP 429".to_owned());
        tally.error("HTTP 429".to_owned());
        tally.error("timed out".to_owned());
        tally.resend_full();
        let summary = tally.summary(Duration::from_secs(4));
        assert_eq!(summary.sent, 11);
        assert_eq!(summary.ok, 8);
        assert_eq!(summary.ok_per_sec, 2.0);
        assert_eq!(summary.mean_body_bytes, 4_000);
        assert_eq!(
            summary.errors,
            BTreeMap::from([("HTTP 429".to_owned(), 2), ("timed out".to_owned(), 1)])
        );
        assert_eq!(summary.error_count(), 3);
        assert_eq!(summary.resend_full, 1);
        assert_eq!(summary.latency.count, 8);
    }
}
