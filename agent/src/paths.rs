//! Where the agent keeps its configuration and state.

use std::path::{Path, PathBuf};

/// The agent's directories: system-wide when privileged, per-user otherwise.
/// `SHIPSHAPE_CONFIG_DIR` and `SHIPSHAPE_STATE_DIR` override them (packaging, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Paths {
    pub fn discover(privileged: bool) -> Self {
        let (config_dir, state_dir) = if privileged {
            system_dirs()
        } else {
            user_dirs().unwrap_or_else(system_dirs)
        };
        Paths {
            config_dir: std::env::var_os("SHIPSHAPE_CONFIG_DIR").map_or(config_dir, PathBuf::from),
            state_dir: std::env::var_os("SHIPSHAPE_STATE_DIR").map_or(state_dir, PathBuf::from),
        }
    }

    /// A policy IT placed on this machine; it wins over the server's cached one.
    pub fn configured_policy(&self) -> PathBuf {
        self.config_dir.join("policy.toml")
    }

    /// The last valid policy received from the server.
    pub fn cached_policy(&self) -> PathBuf {
        self.state_dir.join("policy-cache.toml")
    }

    /// The ETag of the cached server policy, sent as `If-None-Match`.
    pub fn cached_policy_etag(&self) -> PathBuf {
        self.state_dir.join("policy-cache.etag")
    }

    /// When each failing check was first seen failing, for grace periods.
    pub fn grace_state(&self) -> PathBuf {
        self.state_dir.join("failing-since.json")
    }

    /// Which server this machine is enrolled with, written by `shipshape enroll`.
    pub fn agent_config(&self) -> PathBuf {
        self.config_dir.join("agent.toml")
    }

    /// The device key when no OS keyring is available: root-only, mode 0600.
    pub fn device_key_file(&self) -> PathBuf {
        self.state_dir.join("device-key")
    }

    /// What happened to the last report: delivered with the server's grade, or why not.
    pub fn last_report(&self) -> PathBuf {
        self.state_dir.join("last-report.json")
    }

    /// Reports written before they are sent, kept until the server acknowledges them.
    pub fn outbox(&self) -> PathBuf {
        self.state_dir.join("outbox")
    }

    /// The delivery counters: reports dropped from a full outbox, and the
    /// facts hash of the last acknowledged full report.
    pub fn delivery_state(&self) -> PathBuf {
        self.state_dir.join("delivery.json")
    }

    /// The circuit breaker: failed runs in a row, and until when it keeps off the network.
    pub fn breaker(&self) -> PathBuf {
        self.state_dir.join("breaker.json")
    }

    /// The last policy the server sent that did not parse, while it is not replaced.
    pub fn refused_policy(&self) -> PathBuf {
        self.state_dir.join("policy-refused.json")
    }
}

fn system_dirs() -> (PathBuf, PathBuf) {
    if cfg!(target_os = "macos") {
        let base = Path::new("/Library/Application Support/Shipshape");
        (base.to_owned(), base.to_owned())
    } else if cfg!(windows) {
        let base = std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from);
        (base.join("Shipshape"), base.join("Shipshape"))
    } else {
        (
            PathBuf::from("/etc/shipshape"),
            PathBuf::from("/var/lib/shipshape"),
        )
    }
}

fn user_dirs() -> Option<(PathBuf, PathBuf)> {
    let dirs = directories::ProjectDirs::from("", "", "shipshape")?;
    let state = dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir());
    Some((dirs.config_dir().to_owned(), state.to_owned()))
}
