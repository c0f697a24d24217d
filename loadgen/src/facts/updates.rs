//! OS updates: pending updates (some of them security fixes, named),
//! automatic updates on or off, stale package lists, Windows' update history.

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use shipshape_core::facts::{AutomaticUpdates, Observed, OsFamily, OsUpdates, PendingUpdates};

use super::host::Release;
use super::{pick, some_of};

/// Packages Debian and Ubuntu ship security fixes for, as `apt` names them.
const APT: &[&str] = &[
    "apt",
    "apt-transport-https",
    "bind9-dnsutils",
    "bind9-host",
    "bind9-libs",
    "ca-certificates",
    "curl",
    "dbus",
    "firefox-esr",
    "ghostscript",
    "git",
    "git-man",
    "gnupg",
    "gzip",
    "intel-microcode",
    "jq",
    "krb5-locales",
    "libaom3",
    "libapt-pkg6.0",
    "libc-bin",
    "libc6",
    "libcurl3-gnutls",
    "libcurl4",
    "libcups2",
    "libde265-0",
    "libexpat1",
    "libgcrypt20",
    "libglib2.0-0",
    "libgnutls30",
    "libgssapi-krb5-2",
    "libk5crypto3",
    "libkrb5-3",
    "libldap-2.5-0",
    "liblzma5",
    "libnghttp2-14",
    "libnss3",
    "libpam-modules",
    "libpam0g",
    "libpng16-16",
    "libpython3.11",
    "libsqlite3-0",
    "libssh2-1",
    "libssl3",
    "libsystemd0",
    "libtiff6",
    "libudev1",
    "libxml2",
    "linux-image-amd64",
    "linux-libc-dev",
    "openssh-client",
    "openssh-server",
    "openssl",
    "python3.11",
    "python3.11-minimal",
    "rsync",
    "sudo",
    "systemd",
    "thunderbird",
    "tzdata",
    "udev",
    "vim",
    "xz-utils",
];

/// The same for Fedora, RHEL and openSUSE.
const RPM: &[&str] = &[
    "bind-libs",
    "curl",
    "expat",
    "firefox",
    "glib2",
    "glibc",
    "glibc-common",
    "gnutls",
    "kernel",
    "kernel-core",
    "kernel-modules",
    "krb5-libs",
    "libcurl",
    "libsolv",
    "libssh",
    "libxml2",
    "microcode_ctl",
    "nss",
    "openssh",
    "openssh-clients",
    "openssh-server",
    "openssl",
    "openssl-libs",
    "pam",
    "python3",
    "python3-libs",
    "sqlite-libs",
    "sudo",
    "systemd",
    "systemd-libs",
    "thunderbird",
    "tzdata",
    "vim-minimal",
    "xz-libs",
];

/// macOS's recommended updates, as `softwareupdate --list` labels them.
const SOFTWAREUPDATE: &[&str] = &[
    "macOS Tahoe 26.1-25B78",
    "macOS Sequoia 15.7.2-24G325",
    "macOS Sonoma 14.8.2-23J126",
    "Safari26.1SequoiaAuto-21622.2.11.11.9",
    "Command Line Tools for Xcode-26.1",
    "BackgroundSecurityImprovement-24G90a",
    "XProtectPayloads_10_15-152",
];

pub(super) fn os_updates(rng: &mut impl Rng, release: &Release, now: Timestamp) -> OsUpdates {
    match release.family {
        OsFamily::Linux => linux(rng, release.id, now),
        OsFamily::Macos => macos(rng, now),
        OsFamily::Windows => windows(rng, now),
    }
}

/// The security updates `manager` may name; none for pacman, which
/// cannot tell them apart.
pub(super) fn security_names(manager: &str) -> &'static [&'static str] {
    match manager {
        "apt" => APT,
        "dnf" | "zypper" => RPM,
        "softwareupdate" => SOFTWAREUPDATE,
        _ => &[],
    }
}

fn linux(rng: &mut impl Rng, id: &str, now: Timestamp) -> OsUpdates {
    let (manager, mechanism) = match id {
        "debian" | "ubuntu" => ("apt", "unattended-upgrades"),
        "fedora" | "rhel" => ("dnf", "dnf-automatic"),
        "opensuse-leap" => ("zypper", "YaST online update"),
        _ => ("pacman", "none"),
    };
    let security = if manager == "pacman" {
        0
    } else {
        security_count(rng)
    };
    let names = some_of(rng, security_names(manager), security as usize);
    // Lists refreshed by a timer within the last day or so; a few machines
    // off the network for weeks, whose stale lists under-report.
    let refreshed_hours_ago = if rng.gen_bool(0.04) {
        rng.gen_range(15 * 24..60 * 24)
    } else {
        rng.gen_range(0..36)
    };
    let automatic_on = manager != "pacman" && rng.gen_bool(0.8);
    OsUpdates {
        pending: Observed::Observed(PendingUpdates {
            manager: manager.to_owned(),
            total: security + rng.gen_range(0..40),
            security,
            security_packages: names,
            held_back: *pick(rng, &[(85, 0), (10, 1), (5, 3)]),
            metadata_updated: Some(ago(now, refreshed_hours_ago)),
        }),
        automatic: Observed::Observed(AutomaticUpdates {
            enabled: automatic_on,
            mechanism: mechanism.to_owned(),
            detail: Some(if automatic_on {
                format!("{mechanism} is installed and enabled")
            } else if manager == "pacman" {
                "pacman has no automatic updates".to_owned()
            } else {
                format!("{mechanism} is not installed")
            }),
        }),
        last_installed: None,
    }
}

/// Security updates pending: none on most machines, a few on many, dozens
/// on machines nobody updates.
fn security_count(rng: &mut impl Rng) -> u32 {
    match *pick(rng, &[(45, 0), (30, 1), (20, 2), (5, 3)]) {
        0 => 0,
        1 => rng.gen_range(1..=5),
        2 => rng.gen_range(6..=30),
        _ => rng.gen_range(31..=70),
    }
}

fn macos(rng: &mut impl Rng, now: Timestamp) -> OsUpdates {
    let security: u32 = *pick(rng, &[(60, 0), (30, 1), (10, 2)]);
    let names = some_of(rng, SOFTWAREUPDATE, security as usize);
    let automatic_on = rng.gen_bool(0.85);
    OsUpdates {
        pending: Observed::Observed(PendingUpdates {
            manager: "softwareupdate".to_owned(),
            total: security + rng.gen_range(0..3),
            security,
            security_packages: names,
            held_back: 0,
            metadata_updated: Some(ago(now, rng.gen_range(0..48))),
        }),
        automatic: Observed::Observed(AutomaticUpdates {
            enabled: automatic_on,
            mechanism: "SoftwareUpdate".to_owned(),
            detail: Some(
                if automatic_on {
                    "AutomaticCheckEnabled=1, AutomaticDownload=1, CriticalUpdateInstall=1"
                } else {
                    "AutomaticCheckEnabled=1, AutomaticDownload=0, CriticalUpdateInstall=0"
                }
                .to_owned(),
            ),
        }),
        last_installed: None,
    }
}

fn windows(rng: &mut impl Rng, now: Timestamp) -> OsUpdates {
    let managed = rng.gen_bool(0.9);
    let days = if rng.gen_bool(0.9) {
        rng.gen_range(0..40)
    } else {
        rng.gen_range(46..120)
    };
    OsUpdates {
        pending: Observed::unknown(
            "Windows keeps pending updates behind the Windows Update API, which the agent does not query: judged by the age of the newest installed update",
        ),
        automatic: Observed::Observed(AutomaticUpdates {
            enabled: managed,
            mechanism: if managed {
                "Windows Update (AUOptions=4)"
            } else {
                "Windows Update (AUOptions=2)"
            }
            .to_owned(),
            detail: Some(
                if managed {
                    "policy AUOptions = 4: updates install on a schedule"
                } else {
                    "policy AUOptions = 2: updates wait for someone to install them"
                }
                .to_owned(),
            ),
        }),
        last_installed: Some(ago(now, days * 24)),
    }
}

/// `hours` before `now`, to the second.
fn ago(now: Timestamp, hours: i64) -> Timestamp {
    let at = now
        .checked_sub(SignedDuration::from_hours(hours))
        .unwrap_or(now);
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}
