//! Shipshape's pure core, shared by the agent and the server.
//!
//! Probes (in the agent) observe **facts**; a **policy** (TOML) says what a
//! shipshape machine looks like; [`evaluate()`] turns facts × policy into
//! **findings**; [`signing`] signs the agent's requests and verifies them on
//! the server. Nothing here touches processes, files, the network or the
//! clock: time is always passed in, so the server can re-grade stored facts
//! with exactly the same code the agent runs.

pub mod checks;
pub mod evaluate;
pub mod facts;
pub mod finding;
pub mod policy;
pub mod report;
pub mod signing;
pub mod version;
pub mod wire;

pub use evaluate::{FailingSince, advance_failing_since, evaluate};
pub use facts::Facts;
pub use finding::{Finding, Severity, Status, Verdict};
pub use policy::Policy;
