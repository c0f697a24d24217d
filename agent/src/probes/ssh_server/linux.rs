//! Linux: sshd is "running" when a systemd (or OpenRC) enablement link makes
//! it start at boot, or when a process named `sshd` runs now. Either way it
//! accepts connections now or after the next reboot.

use std::path::Path;

use shipshape_core::facts::{Observed, ServiceState, SshServer};

use super::effective_config;
use crate::system::System;

const SSHD: &[&str] = &["/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd"];

/// Links that start sshd at boot: Debian's `ssh`, Fedora's `sshd`, socket activation, OpenRC.
const ENABLEMENT_LINKS: &[&str] = &[
    "/etc/systemd/system/multi-user.target.wants/ssh.service",
    "/etc/systemd/system/multi-user.target.wants/sshd.service",
    "/etc/systemd/system/sockets.target.wants/ssh.socket",
    "/etc/systemd/system/sockets.target.wants/sshd.socket",
    "/etc/runlevels/default/sshd",
];

pub(super) fn probe(system: &dyn System) -> Observed<SshServer> {
    let Some(sshd) = system.find_program(SSHD) else {
        return Observed::Observed(SshServer {
            state: ServiceState::NotInstalled,
            config: None,
        });
    };
    let enabled = ENABLEMENT_LINKS
        .iter()
        .any(|link| system.symlink_metadata(Path::new(link)).is_ok());
    let state = if enabled || sshd_process_runs(system) {
        ServiceState::Running
    } else {
        ServiceState::Disabled
    };
    Observed::Observed(SshServer {
        state,
        config: Some(effective_config(
            system,
            &sshd,
            Path::new("/etc/ssh/sshd_config"),
            Path::new("/etc/ssh"),
        )),
    })
}

/// Whether any process's `comm` is `sshd` (readable for every process without root).
fn sshd_process_runs(system: &dyn System) -> bool {
    system
        .read_dir(Path::new("/proc"))
        .unwrap_or_default()
        .iter()
        .filter(|dir| {
            dir.file_name()
                .is_some_and(|name| name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        })
        .any(|dir| {
            system
                .read_to_string(&dir.join("comm"))
                .is_ok_and(|comm| comm.trim_end() == "sshd")
        })
}
