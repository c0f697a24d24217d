//! ssh-keys: the private keys in users' `~/.ssh`, described without their secret.
//!
//! Run privileged, every user's home is examined; otherwise only the invoking
//! user's, since other homes are not readable anyway. Only metadata leaves
//! this module: key material is read, parsed and dropped.

mod linux;
mod macos;
mod parse;
mod windows;

use std::io;
use std::path::{Path, PathBuf};

use shipshape_core::facts::{KeyFormat, Observed, OsFamily, SshKey, SshKeys};

use super::needs_root;
use crate::system::{FileKind, System};

pub use linux::parse_passwd;
pub use parse::{KeyInfo, parse_private_key, private_key_format};

/// A file larger than this is not a key (an RSA-16384 OpenSSH key is ~12 KiB).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// A home directory whose `.ssh` to examine, and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub owner: String,
    pub dir: PathBuf,
}

/// Observes the private keys of every user (privileged) or of the invoking user.
pub fn probe(system: &dyn System) -> Observed<SshKeys> {
    let (homes, unreadable) = homes(system);
    let mut keys = scan_homes(system, &homes);
    keys.unreadable.splice(0..0, unreadable);
    Observed::Observed(keys)
}

/// The homes to examine, and why some could not be listed.
pub fn homes(system: &dyn System) -> (Vec<Home>, Vec<String>) {
    let mut unreadable = Vec::new();
    let mut homes = if system.is_privileged() {
        let all = match system.os() {
            OsFamily::Linux => linux::all_homes(system),
            OsFamily::Macos => macos::all_homes(system),
            OsFamily::Windows => windows::all_homes(system),
        };
        all.unwrap_or_else(|why| {
            unreadable.push(why);
            invoking_home(system).into_iter().collect()
        })
    } else {
        invoking_home(system).into_iter().collect()
    };
    let mut seen = Vec::new();
    homes.retain(|home| {
        let first = !seen.contains(&home.dir);
        seen.push(home.dir.clone());
        first
    });
    (homes, unreadable)
}

/// The folders directly under `parent` (`/Users`, `C:\Users`) as homes named
/// after their folder, leaving out those `shared` says belong to no one user.
fn folders_as_homes(
    system: &dyn System,
    parent: &Path,
    shared: impl Fn(&str) -> bool,
) -> Result<Vec<Home>, String> {
    let entries = system.read_dir(parent).map_err(|error| {
        format!(
            "listing {} failed ({error}): only the invoking user's keys were examined",
            parent.display()
        )
    })?;
    Ok(entries
        .into_iter()
        .filter(|dir| {
            system
                .symlink_metadata(dir)
                .is_ok_and(|info| info.kind == FileKind::Dir)
        })
        .filter_map(|dir| {
            let owner = dir.file_name()?.to_string_lossy().into_owned();
            (!shared(&owner)).then_some(Home { owner, dir })
        })
        .collect())
}

/// The home of the user running the agent, from `HOME` (`USERPROFILE` on Windows).
fn invoking_home(system: &dyn System) -> Option<Home> {
    let (home_var, user_var) = match system.os() {
        OsFamily::Windows => ("USERPROFILE", "USERNAME"),
        OsFamily::Linux | OsFamily::Macos => ("HOME", "USER"),
    };
    let dir = PathBuf::from(system.env(home_var).filter(|home| !home.is_empty())?);
    let owner = system
        .env(user_var)
        .filter(|user| !user.is_empty())
        .or_else(|| {
            (system.os() == OsFamily::Linux)
                .then(|| linux::owner_of(system, &dir))
                .flatten()
        })
        .or_else(|| {
            dir.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Some(Home { owner, dir })
}

/// Examines each home's `.ssh` directory; a missing one is simply skipped.
pub fn scan_homes(system: &dyn System, homes: &[Home]) -> SshKeys {
    let mut found = SshKeys {
        keys: Vec::new(),
        scanned: Vec::new(),
        unreadable: Vec::new(),
    };
    for home in homes {
        let dir = home.dir.join(".ssh");
        match system.read_dir(&dir) {
            Ok(entries) => {
                found.scanned.push(dir.display().to_string());
                for path in entries {
                    scan_file(system, &home.owner, &path, &mut found);
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => found.unreadable.push(refused(system, &dir, &error)),
        }
    }
    found
}

fn refused(system: &dyn System, path: &Path, error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::PermissionDenied {
        needs_root(&format!("reading {}", path.display()), system)
    } else {
        format!("reading {} failed: {error}", path.display())
    }
}

/// Files that live in `~/.ssh` but are never private keys.
fn never_a_key(name: &str) -> bool {
    name.ends_with(".pub")
        || name.ends_with(".sock")
        || name.starts_with("known_hosts")
        || name.starts_with("authorized_keys")
        || name == "config"
}

fn scan_file(system: &dyn System, owner: &str, path: &Path, found: &mut SshKeys) {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    if never_a_key(&name) {
        return;
    }
    let info = match system.symlink_metadata(path) {
        Ok(info) => info,
        Err(error) => return found.unreadable.push(refused(system, path, &error)),
    };
    match info.kind {
        FileKind::File if info.len <= MAX_KEY_FILE => {}
        FileKind::Symlink => {
            return found.unreadable.push(format!(
                "{} is a symlink and was not followed: check the file it points to",
                path.display()
            ));
        }
        FileKind::File | FileKind::Dir | FileKind::Other => return,
    }
    let content = match system.read(path) {
        Ok(content) => content,
        Err(error) => return found.unreadable.push(refused(system, path, &error)),
    };
    let Some(format) = private_key_format(&content) else {
        return;
    };
    let public = match format {
        KeyFormat::Pem | KeyFormat::Pkcs8 => read_public(system, path),
        KeyFormat::Openssh | KeyFormat::Putty => None,
    };
    let Some(key) = parse_private_key(&content, public.as_deref()) else {
        return;
    };
    found.keys.push(SshKey {
        owner: owner.to_owned(),
        path: path.display().to_string(),
        format: key.format,
        algorithm: key.algorithm,
        bits: key.bits,
        encrypted: key.encrypted,
        hardware_backed: key.hardware_backed,
        mode: info.mode,
        fingerprint: key.fingerprint,
        note: key.note,
    });
}

/// The `<key>.pub` file next to a key, when there is a small regular one.
fn read_public(system: &dyn System, key: &Path) -> Option<String> {
    let mut name = key.file_name()?.to_owned();
    name.push(".pub");
    let path = key.with_file_name(name);
    let info = system.symlink_metadata(&path).ok()?;
    (info.kind == FileKind::File && info.len <= MAX_KEY_FILE)
        .then(|| system.read_to_string(&path).ok())
        .flatten()
}
