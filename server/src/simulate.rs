//! "What would this policy do to the fleet?" — every device graded under a
//! proposed policy from its last stored facts, the way a re-grade would,
//! and nothing stored. Read in batches ([`Store::device_states`]), graded on
//! every core.

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use shipshape_core::Policy;
use shipshape_core::wire::DeviceStatus;

use crate::model::TransitionKind;
use crate::regrade::{BATCH, each_device, regrade};
use crate::store::{Store, StoreError};

/// What the policy would change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Simulation {
    /// Enrolled devices.
    pub devices: u64,
    /// Devices graded under the policy: those with facts (a report).
    pub graded: u64,
    /// Devices leaky now (by their last grade, silent ones included).
    pub leaky_now: u64,
    /// Devices that would be leaky.
    pub would_leak: u64,
    /// Devices not leaky now that would be.
    pub newly_leaky: u64,
    /// Devices leaky now that would not be.
    pub no_longer_leaky: u64,
    /// Devices on which a check would spring a leak, with those checks.
    pub springs: Vec<SimulatedDevice>,
    /// Devices on which a check would bail out, with those checks.
    pub bails_out: Vec<SimulatedDevice>,
}

/// A device a simulated policy would change, and on which checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimulatedDevice {
    pub id: String,
    pub hostname: String,
    pub checks: Vec<String>,
}

/// Grades every device under `policy` at `now` and tells what would change;
/// stores nothing.
pub async fn simulate(
    store: &dyn Store,
    policy: &Policy,
    now: Timestamp,
) -> Result<Simulation, StoreError> {
    let policy = Arc::new(policy.clone());
    let mut simulation = Simulation::default();
    let mut after = String::new();
    loop {
        let states = store.device_states(&after, BATCH).await?;
        let Some(last) = states.last() else {
            return Ok(simulation);
        };
        after = last.id.clone();
        let policy = Arc::clone(&policy);
        let (states, graded) = tokio::task::spawn_blocking(move || {
            let graded = each_device(&states, |state| {
                regrade(&policy, state, now).map(|(_, grade)| (grade.status, grade.transitions))
            });
            (states, graded)
        })
        .await
        .map_err(|error| StoreError(format!("grading a batch of devices failed: {error}")))?;
        for (state, graded) in states.iter().zip(graded) {
            simulation.devices += 1;
            let leaky_now = state.status == DeviceStatus::Leaky;
            simulation.leaky_now += u64::from(leaky_now);
            let Some((status, transitions)) = graded else {
                simulation.would_leak += u64::from(leaky_now);
                continue;
            };
            simulation.graded += 1;
            let would_leak = status == DeviceStatus::Leaky;
            simulation.would_leak += u64::from(would_leak);
            simulation.newly_leaky += u64::from(would_leak && !leaky_now);
            simulation.no_longer_leaky += u64::from(leaky_now && !would_leak);
            let device = |kind: TransitionKind| {
                let checks: Vec<String> = transitions
                    .iter()
                    .filter(|(_, happens)| *happens == kind)
                    .map(|(check, _)| check.as_str().to_owned())
                    .collect();
                (!checks.is_empty()).then(|| SimulatedDevice {
                    id: state.id.clone(),
                    hostname: state.hostname.clone(),
                    checks,
                })
            };
            simulation
                .springs
                .extend(device(TransitionKind::SprangLeak));
            simulation
                .bails_out
                .extend(device(TransitionKind::BailedOut));
        }
    }
}
