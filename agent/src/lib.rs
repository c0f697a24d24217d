//! The Shipshape agent as a library: probes that observe this machine
//! through the [`system::System`] seam, and the pieces of the `shipshape` CLI.

pub mod cli;
pub mod exit;
pub mod output;
pub mod paths;
pub mod policy_source;
pub mod probes;
pub mod state;
pub mod system;
