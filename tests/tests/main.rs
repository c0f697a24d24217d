//! The end-to-end tests, one binary: the real `shipshape` and
//! `shipshape-server` on loopback, each test with its own server, database
//! and agent directories, so they run in parallel. Build the binaries
//! first: `cargo build --workspace --bins` (scripts/test.sh does).

mod agent;
mod agent_kill;
mod breaker;
mod browser;
mod escaping;
mod flaky;
mod outage;
mod overlap;
mod policy_push;
mod proxy;
mod rate_limit;
mod regrade;
mod rejections;
mod replicas;
mod reports;
mod server_kill;
