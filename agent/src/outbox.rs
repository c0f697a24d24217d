//! The outbox: a directory of reports waiting for the server's
//! acknowledgement, so that a report, once made, is never lost to a network
//! failure or a crash.
//!
//! Each report is one file, `<report id>.json`, holding the whole
//! [`ReportSubmission`], written atomically (temporary file, fsync, rename,
//! directory fsync). Report ids are UUID v7, so the names sort in the order
//! the reports were made. A file leaves the outbox only when the server
//! acknowledged it, or moves to `rejected/` — with a `<id>.reason.json`
//! beside it — when the server refused it for good or it does not parse.
//! A `kill -9` at any moment leaves either the old directory or the new
//! one; a report sent but not yet removed is sent again, and the server's
//! idempotency on the report id makes that harmless.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shipshape_core::wire::ReportSubmission;

use crate::atomic;

/// A temporary file older than this was left by a crashed run, not written by a live one.
const STALE_TEMPORARY: Duration = Duration::from_secs(60 * 60);
const REPORT_SUFFIX: &str = ".json";
const REASON_SUFFIX: &str = ".reason.json";

/// The outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

/// A report file waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The file name without `.json`: the report id, for a file the agent wrote.
    pub id: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// When the report was made, read from its UUID v7 id.
    pub queued_at: Option<Timestamp>,
}

/// Why a report was refused, kept beside it in `rejected/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    pub rejected_at: Timestamp,
    /// The server's HTTP status, when the server refused it.
    pub status: Option<u16>,
    pub reason: String,
}

/// A report in `rejected/`, as `shipshape status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedReport {
    pub id: String,
    pub path: PathBuf,
    pub queued_at: Option<Timestamp>,
    /// `None` when the reason file is missing or unreadable.
    pub rejection: Option<Rejection>,
}

/// Held while a run trims and sends the outbox, so two runs never send the
/// same queue at once. The operating system releases it when the process
/// ends, `kill -9` included.
#[derive(Debug)]
pub struct OutboxLock {
    _file: fs::File,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> Outbox {
        Outbox { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where refused reports go.
    pub fn rejected_dir(&self) -> PathBuf {
        self.dir.join("rejected")
    }

    /// Writes `submission` to the outbox, durably, before anything is sent.
    pub fn enqueue(&self, submission: &ReportSubmission) -> anyhow::Result<PathBuf> {
        let id = uuid::Uuid::parse_str(&submission.id)
            .with_context(|| format!("report id `{}` is not a UUID", submission.id))?;
        let path = self.dir.join(format!("{}{REPORT_SUFFIX}", id.hyphenated()));
        let mut text = serde_json::to_vec(submission)?;
        text.push(b'\n');
        atomic::write(&path, &text, atomic::Access::Owner)?;
        Ok(path)
    }

    /// The queued reports, oldest first; an outbox that does not exist yet is empty.
    pub fn queued(&self) -> io::Result<Vec<Queued>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut queued = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            if name.starts_with('.') {
                if name.ends_with(".tmp") && is_stale(&metadata) {
                    // Left by a run killed while writing: never renamed, never a report.
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            let Some(id) = name.strip_suffix(REPORT_SUFFIX) else {
                continue;
            };
            queued.push(Queued {
                id: id.to_owned(),
                path: entry.path(),
                bytes: metadata.len(),
                queued_at: uuid_time(id),
            });
        }
        queued.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(queued)
    }

    /// Reads a queued report back. A file that does not parse, or that is
    /// not the report its name says, is an error: it must not be sent.
    pub fn load(&self, queued: &Queued) -> Result<ReportSubmission, String> {
        let text = fs::read(&queued.path).map_err(|error| format!("cannot be read: {error}"))?;
        let submission: ReportSubmission = serde_json::from_slice(&text)
            .map_err(|error| format!("does not parse as a report: {error}"))?;
        if submission.id != queued.id {
            return Err(format!(
                "holds report `{}`, not the report its name says",
                submission.id
            ));
        }
        Ok(submission)
    }

    /// Removes an acknowledged report. Already gone is fine.
    pub fn remove(&self, queued: &Queued) -> anyhow::Result<()> {
        match fs::remove_file(&queued.path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("could not remove {}", queued.path.display()));
            }
        }
        atomic::sync_dir(&self.dir)
            .with_context(|| format!("could not sync {}", self.dir.display()))
    }

    /// Moves a report to `rejected/`, its reason first, so a crash in
    /// between leaves the report queued (and refused again), never reasonless.
    /// Keeps at most `keep` rejected reports: the oldest go.
    pub fn reject(
        &self,
        queued: &Queued,
        rejection: &Rejection,
        keep: usize,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.rejected_dir();
        let mut reason = serde_json::to_vec_pretty(rejection)?;
        reason.push(b'\n');
        atomic::write(
            &dir.join(format!("{}{REASON_SUFFIX}", queued.id)),
            &reason,
            atomic::Access::Owner,
        )?;
        let target = dir.join(format!("{}{REPORT_SUFFIX}", queued.id));
        fs::rename(&queued.path, &target)
            .and_then(|()| atomic::sync_dir(&dir))
            .and_then(|()| atomic::sync_dir(&self.dir))
            .with_context(|| {
                format!(
                    "could not move {} to {}",
                    queued.path.display(),
                    target.display()
                )
            })?;
        let rejected = self.rejected();
        for old in rejected.iter().take(rejected.len().saturating_sub(keep)) {
            let _ = fs::remove_file(&old.path);
            let _ = fs::remove_file(dir.join(format!("{}{REASON_SUFFIX}", old.id)));
        }
        Ok(target)
    }

    /// The rejected reports, oldest first.
    pub fn rejected(&self) -> Vec<RejectedReport> {
        let dir = self.rejected_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut rejected: Vec<RejectedReport> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.ends_with(REASON_SUFFIX) {
                    return None;
                }
                let id = name.strip_suffix(REPORT_SUFFIX)?.to_owned();
                let rejection = fs::read(dir.join(format!("{id}{REASON_SUFFIX}")))
                    .ok()
                    .and_then(|text| serde_json::from_slice(&text).ok());
                Some(RejectedReport {
                    queued_at: uuid_time(&id),
                    path: entry.path(),
                    id,
                    rejection,
                })
            })
            .collect();
        rejected.sort_by(|a, b| a.id.cmp(&b.id));
        rejected
    }

    /// The lock on this outbox, or `None` when another run holds it.
    pub fn try_lock(&self) -> anyhow::Result<Option<OutboxLock>> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("could not create {}", self.dir.display()))?;
        let path = self.dir.join(".lock");
        lock_file(&path).with_context(|| format!("could not lock {}", path.display()))
    }
}

/// The oldest of `queued` to drop so that the rest fits in `max_reports`
/// and `max_bytes`. The newest report always stays, whatever its size.
pub fn over_limits(queued: &[Queued], max_reports: usize, max_bytes: u64) -> &[Queued] {
    let mut count = queued.len();
    let mut bytes: u64 = queued.iter().map(|queued| queued.bytes).sum();
    let mut drop = 0;
    for old in queued {
        if count <= 1 || (count <= max_reports && bytes <= max_bytes) {
            break;
        }
        count -= 1;
        bytes -= old.bytes;
        drop += 1;
    }
    &queued[..drop]
}

/// The time in a UUID v7 report id.
fn uuid_time(id: &str) -> Option<Timestamp> {
    let (seconds, nanos) = uuid::Uuid::parse_str(id).ok()?.get_timestamp()?.to_unix();
    Timestamp::new(i64::try_from(seconds).ok()?, i32::try_from(nanos).ok()?).ok()
}

fn is_stale(metadata: &fs::Metadata) -> bool {
    metadata
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > STALE_TEMPORARY)
}

/// Opens (creating it if needed) the file whose lock is the outbox's.
#[cfg(not(windows))]
fn open_lock_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(unix)]
fn lock_file(path: &Path) -> io::Result<Option<OutboxLock>> {
    use rustix::fs::{FlockOperation, flock};
    let file = open_lock_file(path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(OutboxLock { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

#[cfg(windows)]
fn lock_file(path: &Path) -> io::Result<Option<OutboxLock>> {
    use std::os::windows::fs::OpenOptionsExt;
    /// Windows' ERROR_SHARING_VIOLATION: another process has the file open.
    const SHARING_VIOLATION: i32 = 32;
    // Opened with no sharing, the file itself is the lock.
    match fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .share_mode(0)
        .open(path)
    {
        Ok(file) => Ok(Some(OutboxLock { _file: file })),
        Err(error) if error.raw_os_error() == Some(SHARING_VIOLATION) => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(not(any(unix, windows)))]
fn lock_file(path: &Path) -> io::Result<Option<OutboxLock>> {
    Ok(Some(OutboxLock {
        _file: open_lock_file(path)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: &str, bytes: u64) -> Queued {
        Queued {
            id: id.to_owned(),
            path: PathBuf::from(format!("{id}.json")),
            bytes,
            queued_at: None,
        }
    }

    #[test]
    fn the_oldest_go_until_both_limits_hold_and_the_newest_always_stays() {
        let all = [queued("a", 10), queued("b", 10), queued("c", 10)];
        assert!(over_limits(&all, 3, 30).is_empty());
        assert_eq!(over_limits(&all, 2, 30), &all[..1]);
        assert_eq!(over_limits(&all, 3, 19), &all[..2]);
        assert_eq!(over_limits(&all, 1, 1_000), &all[..2]);
        assert_eq!(over_limits(&all, 1, 1), &all[..2], "the newest stays");
        assert!(over_limits(&[], 1, 1).is_empty());
    }

    #[test]
    fn report_ids_carry_their_time_and_sort_by_it() {
        let first = uuid::Uuid::now_v7().to_string();
        std::thread::sleep(Duration::from_millis(2));
        let second = uuid::Uuid::now_v7().to_string();
        assert!(first < second);
        let time = uuid_time(&first).unwrap();
        let age = Timestamp::now().duration_since(time);
        assert!(age.as_secs() < 5, "{age:?}");
        assert_eq!(uuid_time("not-a-uuid"), None);
    }

    #[test]
    fn a_second_lock_is_refused_while_the_first_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().join("outbox"));
        let held = outbox.try_lock().unwrap();
        assert!(held.is_some());
        assert!(outbox.try_lock().unwrap().is_none());
        drop(held);
        assert!(outbox.try_lock().unwrap().is_some());
    }

    #[test]
    fn stray_files_are_not_reports_and_stale_temporaries_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(dir.path().to_owned());
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        fs::write(dir.path().join(".lock"), "").unwrap();
        let fresh = dir.path().join(".0198.json.1-0.tmp");
        fs::write(&fresh, "{").unwrap();
        fs::create_dir(dir.path().join("rejected")).unwrap();
        fs::write(dir.path().join("torn.json"), "{\"id\":").unwrap();
        let queued = outbox.queued().unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].id, "torn");
        assert!(
            outbox
                .load(&queued[0])
                .unwrap_err()
                .starts_with("does not parse")
        );
        assert!(
            fresh.exists(),
            "a temporary a live run may be writing stays"
        );
    }
}
