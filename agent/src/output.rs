//! How a check report reads to a person: a header, one line per check with
//! ✓ ✗ ! ? ~ -, the fix under everything that is not fine, and a verdict.
//!
//! Styles are always written; the caller's stream (anstream) strips them when
//! stdout is not a terminal or `NO_COLOR` is set.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};
use jiff::tz::TimeZone;
use shipshape_core::checks::CheckId;
use shipshape_core::report::CheckReport;
use shipshape_core::{Finding, Status, Verdict};

const GREEN: Style = AnsiColor::Green.on_default();
const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const MAGENTA: Style = AnsiColor::Magenta.on_default();
const DIM: Style = Style::new().dimmed();
const BOLD: Style = Style::new().bold();

/// Writes the human report.
pub fn human(out: &mut impl Write, report: &CheckReport) -> io::Result<()> {
    let host = &report.host;
    writeln!(
        out,
        "{BOLD}Shipshape check{BOLD:#} · policy {} ({}) · {}{}",
        report.policy.name,
        report.policy.source,
        host.os.name,
        host.os
            .version
            .as_deref()
            .map(|version| {
                if host.os.name.contains(version) {
                    String::new()
                } else {
                    format!(" {version}")
                }
            })
            .unwrap_or_default(),
    )?;
    writeln!(
        out,
        "{DIM}host {} · {}{DIM:#}",
        if host.hostname.is_empty() {
            "(unnamed)"
        } else {
            &host.hostname
        },
        report
            .checked_at
            .to_zoned(TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M UTC")
    )?;
    writeln!(out)?;
    let width = report
        .findings
        .iter()
        .map(|finding| title(finding).chars().count())
        .max()
        .unwrap_or(0);
    for finding in &report.findings {
        let (mark, style) = mark(finding.status);
        let tag = match finding.status {
            Status::Fail | Status::Unknown | Status::Warn => {
                format!("  {DIM}[{}]{DIM:#}", finding.severity)
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "  {style}{mark}{style:#} {:<width$}  {}{tag}",
            title(finding),
            finding.summary
        )?;
        if matches!(
            finding.status,
            Status::Fail | Status::Warn | Status::Unknown
        ) {
            if let Some(remediation) = &finding.remediation {
                for line in remediation.lines() {
                    writeln!(out, "      {style}→{style:#} {line}")?;
                }
            }
        }
    }
    writeln!(out)?;
    verdict(out, report)
}

/// A moment for a person, in UTC: "09:12 UTC" on the day of `now`, else
/// "2026-11-23 09:12 UTC".
pub fn clock(at: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let at = at.to_zoned(TimeZone::UTC);
    if at.date() == now.to_zoned(TimeZone::UTC).date() {
        at.strftime("%H:%M UTC").to_string()
    } else {
        at.strftime("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// "1 report", "3 reports".
pub fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn title(finding: &Finding) -> &str {
    finding
        .check
        .parse::<CheckId>()
        .map_or(finding.check.as_str(), |id| id.info().title)
}

fn mark(status: Status) -> (&'static str, Style) {
    match status {
        Status::Pass => ("✓", GREEN),
        Status::Fail => ("✗", RED),
        Status::Warn => ("!", YELLOW),
        Status::Unknown => ("?", MAGENTA),
        Status::Excepted => ("~", DIM),
        Status::Skipped => ("-", DIM),
    }
}

fn verdict(out: &mut impl Write, report: &CheckReport) -> io::Result<()> {
    let count = |status: Status| {
        report
            .findings
            .iter()
            .filter(|finding| finding.status == status)
            .count()
    };
    let mut notes = Vec::new();
    let warnings = count(Status::Warn);
    if warnings > 0 {
        notes.push(format!("{warnings} within grace"));
    }
    let quiet_unknowns = report
        .findings
        .iter()
        .filter(|finding| finding.status == Status::Unknown && !finding.leak)
        .count();
    if quiet_unknowns > 0 {
        notes.push(format!("{quiet_unknowns} unknown, not counted as a leak"));
    }
    let minor = report
        .findings
        .iter()
        .filter(|finding| finding.status == Status::Fail && !finding.leak)
        .count();
    if minor > 0 {
        notes.push(format!("{minor} below the leak severity"));
    }
    let excepted = count(Status::Excepted);
    if excepted > 0 {
        notes.push(format!("{excepted} excepted"));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    };
    match report.verdict {
        Verdict::Shipshape => {
            let passed = count(Status::Pass);
            writeln!(
                out,
                "{GREEN}✓ Shipshape{GREEN:#}: {passed} of {} check{} pass{notes}.",
                report.findings.len(),
                if report.findings.len() == 1 { "" } else { "s" }
            )
        }
        Verdict::Leaky => {
            let leaks: Vec<&str> = report
                .findings
                .iter()
                .filter(|finding| finding.leak)
                .map(|finding| finding.check.as_str())
                .collect();
            writeln!(
                out,
                "{RED}✗ Leaky{RED:#}: {} leak{}: {}{notes}. Follow the → steps above, then run `shipshape check` again.",
                leaks.len(),
                if leaks.len() == 1 { "" } else { "s" },
                leaks.join(", ")
            )
        }
    }
}
