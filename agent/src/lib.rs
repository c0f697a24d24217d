//! The Shipshape agent as a library: probes that observe this machine
//! through the [`system::System`] seam, the pieces of the `shipshape` CLI,
//! and its side of the server protocol (enrollment, signed reports, the
//! outbox, retries and the circuit breaker).

pub mod atomic;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod enroll;
pub mod exit;
pub mod judge;
pub mod keystore;
pub mod notify;
pub mod outbox;
pub mod output;
pub mod paths;
pub mod policy_source;
pub mod probes;
pub mod report;
pub mod schedule;
pub mod state;
pub mod status;
pub mod system;
pub mod transport;
mod xml;
