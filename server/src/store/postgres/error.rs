//! PostgreSQL's errors as [`StoreError`]s a person can act on.

use std::error::Error as _;

use crate::store::StoreError;

/// `error` and every cause under it, on one line: tokio-postgres puts the
/// useful part (the server's message, the I/O error) in the causes.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(&format!(": {error}"));
        cause = error.source();
    }
    text
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError(format!("postgres: {}", describe(&error)))
    }
}

/// A connection that could not be had from the pool, for the database at `target`.
pub(super) fn no_connection(target: &str, error: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match error {
        PoolError::Backend(error) if error.as_db_error().is_some() => StoreError(format!(
            "PostgreSQL at {target} refused the connection: {}",
            describe(&error)
        )),
        PoolError::Backend(error) => StoreError(format!(
            "cannot reach PostgreSQL at {target}: {}",
            describe(&error)
        )),
        PoolError::Timeout(_) => StoreError(format!(
            "cannot reach PostgreSQL at {target}: no connection in time"
        )),
        other => StoreError(format!("no connection to PostgreSQL at {target}: {other}")),
    }
}
