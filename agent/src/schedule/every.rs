//! How often the timer runs `shipshape report`: `--every 30m`, `1h`, `4h`, `1d`.
//!
//! The interval must divide the hour or the day evenly, because systemd
//! schedules by wall-clock marks (`OnCalendar=`): "every 45 minutes" has no
//! calendar form that stays 45 minutes apart across the hour. The same rule
//! holds on every OS so a fleet reads one schedule the same way everywhere.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::{Span, SpanRelativeTo};

/// The shortest interval: a check takes seconds to a minute, and the server needs no more.
const MIN_MINUTES: u32 = 5;
/// The longest: the server calls a machine silent after 48 hours without a report.
const MAX_MINUTES: u32 = 24 * 60;
/// The cap on the random spread of a fleet's runs (see [`Every::spread`]).
const MAX_SPREAD_MINUTES: u32 = 60;

/// Every interval `--every` accepts, for error messages.
const CHOICES: &str = "5m 6m 10m 12m 15m 20m 30m 1h 2h 3h 4h 6h 8h 12h 1d";

/// A validated interval between runs, in whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    minutes: u32,
}

impl Every {
    /// Once an hour: the default.
    pub const HOURLY: Every = Every { minutes: 60 };

    pub fn minutes(self) -> u32 {
        self.minutes
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.minutes) * 60)
    }

    /// systemd's `OnCalendar=`: the wall-clock marks the interval falls on.
    pub fn on_calendar(self) -> String {
        let minutes = self.minutes;
        match minutes {
            m if m < 60 => format!("*-*-* *:00/{m}:00"),
            60 => "*-*-* *:00:00".to_owned(),
            m if m < MAX_MINUTES => format!("*-*-* 00/{}:00:00", m / 60),
            _ => "*-*-* 00:00:00".to_owned(),
        }
    }

    /// The longest random delay before a run: half the interval, at most an hour.
    ///
    /// Half keeps two runs of one machine at least half an interval apart
    /// while spreading a fleet over half of every interval; the hour cap keeps
    /// a daily run near its time, so a machine that is on only in office
    /// hours still runs the day it should.
    pub fn spread(self) -> Duration {
        let seconds = (self.minutes * 60 / 2).min(MAX_SPREAD_MINUTES * 60);
        Duration::from_secs(u64::from(seconds))
    }

    /// An ISO 8601 duration (`PT30M`, `PT4H`, `P1D`), as Task Scheduler wants it.
    pub fn iso8601(self) -> String {
        iso8601(self.as_duration())
    }
}

/// An ISO 8601 duration of whole seconds, in the largest unit that is exact.
pub fn iso8601(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s > 0 && s % 86_400 == 0 => format!("P{}D", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("PT{}H", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("PT{}M", s / 60),
        s => format!("PT{s}S"),
    }
}

/// A systemd time span (`30min`, `1h`, `150s`), in the largest unit that is exact.
pub fn systemd_span(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}min", s / 60),
        s => format!("{s}s"),
    }
}

/// A span for a sentence: "30 minutes", "1 hour", "2 minutes 30 seconds".
pub fn words(duration: Duration) -> String {
    let count =
        |count: u64, unit: &str| format!("{count} {unit}{}", if count == 1 { "" } else { "s" });
    let seconds = duration.as_secs();
    match seconds {
        s if s > 0 && s % 3600 == 0 => count(s / 3600, "hour"),
        s if s > 0 && s % 60 == 0 => count(s / 60, "minute"),
        s if s > 60 => format!("{} {}", count(s / 60, "minute"), count(s % 60, "second")),
        s => count(s, "second"),
    }
}

impl Default for Every {
    fn default() -> Self {
        Every::HOURLY
    }
}

impl FromStr for Every {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_a_duration = || {
            format!(
                "`{text}` is not an interval: write a number and a unit, like 30m, 1h, 4h or 1d"
            )
        };
        let span: Span = text.trim().parse().map_err(|_| not_a_duration())?;
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| not_a_duration())?;
        if duration.is_negative() {
            return Err(format!("`{text}` is negative: choose one of {CHOICES}"));
        }
        let seconds = duration.as_secs();
        if duration.subsec_nanos() != 0 || seconds % 60 != 0 {
            return Err(format!(
                "`{text}` is not a whole number of minutes: choose one of {CHOICES}"
            ));
        }
        let minutes = u32::try_from(seconds / 60).unwrap_or(u32::MAX);
        if minutes < MIN_MINUTES {
            return Err(format!(
                "`{text}` is too often: the shortest interval is 5m (a check takes up to a minute, \
                 and the server needs no more)"
            ));
        }
        if minutes > MAX_MINUTES {
            return Err(format!(
                "`{text}` is too rare: the longest interval is 1d (the server calls a machine \
                 silent after 48h without a report)"
            ));
        }
        let divides_the_hour = minutes < 60 && 60 % minutes == 0;
        let divides_the_day = minutes % 60 == 0 && MAX_MINUTES % minutes == 0;
        if !divides_the_hour && !divides_the_day {
            return Err(format!(
                "`{text}` does not divide the hour or the day evenly, so the timer could not \
                 keep it on the clock: choose one of {CHOICES}"
            ));
        }
        Ok(Every { minutes })
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minutes {
            m if m % MAX_MINUTES == 0 => write!(f, "{}d", m / MAX_MINUTES),
            m if m % 60 == 0 => write!(f, "{}h", m / 60),
            m => write!(f, "{m}m"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(text: &str) -> Every {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn every_offered_interval_parses_and_prints_back() {
        for text in CHOICES.split(' ') {
            assert_eq!(every(text).to_string(), text);
        }
        assert_eq!(every("60m"), Every::HOURLY);
        assert_eq!(every("24h").to_string(), "1d");
        assert_eq!(every(" 15 minutes ").minutes(), 15);
    }

    #[test]
    fn calendar_marks_fall_on_the_interval() {
        assert_eq!(every("5m").on_calendar(), "*-*-* *:00/5:00");
        assert_eq!(every("30m").on_calendar(), "*-*-* *:00/30:00");
        assert_eq!(every("1h").on_calendar(), "*-*-* *:00:00");
        assert_eq!(every("4h").on_calendar(), "*-*-* 00/4:00:00");
        assert_eq!(every("1d").on_calendar(), "*-*-* 00:00:00");
    }

    #[test]
    fn the_spread_is_half_the_interval_and_at_most_an_hour() {
        assert_eq!(systemd_span(every("5m").spread()), "150s");
        assert_eq!(systemd_span(every("1h").spread()), "30min");
        assert_eq!(systemd_span(every("2h").spread()), "1h");
        assert_eq!(systemd_span(every("1d").spread()), "1h");
        assert_eq!(iso8601(every("5m").spread()), "PT150S");
        assert_eq!(words(every("5m").spread()), "2 minutes 30 seconds");
        assert_eq!(words(Duration::from_secs(1)), "1 second");
        assert_eq!(words(every("1h").spread()), "30 minutes");
        assert_eq!(words(every("1d").spread()), "1 hour");
    }

    #[test]
    fn iso_durations_use_the_largest_exact_unit() {
        assert_eq!(every("30m").iso8601(), "PT30M");
        assert_eq!(every("4h").iso8601(), "PT4H");
        assert_eq!(every("1d").iso8601(), "P1D");
    }

    #[test]
    fn nonsense_and_bad_intervals_say_what_to_write() {
        let error = |text: &str| Every::from_str(text).unwrap_err();
        assert!(
            error("soon").contains("like 30m, 1h, 4h or 1d"),
            "{}",
            error("soon")
        );
        assert!(error("").contains("is not an interval"));
        assert!(error("2m").contains("the shortest interval is 5m"));
        assert!(error("4m59s").contains("whole number of minutes"));
        assert!(error("1w").contains("the longest interval is 1d"));
        assert!(error("2d").contains("the longest interval is 1d"));
        assert!(error("45m").contains("does not divide the hour or the day"));
        assert!(error("90m").contains("choose one of 5m 6m"));
        assert!(error("5h").contains("does not divide"));
        assert!(error("-1h").contains("is negative"));
    }
}
