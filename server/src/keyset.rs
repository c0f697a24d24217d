//! The device table's order and its keyset pagination, the same for every
//! backend.
//!
//! The table lists the leaky devices first, then the silent, unknown and
//! compliant ones: its *groups*. Within a group devices are ordered by their
//! [`sort_key`] (the hostname with ASCII letters lowercased), then hostname,
//! then id — a total order, which the backends keep in indexes. A page is read
//! by keyset, "the devices after this one", never "skip N": a deep page costs
//! what the first one does, and no device is skipped or shown twice because
//! others were added before it. A page ends with a [`FleetCursor`] naming its
//! last device, which the next page starts after; [`PageWalk`] reads a page
//! from a backend group by group.
//!
//! A device whose key changes while someone pages (it is renamed, changes
//! status or goes silent) shows at its new place: it may be missed, or seen
//! twice, by that walk. Every other device is listed exactly once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Serialize, Serializer};
use shipshape_core::wire::DeviceStatus;

use crate::model::{DevicePage, DeviceRow, FleetQuery};

/// The device table's groups, in its order.
pub const GROUPS: [DeviceStatus; 4] = [
    DeviceStatus::Leaky,
    DeviceStatus::Silent,
    DeviceStatus::Unknown,
    DeviceStatus::Compliant,
];

/// Where a group comes in the table: 0 for leaky … 3 for compliant.
pub fn rank(group: DeviceStatus) -> u8 {
    match group {
        DeviceStatus::Leaky => 0,
        DeviceStatus::Silent => 1,
        DeviceStatus::Unknown => 2,
        DeviceStatus::Compliant => 3,
    }
}

/// The key devices are sorted by within a group (stored beside the hostname
/// as `sort_key`): the hostname with ASCII letters lowercased, so `Carl`
/// sorts with `carl` — exactly what SQLite's `lower()` does, and what
/// PostgreSQL's does under the "C" collation.
pub fn sort_key(hostname: &str) -> String {
    hostname.to_ascii_lowercase()
}

/// The last device of a page: the next page starts after it. Sent to clients
/// as an opaque, URL-safe string ([`FleetCursor::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCursor {
    /// The group the device was listed in.
    pub group: DeviceStatus,
    pub hostname: String,
    pub id: String,
}

/// The longest cursor accepted: a hostname (at most 255 bytes) and an id,
/// in JSON, in base64.
const MAX_CURSOR_LEN: usize = 1024;

/// A cursor that this server did not make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{shown}` is not a cursor this server gave out ({reason}): pass the `next` of a page as \
     `after`, or leave `after` out for the first page"
)]
pub struct CursorError {
    /// The start of the cursor given, for the message.
    shown: String,
    reason: &'static str,
}

impl FleetCursor {
    /// The cursor that continues after `row`, listed in `group`.
    pub fn after(group: DeviceStatus, row: &DeviceRow) -> Self {
        FleetCursor {
            group,
            hostname: row.hostname.clone(),
            id: row.id.clone(),
        }
    }

    /// The device's [`sort_key`].
    pub fn sort_key(&self) -> String {
        sort_key(&self.hostname)
    }

    /// The cursor as a URL-safe string: base64url of `[rank, hostname, id]`.
    pub fn encode(&self) -> String {
        let key = (rank(self.group), &self.hostname, &self.id);
        let json = serde_json::to_vec(&key).expect("a tuple of a number and strings serializes");
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor [`FleetCursor::encode`] made.
    pub fn decode(text: &str) -> Result<Self, CursorError> {
        let refuse = |reason| CursorError {
            shown: text.chars().take(40).collect(),
            reason,
        };
        if text.len() > MAX_CURSOR_LEN {
            return Err(refuse("it is too long"));
        }
        let json = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| refuse("it is not base64url"))?;
        let (rank, hostname, id): (u8, String, String) =
            serde_json::from_slice(&json).map_err(|_| refuse("it does not name a device"))?;
        let group = *GROUPS
            .get(usize::from(rank))
            .ok_or_else(|| refuse("it names no group of the table"))?;
        if id.is_empty() {
            return Err(refuse("it names no device"));
        }
        Ok(FleetCursor {
            group,
            hostname,
            id,
        })
    }
}

impl Serialize for FleetCursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

/// A device's place within its group: ordered by `sort_key`, then
/// hostname, then id, as the database compares them (bytes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub sort_key: String,
    pub hostname: String,
    pub id: String,
}

impl Key {
    /// The key before every device's (ids are never empty).
    pub fn start() -> Self {
        Key {
            sort_key: String::new(),
            hostname: String::new(),
            id: String::new(),
        }
    }
}

/// The first `limit` keys of several lists, each in order: one group's read
/// that a backend made in parts (the silent devices of each status).
pub fn first_in_order(parts: impl IntoIterator<Item = Vec<Key>>, limit: u32) -> Vec<Key> {
    let mut keys: Vec<Key> = parts.into_iter().flatten().collect();
    keys.sort_unstable();
    keys.truncate(limit as usize);
    keys
}

/// One read a page needs from the backend: up to `limit` devices of `group`
/// (leaking on `check`, when given) whose key is greater than `after`, in
/// table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRead<'a> {
    pub group: DeviceStatus,
    pub check: Option<&'a str>,
    pub after: Key,
    pub limit: u32,
}

/// Reads one page of the device table, group by group:
///
/// ```text
/// let mut walk = PageWalk::new(query);
/// while let Some(read) = walk.next_read() {
///     let rows = backend_rows(&read)?;
///     walk.push(rows);
/// }
/// let page = walk.finish();
/// ```
///
/// It reads one device more than the page shows, to know whether a next
/// page exists.
#[derive(Debug)]
pub struct PageWalk<'q> {
    query: &'q FleetQuery,
    /// The groups still to read, in table order.
    groups: Vec<DeviceStatus>,
    rows: Vec<(DeviceStatus, DeviceRow)>,
}

impl<'q> PageWalk<'q> {
    pub fn new(query: &'q FleetQuery) -> Self {
        let groups = GROUPS
            .into_iter()
            .filter(|group| query.status.is_none_or(|wanted| wanted == *group))
            // A device that leaks on a check is graded leaky: with a check,
            // only the leaky and silent groups hold any.
            .filter(|group| {
                query.check.is_none() || matches!(group, DeviceStatus::Leaky | DeviceStatus::Silent)
            })
            .filter(|group| {
                query
                    .after
                    .as_ref()
                    .is_none_or(|cursor| rank(*group) >= rank(cursor.group))
            })
            .collect();
        PageWalk {
            query,
            groups,
            rows: Vec::new(),
        }
    }

    fn wanted(&self) -> usize {
        self.query.per_page as usize + 1
    }

    /// The next read, or `None` when the page is complete.
    pub fn next_read(&self) -> Option<GroupRead<'q>> {
        let group = *self.groups.first()?;
        let missing = self.wanted().checked_sub(self.rows.len())?;
        if missing == 0 {
            return None;
        }
        let after = match &self.query.after {
            Some(cursor) if cursor.group == group => Key {
                sort_key: cursor.sort_key(),
                hostname: cursor.hostname.clone(),
                id: cursor.id.clone(),
            },
            _ => Key::start(),
        };
        Some(GroupRead {
            group,
            check: self.query.check.as_deref(),
            after,
            limit: u32::try_from(missing).unwrap_or(u32::MAX),
        })
    }

    /// The rows the last [`PageWalk::next_read`] returned.
    pub fn push(&mut self, rows: Vec<DeviceRow>) {
        if self.groups.is_empty() {
            return;
        }
        let group = self.groups.remove(0);
        self.rows.extend(rows.into_iter().map(|row| (group, row)));
    }

    /// The page, with the cursor of its last device when more follow.
    pub fn finish(mut self) -> DevicePage {
        let per_page = self.query.per_page as usize;
        let more = self.rows.len() > per_page;
        self.rows.truncate(per_page);
        let next = if more {
            self.rows
                .last()
                .map(|(group, row)| FleetCursor::after(*group, row))
        } else {
            None
        };
        DevicePage {
            devices: self.rows.into_iter().map(|(_, row)| row).collect(),
            next,
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::model::Staleness;

    fn query(status: Option<DeviceStatus>, check: Option<&str>, per_page: u32) -> FleetQuery {
        FleetQuery {
            status,
            check: check.map(str::to_owned),
            after: None,
            per_page,
            staleness: Staleness {
                now: Timestamp::UNIX_EPOCH,
                stale_after: SignedDuration::from_hours(48),
            },
        }
    }

    fn row(hostname: &str, id: &str, status: DeviceStatus) -> DeviceRow {
        DeviceRow {
            id: id.to_owned(),
            hostname: hostname.to_owned(),
            os: "Debian".to_owned(),
            status,
            failing_checks: Vec::new(),
            last_seen: None,
            enrolled_at: Timestamp::UNIX_EPOCH,
            revoked: false,
        }
    }

    #[test]
    fn a_cursor_round_trips_and_is_url_safe() {
        let cursor = FleetCursor {
            group: DeviceStatus::Unknown,
            hostname: "Ada's \"laptop\"/é+?&".to_owned(),
            id: "0190a1b2-0000-7000-8000-000000000001".to_owned(),
        };
        let text = cursor.encode();
        assert!(
            text.bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'),
            "{text}"
        );
        assert_eq!(FleetCursor::decode(&text), Ok(cursor.clone()));
        assert_eq!(
            serde_json::to_value(&cursor).unwrap(),
            serde_json::Value::String(text)
        );
        assert_eq!(cursor.sort_key(), "ada's \"laptop\"/é+?&");
    }

    #[test]
    fn a_cursor_this_server_did_not_make_is_refused_with_the_reason() {
        let encoded = |json: &str| URL_SAFE_NO_PAD.encode(json);
        for (text, reason) in [
            ("not base64!".to_owned(), "it is not base64url"),
            (encoded("{\"page\": 2}"), "it does not name a device"),
            (encoded("[7, \"host\", \"id\"]"), "it names no group"),
            (encoded("[0, \"host\", \"\"]"), "it names no device"),
            ("A".repeat(2000), "it is too long"),
        ] {
            let error = FleetCursor::decode(&text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
            assert!(error.contains("pass the `next` of a page"), "{error}");
        }
    }

    #[test]
    fn sort_keys_fold_ascii_case_only() {
        assert_eq!(sort_key("Carl-LAPTOP"), "carl-laptop");
        assert_eq!(sort_key("ÉLISE"), "Élise");
    }

    /// The reads a walk makes when every group answers with `answers` in
    /// turn, and the page it ends with.
    fn walk(
        query: &FleetQuery,
        mut answers: Vec<Vec<DeviceRow>>,
    ) -> (Vec<(DeviceStatus, u32, String)>, DevicePage) {
        let mut walk = PageWalk::new(query);
        let mut reads = Vec::new();
        while let Some(read) = walk.next_read() {
            reads.push((read.group, read.limit, read.after.id.clone()));
            walk.push(if answers.is_empty() {
                Vec::new()
            } else {
                answers.remove(0)
            });
        }
        (reads, walk.finish())
    }

    #[test]
    fn a_page_is_read_group_by_group_one_device_past_its_end() {
        use DeviceStatus::*;
        let query = query(None, None, 3);
        let (reads, page) = walk(
            &query,
            vec![
                vec![row("a", "1", Leaky)],
                vec![],
                vec![
                    row("b", "2", Unknown),
                    row("c", "3", Unknown),
                    row("d", "4", Unknown),
                ],
            ],
        );
        assert_eq!(
            reads,
            [
                (Leaky, 4, String::new()),
                (Silent, 3, String::new()),
                (Unknown, 3, String::new())
            ]
        );
        let hostnames: Vec<&str> = page
            .devices
            .iter()
            .map(|row| row.hostname.as_str())
            .collect();
        assert_eq!(hostnames, ["a", "b", "c"]);
        assert_eq!(
            page.next,
            Some(FleetCursor {
                group: Unknown,
                hostname: "c".to_owned(),
                id: "3".to_owned()
            })
        );
    }

    #[test]
    fn the_last_page_has_no_next() {
        let query = query(None, None, 3);
        let (reads, page) = walk(&query, vec![vec![row("a", "1", DeviceStatus::Leaky)]]);
        assert_eq!(reads.len(), 4, "every group is read: {reads:?}");
        assert_eq!(page.devices.len(), 1);
        assert_eq!(page.next, None);
    }

    #[test]
    fn a_cursor_starts_in_its_group_after_its_device() {
        use DeviceStatus::*;
        let mut query = query(None, None, 2);
        query.after = Some(FleetCursor {
            group: Unknown,
            hostname: "Mystery".to_owned(),
            id: "7".to_owned(),
        });
        let (reads, _) = walk(&query, Vec::new());
        assert_eq!(
            reads,
            [(Unknown, 3, "7".to_owned()), (Compliant, 3, String::new())]
        );
        let mut walk = PageWalk::new(&query);
        let read = walk.next_read().unwrap();
        assert_eq!(read.after.sort_key, "mystery");
        assert_eq!(read.after.hostname, "Mystery");
        walk.push(Vec::new());
        assert_eq!(walk.next_read().unwrap().after.sort_key, "");
    }

    #[test]
    fn parts_of_a_group_merge_in_order() {
        let key = |sort_key: &str, hostname: &str, id: &str| Key {
            sort_key: sort_key.to_owned(),
            hostname: hostname.to_owned(),
            id: id.to_owned(),
        };
        let merged = first_in_order(
            [
                vec![key("ann", "Ann", "9"), key("zed", "zed", "1")],
                vec![],
                vec![
                    key("ann", "Ann", "2"),
                    key("ann", "ann", "1"),
                    key("bob", "Bob", "3"),
                ],
            ],
            3,
        );
        assert_eq!(
            merged,
            [
                key("ann", "Ann", "2"),
                key("ann", "Ann", "9"),
                key("ann", "ann", "1")
            ]
        );
        assert!(Key::start() < key("", "", "0"));
    }

    #[test]
    fn filters_choose_the_groups() {
        use DeviceStatus::*;
        let groups = |query: &FleetQuery| -> Vec<DeviceStatus> {
            walk(query, Vec::new())
                .0
                .into_iter()
                .map(|(group, _, _)| group)
                .collect()
        };
        assert_eq!(groups(&query(Some(Silent), None, 5)), [Silent]);
        assert_eq!(groups(&query(None, Some("firewall"), 5)), [Leaky, Silent]);
        assert_eq!(groups(&query(Some(Compliant), Some("firewall"), 5)), []);
        let mut past_the_filter = query(Some(Leaky), None, 5);
        past_the_filter.after = Some(FleetCursor {
            group: Compliant,
            hostname: "z".to_owned(),
            id: "9".to_owned(),
        });
        assert_eq!(groups(&past_the_filter), []);
    }
}
