//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints on the committing connection: about every
//! 1,000 pages, one commit also copies the log into the database file and
//! fsyncs it, and every write queued behind that commit waits. The writer's
//! connection turns that off (`wal_autocheckpoint = 0`), and this thread
//! checkpoints instead, on a connection of its own, every
//! [`CHECKPOINT_EVERY`]: a passive checkpoint, which never blocks the writer
//! or the readers, copies what no reader still needs.
//!
//! The log starts over from its beginning only when a write begins after
//! everything in it was copied, which under a steady stream of writes never
//! happens: each passive checkpoint ends behind the writer, and a restart
//! checkpoint from here would have to catch the writer between two batches.
//! So once the log holds more than [`LOG_LIMIT_PAGES`], this thread catches
//! up with another passive checkpoint and flags the log as long
//! ([`LongLog`]); the writer, between two batches, then runs a restart
//! checkpoint ([`restart_log`]), which copies the little left and lets the
//! next write start the log over. The log file stays about that long,
//! rewritten in place, rather than growing by every write until the server
//! stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;

/// How often the log is copied into the database file.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The log's length, in pages, past which it is made to start over: 64 MiB
/// of 4 KiB pages, a few seconds of writes at full speed.
pub(super) const LOG_LIMIT_PAGES: i64 = 16 * 1024;

/// Whether the log has grown past [`LOG_LIMIT_PAGES`]: the checkpointer
/// says so, the writer makes it start over.
#[derive(Debug, Clone, Default)]
pub(super) struct LongLog(Arc<AtomicBool>);

impl LongLog {
    fn flag(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the log was flagged as long since the last time, clearing it.
    pub(super) fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// The checkpointing thread; dropping this stops it.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing through `connection`, flagging `long_log`.
    pub(super) fn start(connection: Connection, long_log: LongLog) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    match copy_log(&connection, LOG_LIMIT_PAGES) {
                        Ok(true) => long_log.flag(),
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!("WAL checkpoint failed (retried shortly): {}", error.0);
                        }
                    }
                }
            })
            .map_err(|error| {
                StoreError(format!(
                    "could not start the database checkpointer: {error}"
                ))
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies the log into the database file as far as no reader needs it;
/// `true` when the log is longer than `limit` pages, after copying once more
/// so that little is left for [`restart_log`].
pub(super) fn copy_log(connection: &Connection, limit: i64) -> Result<bool, StoreError> {
    let (log, _) = checkpoint(connection, "PASSIVE")?;
    if log <= limit {
        return Ok(false);
    }
    checkpoint(connection, "PASSIVE")?;
    Ok(true)
}

/// Run by the writer between two batches: copies what is left of the log
/// (waiting for readers of it to finish) so that the next write starts it
/// over.
pub(super) fn restart_log(connection: &Connection) -> Result<(), StoreError> {
    checkpoint(connection, "RESTART").map(|_| ())
}

/// A checkpoint of `mode`: the pages in the log and the pages copied, as
/// SQLite counts them.
fn checkpoint(connection: &Connection, mode: &str) -> Result<(i64, i64), StoreError> {
    let (log, copied) =
        connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })?;
    Ok((log, copied))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Role, connect};

    #[test]
    fn the_writer_leaves_the_log_to_the_checkpointer_which_keeps_it_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shipshape.db");
        let writer = connect(&path, Role::Writer).unwrap();
        let automatic: i64 = writer
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap();
        assert_eq!(automatic, 0, "the writer does not checkpoint on commit");
        writer
            .execute_batch("CREATE TABLE blobs (data BLOB NOT NULL)")
            .unwrap();
        let write = |rows: usize| {
            for _ in 0..rows {
                writer
                    .execute("INSERT INTO blobs (data) VALUES (zeroblob(4096))", [])
                    .unwrap();
            }
        };
        let log_pages = || {
            let wal = std::fs::metadata(dir.path().join("shipshape.db-wal")).unwrap();
            wal.len() / 4096
        };
        let checkpointer = connect(&path, Role::Checkpointer).unwrap();

        write(1_000);
        assert!(log_pages() > 1_000, "every page stays in the log");
        assert!(!copy_log(&checkpointer, 100_000).unwrap(), "not long yet");
        write(1_000);
        let grown = log_pages();
        assert!(
            grown > 2_000,
            "copied, the log still does not start over: {grown}"
        );

        assert!(copy_log(&checkpointer, 1_500).unwrap(), "past the limit");
        restart_log(&writer).unwrap();
        write(1_000);
        assert_eq!(
            log_pages(),
            grown,
            "restarted, the log is written in place from its beginning"
        );
        let count: i64 = writer
            .query_row("SELECT COUNT(*) FROM blobs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 3_000);
    }
}
