//! PostgreSQL, the store for several server replicas behind a load balancer:
//! everything they share — devices, reports, nonces, tokens, the policy — is
//! in the database, and every change is one transaction.
//!
//! Replicas agree because the database serializes what must not interleave:
//! a report locks its device's row first (`FOR NO KEY UPDATE`), so a report
//! and its retry through another replica, or two reports of one device, run
//! one after the other — the second sees the first's report, nonce, grace
//! clocks and leaks, and answers as SQLite's single writer would. A report
//! id taken by another device at the same moment is caught by the primary
//! key (`ON CONFLICT DO NOTHING`), and that transaction rolls back. An
//! enrollment locks its token's row, so uses are spent exactly once;
//! activating a policy and migrating the schema take advisory locks.
//!
//! The schema and the fleet report's queries are SQLite's (`store/sql.rs`),
//! in PostgreSQL's dialect (`migrate.rs`). Connections come from a pool;
//! the URL may name a schema (`options=-csearch_path%3Dname`), which is how
//! one database holds several servers' tables, or the tests'.

mod error;
mod migrate;
mod read;
mod url;
mod write;

#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use jiff::Timestamp;
use tokio_postgres::NoTls;

pub use url::PostgresUrl;

use super::sql::{self, PreparedReport};
use super::{ActivePolicy, Recorded, Store, StoreError};
use crate::model::{
    CurrentFacts, DeviceDetail, DeviceKey, DevicePage, DeviceState, EnrollRefusal, FleetQuery,
    FleetSummary, IncomingReport, NewDevice, NewToken, RegradeBatch, RegradeProgress, Staleness,
    StoredPolicy, TokenInfo,
};

/// A pooled connection.
type Client = deadpool_postgres::Object;

/// Connections per server: enough for a burst of reports on a small
/// machine, few enough that several replicas stay under PostgreSQL's
/// default `max_connections` (100).
const POOL_SIZE: usize = 16;

/// How long a request waits for a connection, at most, when all are busy.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    /// `host:port/database`, for messages.
    target: String,
    nonces_pruned_at: Mutex<Option<Timestamp>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` and migrates its schema to the
    /// newest version.
    pub async fn open(url: &PostgresUrl) -> Result<Self, StoreError> {
        let target = url.target();
        let manager = Manager::from_config(
            url.config(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|error| {
                StoreError(format!("cannot set up connections to {target}: {error}"))
            })?;
        let store = PostgresStore {
            pool,
            target,
            nonces_pruned_at: Mutex::new(None),
        };
        let mut client = store.client().await?;
        migrate::migrate(&mut client)
            .await
            .map_err(|error| StoreError(format!("{}: {}", store.target, error.0)))?;
        Ok(store)
    }

    async fn client(&self) -> Result<Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| error::no_connection(&self.target, error))
    }

    /// Forgets nonces seen before `forget_before`, at most once a minute per
    /// server: a nonce that old belongs to a request whose `created` time is
    /// refused anyway.
    async fn prune_nonces(
        &self,
        client: &Client,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<(), StoreError> {
        {
            let mut pruned_at = self
                .nonces_pruned_at
                .lock()
                .map_err(|_| StoreError("the nonce pruner's clock is poisoned".to_owned()))?;
            if pruned_at.is_some_and(|pruned| now.duration_since(pruned) < sql::PRUNE_NONCES_EVERY)
            {
                return Ok(());
            }
            *pruned_at = Some(now);
        }
        let statement = client
            .prepare_cached("DELETE FROM nonces WHERE created_at < $1")
            .await?;
        client
            .execute(&statement, &[&forget_before.as_millisecond()])
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        read::ping(&self.client().await?).await
    }

    async fn create_token(&self, token: NewToken) -> Result<TokenInfo, StoreError> {
        write::create_token(&self.client().await?, &token).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        read::list_tokens(&self.client().await?).await
    }

    async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        write::revoke(&self.client().await?, write::Revocable::Token, id, now).await
    }

    async fn is_admin_token(&self, hash: &[u8; 32], now: Timestamp) -> Result<bool, StoreError> {
        read::is_admin_token(&self.client().await?, &hex::encode(hash), now).await
    }

    async fn enroll(
        &self,
        token_hash: &[u8; 32],
        device: NewDevice,
    ) -> Result<Result<String, EnrollRefusal>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let enrolled = write::enroll(&transaction, &hex::encode(token_hash), &device).await?;
        match enrolled {
            Ok(_) => transaction.commit().await?,
            Err(_) => transaction.rollback().await?,
        }
        Ok(enrolled)
    }

    async fn device_key(&self, device_id: &str) -> Result<Option<DeviceKey>, StoreError> {
        read::device_key(&self.client().await?, device_id).await
    }

    async fn revoke_device(&self, device_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        write::revoke(
            &self.client().await?,
            write::Revocable::Device,
            device_id,
            now,
        )
        .await
    }

    async fn record_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        self.prune_nonces(&client, now, forget_before).await?;
        write::record_nonce(&client, device_id, nonce, now).await
    }

    async fn record_report(
        &self,
        report: IncomingReport,
        policy: &ActivePolicy,
    ) -> Result<Recorded, StoreError> {
        let report = PreparedReport::new(report)?;
        let mut client = self.client().await?;
        self.prune_nonces(
            &client,
            report.received_at,
            report.received_at - sql::NONCE_MEMORY,
        )
        .await?;
        let transaction = client.transaction().await?;
        let recorded = write::record_report(&transaction, &report, policy).await?;
        match recorded {
            Recorded::Stored(_) | Recorded::AlreadyStored(_) => transaction.commit().await?,
            // Nothing of a refused report is kept, its nonce included.
            Recorded::ReplayedNonce
            | Recorded::IdTakenByAnotherDevice
            | Recorded::PolicyOutdated => {
                transaction.rollback().await?;
            }
        }
        Ok(recorded)
    }

    async fn current_facts(
        &self,
        device_id: &str,
        hash: &str,
    ) -> Result<Option<CurrentFacts>, StoreError> {
        read::current_facts(&self.client().await?, device_id, hash).await
    }

    async fn active_policy(&self) -> Result<Option<StoredPolicy>, StoreError> {
        read::active_policy(&self.client().await?).await
    }

    async fn activate_policy(
        &self,
        text: &str,
        now: Timestamp,
    ) -> Result<(StoredPolicy, RegradeProgress), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let activated = write::activate_policy(&transaction, text, now).await?;
        transaction.commit().await?;
        Ok(activated)
    }

    async fn active_policy_id(&self) -> Result<Option<i64>, StoreError> {
        read::active_policy_id(&self.client().await?).await
    }

    async fn regrade_progress(&self) -> Result<Option<RegradeProgress>, StoreError> {
        read::regrade_progress(&self.client().await?).await
    }

    async fn save_regrade(
        &self,
        batch: RegradeBatch,
    ) -> Result<Option<RegradeProgress>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let saved = write::save_regrade(&transaction, &batch).await?;
        match saved {
            Some(_) => transaction.commit().await?,
            None => transaction.rollback().await?,
        }
        Ok(saved)
    }

    async fn device_states(&self, after: &str, limit: u32) -> Result<Vec<DeviceState>, StoreError> {
        let mut client = self.client().await?;
        let snapshot = read::snapshot(&mut client).await?;
        let states = read::device_states(&snapshot, after, limit).await?;
        snapshot.commit().await?;
        Ok(states)
    }

    async fn fleet_summary(&self, query: &FleetQuery) -> Result<FleetSummary, StoreError> {
        let mut client = self.client().await?;
        let snapshot = read::snapshot(&mut client).await?;
        let summary = read::fleet_summary(&snapshot, query).await?;
        snapshot.commit().await?;
        Ok(summary)
    }

    async fn fleet_devices(&self, query: &FleetQuery) -> Result<DevicePage, StoreError> {
        let mut client = self.client().await?;
        let snapshot = read::snapshot(&mut client).await?;
        let page = read::fleet_devices(&snapshot, query).await?;
        snapshot.commit().await?;
        Ok(page)
    }

    async fn device(
        &self,
        device_id: &str,
        staleness: Staleness,
    ) -> Result<Option<DeviceDetail>, StoreError> {
        let mut client = self.client().await?;
        let snapshot = read::snapshot(&mut client).await?;
        let detail = read::device(&snapshot, device_id, staleness).await?;
        snapshot.commit().await?;
        Ok(detail)
    }
}
