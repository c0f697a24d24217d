//! One run of the checks, shared by `shipshape check` and `shipshape report`:
//! observe the facts the policy needs, evaluate them, remember grace.

use jiff::Timestamp;
use shipshape_core::checks::{CATALOG, CheckId};
use shipshape_core::facts::Facts;
use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
use shipshape_core::{Verdict, evaluate};

use crate::exit;
use crate::paths::Paths;
use crate::policy_source::Loaded;
use crate::probes;
use crate::state::GraceState;
use crate::system::System;

/// What one run observed and concluded.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Every fact observed; the ones the policy does not run are unknown, "not collected".
    pub facts: Facts,
    pub report: CheckReport,
}

impl Judged {
    /// The exit code of `shipshape check` for this verdict.
    pub fn exit_code(&self) -> u8 {
        match self.report.verdict {
            Verdict::Shipshape => exit::SHIPSHAPE,
            Verdict::Leaky => exit::LEAKY,
        }
    }
}

/// The checks to observe: those given to `--only`, else the whole catalog.
pub fn wanted(only: &[CheckId]) -> Vec<CheckId> {
    if only.is_empty() {
        CATALOG.iter().map(|info| info.id).collect()
    } else {
        only.to_vec()
    }
}

/// Observes and judges this machine under `loaded`, limited to `only` when
/// it names checks (each must be one the policy runs).
pub fn run(
    system: &dyn System,
    paths: &Paths,
    loaded: &Loaded,
    only: &[CheckId],
    now: Timestamp,
) -> anyhow::Result<Judged> {
    let policy = &loaded.policy;
    for id in only {
        if policy.checks.get(*id).is_none() {
            anyhow::bail!(
                "policy `{}` does not run the check `{id}` given to --only",
                policy.name
            );
        }
    }
    let mut wanted = wanted(only);
    wanted.retain(|id| policy.checks.get(*id).is_some());
    let facts = probes::collect(system, &wanted);
    let mut grace = GraceState::load(&paths.grace_state());
    let mut findings = evaluate(policy, &facts, now, grace.failing_since());
    findings.retain(|finding| wanted.iter().any(|id| id.as_str() == finding.check));
    grace.record(&findings, now);
    if let Err(error) = grace.save(&paths.grace_state()) {
        tracing::warn!("could not remember when checks started failing: {error:#}");
    }
    let report = CheckReport {
        schema: SCHEMA_VERSION,
        verdict: Verdict::of(&findings),
        checked_at: now,
        host: facts.host.clone(),
        policy: PolicyRef {
            name: policy.name.clone(),
            source: loaded.source.clone(),
        },
        findings,
    };
    Ok(Judged { facts, report })
}
