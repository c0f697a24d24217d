//! Storage behind one trait, so SQLite (the embedded default) and
//! PostgreSQL (for several replicas) are interchangeable. Every method that
//! changes state does so in one transaction: a refused request stores nothing.
//!
//! What does not depend on the database lives outside the backends and is
//! built on this trait: the device table's order and cursors
//! ([`crate::keyset`]), the counts derived from the maintained ones
//! ([`crate::counts`]), re-grading in batches ([`crate::regrade`]) and
//! simulating a policy ([`crate::simulate`]).

mod postgres;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use jiff::Timestamp;
use shipshape_core::Policy;
use shipshape_core::wire::Receipt;

pub use postgres::{PostgresStore, PostgresUrl};
pub use sqlite::SqliteStore;

use crate::model::{
    CurrentFacts, DeviceDetail, DeviceKey, DevicePage, DeviceState, EnrollRefusal, FleetQuery,
    FleetSummary, IncomingReport, NewDevice, NewToken, RegradeBatch, RegradeProgress, Staleness,
    StoredPolicy, TokenInfo,
};

/// A storage failure: the request gets a 503 and nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

/// What became of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Stored now.
    Stored(Receipt),
    /// Stored before (a retry): the same receipt, nothing stored twice.
    AlreadyStored(Receipt),
    /// The nonce was seen before: a replay, nothing stored.
    ReplayedNonce,
    /// The report id belongs to another device: refused, nothing stored.
    IdTakenByAnotherDevice,
    /// A newer policy than the one the report was to be graded with is
    /// active (activated through another server): nothing stored; grade
    /// it again under the active one.
    PolicyOutdated,
}

/// The policy the server grades with, parsed and as stored.
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    pub policy: Policy,
    pub stored: StoredPolicy,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the store can serve requests (the `/healthz` upcheck).
    async fn ping(&self) -> Result<(), StoreError>;

    async fn create_token(&self, token: NewToken) -> Result<TokenInfo, StoreError>;
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;
    /// `false` when there is no such token.
    async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Whether `hash` is an admin token that is neither revoked nor expired.
    async fn is_admin_token(&self, hash: &[u8; 32], now: Timestamp) -> Result<bool, StoreError>;

    /// Consumes one use of the enrollment token and creates the device
    /// (unknown until its first report, counted so), atomically.
    async fn enroll(
        &self,
        token_hash: &[u8; 32],
        device: NewDevice,
    ) -> Result<Result<String, EnrollRefusal>, StoreError>;
    async fn device_key(&self, device_id: &str) -> Result<Option<DeviceKey>, StoreError>;
    /// `false` when there is no such device.
    async fn revoke_device(&self, device_id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Records a nonce for a request that stores nothing else (`GET /v1/policy`);
    /// `false` when it was seen before. Nonces older than `forget_before` may be pruned.
    async fn record_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Grades the report under `policy` and stores report, facts, findings,
    /// device state, transitions and the maintained counts in one
    /// transaction; answers [`Recorded::PolicyOutdated`] when a newer policy
    /// is active. A policy activated meanwhile waits for the report (or the
    /// report for it), so none is stored graded by a policy its re-grade has
    /// already passed.
    async fn record_report(
        &self,
        report: IncomingReport,
        policy: &ActivePolicy,
    ) -> Result<Recorded, StoreError>;

    /// The device's current facts (those of its last report), when their
    /// hash is `hash`, as a heartbeat names them; `None` when they are not
    /// (or before its first report, or for no such device).
    async fn current_facts(
        &self,
        device_id: &str,
        hash: &str,
    ) -> Result<Option<CurrentFacts>, StoreError>;

    async fn active_policy(&self) -> Result<Option<StoredPolicy>, StoreError>;
    /// The id of the active policy: cheap enough to ask on every request,
    /// so that each server learns of a policy another one activated.
    async fn active_policy_id(&self) -> Result<Option<i64>, StoreError>;
    /// Stores `text` as the active policy (its history kept) and starts its
    /// re-grade: an unfinished re-grade of an older policy is superseded,
    /// and one with no device to look at is done at once. Re-grading is
    /// [`crate::regrade::run`]'s work. The active policy's text again
    /// changes nothing and answers its re-grade as it stands.
    async fn activate_policy(
        &self,
        text: &str,
        now: Timestamp,
    ) -> Result<(StoredPolicy, RegradeProgress), StoreError>;
    /// The re-grade of the active policy (`None` before any policy).
    async fn regrade_progress(&self) -> Result<Option<RegradeProgress>, StoreError>;
    /// Stores one batch of a re-grade and moves its cursor to
    /// `batch.through`, or marks it done, in one transaction; answers the
    /// progress. Stores nothing and answers `None` when `batch.policy_id` is
    /// no longer the newest policy, or its re-grade is no longer at
    /// `batch.from`. A change whose device has a newer report than
    /// `report_id` is left out. The maintained counts follow.
    async fn save_regrade(
        &self,
        batch: RegradeBatch,
    ) -> Result<Option<RegradeProgress>, StoreError>;
    /// Up to `limit` devices with ids greater than `after` (`""` for the
    /// first), in id order, with what grading them again needs. Re-grades
    /// and simulations read the fleet in these batches.
    async fn device_states(&self, after: &str, limit: u32) -> Result<Vec<DeviceState>, StoreError>;

    /// The fleet's counts, and how many devices `query`'s filter matches,
    /// from the maintained counts and the silent devices (see
    /// [`crate::counts`]): never a scan of the fleet.
    async fn fleet_summary(&self, query: &FleetQuery) -> Result<FleetSummary, StoreError>;
    /// One page of the device table after `query.after`, in the order and
    /// by the walk of [`crate::keyset`].
    async fn fleet_devices(&self, query: &FleetQuery) -> Result<DevicePage, StoreError>;
    async fn device(
        &self,
        device_id: &str,
        staleness: Staleness,
    ) -> Result<Option<DeviceDetail>, StoreError>;
}
