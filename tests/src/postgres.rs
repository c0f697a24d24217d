//! A PostgreSQL schema of its own for a test, in the database
//! `SHIPSHAPE_TEST_POSTGRES_URL` names (`.ci/run` sets it to the PostgreSQL
//! on 127.0.0.1:5432). Servers reach it by a URL that puts the schema on
//! their `search_path`; it is dropped with everything in it afterwards.

use postgres::{Client, NoTls};

/// The variable that names the test database.
pub const URL_VARIABLE: &str = "SHIPSHAPE_TEST_POSTGRES_URL";

/// A fresh schema, dropped when this is.
#[derive(Debug)]
pub struct Schema {
    database: String,
    name: String,
    url: String,
}

impl Schema {
    /// Creates the schema; `None` (and says so) when the variable is not
    /// set. When it is set, a database that does not answer fails the test.
    pub fn create() -> Option<Schema> {
        let Ok(database) = std::env::var(URL_VARIABLE) else {
            eprintln!("skipped: {URL_VARIABLE} is not set");
            return None;
        };
        let name = format!("shipshape_test_{}", uuid::Uuid::now_v7().simple());
        connect(&database)
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .unwrap_or_else(|error| panic!("cannot create schema {name}: {error:?}"));
        let separator = if database.contains('?') { '&' } else { '?' };
        let url = format!("{database}{separator}options=-csearch_path%3D{name}");
        Some(Schema {
            database,
            name,
            url,
        })
    }

    /// The `--db` URL of this schema.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let dropped = connect(&self.database).batch_execute(&format!(
            "SET lock_timeout = '10s'; DROP SCHEMA {} CASCADE",
            self.name
        ));
        if let Err(error) = dropped {
            eprintln!("could not drop the test schema {}: {error:?}", self.name);
        }
    }
}

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|error| {
        panic!("{URL_VARIABLE} is set, but PostgreSQL does not answer there: {error:?}")
    })
}
