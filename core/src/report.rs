//! The result of one check run, as `shipshape check --format json` prints it
//! and as the agent sends it: a stable, documented schema.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::facts::Host;
use crate::finding::{Finding, Verdict};

/// Schema version of [`CheckReport`]; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// A machine's verdict under one policy at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckReport {
    pub schema: u32,
    pub verdict: Verdict,
    pub checked_at: Timestamp,
    pub host: Host,
    pub policy: PolicyRef,
    pub findings: Vec<Finding>,
}

/// Which policy judged the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRef {
    pub name: String,
    /// Where it came from: a file path, `built-in`, or the server URL.
    pub source: String,
}
