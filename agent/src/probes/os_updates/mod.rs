//! Whether the OS keeps itself patched: updates the package manager (or OS
//! updater) already knows about, and whether updates install on their own.
//!
//! Checking never modifies the machine and never touches the network: package
//! managers run in simulation or cache-only mode, and metadata age is reported
//! so core can distrust stale lists.

mod linux;
mod macos;
mod windows;

pub use linux::{
    AptUpgrade, DnfAutomaticConf, Patch, PendingPackage, apt_config_value, parse_apt_get_upgrade,
    parse_dnf_automatic_conf, parse_dnf_check_update, parse_dnf5_updateinfo_summary,
    parse_pacman_qu, parse_updateinfo_list, parse_zypper_list_patches, parse_zypper_list_updates,
};
pub use macos::{
    MacUpdate, SoftwareUpdatePrefs, parse_softwareupdate_list, parse_softwareupdate_prefs,
};
pub use windows::{DateCulture, automatic_from_policy, parse_date_culture, parse_get_hotfix};

use std::path::Path;

use jiff::Timestamp;
use shipshape_core::facts::{Observed, OsFamily, OsUpdates};

pub use crate::probes::ParseError;
use crate::system::System;

/// Observes pending updates and automatic updates on the machine behind `system`.
pub fn probe(system: &dyn System) -> Observed<OsUpdates> {
    Observed::Observed(match system.os() {
        OsFamily::Linux => linux::probe(system),
        OsFamily::Macos => macos::probe(system),
        OsFamily::Windows => windows::probe(system),
    })
}

/// The newest modification time among `paths` and, for directories, their
/// entries `depth` levels down: when package metadata was last written.
fn newest_modified(system: &dyn System, paths: &[&Path], depth: u32) -> Option<Timestamp> {
    paths
        .iter()
        .filter_map(|path| {
            let own = system.symlink_metadata(path).ok()?.modified;
            let inner = match depth {
                0 => None,
                _ => system.read_dir(path).ok().and_then(|entries| {
                    let entries: Vec<&Path> = entries.iter().map(|entry| entry.as_path()).collect();
                    newest_modified(system, &entries, depth - 1)
                }),
            };
            own.max(inner)
        })
        .max()
}
