//! The schema in PostgreSQL: the migrations both backends share
//! (`store/migrations/`), in PostgreSQL's dialect, applied in one transaction
//! under an advisory lock so that replicas starting together migrate once.

use deadpool_postgres::Transaction;
use jiff::Timestamp;

use super::Client;
use super::error::describe;
use crate::store::StoreError;
use crate::store::sql;

/// The advisory locks of this server, by purpose; the second key is the
/// schema, so servers of other schemas in the same database do not wait.
pub(super) const MIGRATION_LOCK: i32 = 0x5353_0001;
pub(super) const POLICY_LOCK: i32 = 0x5353_0002;

/// PostgreSQL's text of a shared migration. The migrations are written in
/// SQL both databases run, but for two things, made here and nowhere else:
///
/// - A column whose line ends in `-- PostgreSQL: TYPE` is declared `TYPE`:
///   SQLite's `INTEGER PRIMARY KEY` (the rowid) is PostgreSQL's identity column.
/// - Every `TEXT` column compares bytes (`COLLATE "C"`), as SQLite's BINARY
///   collation does: both backends then sort hostnames and ids alike, and
///   `lower()` folds ASCII only in both, whatever the database's locale; and
///   the fleet's `ORDER BY lower(hostname), hostname, id` is the order of
///   its indexes, so a page is read from an index rather than sorted.
pub(super) fn dialect(migration: &str) -> String {
    let lines: Vec<String> = migration
        .lines()
        .map(|line| {
            let (code, comment) = line.split_at(line.find("--").unwrap_or(line.len()));
            let marked = comment
                .strip_prefix("--")
                .and_then(|comment| comment.trim().strip_prefix("PostgreSQL:"));
            let code = match marked {
                Some(column_type) => retyped(code, column_type.trim()),
                None => code.to_owned(),
            };
            format!("{}{comment}", collated(&code))
        })
        .collect();
    lines.join("\n")
}

/// A column definition (`name TYPE…,`) declared `column_type` instead.
fn retyped(definition: &str, column_type: &str) -> String {
    let indent = &definition[..definition.len() - definition.trim_start().len()];
    let name = definition.split_whitespace().next().unwrap_or_default();
    let comma = if definition.trim_end().ends_with(',') {
        ","
    } else {
        ""
    };
    format!("{indent}{name} {column_type}{comma}  ")
}

/// `code` with every `TEXT` type compared bytewise.
fn collated(code: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("TEXT") {
        let (before, after) = (&rest[..at], &rest[at + 4..]);
        let whole_word = !before.ends_with(is_word) && !after.starts_with(is_word);
        out.push_str(before);
        out.push_str(if whole_word {
            "TEXT COLLATE \"C\""
        } else {
            "TEXT"
        });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// What to do when the connection's `search_path` names no schema that exists.
const NO_SCHEMA: &str = "the connection's search_path names no schema that exists, so there is \
     nowhere to create the tables: create the schema (CREATE SCHEMA name) or name an existing \
     one in the URL (options=-csearch_path%3Dname)";

/// Brings the schema (the connection's first on its `search_path`) to the
/// newest version. A migration that fails is rolled back at once, before
/// the error is returned: it holds the lock other replicas wait on.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let transaction = client.transaction().await?;
    match migrate_in(&transaction).await {
        Ok(()) => transaction.commit().await?,
        Err(error) => {
            transaction.rollback().await?;
            return Err(error);
        }
    }
    Ok(())
}

async fn migrate_in(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    let schema: Option<String> = transaction
        .query_one("SELECT current_schema()", &[])
        .await?
        .try_get(0)?;
    let Some(schema) = schema else {
        return Err(StoreError(NO_SCHEMA.to_owned()));
    };
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&MIGRATION_LOCK],
        )
        .await?;
    transaction.batch_execute(sql::SCHEMA_MIGRATIONS).await?;
    let current: i64 = transaction
        .query_one(sql::SCHEMA_VERSION, &[])
        .await?
        .try_get(0)?;
    for (version, migration) in sql::pending_migrations(current)? {
        transaction
            .batch_execute(&dialect(migration))
            .await
            .map_err(|error| {
                StoreError(format!(
                    "migration {version} failed in schema {schema}: {}",
                    describe(&error)
                ))
            })?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &Timestamp::now().as_millisecond()],
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_columns_are_retyped_and_text_compares_bytes() {
        let portable = "CREATE TABLE t (\n    \
            id          INTEGER PRIMARY KEY,  -- PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY\n    \
            name        TEXT NOT NULL,    -- TEXT in a comment stays\n    \
            context     TEXTUAL,\n    \
            note        TEXT\n);";
        assert_eq!(
            dialect(portable),
            "CREATE TABLE t (\n    \
             id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY\n    \
             name        TEXT COLLATE \"C\" NOT NULL,    -- TEXT in a comment stays\n    \
             context     TEXTUAL,\n    \
             note        TEXT COLLATE \"C\"\n);"
        );
    }

    #[test]
    fn the_shared_migrations_keep_nothing_sqlite_only() {
        for migration in sql::MIGRATIONS {
            let postgres = dialect(migration);
            let code: Vec<&str> = postgres
                .lines()
                .map(|line| line.split("--").next().unwrap_or_default())
                .collect();
            let code = code.join("\n");
            assert!(!code.contains("INTEGER PRIMARY KEY"), "{code}");
            assert_eq!(
                code.matches(" TEXT").count(),
                code.matches(" TEXT COLLATE \"C\"").count(),
                "{code}"
            );
        }
    }
}
