//! The fleet report for the terminal (`shipshape-server fleet`): the summary,
//! the failures by check and the device table, as plain text.
//!
//! A hostname could carry terminal escape sequences; control characters are
//! shown escaped (`\u{1b}`) so a device cannot repaint the operator's screen.

use comfy_table::{Table, presets};
use jiff::Timestamp;
use shipshape_core::wire::DeviceStatus;

use super::ago;
use crate::model::{DeviceRow, FleetPage};

/// The page as text, ending with a newline: the summary, the page of the
/// device table, and how to ask for the next page.
pub fn fleet(page: &FleetPage, now: Timestamp) -> String {
    let mut out = summary(page);
    if page.devices.is_empty() {
        out.push_str(empty_message(page));
        out.push('\n');
        return out;
    }
    out.push_str(&devices(&page.devices, now, true));
    out.push_str(&format!(
        "\nshowing {} of {} matching {}",
        page.devices.len(),
        page.matching,
        if page.matching == 1 {
            "device"
        } else {
            "devices"
        }
    ));
    match &page.next {
        Some(next) => out.push_str(&format!("; next page: --after {}\n", next.encode())),
        None => out.push('\n'),
    }
    out
}

/// The summary and the failures by check, and a blank line.
pub fn summary(page: &FleetPage) -> String {
    let summary = &page.summary;
    let mut out = format!(
        "{} devices: {} leaky, {} silent, {} unknown, {} compliant\n",
        summary.total, summary.leaky, summary.silent, summary.unknown, summary.compliant
    );
    if !page.failures_by_check.is_empty() {
        let failures: Vec<String> = page
            .failures_by_check
            .iter()
            .map(|failure| format!("{} {}", printable(&failure.check), failure.devices))
            .collect();
        out.push_str(&format!("failures by check: {}\n", failures.join(", ")));
    }
    out.push('\n');
    out
}

/// Devices as table lines (after the column names when `header`), ending
/// with a newline.
pub fn devices(rows: &[DeviceRow], now: Timestamp, header: bool) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    if header {
        table.set_header([
            "HOSTNAME",
            "STATUS",
            "FAILING CHECKS",
            "OS",
            "LAST SEEN",
            "ID",
        ]);
    }
    for row in rows {
        table.add_row(device_cells(row, now));
    }
    format!("{}\n", table.trim_fmt())
}

fn device_cells(row: &DeviceRow, now: Timestamp) -> [String; 6] {
    let mut status = match row.status {
        DeviceStatus::Leaky => "LEAKY".to_owned(),
        other => other.to_string(),
    };
    if row.revoked {
        status.push_str(" (revoked)");
    }
    let failing = if row.failing_checks.is_empty() {
        "-".to_owned()
    } else {
        printable(&row.failing_checks.join(", "))
    };
    let last_seen = row
        .last_seen
        .map_or_else(|| "never".to_owned(), |at| ago(at, now));
    [
        printable(&row.hostname),
        status,
        failing,
        printable(&row.os),
        last_seen,
        printable(&row.id),
    ]
}

fn empty_message(page: &FleetPage) -> &'static str {
    if page.summary.total == 0 {
        "No devices enrolled yet: create an enrollment token with \
         `shipshape-server token create --enroll` and run \
         `shipshape enroll --server URL --token TOKEN` on a machine."
    } else if page.matching == 0 {
        "No devices match this filter."
    } else {
        "No devices on this page: the matching devices came before it."
    }
}

/// The text with every control character shown escaped.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fixture;

    #[test]
    fn fleet_snapshot() {
        insta::assert_snapshot!(fleet(&fixture::fleet_page(), fixture::now()));
    }

    #[test]
    fn empty_fleet_says_how_to_enroll() {
        let text = fleet(&fixture::empty_fleet(), fixture::now());
        insta::assert_snapshot!(text);
    }

    #[test]
    fn no_match_says_so() {
        let mut page = fixture::fleet_page();
        page.devices.clear();
        page.matching = 0;
        let text = fleet(&page, fixture::now());
        assert!(text.contains("No devices match this filter."), "{text}");
        assert!(!text.contains("showing"), "{text}");
    }

    #[test]
    fn the_last_page_names_no_next() {
        let mut page = fixture::fleet_page();
        page.next = None;
        page.devices.truncate(1);
        let text = fleet(&page, fixture::now());
        assert!(
            text.ends_with("showing 1 of 5 matching devices\n"),
            "{text}"
        );
    }

    #[test]
    fn pages_after_the_first_leave_out_the_column_names() {
        let rows = fixture::fleet_page().devices;
        assert!(devices(&rows, fixture::now(), true).starts_with(" HOSTNAME"));
        let more = devices(&rows[1..], fixture::now(), false);
        assert!(!more.contains("HOSTNAME"), "{more}");
        assert!(more.contains("build-07"), "{more}");
    }

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        let mut page = fixture::fleet_page();
        page.devices[0].hostname = "evil\u{1b}[2J\u{1b}]0;owned\u{7}\r\nhost".to_owned();
        let text = fleet(&page, fixture::now());
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(!text.contains('\u{7}'), "{text}");
        assert!(!text.contains('\r'), "{text}");
        assert!(
            text.contains(r"evil\u{1b}[2J\u{1b}]0;owned\u{7}\r\nhost"),
            "{text}"
        );
    }
}
