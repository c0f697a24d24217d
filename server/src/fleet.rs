//! The fleet report for the security team, rendered three ways: HTML pages
//! for the browser ([`html`]), CSV for spreadsheets ([`csv`]) and a table for
//! the terminal ([`table`]). Every renderer is a pure function of the model
//! and of `now` (for "3 h ago"), so each view is tested by snapshot.
//!
//! Everything a device sends — hostname, OS, check names, evidence — is
//! untrusted: the HTML escapes it, the CSV defuses formulas, the table
//! replaces control characters.
//!
//! The fleet page's links carry the filter as query parameters, which the
//! route handler parses into a [`FleetQuery`](crate::model::FleetQuery):
//! `status` (`leaky`, `silent`, `unknown`, `compliant`), `check` (a check
//! id), `after` (the cursor of the page before, omitted on the first page)
//! and `per_page` (omitted when it is [`DEFAULT_PER_PAGE`]). The filter form
//! submits `status=` and `check=` empty for "any", so an empty value means
//! no filter.

pub mod csv;
pub mod html;
pub mod table;

#[cfg(test)]
mod fixture;

use jiff::{SignedDuration, Timestamp};

/// Devices per page when the query does not say.
pub const DEFAULT_PER_PAGE: u32 = 50;

/// How long ago `then` was, as a person says it: "just now", "5 min ago",
/// "3 h ago", "4 days ago".
fn ago(then: Timestamp, now: Timestamp) -> String {
    let elapsed = now.duration_since(then);
    if elapsed < -SignedDuration::from_mins(1) {
        // Only a clock set back on the server gets here.
        return "in the future".to_owned();
    }
    let minutes = elapsed.as_secs() / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    if minutes < 1 {
        "just now".to_owned()
    } else if hours < 1 {
        format!("{minutes} min ago")
    } else if days < 2 {
        format!("{hours} h ago")
    } else {
        format!("{days} days ago")
    }
}

/// A timestamp to the second, for people (`2026-11-02T09:30:00Z`).
fn to_second(at: Timestamp) -> String {
    format!("{at:.0}")
}

/// A timestamp's UTC date (`2026-11-02`).
fn date(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a valid timestamp")
    }

    #[test]
    fn ago_reads_like_a_person_says_it() {
        let now = at("2026-11-02T12:00:00Z");
        assert_eq!(ago(at("2026-11-02T11:59:31Z"), now), "just now");
        assert_eq!(ago(at("2026-11-02T12:00:30Z"), now), "just now");
        assert_eq!(ago(at("2026-11-02T11:55:00Z"), now), "5 min ago");
        assert_eq!(ago(at("2026-11-02T09:00:00Z"), now), "3 h ago");
        assert_eq!(ago(at("2026-11-01T00:00:00Z"), now), "36 h ago");
        assert_eq!(ago(at("2026-10-29T12:00:00Z"), now), "4 days ago");
        assert_eq!(ago(at("2026-11-02T12:05:00Z"), now), "in the future");
    }

    #[test]
    fn timestamps_for_people_drop_fractions() {
        let then = at("2026-11-02T09:30:00.123456Z");
        assert_eq!(to_second(then), "2026-11-02T09:30:00Z");
        assert_eq!(date(then), "2026-11-02");
    }
}
