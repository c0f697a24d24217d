//! The command line.

use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::run::Settings;
use crate::schedule::Pacing;

/// Simulates enrolled Shipshape devices sending signed full reports and
/// heartbeats to a server at a fixed rate, and reports throughput,
/// latency percentiles and errors.
#[derive(Debug, Parser)]
#[command(name = "shipshape-loadgen", version, about, long_about = None, after_long_help = HELP)]
pub struct Cli {
    /// The server: http://HOST:PORT, or https:// with a certificate this machine trusts.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// An enrollment token good for at least --devices enrollments
    /// (`shipshape-server token create --enroll --uses N`).
    #[arg(long, value_name = "TOKEN", env = "SHIPSHAPE_LOADGEN_ENROLL_TOKEN")]
    pub enroll_token: String,
    /// How many devices to enroll and simulate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub devices: u32,
    /// Requests a second, all devices together: 1000 or 1000/s.
    #[arg(long, value_name = "R/s", value_parser = parse_rate)]
    pub rate: Pacing,
    /// How long to send at that rate: 30s, 2m, 1m30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,
    /// The share of runs whose facts did not change since the device's last
    /// one, sent as heartbeats (0 to 1); the others change something and go
    /// in full.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub heartbeat_share: f64,
    /// Requests in flight at most; a request due while all are busy waits,
    /// and its wait counts in its latency.
    #[arg(long, value_name = "C", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Seed of the fleet's facts and of the schedule: the same seed, the same fleet.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// How long one request may take before it counts as timed out.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

const HELP: &str = "\
Before the measured phase, the devices enroll (concurrently) and, when
heartbeats are asked for, each sends its first full report: a heartbeat
names facts the server must already hold. Requests are sent open-loop: each
is due at its time whether or not the server kept up, and its latency counts
from then.

The server limits each device to 60 signed requests a minute (burst 10) by
default: for a benchmark, raise `rate-limit` in its config file, or spread
the rate over enough devices.

Exit codes: 0 the run finished (its errors are in the results), 2 it could not.";

/// How the results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

impl Cli {
    pub fn settings(&self) -> Settings {
        Settings {
            server: self.server.clone(),
            enroll_token: self.enroll_token.clone(),
            devices: self.devices as usize,
            pacing: self.rate,
            duration: self.duration,
            heartbeat_share: self.heartbeat_share,
            concurrency: self.concurrency as usize,
            seed: self.seed,
            timeout: self.timeout,
        }
    }
}

fn parse_rate(text: &str) -> Result<Pacing, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    number
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(Pacing::new)
        .ok_or_else(|| {
            format!("`{text}` is not a rate: write requests a second above 0, e.g. 1000 or 1000/s")
        })
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration above 0: write e.g. 30s, 2m or 1m30s");
    let signed: jiff::SignedDuration = text.trim().parse().map_err(|_| invalid())?;
    Duration::try_from(signed)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(invalid)
}

fn parse_share(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|share| (0.0..=1.0).contains(share))
        .ok_or_else(|| format!("`{text}` is not a share: write a number from 0 to 1, e.g. 0.9"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_durations_and_shares() {
        assert_eq!(parse_rate("1000").unwrap().per_second(), 1000.0);
        assert_eq!(parse_rate("2.5/s").unwrap().per_second(), 2.5);
        for bad in ["0", "-3/s", "fast", "10/m", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        for bad in ["0s", "-5s", "soon", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_share("0.9").unwrap(), 0.9);
        assert_eq!(parse_share("1").unwrap(), 1.0);
        for bad in ["1.5", "-0.1", "NaN", "most"] {
            assert!(parse_share(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_reads_into_settings() {
        let cli = Cli::try_parse_from([
            "shipshape-loadgen",
            "--server",
            "http://127.0.0.1:8443",
            "--enroll-token",
            "secret",
            "--devices",
            "50",
            "--rate",
            "200/s",
            "--duration",
            "5s",
            "--heartbeat-share",
            "0.75",
        ])
        .unwrap();
        let settings = cli.settings();
        assert_eq!(settings.devices, 50);
        assert_eq!(settings.pacing.per_second(), 200.0);
        assert_eq!(settings.duration, Duration::from_secs(5));
        assert_eq!(settings.heartbeat_share, 0.75);
        assert_eq!(settings.concurrency, 128);
        assert_eq!(settings.timeout, Duration::from_secs(10));
        assert_eq!(cli.format, Format::Human);
        assert!(
            Cli::try_parse_from([
                "shipshape-loadgen",
                "--server",
                "http://x",
                "--devices",
                "0"
            ])
            .is_err()
        );
    }
}
