//! The device table as CSV, for spreadsheets and scripts, in pieces: the
//! [`header`] and then the [`rows`] of each page, so that a large fleet is
//! streamed rather than held in memory.
//!
//! Hostnames and OS names come from the devices, so a cell may be crafted
//! to run as a formula when a spreadsheet opens the file (CSV injection):
//! every cell that starts like a formula gets a leading `'`, which
//! spreadsheets show as text.

use std::borrow::Cow;

use crate::model::DeviceRow;

/// The header line, in column order.
const HEADER: [&str; 8] = [
    "id",
    "hostname",
    "os",
    "status",
    "failing_checks",
    "last_seen",
    "enrolled_at",
    "revoked",
];

/// The header line.
pub fn header() -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer
        .write_record(HEADER)
        .expect("writing CSV to memory cannot fail");
    into_string(writer)
}

/// The devices as CSV lines, without the header: failing checks joined
/// with `;`, timestamps in RFC 3339 (`last_seen` empty before the first
/// report).
pub fn rows(rows: &[DeviceRow]) -> String {
    let mut writer = ::csv::Writer::from_writer(Vec::with_capacity(rows.len() * 160));
    for row in rows {
        let record: [Cow<'_, str>; 8] = [
            Cow::Borrowed(&row.id),
            Cow::Borrowed(&row.hostname),
            Cow::Borrowed(&row.os),
            Cow::Borrowed(row.status.as_str()),
            Cow::Owned(row.failing_checks.join(";")),
            row.last_seen
                .map_or(Cow::Borrowed(""), |at| Cow::Owned(at.to_string())),
            Cow::Owned(row.enrolled_at.to_string()),
            Cow::Borrowed(if row.revoked { "true" } else { "false" }),
        ];
        for cell in &record {
            writer
                .write_field(defuse(cell).as_bytes())
                .expect("writing CSV to memory cannot fail");
        }
        // An empty record ends the one the fields were written to.
        writer
            .write_record(None::<&[u8]>)
            .expect("writing CSV to memory cannot fail");
    }
    into_string(writer)
}

fn into_string(writer: ::csv::Writer<Vec<u8>>) -> String {
    let bytes = writer
        .into_inner()
        .expect("writing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells is UTF-8")
}

/// A cell that a spreadsheet would read as a formula, made text.
fn defuse(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fixture;

    /// The devices as a whole CSV file.
    fn devices(devices: &[DeviceRow]) -> String {
        header() + &rows(devices)
    }

    #[test]
    fn devices_snapshot() {
        insta::assert_snapshot!(devices(&fixture::fleet_page().devices));
    }

    #[test]
    fn pages_of_rows_follow_one_header() {
        let page = fixture::fleet_page().devices;
        let (first, second) = page.split_at(2);
        let whole = header() + &rows(first) + &rows(second);
        let mut reader = ::csv::Reader::from_reader(whole.as_bytes());
        assert_eq!(
            reader.headers().unwrap(),
            &::csv::StringRecord::from(HEADER.to_vec())
        );
        let ids: Vec<String> = reader
            .records()
            .map(|record| record.unwrap()[0].to_owned())
            .collect();
        let expected: Vec<&str> = page.iter().map(|row| row.id.as_str()).collect();
        assert_eq!(ids, expected);
        assert_eq!(rows(&[]), "");
    }

    #[test]
    fn no_devices_is_the_header_alone() {
        assert_eq!(
            devices(&[]),
            "id,hostname,os,status,failing_checks,last_seen,enrolled_at,revoked\n"
        );
    }

    /// The CSV of `row` alone, read back by a CSV parser: the device's record.
    fn record_of(row: DeviceRow) -> ::csv::StringRecord {
        let text = devices(&[row]);
        let mut reader = ::csv::Reader::from_reader(text.as_bytes());
        reader
            .records()
            .next()
            .expect("one device line")
            .expect("well-formed CSV")
    }

    #[test]
    fn formulas_from_devices_become_text() {
        let hostile = [
            "=HYPERLINK(\"http://evil.example\",\"click\")",
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A2)",
            "\tindented",
            "\rcarriage",
        ];
        for hostname in hostile {
            let mut row = fixture::leaky_row();
            row.hostname = hostname.to_owned();
            row.os = hostname.to_owned();
            let record = record_of(row);
            let expected = format!("'{hostname}");
            assert_eq!(
                record.get(1),
                Some(expected.as_str()),
                "hostname {hostname:?}"
            );
            assert_eq!(record.get(2), Some(expected.as_str()), "os {hostname:?}");
        }
    }

    #[test]
    fn separators_and_quotes_in_a_hostname_stay_in_their_cell() {
        let mut row = fixture::leaky_row();
        row.hostname = "a,b\"c\nd".to_owned();
        let record = record_of(row);
        assert_eq!(record.len(), HEADER.len());
        assert_eq!(record.get(1), Some("a,b\"c\nd"));
    }

    #[test]
    fn ordinary_cells_are_left_alone() {
        assert_eq!(defuse("laptop-ana"), "laptop-ana");
        assert_eq!(defuse("a-b=c"), "a-b=c");
        assert_eq!(defuse(""), "");
    }
}
