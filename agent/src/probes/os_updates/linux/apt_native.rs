//! What `apt-get upgrade` would do, read straight from apt's local metadata:
//! dpkg's status file, the downloaded `Packages` lists and their `Release`
//! files. `apt-get -s upgrade` takes seconds (it builds apt's cache and runs
//! the resolver); this takes a few hundred milliseconds at most.
//!
//! It mirrors apt's default policy only: repositories at priority 500, 100 for
//! `NotAutomatic` + `ButAutomaticUpgrades`, ignored for `NotAutomatic`, the
//! installed version at 100. Whatever it does not model — pinning, a default
//! release, phased updates, compressions it cannot read — makes it give way
//! to `apt-get -s upgrade` ([`Fallback`]), never guess.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use debversion::Version;
use memchr::memmem;

use super::{AptUpgrade, PendingPackage, apt_conf_parts, apt_config_value};
use crate::system::System;

const STATUS: &str = "/var/lib/dpkg/status";
const LISTS: &str = "/var/lib/apt/lists";
const PREFERENCES: &str = "/etc/apt/preferences";
const PREFERENCES_D: &str = "/etc/apt/preferences.d";

/// Why the native reader leaves the answer to `apt-get -s upgrade`.
#[derive(Debug, thiserror::Error)]
pub(super) enum Fallback {
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{} is compressed in a format Shipshape does not read", .0.display())]
    Compression(PathBuf),
    #[error("{} sets a Pin-Priority that may apply, and apt's pinning is not reimplemented", .0.display())]
    Pinned(PathBuf),
    #[error("APT::Default-Release is set, which changes apt's priorities")]
    DefaultRelease,
    #[error("{0} is a phased update, which apt includes or defers per machine")]
    Phased(String),
    #[error("{package} has a version apt's rules cannot order: {version:?}")]
    BadVersion { package: String, version: String },
}

/// Reads what `apt-get upgrade` would install and keep back on the machine behind `system`.
pub(super) fn read_upgrade(system: &dyn System) -> Result<AptUpgrade, Fallback> {
    let lists = system.read_dir(Path::new(LISTS)).unwrap_or_default();
    let list_names: Vec<&str> = lists.iter().filter_map(|path| file_name(path)).collect();
    check_preferences(system, &list_names)?;
    let conf_files: Vec<String> = apt_conf_parts(system)
        .iter()
        .chain([PathBuf::from("/etc/apt/apt.conf")].iter())
        .filter_map(|path| system.read_to_string(path).ok())
        .collect();
    let conf: Vec<&str> = conf_files.iter().map(String::as_str).collect();
    if apt_config_value(&conf, "APT::Default-Release").is_some() {
        return Err(Fallback::DefaultRelease);
    }
    let status = read(system, Path::new(STATUS))?;
    let installed = parse_dpkg_status(&status);
    let wanted: HashSet<&str> = installed
        .iter()
        .map(|package| package.name.as_str())
        .collect();
    let mut repos = Vec::new();
    for path in &lists {
        let Some(name) = file_name(path) else {
            continue;
        };
        let compression = match packages_compression(name) {
            Some(Ok(compression)) => compression,
            Some(Err(())) => return Err(Fallback::Compression(path.clone())),
            None => continue,
        };
        let release = match release_file_for(name, &list_names) {
            Some(release) => parse_release(&String::from_utf8_lossy(&read(
                system,
                &path.with_file_name(release),
            )?)),
            None => Release::default(),
        };
        if release.priority() < INSTALLED_PRIORITY {
            continue;
        }
        let bytes = decompress(compression, read(system, path)?).map_err(|source| {
            Fallback::Unreadable {
                path: path.clone(),
                source,
            }
        })?;
        repos.push(Repo {
            packages: parse_packages(&bytes, &wanted),
            release,
        });
    }
    plan_upgrade(&installed, &repos)
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()
}

fn read(system: &dyn System, path: &Path) -> Result<Vec<u8>, Fallback> {
    system.read(path).map_err(|source| Fallback::Unreadable {
        path: path.to_owned(),
        source,
    })
}

/// A `Packages` list's compression: `None` for other files, `Err` for one
/// Shipshape cannot read.
fn packages_compression(name: &str) -> Option<Result<Compression, ()>> {
    if name.ends_with("_Packages") {
        return Some(Ok(Compression::None));
    }
    let (_, extension) = name.rsplit_once("_Packages.")?;
    match extension {
        "lz4" => Some(Ok(Compression::Lz4)),
        "gz" => Some(Ok(Compression::Gzip)),
        "xz" | "bz2" | "lzma" | "zst" => Some(Err(())),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Compression {
    None,
    Lz4,
    Gzip,
}

fn decompress(compression: Compression, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match compression {
        Compression::None => return Ok(bytes),
        Compression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(bytes.as_slice()).read_to_end(&mut out)?;
        }
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(bytes.as_slice()).read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// The `InRelease` (preferred) or `Release` file of the repository a list
/// belongs to: the one whose name, up to `InRelease`/`Release`, is the
/// longest prefix of the list's name.
fn release_file_for<'a>(list: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .filter_map(|name| {
            let (prefix, preferred) = match name.strip_suffix("_InRelease") {
                Some(prefix) => (prefix, true),
                None => (name.strip_suffix("_Release")?, false),
            };
            list.strip_prefix(prefix)?
                .starts_with('_')
                .then_some((prefix.len(), preferred, *name))
        })
        .max()
        .map(|(_, _, name)| name)
}

/// apt's pin-priority of the installed version.
const INSTALLED_PRIORITY: u32 = 100;

/// The fields of a `Release` file that decide how apt treats a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Release {
    pub suite: String,
    pub codename: String,
    pub label: String,
    pub origin: String,
    pub not_automatic: bool,
    pub but_automatic_upgrades: bool,
}

impl Release {
    /// apt's default pin-priority for the repository.
    fn priority(&self) -> u32 {
        match (self.not_automatic, self.but_automatic_upgrades) {
            (false, _) => 500,
            (true, true) => 100,
            (true, false) => 1,
        }
    }

    fn is_security(&self) -> bool {
        self.suite.ends_with("-security")
            || self.codename.ends_with("-security")
            || self.label == "Debian-Security"
    }
}

/// Reads the header of a `Release` or clear-signed `InRelease` file.
pub(super) fn parse_release(text: &str) -> Release {
    let mut release = Release::default();
    for line in text.lines() {
        if line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let field = match key {
            "Suite" => &mut release.suite,
            "Codename" => &mut release.codename,
            "Label" => &mut release.label,
            "Origin" => &mut release.origin,
            "NotAutomatic" => {
                release.not_automatic = value.eq_ignore_ascii_case("yes");
                continue;
            }
            "ButAutomaticUpgrades" => {
                release.but_automatic_upgrades = value.eq_ignore_ascii_case("yes");
                continue;
            }
            _ => continue,
        };
        if field.is_empty() {
            value.clone_into(field);
        }
    }
    release
}

/// Gives way to apt-get when a preferences file sets a priority that could
/// apply. A pin on `origin <host>` with no list from that host is inert:
/// it cannot match any version apt knows.
fn check_preferences(system: &dyn System, lists: &[&str]) -> Result<(), Fallback> {
    let mut files = vec![PathBuf::from(PREFERENCES)];
    files.extend(
        system
            .read_dir(Path::new(PREFERENCES_D))
            .unwrap_or_default()
            .into_iter()
            .filter(|path| {
                file_name(path).is_some_and(|name| {
                    name.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                        && (!name.contains('.') || name.ends_with(".pref"))
                })
            }),
    );
    for path in files {
        let Ok(text) = system.read_to_string(&path) else {
            continue;
        };
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
                })
            };
            if field("Pin-Priority").is_none() {
                continue;
            }
            let inert = field("Pin")
                .and_then(|pin| pin.strip_prefix("origin "))
                .map(|host| host.trim().trim_matches('"'))
                .is_some_and(|host| {
                    !host.is_empty()
                        && !lists
                            .iter()
                            .any(|list| list.starts_with(&format!("{host}_")))
                });
            if !inert {
                return Err(Fallback::Pinned(path));
            }
        }
    }
    Ok(())
}

/// A package dpkg has installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Installed {
    pub name: String,
    pub architecture: String,
    pub version: String,
    /// `hold` selection (`apt-mark hold`): apt never upgrades it.
    pub held: bool,
    pub provides: Vec<String>,
}

/// Reads dpkg's status file: the packages with a current version (not
/// removed, not only config files left).
pub(super) fn parse_dpkg_status(bytes: &[u8]) -> Vec<Installed> {
    let mut installed = Vec::new();
    for_each_stanza(
        bytes,
        [
            b"Package".as_slice(),
            b"Status",
            b"Architecture",
            b"Version",
            b"Provides",
        ],
        |_| true,
        |[name, status, architecture, version, provides]| {
            let status = text(status);
            let mut words = status.split_whitespace();
            let (want, state) = (words.next(), words.nth(1));
            if matches!(state, None | Some("not-installed" | "config-files")) {
                return;
            }
            installed.push(Installed {
                name: text(name).to_owned(),
                architecture: text(architecture).to_owned(),
                version: text(version).to_owned(),
                held: want == Some("hold"),
                provides: dependency_names(text(provides))
                    .map(str::to_owned)
                    .collect(),
            });
        },
    );
    installed
}

/// One version of a package a list offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Available {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// `Pre-Depends` and `Depends`, joined by ", ".
    pub depends: String,
    pub phased_percentage: Option<u32>,
}

/// Reads a `Packages` list, keeping only the packages named in `wanted`
/// (the installed ones): the other tens of thousands are skipped unparsed.
pub(super) fn parse_packages(bytes: &[u8], wanted: &HashSet<&str>) -> Vec<Available> {
    let mut available = Vec::new();
    for_each_stanza(
        bytes,
        [
            b"Package".as_slice(),
            b"Version",
            b"Architecture",
            b"Depends",
            b"Pre-Depends",
            b"Phased-Update-Percentage",
        ],
        |name| wanted.contains(text(name)),
        |[name, version, architecture, depends, pre_depends, phased]| {
            let depends = [text(pre_depends), text(depends)]
                .into_iter()
                .filter(|list| !list.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            available.push(Available {
                name: text(name).to_owned(),
                version: text(version).to_owned(),
                architecture: text(architecture).to_owned(),
                depends,
                phased_percentage: text(phased).parse().ok(),
            });
        },
    );
    available
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Calls `each` with the first-line values of `fields` (empty when absent)
/// for every stanza of a deb822 file whose `Package` (`fields[0]`) passes
/// `keep`; a rejected stanza is skipped to its end without reading further.
fn for_each_stanza<'a, const N: usize>(
    bytes: &'a [u8],
    fields: [&[u8]; N],
    keep: impl Fn(&[u8]) -> bool,
    mut each: impl FnMut([&'a [u8]; N]),
) {
    let stanza_end = memmem::Finder::new(b"\n\n");
    let mut values: [&'a [u8]; N] = [&[]; N];
    let mut seen_any = false;
    let mut at = 0;
    while at < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |offset| at + offset);
        let line = &bytes[at..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at = end + 1;
        if line.is_empty() {
            if seen_any && !values[0].is_empty() && keep(values[0]) {
                each(values);
            }
            values = [&[]; N];
            seen_any = false;
            continue;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        seen_any = true;
        let (key, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let Some(index) = fields.iter().position(|field| *field == key) else {
            continue;
        };
        values[index] = value;
        if index == 0 && !keep(value) {
            values = [&[]; N];
            seen_any = false;
            at = stanza_end
                .find(&bytes[end..])
                .map_or(bytes.len(), |offset| end + offset + 2);
        }
    }
    if seen_any && !values[0].is_empty() && keep(values[0]) {
        each(values);
    }
}

/// The package names of a dependency field (`a (>= 1) | b:any, c`), each
/// alternative of each group, without versions or architecture qualifiers.
fn dependency_names(field: &str) -> impl Iterator<Item = &str> {
    field.split([',', '|']).filter_map(|alternative| {
        let name = alternative.split(['(', '[', '<']).next()?.trim();
        let name = name.split_once(':').map_or(name, |(name, _)| name);
        (!name.is_empty()).then_some(name)
    })
}

/// A repository's list: its packages, and how apt ranks it.
#[derive(Debug, Clone)]
pub(super) struct Repo {
    pub release: Release,
    pub packages: Vec<Available>,
}

/// One candidate version, merged over the repositories that carry it.
struct Offer<'a> {
    version: Version,
    priority: u32,
    security: bool,
    depends: &'a str,
    phased_percentage: Option<u32>,
}

/// Decides what `apt-get upgrade` does: each installed package's candidate is
/// its highest-priority version not older than the installed one (ties: the
/// newest); a newer candidate is installed unless the package is held or the
/// candidate needs a package that is not installed, which `upgrade` never adds
/// (it "keeps back" such packages).
pub(super) fn plan_upgrade(
    installed: &[Installed],
    repos: &[Repo],
) -> Result<AptUpgrade, Fallback> {
    let native = installed
        .iter()
        .find(|package| package.name == "dpkg")
        .map_or("", |dpkg| dpkg.architecture.as_str());
    let arch = |architecture: &str| -> String {
        if architecture == "all" {
            native
        } else {
            architecture
        }
        .to_owned()
    };
    let parse = |package: &str, version: &str| {
        Version::from_str(version).map_err(|_| Fallback::BadVersion {
            package: package.to_owned(),
            version: version.to_owned(),
        })
    };
    let mut offers: HashMap<(&str, String), Vec<Offer>> = HashMap::new();
    for repo in repos {
        let priority = repo.release.priority();
        let security = repo.release.is_security();
        for package in &repo.packages {
            let version = parse(&package.name, &package.version)?;
            let versions = offers
                .entry((package.name.as_str(), arch(&package.architecture)))
                .or_default();
            match versions.iter_mut().find(|offer| offer.version == version) {
                Some(offer) => {
                    offer.priority = offer.priority.max(priority);
                    offer.security |= security;
                }
                None => versions.push(Offer {
                    version,
                    priority,
                    security,
                    depends: &package.depends,
                    phased_percentage: package.phased_percentage,
                }),
            }
        }
    }
    let present: HashSet<&str> = installed
        .iter()
        .flat_map(|package| {
            std::iter::once(package.name.as_str())
                .chain(package.provides.iter().map(String::as_str))
        })
        .collect();
    let mut pending = BTreeMap::new();
    let mut held_back = 0;
    for package in installed {
        let current = parse(&package.name, &package.version)?;
        let key = (package.name.as_str(), arch(&package.architecture));
        let Some(versions) = offers.get(&key) else {
            continue;
        };
        let current_priority = versions
            .iter()
            .find(|offer| offer.version == current)
            .map_or(INSTALLED_PRIORITY, |offer| {
                offer.priority.max(INSTALLED_PRIORITY)
            });
        let candidate = versions
            .iter()
            .filter(|offer| offer.version > current)
            .max_by(|a, b| (a.priority, &a.version).cmp(&(b.priority, &b.version)))
            .filter(|offer| offer.priority >= current_priority);
        let Some(candidate) = candidate else {
            continue;
        };
        if candidate
            .phased_percentage
            .is_some_and(|percentage| percentage < 100)
            && !candidate.security
        {
            return Err(Fallback::Phased(package.name.clone()));
        }
        if package.held || needs_new_package(candidate.depends, &present) {
            held_back += 1;
            continue;
        }
        let name = if package.architecture == "all" || package.architecture == native {
            package.name.clone()
        } else {
            format!("{}:{}", package.name, package.architecture)
        };
        pending.insert(name, candidate.security);
    }
    Ok(AptUpgrade {
        packages: pending
            .into_iter()
            .map(|(name, security)| PendingPackage { name, security })
            .collect(),
        held_back,
    })
}

/// Whether a dependency field has a group none of whose alternatives is
/// installed or provided by an installed package. Version constraints are
/// not checked.
fn needs_new_package(depends: &str, present: &HashSet<&str>) -> bool {
    depends
        .split(',')
        .filter(|group| !group.trim().is_empty())
        .any(|group| !dependency_names(group).any(|name| present.contains(name)))
}
