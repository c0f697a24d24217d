//! SQLite storage (in progress).

/// The embedded store (in progress).
#[derive(Debug)]
pub struct SqliteStore;
