//! Who a machine is: its OS release, kernel, architecture, name and users.

use rand::Rng;
use shipshape_core::facts::{Host, OsFamily, OsInfo};

use super::{People, hex, pick};

/// An OS release machines run, and how common it is in the fleet.
#[derive(Debug)]
pub(super) struct Release {
    pub family: OsFamily,
    pub id: &'static str,
    pub name: &'static str,
    pub version: Option<&'static str>,
    pub build: Option<&'static str>,
    /// The kernel release as the agent reads it (`uname -r`, the NT
    /// version), `{}` standing for a patch number drawn from `patches`.
    pub kernel: &'static str,
    pub patches: (u32, u32),
}

const fn linux(
    id: &'static str,
    name: &'static str,
    version: Option<&'static str>,
    kernel: &'static str,
    patches: (u32, u32),
) -> Release {
    Release {
        family: OsFamily::Linux,
        id,
        name,
        version,
        build: None,
        kernel,
        patches,
    }
}

const fn macos(
    name: &'static str,
    version: &'static str,
    build: &'static str,
    kernel: &'static str,
) -> Release {
    Release {
        family: OsFamily::Macos,
        id: "macos",
        name,
        version: Some(version),
        build: Some(build),
        kernel,
        patches: (0, 0),
    }
}

const fn windows(
    name: &'static str,
    version: &'static str,
    build: &'static str,
    kernel: &'static str,
) -> Release {
    Release {
        family: OsFamily::Windows,
        id: "windows",
        name,
        version: Some(version),
        build: Some(build),
        kernel,
        patches: (0, 0),
    }
}

/// Roughly a mid-sized company in late 2026: mostly current releases, a
/// tail of old ones below the default policy's minimum versions.
const RELEASES: &[(u32, Release)] = &[
    (
        12,
        linux(
            "debian",
            "Debian GNU/Linux 12 (bookworm)",
            Some("12"),
            "6.1.0-{}-amd64",
            (25, 31),
        ),
    ),
    (
        5,
        linux(
            "debian",
            "Debian GNU/Linux 13 (trixie)",
            Some("13"),
            "6.12.{}+deb13-amd64",
            (38, 48),
        ),
    ),
    (
        2,
        linux(
            "debian",
            "Debian GNU/Linux 11 (bullseye)",
            Some("11"),
            "5.10.0-{}-amd64",
            (30, 34),
        ),
    ),
    (
        10,
        linux(
            "ubuntu",
            "Ubuntu 24.04.3 LTS",
            Some("24.04"),
            "6.8.0-{}-generic",
            (60, 85),
        ),
    ),
    (
        5,
        linux(
            "ubuntu",
            "Ubuntu 22.04.5 LTS",
            Some("22.04"),
            "5.15.0-{}-generic",
            (120, 150),
        ),
    ),
    (
        1,
        linux(
            "ubuntu",
            "Ubuntu 20.04.6 LTS",
            Some("20.04"),
            "5.4.0-{}-generic",
            (190, 216),
        ),
    ),
    (
        5,
        linux(
            "fedora",
            "Fedora Linux 42 (Workstation Edition)",
            Some("42"),
            "6.15.{}-200.fc42.x86_64",
            (3, 10),
        ),
    ),
    (
        1,
        linux(
            "fedora",
            "Fedora Linux 41 (Workstation Edition)",
            Some("41"),
            "6.14.{}-100.fc41.x86_64",
            (2, 11),
        ),
    ),
    (
        2,
        linux(
            "rhel",
            "Red Hat Enterprise Linux 9.6 (Plow)",
            Some("9.6"),
            "5.14.0-570.{}.1.el9_6.x86_64",
            (12, 30),
        ),
    ),
    (
        1,
        linux(
            "opensuse-leap",
            "openSUSE Leap 15.6",
            Some("15.6"),
            "6.4.0-150600.23.{}-default",
            (25, 60),
        ),
    ),
    (
        1,
        linux("arch", "Arch Linux", None, "6.16.{}-arch1-1", (1, 9)),
    ),
    (12, macos("macOS 15.6.1", "15.6.1", "24G90", "24.6.0")),
    (10, macos("macOS 26.1", "26.1", "25B78", "25.1.0")),
    (7, macos("macOS 14.7.6", "14.7.6", "23H626", "23.6.0")),
    (2, macos("macOS 13.7.8", "13.7.8", "22H730", "22.6.0")),
    (
        12,
        windows("Windows 11 Pro", "10.0.26100", "26100.6584", "10.0.26100"),
    ),
    (
        6,
        windows(
            "Windows 11 Enterprise",
            "10.0.22631",
            "22631.5909",
            "10.0.22631",
        ),
    ),
    (
        2,
        windows("Windows 10 Pro", "10.0.19045", "19045.6332", "10.0.19045"),
    ),
];

/// Given names users have on their machines.
const USERS: &[&str] = &[
    "ana", "ben", "chloe", "dmitri", "emma", "farid", "greta", "hiro", "ines", "jonas", "kaia",
    "luca", "maya", "noah", "olga", "pablo", "quinn", "rosa", "sam", "tariq", "uma", "viktor",
    "wen", "ximena", "yusuf", "zoe",
];

pub(super) fn release(rng: &mut impl Rng) -> &'static Release {
    pick(rng, RELEASES)
}

pub(super) fn users(rng: &mut impl Rng) -> Vec<&'static str> {
    let owner = USERS[rng.gen_range(0..USERS.len())];
    let mut users = vec![owner];
    if rng.gen_bool(0.15) {
        let other = USERS[rng.gen_range(0..USERS.len())];
        if other != owner {
            users.push(other);
        }
    }
    users
}

pub(super) fn host(rng: &mut impl Rng, release: &Release, people: &People, index: u64) -> Host {
    let owner = people.users[0];
    let kernel = release.kernel.replace(
        "{}",
        &rng.gen_range(release.patches.0..=release.patches.1)
            .to_string(),
    );
    let (hostname, arch, hardware_id) = match release.family {
        OsFamily::Linux => {
            let hostname = match rng.gen_range(0..4) {
                0 => format!("{owner}-thinkpad-{index:04}"),
                1 => format!("{owner}-xps-{index:04}"),
                2 => format!("dev-{owner}-{index:04}"),
                _ => format!("build-{index:04}"),
            };
            let arch = if rng.gen_bool(0.1) {
                "aarch64"
            } else {
                "x86_64"
            };
            (hostname, arch, hex(rng, 16))
        }
        OsFamily::Macos => {
            let model = if rng.gen_bool(0.6) { "Pro" } else { "Air" };
            let hostname = format!("{owner}s-MacBook-{model}-{index}");
            // Apple silicon, but for a tail of older Intel machines.
            let arch = if rng.gen_bool(0.85) {
                "aarch64"
            } else {
                "x86_64"
            };
            (hostname, arch, uuid(rng).to_uppercase())
        }
        OsFamily::Windows => {
            let prefix = if rng.gen_bool(0.7) {
                "LAPTOP"
            } else {
                "DESKTOP"
            };
            let hostname = format!("{prefix}-{}{index:03X}", hex(rng, 2).to_uppercase());
            (hostname, "x86_64", uuid(rng))
        }
    };
    Host {
        hostname,
        os: OsInfo {
            family: release.family,
            id: release.id.to_owned(),
            name: release.name.to_owned(),
            version: release.version.map(str::to_owned),
            build: release.build.map(str::to_owned),
        },
        kernel: Some(kernel),
        arch: arch.to_owned(),
        hardware_id: Some(hardware_id),
    }
}

/// A random UUID, lowercase, hyphenated.
fn uuid(rng: &mut impl Rng) -> String {
    let hex = hex(rng, 16);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
