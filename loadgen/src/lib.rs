//! `shipshape-loadgen`: a fleet of simulated devices for load tests of a
//! Shipshape server. Each device has its own Ed25519 key and enrolls like an
//! agent; its machine's facts are drawn from a seed ([`facts`]); it judges
//! them with the default policy and sends signed full reports and
//! heartbeats exactly as the agent does ([`device`], [`run`]), on an
//! open-loop schedule ([`schedule`]); latencies go into HDR histograms
//! ([`stats`]).

pub mod cli;
pub mod client;
pub mod device;
pub mod facts;
pub mod output;
pub mod run;
pub mod schedule;
pub mod stats;
