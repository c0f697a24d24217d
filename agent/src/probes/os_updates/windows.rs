use std::path::Path;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use shipshape_core::facts::{AutomaticUpdates, Observed, OsUpdates};

use super::ParseError;
use crate::probes::POWERSHELL;
use crate::probes::host::parse_reg_query;
use crate::probes::host::windows::REG;
use crate::probes::powershell::{field, is_rule, table_records};
use crate::system::System;

const AU_POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU";
/// The locale and the patterns PowerShell formats a date-time with (`G`:
/// short date + long time): Get-HotFix prints `InstalledOn` that way.
const DATE_CULTURE: &str = "(Get-Culture).Name; (Get-Culture).DateTimeFormat.ShortDatePattern; \
                            (Get-Culture).DateTimeFormat.LongTimePattern";
/// Get-HotFix's default table, wide enough that no cell is cut short with `...`.
const GET_HOTFIX: &str = "Get-HotFix | Format-Table -AutoSize | Out-String -Width 4096";
/// en-US's general date-time pattern, the only one Shipshape reads: in
/// other locales `4/10/2019` may be the 4th of October, so it never guesses.
const EN_US_PATTERN: &str = "M/d/yyyy h:mm:ss tt";

/// The locale PowerShell formats dates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateCulture {
    /// `en-US`, `es-MX`, … (empty for the invariant culture).
    pub name: String,
    /// Short date and long time pattern joined by a space: `M/d/yyyy h:mm:ss tt`.
    pub pattern: String,
}

impl DateCulture {
    /// Whether dates print as en-US does, the only format [`parse_get_hotfix`] reads.
    pub fn is_en_us_format(&self) -> bool {
        self.pattern == EN_US_PATTERN
    }
}

/// Parses the three lines the Get-Culture query prints: name, short date pattern, long time pattern.
pub fn parse_date_culture(text: &str) -> Result<DateCulture, ParseError> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let lines = match lines.iter().position(|line| !line.is_empty()) {
        Some(first) => &lines[first..],
        None => &lines[..],
    };
    match lines {
        [name, short_date, long_time, ..] if !short_date.is_empty() && !long_time.is_empty() => {
            Ok(DateCulture {
                name: (*name).to_owned(),
                pattern: format!("{short_date} {long_time}"),
            })
        }
        _ => Err(ParseError::new(
            "Get-Culture",
            format!(
                "expected a name and two date patterns, got {:?}",
                text.trim()
            ),
        )),
    }
}

/// Parses Get-HotFix's table (columns start where the dashes under the header
/// start) into the newest `InstalledOn`, read as en-US `M/d/yyyy h:mm:ss AM`.
/// Hotfixes without a date are skipped (Windows leaves some blank); `None`
/// when no hotfix has one. A date in any other format is an error, never a guess.
pub fn parse_get_hotfix(text: &str) -> Result<Option<DateTime>, ParseError> {
    if !text.lines().any(is_rule) {
        return Err(ParseError::new("Get-HotFix", "no table of hotfixes"));
    }
    let records = table_records(text);
    if records
        .iter()
        .any(|record| !record.iter().any(|(name, _)| name == "InstalledOn"))
    {
        return Err(ParseError::new(
            "Get-HotFix",
            "the table has no InstalledOn column",
        ));
    }
    let mut newest: Option<DateTime> = None;
    for record in &records {
        let Some(installed) = field(record, "InstalledOn") else {
            continue;
        };
        let at = parse_en_us_date_time(installed).ok_or_else(|| {
            ParseError::new(
                "Get-HotFix",
                format!("`{installed}` is not an en-US date ({EN_US_PATTERN})"),
            )
        })?;
        newest = newest.max(Some(at));
    }
    Ok(newest)
}

/// `M/d/yyyy h:mm:ss AM` exactly: one- or two-digit month, day and hour,
/// four-digit year, `AM` or `PM` in capitals.
fn parse_en_us_date_time(text: &str) -> Option<DateTime> {
    let number = |part: &str, widths: std::ops::RangeInclusive<usize>| -> Option<i16> {
        (widths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let mut words = text.split(' ');
    let (date, time, meridiem) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() {
        return None;
    }
    let date: Vec<&str> = date.split('/').collect();
    let time: Vec<&str> = time.split(':').collect();
    let ([month, day, year], [hour, minute, second]) = (date.as_slice(), time.as_slice()) else {
        return None;
    };
    let (month, day, year) = (
        number(month, 1..=2)?,
        number(day, 1..=2)?,
        number(year, 4..=4)?,
    );
    let (hour, minute, second) = (
        number(hour, 1..=2)?,
        number(minute, 2..=2)?,
        number(second, 2..=2)?,
    );
    if !(1..=12).contains(&hour) {
        return None;
    }
    let hour = match meridiem {
        "AM" => hour % 12,
        "PM" => hour % 12 + 12,
        _ => return None,
    };
    let date = Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()?;
    let time = Time::new(
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second).ok()?,
        0,
    )
    .ok()?;
    Some(date.to_datetime(time))
}

/// Judges the Windows Update group policy (`reg query` of the `…\WindowsUpdate\AU`
/// key): `NoAutoUpdate = 1` turns updates off; `AUOptions` 4 (download and
/// install on a schedule) and 5 (local admin chooses; Windows' choice is
/// automatic) keep them on; 2, 3 and 7 wait for a person to install; no
/// `AUOptions` leaves Windows' default, automatic.
pub fn automatic_from_policy(text: &str) -> AutomaticUpdates {
    let values = parse_reg_query(text);
    let dword = |name: &str| {
        values
            .iter()
            .find(|value| value.name.eq_ignore_ascii_case(name))
            .and_then(|value| value.dword())
    };
    let (enabled, detail) = match (dword("NoAutoUpdate"), dword("AUOptions")) {
        (Some(1), _) => (
            false,
            "policy NoAutoUpdate = 1 turns automatic updates off".to_owned(),
        ),
        (_, Some(4)) => (
            true,
            "policy AUOptions = 4: download and install on a schedule".to_owned(),
        ),
        (_, Some(5)) => (
            true,
            "policy AUOptions = 5: the local administrator chooses".to_owned(),
        ),
        (_, Some(option)) => (
            false,
            format!("policy AUOptions = {option}: updates wait for someone to install them"),
        ),
        (_, None) => (
            true,
            "the policy sets no AUOptions, so Windows installs updates automatically".to_owned(),
        ),
    };
    let option = dword("AUOptions")
        .map(|option| format!(" (AUOptions={option})"))
        .unwrap_or_default();
    AutomaticUpdates {
        enabled,
        mechanism: format!("Windows Update{option}"),
        detail: Some(detail),
    }
}

pub(super) fn probe(system: &dyn System) -> OsUpdates {
    let automatic = match system.run(Path::new(REG), &["query", AU_POLICY_KEY]) {
        Ok(output) if output.success() => Observed::Observed(automatic_from_policy(&output.stdout)),
        // reg exits 1 with "unable to find the specified registry key" when no policy exists.
        Ok(output) if output.code == Some(1) && output.stderr.contains("unable to find") => {
            Observed::Observed(AutomaticUpdates {
                enabled: true,
                mechanism: "Windows Update".to_owned(),
                detail: Some("no Windows Update policy is set, so Windows installs updates automatically (its default)".to_owned()),
            })
        }
        Ok(output) => Observed::unknown(format!("reg query {AU_POLICY_KEY} failed: {}", output.stderr.trim())),
        Err(error) => Observed::unknown(error.to_string()),
    };
    let pending = "Windows keeps no list of pending updates that can be read without asking Windows Update; \
                   open Settings → Windows Update to see them";
    match last_installed(system) {
        Ok(installed) => OsUpdates {
            pending: Observed::unknown(pending),
            automatic,
            last_installed: Some(installed),
        },
        Err(reason) => OsUpdates {
            pending: Observed::unknown(format!(
                "{pending}; when the last update was installed is unknown too: {reason}"
            )),
            automatic,
            last_installed: None,
        },
    }
}

/// When the newest hotfix was installed, from Get-HotFix, read only when
/// PowerShell prints dates the en-US way. Windows records the install day in
/// local time; it is taken as UTC, off by less than a day.
fn last_installed(system: &dyn System) -> Result<Timestamp, String> {
    let culture = powershell(system, DATE_CULTURE, "Get-Culture")?;
    let culture = parse_date_culture(&culture).map_err(|error| error.to_string())?;
    if !culture.is_en_us_format() {
        return Err(format!(
            "Windows formats dates for the {} locale as `{}`, and Shipshape reads hotfix dates only \
             in the en-US format `{EN_US_PATTERN}` rather than guess the day from the month",
            if culture.name.is_empty() {
                "invariant"
            } else {
                &culture.name
            },
            culture.pattern
        ));
    }
    let table = powershell(system, GET_HOTFIX, "Get-HotFix")?;
    let newest = parse_get_hotfix(&table)
        .map_err(|error| error.to_string())?
        .ok_or("Get-HotFix lists no hotfix with an install date")?;
    newest
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|zoned| zoned.timestamp())
        .map_err(|error| format!("Get-HotFix date {newest} is out of range: {error}"))
}

/// Runs one PowerShell command; its stdout, or why there is none.
fn powershell(system: &dyn System, command: &str, what: &str) -> Result<String, String> {
    match system.run(
        Path::new(POWERSHELL),
        &["-NoProfile", "-NonInteractive", "-Command", command],
    ) {
        Ok(output) if output.success() => Ok(output.stdout),
        Ok(output) => Err(format!(
            "{what} failed (exit code {}): {}",
            output
                .code
                .map_or("none".to_owned(), |code| code.to_string()),
            output.stderr.trim()
        )),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_en_us_date_time;

    #[test]
    fn en_us_times_use_a_12_hour_clock() {
        let at = |text: &str| parse_en_us_date_time(text).map(|at| at.to_string());
        assert_eq!(
            at("4/10/2025 12:00:00 AM").as_deref(),
            Some("2025-04-10T00:00:00")
        );
        assert_eq!(
            at("12/31/2024 12:30:05 PM").as_deref(),
            Some("2024-12-31T12:30:05")
        );
        assert_eq!(
            at("1/2/2024 1:05:00 PM").as_deref(),
            Some("2024-01-02T13:05:00")
        );
        for not_en_us in [
            "5/16/2019 00:00:00",
            "10/02/2020 12:00:00 a.m.",
            "2020/06/12 0:00:00",
            "13/1/2024 1:00:00 AM",
            "1/2/2024 13:00:00 PM",
            "2/12/2020 12:00:...",
        ] {
            assert_eq!(at(not_en_us), None, "{not_en_us}");
        }
    }
}
