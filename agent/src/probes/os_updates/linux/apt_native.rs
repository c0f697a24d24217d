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
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use debversion::Version;

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
    #[error("dpkg itself is not in dpkg's status file, so the native architecture is unknown")]
    NoDpkg,
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
    let installed = parse_dpkg_status(open(system, Path::new(STATUS))?).map_err(|source| {
        Fallback::Unreadable {
            path: PathBuf::from(STATUS),
            source,
        }
    })?;
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
        let packages = parse_packages(decompress(compression, open(system, path)?), &wanted)
            .map_err(|source| Fallback::Unreadable {
                path: path.clone(),
                source,
            })?;
        repos.push(Repo { packages, release });
    }
    plan_upgrade(&installed, &repos)
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()
}

fn open<'a>(system: &'a dyn System, path: &Path) -> Result<Box<dyn Read + 'a>, Fallback> {
    system.open(path).map_err(|source| Fallback::Unreadable {
        path: path.to_owned(),
        source,
    })
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

/// A list decompressed as it is read: the lists are tens of megabytes
/// unpacked, and only a few hundred stanzas of them are kept.
fn decompress<'a>(compression: Compression, file: Box<dyn Read + 'a>) -> impl BufRead + 'a {
    let reader: Box<dyn Read + 'a> = match compression {
        Compression::None => file,
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
    };
    BufReader::with_capacity(64 * 1024, reader)
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
pub(super) fn parse_dpkg_status(file: impl Read) -> io::Result<Vec<Installed>> {
    let mut installed = Vec::new();
    for_each_stanza(
        BufReader::new(file),
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
    )?;
    Ok(installed)
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
pub(super) fn parse_packages(
    list: impl BufRead,
    wanted: &HashSet<&str>,
) -> io::Result<Vec<Available>> {
    let mut available = Vec::new();
    for_each_stanza(
        list,
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
    )?;
    Ok(available)
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// Calls `each` with the first-line values of `fields` (empty when absent)
/// for every stanza of a deb822 stream whose `Package` (`fields[0]`) passes
/// `keep`; a rejected stanza is skipped to its end without keeping anything.
fn for_each_stanza<const N: usize>(
    mut reader: impl BufRead,
    fields: [&[u8]; N],
    keep: impl Fn(&[u8]) -> bool,
    mut each: impl FnMut([&[u8]; N]),
) -> io::Result<()> {
    let mut values: [Vec<u8>; N] = std::array::from_fn(|_| Vec::new());
    let mut seen_any = false;
    let mut skipping = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            if seen_any && !skipping && !values[0].is_empty() && keep(&values[0]) {
                each(std::array::from_fn(|index| values[index].as_slice()));
            }
            values.iter_mut().for_each(Vec::clear);
            (seen_any, skipping) = (false, false);
            if read == 0 {
                return Ok(());
            }
            continue;
        }
        if skipping || content[0] == b' ' || content[0] == b'\t' {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', content) else {
            continue;
        };
        seen_any = true;
        let (key, value) = (&content[..colon], content[colon + 1..].trim_ascii());
        let Some(index) = fields.iter().position(|field| *field == key) else {
            continue;
        };
        values[index].clear();
        values[index].extend_from_slice(value);
        if index == 0 && !keep(value) {
            skipping = true;
        }
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
        .map(|dpkg| dpkg.architecture.as_str())
        .ok_or(Fallback::NoDpkg)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::fake::fixture_body;

    const JAMMY_SECURITY: &str = include_str!(
        "../../../../tests/fixtures/os-updates/linux/inrelease-ubuntu-jammy-security.txt"
    );
    const JAMMY_BACKPORTS: &str = include_str!(
        "../../../../tests/fixtures/os-updates/linux/inrelease-ubuntu-jammy-backports.txt"
    );
    const BOOKWORM_SECURITY: &str = include_str!(
        "../../../../tests/fixtures/os-updates/linux/inrelease-bookworm-security-excerpt.txt"
    );
    const BOOKWORM_UPDATES: &str = include_str!(
        "../../../../tests/fixtures/os-updates/linux/inrelease-bookworm-updates-excerpt.txt"
    );

    fn version(text: &str) -> Version {
        text.parse().expect("a Debian version")
    }

    #[test]
    fn versions_order_as_dpkg_orders_them() {
        // (older, newer), all from this machine's status and lists.
        let pairs = [
            ("2.36-9+deb12u7", "2.36-9+deb12u14"), // libc6: security lags main
            ("20230311+deb12u1", "20250419~deb12u2"), // ca-certificates
            ("3.0.20-1~deb12u2", "3.0.22-1~deb12u2"), // openssl, main vs security
            ("5.2.15-2+b8", "5.2.15-2+b13"),       // bash binNMUs: 13 > 8, not "1" < "8"
            ("2026b-0+deb12u1", "2026f-0+deb12u1"), // tzdata
            ("3.0.20-1~deb12u2", "3.0.20-1"),      // "~" sorts before the end
            ("1.3.1-1", "1:1.2.13.dfsg-1"),        // zlib1g's epoch wins
            ("12.4+deb12u11", "12.4+deb12u15"),    // base-files
        ];
        for (older, newer) in pairs {
            assert!(version(older) < version(newer), "{older} < {newer}");
        }
        assert_eq!(
            version("1.21.22"),
            version("0:1.21.22"),
            "no epoch is epoch 0"
        );
    }

    #[test]
    fn release_files_say_which_repositories_are_security_and_automatic() {
        let jammy = parse_release(fixture_body(JAMMY_SECURITY));
        assert_eq!(
            (
                jammy.suite.as_str(),
                jammy.codename.as_str(),
                jammy.origin.as_str()
            ),
            ("jammy-security", "jammy", "Ubuntu")
        );
        assert!(jammy.is_security() && jammy.priority() == 500);

        let debian = parse_release(fixture_body(BOOKWORM_SECURITY));
        assert_eq!(debian.label, "Debian-Security");
        assert!(debian.is_security());

        let updates = parse_release(fixture_body(BOOKWORM_UPDATES));
        assert_eq!(updates.codename, "bookworm-updates");
        assert!(!updates.is_security() && updates.priority() == 500);

        let backports = parse_release(fixture_body(JAMMY_BACKPORTS));
        assert!(backports.not_automatic && backports.but_automatic_upgrades);
        assert_eq!(backports.priority(), 100);
        let without = fixture_body(JAMMY_BACKPORTS).replace("ButAutomaticUpgrades: yes\n", "");
        assert_eq!(parse_release(&without).priority(), 1);
    }

    #[test]
    fn each_list_belongs_to_the_release_file_of_its_own_suite() {
        let names = [
            "deb.debian.org_debian_dists_bookworm-updates_InRelease",
            "deb.debian.org_debian_dists_bookworm_InRelease",
            "deb.debian.org_debian_dists_bookworm_Release",
            "deb.debian.org_debian-security_dists_bookworm-security_InRelease",
        ];
        let release = |list: &str| release_file_for(list, &names);
        assert_eq!(
            release("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"),
            Some("deb.debian.org_debian_dists_bookworm_InRelease"),
            "InRelease is preferred to Release"
        );
        assert_eq!(
            release("deb.debian.org_debian_dists_bookworm-updates_main_binary-amd64_Packages.lz4"),
            Some("deb.debian.org_debian_dists_bookworm-updates_InRelease")
        );
        assert_eq!(
            release(
                "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"
            ),
            Some("deb.debian.org_debian-security_dists_bookworm-security_InRelease")
        );
        assert_eq!(
            release("deb.nodesource.com_node%5f20.x_dists_nodistro_main_binary-amd64_Packages"),
            None
        );
        assert!(matches!(
            packages_compression("x_Packages.xz"),
            Some(Err(()))
        ));
        assert!(packages_compression("x_main_binary-amd64_Packages.diff_Index").is_none());
        assert!(packages_compression("x_main_i18n_Translation-en").is_none());
    }

    fn installed(name: &str, architecture: &str, version: &str, provides: &[&str]) -> Installed {
        Installed {
            name: name.to_owned(),
            architecture: architecture.to_owned(),
            version: version.to_owned(),
            held: false,
            provides: provides.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    fn available(name: &str, architecture: &str, version: &str, depends: &str) -> Available {
        Available {
            name: name.to_owned(),
            version: version.to_owned(),
            architecture: architecture.to_owned(),
            depends: depends.to_owned(),
            phased_percentage: None,
        }
    }

    fn repo(suite: &str, packages: Vec<Available>) -> Repo {
        Repo {
            release: Release {
                suite: suite.to_owned(),
                ..Release::default()
            },
            packages,
        }
    }

    fn names(upgrade: &AptUpgrade) -> Vec<(&str, bool)> {
        upgrade
            .packages
            .iter()
            .map(|package| (package.name.as_str(), package.security))
            .collect()
    }

    /// base-files 12.4+deb12u15 Pre-Depends on `awk`, which no package is
    /// called: mawk provides it.
    #[test]
    fn an_upgrade_needing_a_package_that_is_not_installed_is_kept_back() {
        let mawk = installed("mawk", "amd64", "1.3.4.20200120-3.1", &["awk"]);
        let base_files = installed("base-files", "amd64", "12.4+deb12u11", &["base"]);
        let dpkg = installed("dpkg", "amd64", "1.21.22", &[]);
        let main = || {
            vec![repo(
                "oldstable",
                vec![available("base-files", "amd64", "12.4+deb12u15", "awk")],
            )]
        };
        let with_awk =
            plan_upgrade(&[dpkg.clone(), mawk, base_files.clone()], &main()).expect("plans");
        assert_eq!(names(&with_awk), [("base-files", false)]);
        assert_eq!(with_awk.held_back, 0);

        let without_awk =
            plan_upgrade(&[dpkg.clone(), base_files.clone()], &main()).expect("plans");
        assert!(without_awk.packages.is_empty());
        assert_eq!(
            without_awk.held_back, 1,
            "apt-get upgrade never installs a new package"
        );

        // tzdata's `debconf (>= 0.5) | debconf-2.0`: one alternative is enough.
        let tzdata = installed("tzdata", "all", "2025b-0+deb12u2", &["tzdata-bookworm"]);
        let cdebconf = installed("cdebconf", "amd64", "0.270", &["debconf-2.0"]);
        let security = vec![repo(
            "oldstable-security",
            vec![available(
                "tzdata",
                "all",
                "2026f-0+deb12u1",
                "debconf (>= 0.5) | debconf-2.0",
            )],
        )];
        let upgrade =
            plan_upgrade(&[dpkg.clone(), tzdata.clone(), cdebconf], &security).expect("plans");
        assert_eq!(names(&upgrade), [("tzdata", true)]);

        let mut held = base_files;
        held.held = true;
        let upgrade = plan_upgrade(&[dpkg, held, tzdata], &main()).expect("plans");
        assert_eq!((upgrade.packages.len(), upgrade.held_back), (0, 1), "held");
    }

    #[test]
    fn the_candidate_is_the_newest_version_of_the_best_priority() {
        let dpkg = installed("dpkg", "amd64", "1.21.22", &[]);
        let openssl = installed("openssl", "amd64", "3.0.19-1~deb12u2", &[]);
        let repos = vec![
            repo(
                "oldstable",
                vec![available("openssl", "amd64", "3.0.20-1~deb12u2", "")],
            ),
            repo(
                "oldstable-security",
                vec![available("openssl", "amd64", "3.0.22-1~deb12u2", "")],
            ),
            repo(
                "oldstable-updates",
                vec![available("openssl", "amd64", "3.0.17-1~deb12u2", "")],
            ),
        ];
        let upgrade = plan_upgrade(&[dpkg.clone(), openssl.clone()], &repos).expect("plans");
        assert_eq!(names(&upgrade), [("openssl", true)]);

        // Backports (NotAutomatic + ButAutomaticUpgrades: 100) lose to the
        // release (500) for a package installed from the release…
        let mut backports = repo(
            "bookworm-backports",
            vec![available("openssl", "amd64", "3.5.1-1~bpo12+1", "")],
        );
        backports.release.not_automatic = true;
        backports.release.but_automatic_upgrades = true;
        let mut with_backports = repos.clone();
        with_backports.push(backports.clone());
        let upgrade = plan_upgrade(&[dpkg.clone(), openssl], &with_backports).expect("plans");
        assert_eq!(names(&upgrade), [("openssl", true)]);

        // …but upgrade a package installed from backports.
        let from_backports = installed("openssl", "amd64", "3.5.0-1~bpo12+1", &[]);
        let upgrade =
            plan_upgrade(&[dpkg.clone(), from_backports], &with_backports).expect("plans");
        assert_eq!(names(&upgrade), [("openssl", false)]);

        // A foreign-architecture package is named as apt names it.
        let i386 = installed("libssl3", "i386", "3.0.19-1~deb12u2", &[]);
        let lists = vec![repo(
            "oldstable-security",
            vec![
                available("libssl3", "i386", "3.0.22-1~deb12u2", ""),
                available("libssl3", "amd64", "3.0.23-1~deb12u2", ""),
            ],
        )];
        let upgrade = plan_upgrade(&[dpkg, i386], &lists).expect("plans");
        assert_eq!(names(&upgrade), [("libssl3:i386", true)]);
    }

    #[test]
    fn phased_updates_and_unorderable_versions_are_left_to_apt_get() {
        let dpkg = installed("dpkg", "amd64", "1.21.22", &[]);
        let mut phased = available("dpkg", "amd64", "1.21.23", "");
        phased.phased_percentage = Some(40);
        let result = plan_upgrade(
            std::slice::from_ref(&dpkg),
            &[repo("jammy-updates", vec![phased])],
        );
        assert!(matches!(result, Err(Fallback::Phased(name)) if name == "dpkg"));
        let bad = available("dpkg", "amd64", "1.21.23 beta", "");
        let result = plan_upgrade(&[dpkg], &[repo("oldstable", vec![bad])]);
        assert!(matches!(result, Err(Fallback::BadVersion { .. })));
        let bash = installed("bash", "amd64", "5.2.15-2+b8", &[]);
        assert!(
            matches!(plan_upgrade(&[bash], &[]), Err(Fallback::NoDpkg)),
            "without dpkg, `all` cannot be matched to the native architecture"
        );
    }

    #[test]
    fn stanzas_skip_unwanted_packages_and_continuation_lines() {
        let text = b"Package: zsh\nVersion: 5.9-4+b5\nDescription: shell\n with continuation: yes\n\n\
                     Package: bash\nArchitecture: amd64\nVersion: 5.2.15-2+b13\nDescription: GNU\n Version: 9\nPre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)\nDepends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)\n";
        let wanted: HashSet<&str> = ["bash"].into_iter().collect();
        let packages = parse_packages(&text[..], &wanted).unwrap();
        assert_eq!(
            packages,
            [available(
                "bash",
                "amd64",
                "5.2.15-2+b13",
                "libc6 (>= 2.36), libtinfo6 (>= 6), base-files (>= 2.1.12), debianutils (>= 5.6-0.1)"
            )]
        );
        let names: Vec<&str> =
            dependency_names("python3:any (>= 3.11~), libc6 [amd64] | libc6.1, foo <!nocheck>")
                .collect();
        assert_eq!(names, ["python3", "libc6", "libc6.1", "foo"]);
    }
}
