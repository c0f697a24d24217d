//! Re-grading the fleet under a new policy, in the background and in
//! batches, the same over every backend.
//!
//! Activating a policy stores it with a re-grade at its start
//! ([`Store::activate_policy`]); [`run`] then grades every device again from
//! its last facts, [`BATCH`] devices at a time in id order: it reads a batch
//! ([`Store::device_states`]), grades it on every core, and stores only the
//! devices whose grade changed, with the re-grade's cursor moved past the
//! batch, in one transaction ([`Store::save_regrade`]). While one batch is
//! stored the next is read and graded. The cursor is in the store, so a
//! re-grade cut short (a restart) resumes where it stood, on any server;
//! a newer policy supersedes it, and the store refuses its next batch.
//! Reports that arrive meanwhile are graded by the new policy already; a
//! device whose report came in between the read and the store of its batch
//! is left as that report graded it.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use shipshape_core::{Facts, Policy};

use crate::grade::{Grade, grade};
use crate::model::{DeviceRegrade, DeviceState, RegradeBatch, RegradeProgress, RegradeState};
use crate::store::{ActivePolicy, Store, StoreError};

/// Devices graded and stored per transaction.
pub const BATCH: u32 = 1_000;

/// How long a re-grade that failed (the store was unavailable) waits before
/// it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Runs the re-grade of `policy` until it is done or superseded, grading
/// each batch at the time `clock` tells; answers where it ended. Nothing to
/// do (another policy is active, or its re-grade is over) answers the
/// re-grade as it stands.
pub async fn run(
    store: &dyn Store,
    policy: &ActivePolicy,
    clock: impl Fn() -> Timestamp,
) -> Result<Option<RegradeProgress>, StoreError> {
    let policy_id = policy.stored.id;
    let progress = match store.regrade_progress().await? {
        Some(progress)
            if progress.policy_id == policy_id && progress.state == RegradeState::Running =>
        {
            progress
        }
        other => return Ok(other),
    };
    let policy = Arc::new(policy.policy.clone());
    let mut batch = read_and_grade(store, &policy, policy_id, progress.after, clock()).await?;
    loop {
        let Some(through) = batch.through.clone() else {
            return store.save_regrade(batch).await;
        };
        // The next batch is read and graded while this one is stored.
        let (saved, next) = tokio::join!(
            store.save_regrade(batch),
            read_and_grade(store, &policy, policy_id, through, clock())
        );
        match saved? {
            Some(progress) if progress.state == RegradeState::Running => {}
            ended => return Ok(ended),
        }
        batch = next?;
    }
}

/// Runs the re-grade of `policy` in a task of its own, trying again after
/// a store failure, until it is done or superseded.
pub fn spawn(store: Arc<dyn Store>, policy: Arc<ActivePolicy>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match run(store.as_ref(), &policy, Timestamp::now).await {
                Ok(progress) => {
                    if let Some(progress) = progress.filter(|p| p.policy_id == policy.stored.id) {
                        tracing::info!(
                            policy_id = progress.policy_id,
                            state = ?progress.state,
                            devices = progress.done,
                            changed_status = progress.changed_status,
                            "re-grade ended"
                        );
                    }
                    return;
                }
                Err(error) => {
                    tracing::error!(
                        %error,
                        policy_id = policy.stored.id,
                        "re-grade interrupted: trying again in {}s",
                        RETRY_AFTER.as_secs()
                    );
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
    })
}

/// The batch after `from`, read and graded.
async fn read_and_grade(
    store: &dyn Store,
    policy: &Arc<Policy>,
    policy_id: i64,
    from: String,
    at: Timestamp,
) -> Result<RegradeBatch, StoreError> {
    let states = store.device_states(&from, BATCH).await?;
    let policy = Arc::clone(policy);
    tokio::task::spawn_blocking(move || grade_batch(&policy, policy_id, from, &states, at))
        .await
        .map_err(|error| StoreError(format!("grading a batch of devices failed: {error}")))
}

/// The batch of the re-grade of `policy` (stored as `policy_id`) made of
/// `states`, the devices after `from`, graded at `at` on every core: the
/// devices whose grade changed.
pub fn grade_batch(
    policy: &Policy,
    policy_id: i64,
    from: String,
    states: &[DeviceState],
    at: Timestamp,
) -> RegradeBatch {
    let changes = each_device(states, |state| changed(policy, state, at))
        .into_iter()
        .flatten()
        .collect();
    RegradeBatch {
        policy_id,
        from,
        through: states.last().map(|state| state.id.clone()),
        visited: states.len() as u64,
        changes,
        at,
    }
}

/// The device's new grade when it differs from the stored one.
fn changed(policy: &Policy, state: &DeviceState, at: Timestamp) -> Option<DeviceRegrade> {
    let (report, grade) = regrade(policy, state, at)?;
    let findings_json = serde_json::to_string(&grade.findings)
        .inspect_err(|error| {
            tracing::error!(device_id = state.id, %error, "cannot serialize findings");
        })
        .ok()?;
    let same = grade.status == state.status
        && grade.state == state.checks
        && grade.transitions.is_empty()
        && findings_json == state.findings_json;
    (!same).then(|| DeviceRegrade {
        device_id: state.id.clone(),
        report_id: report.to_owned(),
        before: state.status,
        previous: state.checks.clone(),
        grade,
        findings_json,
    })
}

/// The device graded under `policy` from its last facts, with the report
/// they came with; `None` before its first report, or when the facts
/// cannot be read (stored by a newer server): the device keeps its grade.
pub(crate) fn regrade<'a>(
    policy: &Policy,
    state: &'a DeviceState,
    at: Timestamp,
) -> Option<(&'a str, Grade)> {
    let report = state.last_report.as_ref()?;
    let facts: Facts = serde_json::from_str(&report.facts_json)
        .inspect_err(|error| {
            tracing::warn!(
                device_id = state.id,
                %error,
                "the device keeps its grade: its last facts are unreadable"
            );
        })
        .ok()?;
    Some((report.id.as_str(), grade(policy, &facts, at, &state.checks)))
}

/// `work` over every item, spread over the machine's cores; the results in
/// the items' order.
pub(crate) fn each_device<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    if threads < 2 || items.len() < 2 {
        return items.iter().map(work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_spread_over_cores_keeps_the_order() {
        let items: Vec<u32> = (0..1001).collect();
        let doubled = each_device(&items, |n| n * 2);
        assert_eq!(doubled, (0..1001).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(each_device(&[] as &[u32], |n| *n), Vec::<u32>::new());
    }
}
