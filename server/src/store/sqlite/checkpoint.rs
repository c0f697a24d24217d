//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints on the committing connection: about every
//! 1,000 pages, one commit also copies the log into the database file and
//! fsyncs it, and every write queued behind that commit waits. The writer's
//! connection turns that off (`wal_autocheckpoint = 0`), and this thread
//! checkpoints instead, on a connection of its own, every
//! [`CHECKPOINT_EVERY`]. A passive checkpoint never blocks the writer or
//! the readers; it copies what no reader still needs, and the writer starts
//! the log over once everything is copied, so the log stays a few seconds
//! of writes long.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::StoreError;

/// How often the log is copied into the database file.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The checkpointing thread; dropping this stops it.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing through `connection`.
    pub(super) fn start(connection: Connection) -> Result<Self, StoreError> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    if let Err(error) = checkpoint(&connection) {
                        tracing::warn!("WAL checkpoint failed (retried shortly): {}", error.0);
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

/// Copies the log into the database file as far as no reader needs it.
/// Returns the pages in the log and the pages copied, as SQLite counts them.
pub(super) fn checkpoint(connection: &Connection) -> Result<(i64, i64), StoreError> {
    let (log, copied) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })?;
    Ok((log, copied))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{Role, connect};

    #[test]
    fn the_writer_leaves_the_log_to_the_checkpointer_which_copies_it_all() {
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
        for _ in 0..2_000 {
            writer
                .execute("INSERT INTO blobs (data) VALUES (zeroblob(4096))", [])
                .unwrap();
        }
        let checkpointer = connect(&path, Role::Checkpointer).unwrap();
        let (log, copied) = checkpoint(&checkpointer).unwrap();
        assert!(log > 2_000, "every page stayed in the log: {log}");
        assert_eq!(copied, log, "with no reader, all of it is copied");
        assert_eq!(checkpoint(&checkpointer).unwrap().1, log, "nothing new");
    }
}
