//! The agent's integration tests: one binary, one module per area.

mod cli;
mod delivery;
mod disk_encryption;
mod enroll;
mod fake_server;
mod firewall;
mod notify;
mod os_updates;
mod output;
mod report;
mod robustness;
mod schedule;
mod ssh_keys;
mod ssh_server;
mod status;
