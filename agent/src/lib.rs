//! The Shipshape agent as a library: probes that observe this machine
//! through the [`system::System`] seam, the pieces of the `shipshape` CLI,
//! and its side of the server protocol (enrollment, signed reports).

pub mod atomic;
pub mod cli;
pub mod config;
pub mod enroll;
pub mod exit;
pub mod judge;
pub mod keystore;
pub mod output;
pub mod paths;
pub mod policy_source;
pub mod probes;
pub mod report;
pub mod state;
pub mod status;
pub mod system;
pub mod transport;
