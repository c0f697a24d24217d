//! The one thread that writes, committing concurrent requests together.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use jiff::Timestamp;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Ms;
use super::checkpoint::{LongLog, restart_log};
use crate::store::StoreError;
use crate::store::sql::PRUNE_NONCES_EVERY;

/// The most requests one transaction commits: enough to amortize the fsync
/// over a burst, few enough that the first caller of a batch is not kept long.
pub(super) const MAX_BATCH: usize = 256;

/// What the writer carries from one request to the next.
#[derive(Debug, Default)]
pub(super) struct WriterState {
    nonces_pruned_at: Option<Timestamp>,
}

impl WriterState {
    /// Forgets nonces seen before `forget_before`, now and then: a nonce that
    /// old belongs to a request whose `created` time is refused anyway.
    pub(super) fn prune_nonces(
        &mut self,
        connection: &Connection,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<(), StoreError> {
        if self
            .nonces_pruned_at
            .is_some_and(|pruned| now.duration_since(pruned) < PRUNE_NONCES_EVERY)
        {
            return Ok(());
        }
        connection
            .prepare_cached("DELETE FROM nonces WHERE created_at < ?1")?
            .execute([Ms(forget_before)])?;
        self.nonces_pruned_at = Some(now);
        Ok(())
    }
}

/// A write waiting in the queue.
trait Job: Send {
    /// Does the work inside the batch's transaction, in a savepoint of its
    /// own: if it fails, only its own changes are rolled back.
    fn run(self: Box<Self>, connection: &Connection, state: &mut WriterState) -> Box<dyn Done>;
    /// Answers the caller without running: the batch could not begin.
    fn refuse(self: Box<Self>, error: &StoreError);
}

/// A write that ran, waiting for its batch to commit.
trait Done: Send {
    /// Answers the caller once the batch is committed, or failed to be.
    fn answer(self: Box<Self>, commit: &Result<(), StoreError>);
}

struct Pending<T, F> {
    work: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

struct Ran<T> {
    outcome: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, &mut WriterState) -> Result<T, StoreError> + Send,
{
    fn run(self: Box<Self>, connection: &Connection, state: &mut WriterState) -> Box<dyn Done> {
        let Pending { work, reply } = *self;
        let outcome = in_savepoint(connection, |connection| {
            catch_unwind(AssertUnwindSafe(|| work(connection, state))).unwrap_or_else(|_| {
                Err(StoreError(
                    "the request hit a bug in the server and was not stored (see the log)"
                        .to_owned(),
                ))
            })
        });
        Box::new(Ran { outcome, reply })
    }

    fn refuse(self: Box<Self>, error: &StoreError) {
        let _ = self.reply.send(Err(StoreError(error.0.clone())));
    }
}

impl<T: Send> Done for Ran<T> {
    fn answer(self: Box<Self>, commit: &Result<(), StoreError>) {
        let answer = match commit {
            Ok(()) => self.outcome,
            Err(error) => Err(StoreError(error.0.clone())),
        };
        // The caller may have gone away (a dropped connection): what was
        // committed stays committed, and a retry finds it.
        let _ = self.reply.send(answer);
    }
}

fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection.execute_batch("SAVEPOINT request")?;
    let outcome = work(connection);
    let end = if outcome.is_ok() {
        "RELEASE request"
    } else {
        "ROLLBACK TO request; RELEASE request"
    };
    connection.execute_batch(end)?;
    outcome
}

/// The queue into the writer thread.
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the thread that owns `connection`; between two batches it
    /// makes the log start over when `long_log` says so.
    pub(super) fn start(connection: Connection, long_log: LongLog) -> Result<Self, StoreError> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || write_batches(&connection, &jobs, &long_log))
            .map_err(|error| StoreError(format!("could not start the database writer: {error}")))?;
        Ok(Writer { queue, thread })
    }

    /// Whether the thread is still there to write.
    pub(super) fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Queues `work` and waits until it is committed.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut WriterState) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending { work, reply };
        let stopped = || StoreError("the database writer stopped: restart the server".to_owned());
        self.queue.send(Box::new(job)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer thread: takes what is queued, commits it as one transaction,
/// answers everyone, and waits for more; ends when the store is dropped.
fn write_batches(connection: &Connection, jobs: &mpsc::Receiver<Box<dyn Job>>, long_log: &LongLog) {
    let mut state = WriterState::default();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(connection, &mut state, batch);
        if long_log.take()
            && let Err(error) = restart_log(connection)
        {
            tracing::warn!("could not start the WAL over: {}", error.0);
        }
    }
}

/// Runs the batch in one transaction and answers every job with the
/// outcome of the commit.
fn commit_batch(connection: &Connection, state: &mut WriterState, batch: Vec<Box<dyn Job>>) {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        let error = StoreError::from(error);
        tracing::error!(
            "could not begin a batch of {} writes: {}",
            batch.len(),
            error.0
        );
        for job in batch {
            job.refuse(&error);
        }
        return;
    }
    let mut done = Vec::with_capacity(batch.len());
    for job in batch {
        // Some errors (a full disk) make SQLite roll the whole transaction
        // back: then nothing more may run, or it would commit on its own.
        if connection.is_autocommit() {
            job.refuse(&StoreError(
                "the database rolled back the transaction of this write".to_owned(),
            ));
        } else {
            done.push(job.run(connection, state));
        }
    }
    let commit = connection.execute_batch("COMMIT").map_err(|error| {
        // Best effort: the transaction may already be gone with the error.
        let _ = connection.execute_batch("ROLLBACK");
        let error = StoreError::from(error);
        tracing::error!("a batch of {} writes failed: {}", done.len(), error.0);
        error
    });
    for job in done {
        job.answer(&commit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<T: Send + 'static>(
        work: impl FnOnce(&Connection, &mut WriterState) -> Result<T, StoreError> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        (Box::new(Pending { work, reply }), answer)
    }

    fn insert(connection: &Connection, name: &str) -> Result<(), StoreError> {
        connection.execute("INSERT INTO names (name) VALUES (?1)", [name])?;
        Ok(())
    }

    #[test]
    fn one_failing_write_does_not_sink_its_batch() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE names (name TEXT PRIMARY KEY)")
            .unwrap();
        let (first, first_answer) = job(|connection, _| insert(connection, "anna"));
        let (failing, failing_answer) = job(|connection, _| {
            insert(connection, "ben")?;
            insert(connection, "anna")
        });
        let (panicking, panicking_answer) = job(|connection, _| -> Result<(), StoreError> {
            insert(connection, "carl")?;
            panic!("a bug")
        });
        let (last, last_answer) = job(|connection, _| insert(connection, "dora"));
        commit_batch(
            &connection,
            &mut WriterState::default(),
            vec![first, failing, panicking, last],
        );

        assert!(first_answer.blocking_recv().unwrap().is_ok());
        let error = failing_answer.blocking_recv().unwrap().unwrap_err();
        assert!(error.0.contains("UNIQUE"), "{error}");
        let error = panicking_answer.blocking_recv().unwrap().unwrap_err();
        assert!(error.0.contains("a bug in the server"), "{error}");
        assert!(last_answer.blocking_recv().unwrap().is_ok());
        let names: Vec<String> = connection
            .prepare("SELECT name FROM names ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["anna", "dora"]);
        assert!(connection.is_autocommit(), "the batch is committed");
    }

    #[test]
    fn a_batch_that_cannot_begin_runs_nothing() {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch("BEGIN").unwrap();
        let (refused, answer) = job(|_, _| Ok(()));
        commit_batch(&connection, &mut WriterState::default(), vec![refused]);
        let error = answer.blocking_recv().unwrap().unwrap_err();
        assert!(error.0.contains("transaction"), "{error}");
    }
}
