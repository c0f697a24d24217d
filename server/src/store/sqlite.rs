//! SQLite, the embedded store: one file, WAL, migrations on open.
//!
//! Writes go through one thread that owns the only writing connection and
//! commits in groups: every write queued while the previous transaction was
//! committing is taken (up to [`writer::MAX_BATCH`]) and committed together,
//! each in its own savepoint so one failing request does not sink the others,
//! and each caller is answered only after the commit. One fsync then covers a
//! whole batch, which is how `synchronous = FULL` — an acknowledged report
//! survives a crash of the process *and* of the machine — still ingests
//! thousands of reports per second. Reads run on a small pool of connections
//! on tokio's blocking threads; in WAL mode they never wait for the writer.
//! The log is copied into the database file by a thread of its own
//! ([`checkpoint`]), never by a commit.
//!
//! The SQL is kept portable: the migrations (`store/migrations/`) and the
//! fleet report's queries are shared with PostgreSQL (`store/sql.rs`); only
//! the pragmas, `BEGIN IMMEDIATE`, the placeholders (`?1`, `:name`), the
//! two-argument `MAX` (PostgreSQL's `GREATEST`), and the planner hints of
//! the fleet's reads (`INDEXED BY`, `+column`, see [`sql::Dialect`]) are
//! SQLite's own.

mod checkpoint;
mod fleet;
mod read;
mod write;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, ToSql, named_params};
use shipshape_core::wire::DeviceStatus;
use tokio::sync::Semaphore;

use super::sql::{self, PreparedReport};
use super::{ActivePolicy, Recorded, Store, StoreError};
use crate::model::{
    CurrentFacts, DeviceDetail, DeviceKey, DevicePage, DeviceState, EnrollRefusal, FleetQuery,
    FleetSummary, IncomingReport, NewDevice, NewToken, RegradeBatch, RegradeProgress, Staleness,
    StoredPolicy, TokenInfo,
};
use checkpoint::{Checkpointer, LongLog};
use writer::Writer;

/// Connections for reads: enough to overlap the fleet page with device pages
/// and signature checks on a small machine.
const READERS: usize = 4;

/// How long a connection waits for a lock held by another process (a
/// `shipshape-server token create` while the server runs) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store. Cheap to share behind an `Arc`; dropping it lets the
/// writer finish what is queued and stop.
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Readers,
    _checkpointer: Checkpointer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if need be) the database at `path` and migrates it to
    /// the newest schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut connection = connect(path, Role::Writer)?;
        migrate(&mut connection)
            .map_err(|error| StoreError(format!("{}: {}", path.display(), error.0)))?;
        let long_log = LongLog::default();
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Writer::start(connection, long_log.clone())?,
            _checkpointer: Checkpointer::start(connect(path, Role::Checkpointer)?, long_log)?,
            readers: Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(READERS),
                lookups: Mutex::new(Vec::new()),
            },
        })
    }

    /// Runs `read` on a pooled connection, on a blocking thread.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.readers.run(read).await
    }

    /// Runs `lookup` at once, on the calling thread: for reads of a row or
    /// two by key, on every report, which take a few microseconds, less
    /// than a trip to a blocking thread and back costs.
    fn look_up<T>(
        &self,
        lookup: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.readers.look_up(lookup)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
    Checkpointer,
}

/// Opens a connection with the settings every connection needs.
fn connect(path: &Path, role: Role) -> Result<Connection, StoreError> {
    let failed = |error: rusqlite::Error| {
        StoreError(format!(
            "could not open the database {}: {error}",
            path.display()
        ))
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(failed)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    connection.set_prepared_statement_cache_capacity(64);
    match role {
        Role::Writer => {
            let mode: String = connection
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(failed)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError(format!(
                    "{} does not support write-ahead logging (journal mode stays `{mode}`): \
                     put the database on a local file system",
                    path.display()
                )));
            }
            // Checkpoints are the checkpointer's; each request's savepoint
            // keeps its undo pages in memory rather than in a temporary file.
            connection
                .execute_batch(
                    "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
                     PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY;",
                )
                .map_err(failed)?;
        }
        Role::Reader => connection
            .execute_batch("PRAGMA query_only = ON;")
            .map_err(failed)?,
        Role::Checkpointer => connection
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(failed)?,
    }
    Ok(connection)
}

/// Brings the schema to the newest version, one transaction per migration.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    connection.execute_batch(sql::SCHEMA_MIGRATIONS)?;
    let current: i64 = connection.query_row(sql::SCHEMA_VERSION, [], |row| row.get(0))?;
    for (version, migration) in sql::pending_migrations(current)? {
        let transaction = connection.transaction()?;
        transaction
            .execute_batch(migration)
            .map_err(|error| StoreError(format!("migration {version} failed: {error}")))?;
        transaction.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (version, Ms(Timestamp::now())),
        )?;
        transaction.commit()?;
    }
    Ok(())
}

/// A pool of read-only connections, opened as needed up to [`READERS`].
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    /// Connections for lookups on the calling thread: one for each thread
    /// looking up at the same time, so no more than tokio has workers.
    lookups: Mutex<Vec<Connection>>,
}

impl Readers {
    async fn run<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError("the database is closing".to_owned()))?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let path = self.path.clone();
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let connection = match idle {
                Some(connection) => connection,
                None => match connect(&path, Role::Reader) {
                    Ok(connection) => connection,
                    Err(error) => return (None, Err(error)),
                },
            };
            let result = read(&connection);
            (Some(connection), result)
        })
        .await
        .map_err(|error| StoreError(format!("a database read failed: {error}")))?;
        if let (Some(connection), Ok(mut idle)) = (connection, self.idle.lock()) {
            idle.push(connection);
        }
        result
    }

    fn look_up<T>(
        &self,
        lookup: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.lookups.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => connect(&self.path, Role::Reader)?,
        };
        let result = lookup(&connection);
        if let Ok(mut idle) = self.lookups.lock() {
            idle.push(connection);
        }
        result
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError(format!("sqlite: {error}"))
    }
}

/// A timestamp as integer milliseconds since the Unix epoch, the schema's
/// one representation of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ms(Timestamp);

impl ToSql for Ms {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_millisecond()))
    }
}

impl FromSql for Ms {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let millis = i64::column_result(value)?;
        sql::from_millis(millis)
            .map(Ms)
            .map_err(|_| FromSqlError::OutOfRange(millis))
    }
}

/// A device status as the `status` columns hold it.
#[derive(Debug, Clone, Copy)]
struct StatusColumn(DeviceStatus);

impl ToSql for StatusColumn {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl FromSql for StatusColumn {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map(StatusColumn)
            .map_err(|message: String| FromSqlError::Other(message.into()))
    }
}

/// See [`Store::current_facts`]: one primary-key lookup in each table.
fn current_facts(
    connection: &Connection,
    device_id: &str,
    hash: &str,
) -> Result<Option<CurrentFacts>, StoreError> {
    let row = connection
        .prepare_cached(sql::CURRENT_FACTS)?
        .query_row(named_params! { ":device": device_id }, |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    Ok(sql::current_facts(device_id, hash, row))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if !self.writer.is_running() {
            return Err(StoreError(
                "the database writer stopped: restart the server".to_owned(),
            ));
        }
        self.read(read::ping).await
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenInfo, StoreError> {
        self.writer
            .run(move |connection, _| write::create_token(connection, &token))
            .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(read::list_tokens).await
    }

    async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.writer
            .run(move |connection, _| write::revoke_token(connection, &id, now))
            .await
    }

    async fn is_admin_token(&self, hash: &[u8; 32], now: Timestamp) -> Result<bool, StoreError> {
        let hash = hex::encode(hash);
        self.read(move |connection| read::is_admin_token(connection, &hash, now))
            .await
    }

    async fn enroll(
        &self,
        token_hash: &[u8; 32],
        device: NewDevice,
    ) -> Result<Result<String, EnrollRefusal>, StoreError> {
        let hash = hex::encode(token_hash);
        self.writer
            .run(move |connection, _| write::enroll(connection, &hash, &device))
            .await
    }

    async fn device_key(&self, device_id: &str) -> Result<Option<DeviceKey>, StoreError> {
        self.look_up(|connection| read::device_key(connection, device_id))
    }

    async fn revoke_device(&self, device_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let id = device_id.to_owned();
        self.writer
            .run(move |connection, _| write::revoke_device(connection, &id, now))
            .await
    }

    async fn record_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError> {
        let (device_id, nonce) = (device_id.to_owned(), nonce.to_owned());
        self.writer
            .run(move |connection, state| {
                state.prune_nonces(connection, now, forget_before)?;
                write::record_nonce(connection, &device_id, &nonce, now)
            })
            .await
    }

    async fn record_report(
        &self,
        report: IncomingReport,
        policy: &ActivePolicy,
    ) -> Result<Recorded, StoreError> {
        // Serialized here, on the caller's thread, to keep the one writer
        // thread for what only it can do.
        let prepared = PreparedReport::new(report)?;
        let (policy, policy_id) = (policy.policy.clone(), policy.stored.id);
        self.writer
            .run(move |connection, state| {
                let received_at = prepared.received_at;
                let recorded = write::record_report(connection, &prepared, &policy, policy_id)?;
                state.prune_nonces(connection, received_at, received_at - sql::NONCE_MEMORY)?;
                Ok(recorded)
            })
            .await
    }

    async fn current_facts(
        &self,
        device_id: &str,
        hash: &str,
    ) -> Result<Option<CurrentFacts>, StoreError> {
        self.look_up(|connection| current_facts(connection, device_id, hash))
    }

    async fn active_policy(&self) -> Result<Option<StoredPolicy>, StoreError> {
        self.read(read::active_policy).await
    }

    async fn activate_policy(
        &self,
        text: &str,
        now: Timestamp,
    ) -> Result<(StoredPolicy, RegradeProgress), StoreError> {
        let text = text.to_owned();
        self.writer
            .run(move |connection, _| write::activate_policy(connection, &text, now))
            .await
    }

    async fn active_policy_id(&self) -> Result<Option<i64>, StoreError> {
        self.read(read::active_policy_id).await
    }

    async fn regrade_progress(&self) -> Result<Option<RegradeProgress>, StoreError> {
        self.read(read::regrade_progress).await
    }

    async fn save_regrade(
        &self,
        batch: RegradeBatch,
    ) -> Result<Option<RegradeProgress>, StoreError> {
        self.writer
            .run(move |connection, _| write::save_regrade(connection, &batch))
            .await
    }

    async fn device_states(&self, after: &str, limit: u32) -> Result<Vec<DeviceState>, StoreError> {
        let after = after.to_owned();
        self.read(move |connection| read::device_states(connection, &after, limit))
            .await
    }

    async fn fleet_summary(&self, query: &FleetQuery) -> Result<FleetSummary, StoreError> {
        let query = query.clone();
        self.read(move |connection| fleet::summary(connection, &query))
            .await
    }

    async fn fleet_devices(&self, query: &FleetQuery) -> Result<DevicePage, StoreError> {
        let query = query.clone();
        self.read(move |connection| fleet::devices(connection, &query))
            .await
    }

    async fn device(
        &self,
        device_id: &str,
        staleness: Staleness,
    ) -> Result<Option<DeviceDetail>, StoreError> {
        let id = device_id.to_owned();
        self.read(move |connection| read::device(connection, &id, staleness))
            .await
    }
}
