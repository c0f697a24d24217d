//! The host and os-updates probes, driven through FakeSystem with real captured
//! outputs (agent/tests/fixtures/{host,os-updates}/<os>/), plus one live run on
//! this Linux machine and a few judgements by core.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use shipshape::probes::{host, os_updates};
use shipshape::system::fake::{FakeSystem, fixture_body};
use shipshape::system::{CommandError, CommandOutput, FileInfo, RealSystem, System};
use shipshape_core::facts::{
    AutomaticUpdates, Facts, Observed, OsFamily, OsUpdates, PendingUpdates,
};
use shipshape_core::{FailingSince, Policy, Status, evaluate};

/// Every fixture of these two families, each asserted by a test below.
const FIXTURES: &[&str] = &[
    "host/linux/os-release-arch.txt",
    "host/linux/os-release-debian-12.txt",
    "host/linux/os-release-fedora-40-workstation.txt",
    "host/linux/os-release-opensuse-leap-15.6.txt",
    "host/linux/os-release-opensuse-tumbleweed-20240823.txt",
    "host/linux/os-release-ubuntu-24.04.txt",
    "host/macos/sw_vers-macos13.txt",
    "host/macos/sw_vers-macosx-10.13-no-patch-version.txt",
    "host/macos/sw_vers-macosx-10.15.5.txt",
    "host/windows/reg-query-currentversion-win10-22h2.txt",
    "host/windows/reg-query-currentversion-win11-23h2-says-win10.txt",
    "host/windows/systeminfo-win10-enterprise-20h2.txt",
    "host/windows/systeminfo-win2012r2-crlf.txt",
    "host/windows/systeminfo-win7-sp1-crlf.txt",
    "host/windows/systeminfo-winserver2022.txt",
    "os-updates/linux/apt-conf-20auto-upgrades.txt",
    "os-updates/linux/apt-get-just-print-upgrade-kept-back-jammy.txt",
    "os-updates/linux/apt-get-s-upgrade-debian12.txt",
    "os-updates/linux/apt-get-upgrade-kept-back-raspbian.txt",
    "os-updates/linux/apt-preferences-d-nodejs.txt",
    "os-updates/linux/dpkg-status-debian12-excerpt.txt",
    "os-updates/linux/inrelease-bookworm-excerpt.txt",
    "os-updates/linux/inrelease-bookworm-security-excerpt.txt",
    "os-updates/linux/inrelease-bookworm-updates-excerpt.txt",
    "os-updates/linux/inrelease-ubuntu-jammy-backports.txt",
    "os-updates/linux/inrelease-ubuntu-jammy-security.txt",
    "os-updates/linux/packages-bookworm-main-excerpt.txt",
    "os-updates/linux/packages-bookworm-security-excerpt.lz4",
    "os-updates/linux/packages-bookworm-security-excerpt.txt",
    "os-updates/linux/packages-bookworm-updates-excerpt.txt",
    "os-updates/linux/dnf-automatic-conf-default.txt",
    "os-updates/linux/dnf-check-update-el7.txt",
    "os-updates/linux/dnf-list-sec-all-fedora27.txt",
    "os-updates/linux/dnf5-updateinfo-summary-fedora41-b.txt",
    "os-updates/linux/dnf5-updateinfo-summary-fedora41.txt",
    "os-updates/linux/pacman-Qu-arch.txt",
    "os-updates/linux/yum-updateinfo-list-security-all-rhel7.txt",
    "os-updates/linux/zypper-lp-no-updates-leap42.2.txt",
    "os-updates/linux/zypper-lp-sles12sp2-security-needed.txt",
    "os-updates/linux/zypper-lu-sles15-one-update.txt",
    "os-updates/macos/plutil-softwareupdate-plist-sonoma-partial.txt",
    "os-updates/macos/softwareupdate-list-beta-update.txt",
    "os-updates/macos/softwareupdate-list-no-updates.txt",
    "os-updates/macos/softwareupdate-list-noscan-multiple-updates.txt",
    "os-updates/macos/softwareupdate-list-noscan-no-updates.txt",
    "os-updates/macos/softwareupdate-list-scan-error.txt",
    "os-updates/macos/softwareupdate-list-update-available.txt",
    "os-updates/macos/softwareupdate-list-ventura-minor-and-sonoma-major.txt",
    "os-updates/windows/get-hotfix-en-us-one-update-2025.txt",
    "os-updates/windows/get-hotfix-msdocs-24-hour-time.txt",
    "os-updates/windows/reg-query-wu-au-policy-auoptions3.txt",
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The body of a listed fixture.
fn fixture(name: &str) -> String {
    assert!(FIXTURES.contains(&name), "{name} is not in FIXTURES");
    let text = std::fs::read_to_string(fixtures_dir().join(name))
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    fixture_body(&text).to_owned()
}

/// A listed binary fixture, verbatim; its header lives in the `.txt` of the same stem.
fn fixture_bytes(name: &str) -> Vec<u8> {
    assert!(FIXTURES.contains(&name), "{name} is not in FIXTURES");
    std::fs::read(fixtures_dir().join(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

#[test]
fn every_fixture_is_listed_and_every_listed_fixture_exists() {
    let mut found = BTreeSet::new();
    for family in ["host", "os-updates"] {
        for os in std::fs::read_dir(fixtures_dir().join(family)).expect("fixture dir") {
            for file in std::fs::read_dir(os.expect("entry").path()).expect("os dir") {
                let path = file.expect("entry").path();
                let relative = path
                    .strip_prefix(fixtures_dir())
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned();
                found.insert(relative);
            }
        }
    }
    let listed: BTreeSet<String> = FIXTURES.iter().map(|name| (*name).to_owned()).collect();
    assert_eq!(found, listed);
    for name in FIXTURES {
        if let Some(stem) = name.strip_suffix(".lz4") {
            let header = format!("{stem}.txt");
            assert!(
                FIXTURES.contains(&header.as_str()),
                "{name}: a binary fixture needs {header} for its header"
            );
            continue;
        }
        let text = std::fs::read_to_string(fixtures_dir().join(name)).expect("readable");
        for field in ["# command:", "# os:", "# source:", "# expect:"] {
            assert!(text.contains(field), "{name} has no {field} line");
        }
    }
}

fn pending_of(updates: &Observed<OsUpdates>) -> &PendingUpdates {
    match updates.value().map(|updates| &updates.pending) {
        Some(Observed::Observed(pending)) => pending,
        other => panic!("pending updates not observed: {other:?}"),
    }
}

fn pending_unknown(updates: &Observed<OsUpdates>) -> String {
    let reason = updates
        .value()
        .and_then(|updates| updates.pending.unknown_reason());
    reason
        .unwrap_or_else(|| panic!("pending updates observed: {updates:?}"))
        .to_owned()
}

fn automatic_in(updates: &Observed<OsUpdates>) -> &AutomaticUpdates {
    match updates.value().map(|updates| &updates.automatic) {
        Some(Observed::Observed(automatic)) => automatic,
        other => panic!("automatic updates not observed: {other:?}"),
    }
}

// ---- host ----

/// (fixture, id, name, version, build)
type OsReleaseCase = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn linux_host_from_each_os_release() {
    let cases: &[OsReleaseCase] = &[
        (
            "os-release-arch",
            "arch",
            "Arch Linux",
            None,
            Some("rolling"),
        ),
        (
            "os-release-debian-12",
            "debian",
            "Debian GNU/Linux 12 (bookworm)",
            Some("12"),
            None,
        ),
        (
            "os-release-fedora-40-workstation",
            "fedora",
            "Fedora Linux 40 (Workstation Edition)",
            Some("40"),
            None,
        ),
        (
            "os-release-opensuse-leap-15.6",
            "opensuse-leap",
            "openSUSE Leap 15.6",
            Some("15.6"),
            None,
        ),
        (
            "os-release-opensuse-tumbleweed-20240823",
            "opensuse-tumbleweed",
            "openSUSE Tumbleweed",
            Some("20240823"),
            None,
        ),
        (
            "os-release-ubuntu-24.04",
            "ubuntu",
            "Ubuntu 24.04 LTS",
            Some("24.04"),
            None,
        ),
    ];
    for (name, id, pretty, version, build) in cases {
        let system = FakeSystem::new(OsFamily::Linux)
            .file(
                "/etc/os-release",
                fixture(&format!("host/linux/{name}.txt")),
            )
            .file("/proc/sys/kernel/hostname", "laptop-7\n")
            .file("/proc/sys/kernel/osrelease", "6.1.0-27-amd64\n")
            .file("/etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n");
        let host = host::probe(&system);
        assert_eq!(host.os.family, OsFamily::Linux, "{name}");
        assert_eq!(host.os.id, *id, "{name}");
        assert_eq!(host.os.name, *pretty, "{name}");
        assert_eq!(host.os.version.as_deref(), *version, "{name}");
        assert_eq!(host.os.build.as_deref(), *build, "{name}");
        assert_eq!(host.hostname, "laptop-7");
        assert_eq!(host.kernel.as_deref(), Some("6.1.0-27-amd64"));
        assert_eq!(
            host.hardware_id.as_deref(),
            Some("3d1219c7c4c5404aaa1f6d2a48adfda4")
        );
    }
}

#[test]
fn linux_host_falls_back_and_never_fails() {
    let system = FakeSystem::new(OsFamily::Linux)
        .file(
            "/usr/lib/os-release",
            fixture("host/linux/os-release-ubuntu-24.04.txt"),
        )
        .file("/etc/hostname", "# set by the installer\nworkstation\n")
        .file("/etc/machine-id", "uninitialized\n");
    let host = host::probe(&system);
    assert_eq!(
        (host.os.id.as_str(), host.hostname.as_str()),
        ("ubuntu", "workstation")
    );
    assert_eq!(
        host.hardware_id, None,
        "a first-boot placeholder is not an id"
    );

    let empty = host::probe(&FakeSystem::new(OsFamily::Linux));
    assert_eq!(
        (
            empty.hostname.as_str(),
            empty.os.id.as_str(),
            empty.os.version
        ),
        ("", "linux", None)
    );
    assert_eq!(empty.kernel, None);
}

#[test]
fn macos_host_from_each_sw_vers() {
    let cases = [
        ("sw_vers-macos13", "macOS", "13.4.1", "22F82"),
        (
            "sw_vers-macosx-10.13-no-patch-version",
            "Mac OS X",
            "10.13",
            "17A405",
        ),
        ("sw_vers-macosx-10.15.5", "Mac OS X", "10.15.5", "19F101"),
    ];
    for (name, product, version, build) in cases {
        let system = FakeSystem::new(OsFamily::Macos)
            .command(
                "/usr/bin/sw_vers",
                fixture(&format!("host/macos/{name}.txt")),
            )
            .command("/usr/sbin/scutil --get LocalHostName", "Anns-MacBook-Air\n")
            .command("/usr/bin/uname -r", "22.5.0\n");
        let host = host::probe(&system);
        assert_eq!(host.os.id, "macos", "{name}");
        assert_eq!(host.os.name, product, "{name}");
        assert_eq!(host.os.version.as_deref(), Some(version), "{name}");
        assert_eq!(host.os.build.as_deref(), Some(build), "{name}");
        assert_eq!(
            host.hostname, "Anns-MacBook-Air",
            "/bin/hostname is missing, scutil answers"
        );
        assert_eq!(host.kernel.as_deref(), Some("22.5.0"));
    }
    let broken = host::probe(&FakeSystem::new(OsFamily::Macos).command_hangs("/usr/bin/sw_vers"));
    assert_eq!((broken.os.id.as_str(), broken.os.version), ("macos", None));
}

const REG_CURRENT_VERSION: &str =
    r"C:\Windows\System32\reg.exe query HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
const SYSTEMINFO: &str = r"C:\Windows\System32\systeminfo.exe";

#[test]
fn windows_host_from_the_registry_names_windows_11_by_its_build() {
    let cases = [
        (
            "reg-query-currentversion-win10-22h2",
            "Windows 10 Enterprise",
            "10.0.19045",
            "19045",
        ),
        (
            "reg-query-currentversion-win11-23h2-says-win10",
            "Windows 11 Pro",
            "10.0.22631",
            "22631",
        ),
    ];
    for (name, product, version, build) in cases {
        let system = FakeSystem::new(OsFamily::Windows)
            .command(
                REG_CURRENT_VERSION,
                fixture(&format!("host/windows/{name}.txt")),
            )
            .env_var("COMPUTERNAME", "DESKTOP-42");
        let host = host::probe(&system);
        assert_eq!(host.os.id, "windows");
        assert_eq!(host.os.name, product, "{name}");
        assert_eq!(host.os.version.as_deref(), Some(version), "{name}");
        assert_eq!(host.os.build.as_deref(), Some(build), "{name}");
        assert_eq!(host.hostname, "DESKTOP-42");
        assert!(
            !system.ran().iter().any(|line| line == SYSTEMINFO),
            "systeminfo is slow: only a fallback"
        );
    }
}

#[test]
fn windows_host_falls_back_to_systeminfo() {
    let cases = [
        (
            "systeminfo-win10-enterprise-20h2",
            "DESKTOP-WIN01",
            "Windows 10 Enterprise",
            "10.0.19042",
        ),
        (
            "systeminfo-win2012r2-crlf",
            "WIN-1A1A1AA11AA",
            "Windows Server 2012 R2 Standard",
            "6.3.9600",
        ),
        (
            "systeminfo-win7-sp1-crlf",
            "TEST",
            "Windows 7 Professional",
            "6.1.7601",
        ),
        (
            "systeminfo-winserver2022",
            "WIN-RIBN7SM07BK",
            "Windows Server 2022 Standard",
            "10.0.20348",
        ),
    ];
    for (name, hostname, product, version) in cases {
        let system = FakeSystem::new(OsFamily::Windows)
            .command(SYSTEMINFO, fixture(&format!("host/windows/{name}.txt")));
        let host = host::probe(&system);
        assert_eq!(host.hostname, hostname, "{name}");
        assert_eq!(host.os.name, product, "{name}");
        assert_eq!(host.os.version.as_deref(), Some(version), "{name}");
    }
    let parsed = host::parse_systeminfo(&fixture(
        "host/windows/systeminfo-win10-enterprise-20h2.txt",
    ))
    .expect("parses");
    assert_eq!(parsed.hotfixes.len(), 6);
    assert_eq!(
        parsed.hotfixes.last().map(String::as_str),
        Some("KB4594440")
    );

    let nothing = host::probe(&FakeSystem::new(OsFamily::Windows));
    assert_eq!(
        (
            nothing.hostname.as_str(),
            nothing.os.name.as_str(),
            nothing.os.version
        ),
        ("", "Windows", None)
    );
}

// ---- os-updates: Linux ----

const APT: &str = "/usr/bin/apt-get -s -o Debug::NoLocking=1 upgrade";

#[test]
fn apt_counts_security_updates_and_kept_back_packages() {
    // (fixture, total, security, held back, one security package)
    let cases = [
        (
            "apt-get-just-print-upgrade-kept-back-jammy",
            11,
            11,
            5,
            Some("linux-image-generic"),
        ),
        ("apt-get-upgrade-kept-back-raspbian", 0, 0, 3, None),
        ("apt-get-s-upgrade-debian12", 119, 69, 0, Some("openssl")),
    ];
    for (name, total, security, held_back, example) in cases {
        let system = FakeSystem::new(OsFamily::Linux)
            .command(APT, fixture(&format!("os-updates/linux/{name}.txt")));
        let updates = os_updates::probe(&system);
        let pending = pending_of(&updates);
        assert_eq!(pending.manager, "apt");
        assert_eq!(
            (pending.total, pending.security, pending.held_back),
            (total, security, held_back),
            "{name}"
        );
        assert_eq!(pending.security_packages.len(), security as usize);
        if let Some(example) = example {
            assert!(
                pending
                    .security_packages
                    .iter()
                    .any(|package| package == example),
                "{name}: {example}"
            );
        }
    }
    let debian = os_updates::parse_apt_get_upgrade(&fixture(
        "os-updates/linux/apt-get-s-upgrade-debian12.txt",
    ))
    .expect("parses");
    let bash = debian
        .packages
        .iter()
        .find(|package| package.name == "bash")
        .expect("bash is pending");
    assert!(
        !bash.security,
        "a point-release update is not a security update"
    );
}

const LISTS: &str = "/var/lib/apt/lists";
const MAIN: &str = "deb.debian.org_debian_dists_bookworm";
const SECURITY: &str = "deb.debian.org_debian-security_dists_bookworm-security";
const UPDATES: &str = "deb.debian.org_debian_dists_bookworm-updates";
const STATUS: &str = "/var/lib/dpkg/status";

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).expect("in memory");
    encoder.finish().expect("in memory")
}

/// This machine's apt metadata in miniature: an excerpt of dpkg's status and
/// of the three bookworm repositories, each list in a form apt writes
/// (plain, .lz4 as here, .gz with Acquire::GzipIndexes), and NodeSource's pin.
fn apt_metadata(status: &str) -> FakeSystem {
    let linux = |name: &str| fixture(&format!("os-updates/linux/{name}.txt"));
    FakeSystem::new(OsFamily::Linux)
        .file("/usr/bin/apt-get", "")
        .file(STATUS, status)
        .file(
            "/etc/apt/preferences.d/nodejs",
            linux("apt-preferences-d-nodejs"),
        )
        .file(
            format!("{LISTS}/{MAIN}_InRelease"),
            linux("inrelease-bookworm-excerpt"),
        )
        .file(
            format!("{LISTS}/{MAIN}_main_binary-amd64_Packages"),
            linux("packages-bookworm-main-excerpt"),
        )
        .file(
            format!("{LISTS}/{SECURITY}_InRelease"),
            linux("inrelease-bookworm-security-excerpt"),
        )
        .file(
            format!("{LISTS}/{SECURITY}_main_binary-amd64_Packages.lz4"),
            fixture_bytes("os-updates/linux/packages-bookworm-security-excerpt.lz4"),
        )
        .file(
            format!("{LISTS}/{UPDATES}_InRelease"),
            linux("inrelease-bookworm-updates-excerpt"),
        )
        .file(
            format!("{LISTS}/{UPDATES}_main_binary-amd64_Packages.gz"),
            gzip(&linux("packages-bookworm-updates-excerpt")),
        )
}

fn dpkg_status() -> String {
    fixture("os-updates/linux/dpkg-status-debian12-excerpt.txt")
}

/// The status excerpt with one package's stanza changed (or, for `None`, removed) by `edit`.
fn status_with(package: &str, edit: impl Fn(&str) -> Option<String>) -> String {
    let header = format!("Package: {package}\n");
    let status = dpkg_status();
    assert!(status.contains(&header), "the excerpt has {package}");
    status
        .split("\n\n")
        .filter_map(|stanza| {
            if stanza.starts_with(&header) {
                edit(stanza)
            } else {
                Some(stanza.to_owned())
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn ran_apt_get(system: &FakeSystem) -> bool {
    system
        .ran()
        .iter()
        .any(|line| line.starts_with("/usr/bin/apt-get"))
}

#[test]
fn apt_metadata_is_read_natively_without_running_apt_get() {
    let system = apt_metadata(&dpkg_status());
    let updates = os_updates::probe(&system);
    let pending = pending_of(&updates);
    assert!(!ran_apt_get(&system), "{:?}", system.ran());
    assert_eq!(pending.manager, "apt");
    // base-files and bash from bookworm; the other four from bookworm-security
    // (openssl 3.0.22 there beats 3.0.20 in bookworm and 3.0.17 in -updates);
    // libc6's older security version is no upgrade.
    assert_eq!(
        (pending.total, pending.security, pending.held_back),
        (6, 4, 0)
    );
    assert_eq!(
        pending.security_packages,
        ["ca-certificates", "libssl3", "openssl", "tzdata"]
    );
    // apt-get said the same of these packages on this machine the same day.
    let apt_get = os_updates::parse_apt_get_upgrade(&fixture(
        "os-updates/linux/apt-get-s-upgrade-debian12.txt",
    ))
    .expect("parses");
    for (name, security) in [
        ("base-files", false),
        ("bash", false),
        ("ca-certificates", true),
        ("libssl3", true),
        ("openssl", true),
        ("tzdata", true),
    ] {
        let package = apt_get
            .packages
            .iter()
            .find(|package| package.name == name)
            .unwrap_or_else(|| panic!("apt-get upgrades {name}"));
        assert_eq!(package.security, security, "{name}");
    }

    // The .lz4 list is its text excerpt, compressed by liblz4.
    let plain = apt_metadata(&dpkg_status()).file(
        format!("{LISTS}/{SECURITY}_main_binary-amd64_Packages.lz4"),
        Vec::new(),
    );
    let plain = plain.file(
        format!("{LISTS}/{SECURITY}_main_binary-amd64_Packages"),
        fixture("os-updates/linux/packages-bookworm-security-excerpt.txt"),
    );
    assert_eq!(
        pending_of(&os_updates::probe(&plain)).security_packages,
        pending.security_packages
    );
}

#[test]
fn apt_keeps_back_upgrades_that_need_a_new_package_and_held_ones() {
    // base-files 12.4+deb12u15 Pre-Depends on awk, which only mawk provides.
    let without_mawk = apt_metadata(&status_with("mawk", |_| None));
    let pending = pending_of(&os_updates::probe(&without_mawk)).clone();
    assert_eq!(
        (pending.total, pending.security, pending.held_back),
        (5, 4, 1)
    );

    let held = status_with("bash", |stanza| {
        Some(stanza.replace("Status: install ok installed", "Status: hold ok installed"))
    });
    assert!(held.contains("Status: hold ok installed"));
    let pending = pending_of(&os_updates::probe(&apt_metadata(&held))).clone();
    assert_eq!(
        (pending.total, pending.held_back),
        (5, 1),
        "apt-mark hold: never upgraded"
    );

    let removed = status_with("openssl", |stanza| {
        Some(stanza.replace(
            "Status: install ok installed",
            "Status: deinstall ok config-files",
        ))
    });
    let pending = pending_of(&os_updates::probe(&apt_metadata(&removed))).clone();
    assert!(
        !pending
            .security_packages
            .iter()
            .any(|name| name == "openssl"),
        "only its configuration is left"
    );
}

#[test]
fn apt_get_answers_what_the_native_reader_cannot_read() {
    let debian12 = fixture("os-updates/linux/apt-get-s-upgrade-debian12.txt");
    let xz = apt_metadata(&dpkg_status())
        .file(
            format!("{LISTS}/{UPDATES}_main_binary-amd64_Packages.xz"),
            Vec::new(),
        )
        .command(APT, debian12.clone());
    assert_eq!(pending_of(&os_updates::probe(&xz)).total, 119);
    assert!(ran_apt_get(&xz), "xz lists are left to apt-get");

    let pinned = apt_metadata(&dpkg_status())
        .file(
            "/etc/apt/preferences.d/backports",
            "Package: *\nPin: release a=bookworm-backports\nPin-Priority: 500\n",
        )
        .command(APT, debian12.clone());
    assert_eq!(pending_of(&os_updates::probe(&pinned)).total, 119);
    assert!(ran_apt_get(&pinned), "pinning is left to apt-get");

    let pinned_to_a_present_origin = apt_metadata(&dpkg_status())
        .file(
            "/etc/apt/preferences.d/debian",
            "Package: *\nPin: origin deb.debian.org\nPin-Priority: 900\n",
        )
        .command(APT, debian12.clone());
    assert_eq!(
        pending_of(&os_updates::probe(&pinned_to_a_present_origin)).total,
        119
    );

    let default_release = apt_metadata(&dpkg_status())
        .file(
            "/etc/apt/apt.conf.d/99default-release",
            "APT::Default-Release \"bookworm\";\n",
        )
        .command(APT, debian12);
    assert_eq!(pending_of(&os_updates::probe(&default_release)).total, 119);

    let broken = apt_metadata(&dpkg_status())
        .file(
            format!("{LISTS}/{SECURITY}_main_binary-amd64_Packages.lz4"),
            b"not lz4".to_vec(),
        )
        .command_hangs(APT);
    assert!(
        pending_unknown(&os_updates::probe(&broken)).contains("did not answer"),
        "a corrupt list is never read as \"no updates\""
    );
}

#[test]
fn apt_metadata_age_comes_from_the_newest_release_file() {
    let older: Timestamp = "2026-10-01T00:00:00Z".parse().expect("timestamp");
    let newer: Timestamp = "2026-11-24T00:44:00Z".parse().expect("timestamp");
    let lists = "/var/lib/apt/lists";
    let system = FakeSystem::new(OsFamily::Linux)
        .command(
            APT,
            fixture("os-updates/linux/apt-get-s-upgrade-debian12.txt"),
        )
        .file(
            format!("{lists}/deb.debian.org_debian_dists_bookworm-updates_InRelease"),
            "",
        )
        .modified(
            format!("{lists}/deb.debian.org_debian_dists_bookworm-updates_InRelease"),
            older,
        )
        .file(
            format!("{lists}/deb.debian.org_debian-security_dists_bookworm-security_InRelease"),
            "",
        )
        .modified(
            format!("{lists}/deb.debian.org_debian-security_dists_bookworm-security_InRelease"),
            newer,
        )
        .file(
            format!("{lists}/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"),
            "",
        )
        .modified(
            format!("{lists}/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"),
            "2026-11-25T00:00:00Z".parse().expect("timestamp"),
        );
    assert_eq!(
        pending_of(&os_updates::probe(&system)).metadata_updated,
        Some(newer)
    );
}

#[test]
fn apt_failures_and_hangs_are_unknown_never_zero() {
    let hung = FakeSystem::new(OsFamily::Linux).command_hangs(APT);
    assert!(pending_unknown(&os_updates::probe(&hung)).contains("did not answer"));

    let failing = FakeSystem::new(OsFamily::Linux).command_output(
        APT,
        CommandOutput {
            code: Some(100),
            stdout: String::new(),
            stderr: "E: The package lists or status file could not be parsed or opened.\n"
                .to_owned(),
        },
    );
    let reason = pending_unknown(&os_updates::probe(&failing));
    assert!(
        reason.contains("exit code 100") && reason.contains("could not be parsed"),
        "{reason}"
    );

    let none = os_updates::probe(&FakeSystem::new(OsFamily::Linux));
    assert!(pending_unknown(&none).contains("no supported package manager"));
}

#[test]
fn unattended_upgrades_needs_the_package_and_the_periodic_setting() {
    let auto = fixture("os-updates/linux/apt-conf-20auto-upgrades.txt");
    let base = || {
        FakeSystem::new(OsFamily::Linux).command(
            APT,
            fixture("os-updates/linux/apt-get-upgrade-kept-back-raspbian.txt"),
        )
    };

    let on = base()
        .file("/usr/bin/unattended-upgrade", "")
        .file("/etc/apt/apt.conf.d/20auto-upgrades", auto.clone());
    let updates = os_updates::probe(&on);
    let automatic = automatic_in(&updates);
    assert!(automatic.enabled, "{automatic:?}");
    assert_eq!(automatic.mechanism, "unattended-upgrades");
    assert!(
        automatic
            .detail
            .as_deref()
            .is_some_and(|detail| detail.contains("20auto-upgrades"))
    );

    let overridden = base()
        .file("/usr/bin/unattended-upgrade", "")
        .file("/etc/apt/apt.conf.d/20auto-upgrades", auto.clone())
        .file(
            "/etc/apt/apt.conf.d/99local",
            "APT::Periodic { Unattended-Upgrade \"0\"; };\n",
        )
        .file(
            "/etc/apt/apt.conf.d/99old.dpkg-old",
            "APT::Periodic::Unattended-Upgrade \"1\";\n",
        );
    assert!(
        !automatic_of(&overridden).enabled,
        "a later file turns it off; .dpkg-old is not read"
    );

    let not_installed = base().file("/etc/apt/apt.conf.d/20auto-upgrades", auto);
    let off = automatic_of(&not_installed);
    assert!(!off.enabled);
    assert_eq!(
        off.detail.as_deref(),
        Some("unattended-upgrades is not installed")
    );
}

fn automatic_of(system: &FakeSystem) -> AutomaticUpdates {
    automatic_in(&os_updates::probe(system)).clone()
}

const DNF_CHECK: &str = "/usr/bin/dnf -C --quiet check-update";
const DNF_SECURITY: &str = "/usr/bin/dnf -C --quiet updateinfo list --security";

fn exit(code: i32, stdout: String) -> CommandOutput {
    CommandOutput {
        code: Some(code),
        stdout,
        stderr: String::new(),
    }
}

#[test]
fn dnf_counts_updates_and_security_advisories_from_the_cache() {
    let system = FakeSystem::new(OsFamily::Linux)
        .command_output(
            DNF_CHECK,
            exit(100, fixture("os-updates/linux/dnf-check-update-el7.txt")),
        )
        .command(
            DNF_SECURITY,
            fixture("os-updates/linux/dnf-list-sec-all-fedora27.txt"),
        );
    let updates = os_updates::probe(&system);
    let pending = pending_of(&updates);
    assert_eq!(
        (pending.manager.as_str(), pending.total, pending.security),
        ("dnf", 15, 1)
    );
    assert_eq!(pending.security_packages, ["TurboGears"]);

    let yum = FakeSystem::new(OsFamily::Linux)
        .command("/usr/bin/yum -C --quiet check-update", "")
        .command(
            "/usr/bin/yum -C --quiet updateinfo list security",
            fixture("os-updates/linux/yum-updateinfo-list-security-all-rhel7.txt"),
        );
    let updates = os_updates::probe(&yum);
    let pending = pending_of(&updates);
    assert_eq!((pending.manager.as_str(), pending.total), ("yum", 0));
    assert_eq!(
        pending.security_packages,
        ["389-ds-base", "389-ds-base-libs"],
        "one name per package, not per advisory"
    );

    let failing = FakeSystem::new(OsFamily::Linux).command_output(
        DNF_CHECK,
        CommandOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: "Error: Cache-only enabled but no cache for 'fedora'\n".to_owned(),
        },
    );
    assert!(pending_unknown(&os_updates::probe(&failing)).contains("no cache for 'fedora'"));
}

#[test]
fn dnf5_counts_security_advisories_from_the_summary() {
    for (name, advisories) in [
        ("dnf5-updateinfo-summary-fedora41", 28),
        ("dnf5-updateinfo-summary-fedora41-b", 16),
    ] {
        let system = FakeSystem::new(OsFamily::Linux)
            .command("/usr/bin/dnf5 -C --quiet check-update", "")
            .command(
                "/usr/bin/dnf5 -C --quiet updateinfo summary",
                fixture(&format!("os-updates/linux/{name}.txt")),
            );
        let updates = os_updates::probe(&system);
        assert_eq!(pending_of(&updates).security, advisories, "{name}");
    }
}

#[test]
fn dnf_automatic_installs_only_with_the_install_timer_or_apply_updates() {
    let conf = fixture("os-updates/linux/dnf-automatic-conf-default.txt");
    assert_eq!(
        os_updates::parse_dnf_automatic_conf(&conf),
        os_updates::DnfAutomaticConf {
            apply_updates: Some(false),
            upgrade_type: Some("default".to_owned())
        }
    );
    let with_timer = |timer: &str| {
        FakeSystem::new(OsFamily::Linux)
            .command(DNF_CHECK, "")
            .command(DNF_SECURITY, "")
            .file("/etc/dnf/automatic.conf", conf.clone())
            .file(
                format!("/etc/systemd/system/timers.target.wants/{timer}"),
                "",
            )
    };
    assert!(
        !automatic_of(&with_timer("dnf-automatic.timer")).enabled,
        "apply_updates = no only downloads"
    );
    assert!(automatic_of(&with_timer("dnf-automatic-install.timer")).enabled);
    let none = FakeSystem::new(OsFamily::Linux)
        .command(DNF_CHECK, "")
        .command(DNF_SECURITY, "");
    assert_eq!(
        automatic_of(&none).detail.as_deref(),
        Some("no dnf-automatic timer is enabled")
    );
}

const ZYPPER_LP: &str = "/usr/bin/zypper --no-refresh --non-interactive list-patches";
const ZYPPER_LU: &str = "/usr/bin/zypper --no-refresh --non-interactive list-updates";

#[test]
fn zypper_counts_needed_security_patches() {
    let sles12 = FakeSystem::new(OsFamily::Linux).command(
        ZYPPER_LP,
        fixture("os-updates/linux/zypper-lp-sles12sp2-security-needed.txt"),
    );
    let updates = os_updates::probe(&sles12);
    let pending = pending_of(&updates);
    assert_eq!(
        (pending.manager.as_str(), pending.total, pending.security),
        ("zypper", 2, 1)
    );
    assert_eq!(
        pending.security_packages,
        ["SUSE-SLE-SERVER-12-SP2-2017-1252"]
    );
    assert!(
        updates
            .value()
            .is_some_and(|updates| updates.automatic.unknown_reason().is_some())
    );

    let leap = FakeSystem::new(OsFamily::Linux)
        .command(
            ZYPPER_LP,
            fixture("os-updates/linux/zypper-lp-no-updates-leap42.2.txt"),
        )
        .command(
            ZYPPER_LU,
            fixture("os-updates/linux/zypper-lu-sles15-one-update.txt"),
        );
    let updates = os_updates::probe(&leap);
    assert_eq!(
        (pending_of(&updates).total, pending_of(&updates).security),
        (1, 0),
        "one package update, no patch"
    );
    assert_eq!(
        os_updates::parse_zypper_list_updates(&fixture(
            "os-updates/linux/zypper-lu-sles15-one-update.txt"
        ))
        .expect("parses"),
        ["iproute2"]
    );
}

#[test]
fn pacman_lists_updates_but_cannot_tell_security_ones() {
    let system = FakeSystem::new(OsFamily::Linux).command(
        "/usr/bin/pacman -Qu",
        fixture("os-updates/linux/pacman-Qu-arch.txt"),
    );
    let updates = os_updates::probe(&system);
    let pending = pending_of(&updates);
    assert_eq!(
        (pending.manager.as_str(), pending.total, pending.security),
        ("pacman", 20, 0)
    );
    let nothing = FakeSystem::new(OsFamily::Linux)
        .command_output("/usr/bin/pacman -Qu", exit(1, String::new()));
    assert_eq!(
        pending_of(&os_updates::probe(&nothing)).total,
        0,
        "exit 1 without output: up to date"
    );
}

// ---- os-updates: macOS ----

const SOFTWAREUPDATE: &str = "/usr/sbin/softwareupdate --list --no-scan";
const PLUTIL: &str = "/usr/bin/plutil -p /Library/Preferences/com.apple.SoftwareUpdate.plist";

fn mac(list: &str) -> FakeSystem {
    FakeSystem::new(OsFamily::Macos)
        .command(
            "/usr/bin/sw_vers",
            fixture("host/macos/sw_vers-macos13.txt"),
        )
        .command(
            SOFTWAREUPDATE,
            fixture(&format!("os-updates/macos/{list}.txt")),
        )
}

#[test]
fn softwareupdate_counts_recommended_macos_updates_as_security() {
    // (fixture, total, security labels)
    let cases: &[(&str, u32, &[&str])] = &[
        (
            "softwareupdate-list-beta-update",
            1,
            &["macOS Ventura 13.3 Beta 3-22E5236f"],
        ),
        ("softwareupdate-list-no-updates", 0, &[]),
        (
            "softwareupdate-list-noscan-multiple-updates",
            2,
            &["macOS Ventura 13.4 Beta-22F5027f"],
        ),
        ("softwareupdate-list-noscan-no-updates", 0, &[]),
        (
            "softwareupdate-list-update-available",
            1,
            &["macOS Ventura 13.3.1-22E261"],
        ),
        // Sonoma 14.0 is a major upgrade from 13.4.1: the minimum version decides that, not pending.
        (
            "softwareupdate-list-ventura-minor-and-sonoma-major",
            2,
            &["macOS Ventura 13.6-22G120"],
        ),
    ];
    for (name, total, security) in cases {
        let updates = os_updates::probe(&mac(name));
        let pending = pending_of(&updates);
        assert_eq!(pending.manager, "softwareupdate");
        assert_eq!(pending.total, *total, "{name}");
        assert_eq!(pending.security_packages, *security, "{name}");
        assert_eq!(pending.security as usize, security.len());
    }
}

#[test]
fn a_failed_software_update_scan_is_unknown_not_up_to_date() {
    let reason = pending_unknown(&os_updates::probe(&mac("softwareupdate-list-scan-error")));
    assert!(
        reason.contains("scan failed") && reason.contains("network connection was lost"),
        "{reason}"
    );
    let hung = FakeSystem::new(OsFamily::Macos).command_hangs(SOFTWAREUPDATE);
    assert!(pending_unknown(&os_updates::probe(&hung)).contains("did not answer"));
}

#[test]
fn macos_automatic_updates_are_off_when_macos_updates_do_not_install() {
    let system = mac("softwareupdate-list-no-updates")
        .file("/Library/Preferences/com.apple.SoftwareUpdate.plist", "")
        .command(
            PLUTIL,
            fixture("os-updates/macos/plutil-softwareupdate-plist-sonoma-partial.txt"),
        );
    let updates = os_updates::probe(&system);
    let automatic = automatic_in(&updates);
    assert!(!automatic.enabled);
    assert!(
        automatic
            .detail
            .as_deref()
            .is_some_and(|detail| detail.contains("AutomaticallyInstallMacOSUpdates = 0"))
    );
    let scanned: Timestamp = "2024-07-02T16:27:14Z".parse().expect("timestamp");
    assert_eq!(
        pending_of(&updates).metadata_updated,
        Some(scanned),
        "the newest Last*SuccessfulDate"
    );

    let fresh = os_updates::probe(&mac("softwareupdate-list-no-updates"));
    assert!(
        automatic_in(&fresh).enabled,
        "no preferences file: macOS defaults, all on"
    );
}

// ---- os-updates: Windows ----

const REG_AU: &str =
    r"C:\Windows\System32\reg.exe query HKLM\SOFTWARE\Policies\Microsoft\Windows\WindowsUpdate\AU";

#[test]
fn windows_update_policy_decides_automatic_updates() {
    let system = FakeSystem::new(OsFamily::Windows).command(
        REG_AU,
        fixture("os-updates/windows/reg-query-wu-au-policy-auoptions3.txt"),
    );
    let updates = os_updates::probe(&system);
    let automatic = automatic_in(&updates);
    assert!(!automatic.enabled, "AUOptions 3 only downloads");
    assert_eq!(automatic.mechanism, "Windows Update (AUOptions=3)");
    assert!(
        !system.ran().iter().any(|line| line.starts_with(SYSTEMINFO)),
        "systeminfo takes seconds: os-updates does not run it"
    );
    assert!(pending_unknown(&updates).contains("Settings → Windows Update"));

    let no_policy = FakeSystem::new(OsFamily::Windows).command_output(
        REG_AU,
        CommandOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: "ERROR: The system was unable to find the specified registry key or value.\r\n"
                .to_owned(),
        },
    );
    let default = automatic_of(&no_policy);
    assert!(
        default.enabled
            && default
                .detail
                .as_deref()
                .is_some_and(|detail| detail.contains("default"))
    );
    let hung = FakeSystem::new(OsFamily::Windows).command_hangs(REG_AU);
    assert!(
        os_updates::probe(&hung)
            .value()
            .is_some_and(|updates| updates.automatic.unknown_reason().is_some())
    );
}

// ---- live, this machine ----

#[test]
fn live_debian_host_and_apt() {
    if !Path::new("/etc/debian_version").exists() {
        eprintln!("not a Debian machine: the live test needs one");
        return;
    }
    let system = RealSystem::default();
    let host = host::probe(&system);
    assert_eq!(host.os.id, "debian");
    assert_eq!(host.os.version.as_deref(), Some("12"));
    assert!(!host.hostname.is_empty() && host.kernel.is_some());
    let updates = os_updates::probe(&system);
    let pending = pending_of(&updates);
    assert_eq!(pending.manager, "apt");
    assert!(pending.security <= pending.total);
    assert!(
        pending.metadata_updated.is_some(),
        "the package lists have a date"
    );
    assert!(
        updates
            .value()
            .is_some_and(|updates| updates.automatic.value().is_some())
    );
}

/// The real machine, except that apt-get cannot run: whatever the apt probe
/// reports came from the native reader.
struct WithoutAptGet(RealSystem);

impl System for WithoutAptGet {
    fn os(&self) -> OsFamily {
        self.0.os()
    }

    fn run(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, CommandError> {
        if program.ends_with("apt-get") {
            return Err(CommandError::NotFound(program.to_owned()));
        }
        self.0.run(program, args)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.0.read(path)
    }

    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<PathBuf>> {
        self.0.read_dir(path)
    }

    fn symlink_metadata(&self, path: &Path) -> std::io::Result<FileInfo> {
        self.0.symlink_metadata(path)
    }

    fn is_privileged(&self) -> bool {
        self.0.is_privileged()
    }

    fn env(&self, name: &str) -> Option<String> {
        self.0.env(name)
    }
}

#[test]
fn live_native_apt_reader_agrees_with_apt_get() {
    let apt_get = Path::new("/usr/bin/apt-get");
    if !apt_get.exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must run this test on a machine with apt-get"
        );
        eprintln!("no apt-get: the live apt test needs a Debian or Ubuntu machine");
        return;
    }
    let real = RealSystem::default();
    let output = real
        .run(apt_get, &["-s", "-o", "Debug::NoLocking=1", "upgrade"])
        .expect("apt-get runs");
    assert!(output.success(), "{}", output.stderr);
    let apt = os_updates::parse_apt_get_upgrade(&output.stdout).expect("parses");
    let mut security: Vec<String> = apt
        .packages
        .iter()
        .filter(|package| package.security)
        .map(|package| package.name.clone())
        .collect();
    security.sort();

    let updates = os_updates::probe(&WithoutAptGet(real));
    let pending = pending_of(&updates);
    let mut native_security = pending.security_packages.clone();
    native_security.sort();
    assert_eq!(
        (pending.total as usize, pending.held_back),
        (apt.packages.len(), apt.held_back),
        "total and kept back"
    );
    assert_eq!(native_security, security);
    assert_eq!(pending.security as usize, security.len());
}

// ---- judged by core ----

fn facts(os_updates: OsUpdates, id: &str, version: &str) -> Facts {
    let mut host = host::probe(&FakeSystem::new(OsFamily::Linux));
    host.os.id = id.to_owned();
    host.os.version = Some(version.to_owned());
    Facts {
        host,
        disk_encryption: Observed::unknown("not collected in this run"),
        os_updates: Observed::Observed(os_updates),
        firewall: Observed::unknown("not collected in this run"),
        ssh_keys: Observed::unknown("not collected in this run"),
        ssh_server: Observed::unknown("not collected in this run"),
    }
}

#[test]
fn core_judges_what_the_probe_saw() {
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().expect("timestamp");
    let policy = Policy::parse(
        "[checks.os-updates]\nseverity = \"high\"\nmax-pending-security = 0\nrequire-automatic = false\n\
         stale-metadata-after = \"14d\"\n[checks.os-updates.min-version]\ndebian = \"12\"\nubuntu = \"24.04\"\n",
        "test.toml",
        now.to_zoned(jiff::tz::TimeZone::UTC).date(),
    )
    .expect("valid policy");
    let judge = |updates: OsUpdates, id: &str, version: &str| {
        let findings = evaluate(
            &policy,
            &facts(updates, id, version),
            now,
            &FailingSince::new(),
        );
        assert_eq!(findings.len(), 1);
        findings.into_iter().next().expect("one finding")
    };
    let probe = |name: &str, refreshed: &str| {
        let lists = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease";
        let system = FakeSystem::new(OsFamily::Linux)
            .command(APT, fixture(&format!("os-updates/linux/{name}.txt")))
            .file(lists, "")
            .modified(lists, refreshed.parse().expect("timestamp"));
        os_updates::probe(&system)
            .value()
            .expect("observed")
            .clone()
    };

    let debian = judge(
        probe("apt-get-s-upgrade-debian12", "2026-11-24T00:44:00Z"),
        "debian",
        "12",
    );
    assert_eq!(debian.status, Status::Fail);
    assert!(
        debian.summary.contains("69 security updates pending"),
        "{}",
        debian.summary
    );

    let kept_back = judge(
        probe("apt-get-upgrade-kept-back-raspbian", "2026-11-20T00:00:00Z"),
        "debian",
        "12",
    );
    assert_eq!(
        kept_back.status,
        Status::Pass,
        "kept-back packages are not pending security updates"
    );

    let stale = judge(
        probe("apt-get-upgrade-kept-back-raspbian", "2026-10-01T00:00:00Z"),
        "debian",
        "12",
    );
    assert_eq!(
        stale.status,
        Status::Unknown,
        "lists older than 14 days under-report"
    );

    let old_ubuntu = judge(
        probe("apt-get-upgrade-kept-back-raspbian", "2026-11-20T00:00:00Z"),
        "ubuntu",
        "22.04",
    );
    assert_eq!(old_ubuntu.status, Status::Fail);
    assert!(
        old_ubuntu
            .summary
            .contains("22.04 is older than the minimum 24.04"),
        "{}",
        old_ubuntu.summary
    );

    let arch = FakeSystem::new(OsFamily::Linux).command(
        "/usr/bin/pacman -Qu",
        fixture("os-updates/linux/pacman-Qu-arch.txt"),
    );
    let rolling = judge(
        os_updates::probe(&arch).value().expect("observed").clone(),
        "arch",
        "",
    );
    assert_eq!(
        rolling.status,
        Status::Pass,
        "nothing marked security, and the evidence says why"
    );
    assert!(
        rolling
            .evidence
            .iter()
            .any(|line| line.contains("pacman does not mark security updates")),
        "{:?}",
        rolling.evidence
    );
}

// ---- os-updates: Windows, the last installed update ----

const GET_CULTURE: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe -NoProfile -NonInteractive -Command (Get-Culture).Name; (Get-Culture).DateTimeFormat.ShortDatePattern; (Get-Culture).DateTimeFormat.LongTimePattern";
const GET_HOTFIX: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe -NoProfile -NonInteractive -Command Get-HotFix | Format-Table -AutoSize | Out-String -Width 4096";
const EN_US: &str = "en-US\r\nM/d/yyyy\r\nh:mm:ss tt\r\n";
const EN_GB: &str = "en-GB\r\ndd/MM/yyyy\r\nHH:mm:ss\r\n";

fn windows_with(culture: &str, hotfixes: &str) -> FakeSystem {
    FakeSystem::new(OsFamily::Windows)
        .command(
            REG_AU,
            fixture("os-updates/windows/reg-query-wu-au-policy-auoptions3.txt"),
        )
        .command(GET_CULTURE, culture)
        .command(
            GET_HOTFIX,
            fixture(&format!("os-updates/windows/{hotfixes}.txt")),
        )
}

fn last_installed(updates: &Observed<OsUpdates>) -> Option<Timestamp> {
    updates.value().expect("observed").last_installed
}

#[test]
fn get_hotfix_in_en_us_gives_the_last_installed_update() {
    let system = windows_with(EN_US, "get-hotfix-en-us-one-update-2025");
    let updates = os_updates::probe(&system);
    let april_10: Timestamp = "2025-04-10T00:00:00Z".parse().expect("timestamp");
    assert_eq!(
        last_installed(&updates),
        Some(april_10),
        "4/10/2025 is April 10th in en-US"
    );
    assert!(pending_unknown(&updates).contains("Settings → Windows Update"));
    assert_eq!(
        os_updates::parse_date_culture(EN_US).map(|culture| culture.is_en_us_format()),
        Ok(true)
    );
}

#[test]
fn a_get_hotfix_date_not_in_the_en_us_format_is_unknown() {
    let table = fixture("os-updates/windows/get-hotfix-msdocs-24-hour-time.txt");
    let error = os_updates::parse_get_hotfix(&table).expect_err("24-hour time is not en-US");
    assert!(
        error
            .to_string()
            .contains("`5/16/2019 00:00:00` is not an en-US date"),
        "{error}"
    );
    let updates = os_updates::probe(&windows_with(EN_US, "get-hotfix-msdocs-24-hour-time"));
    assert_eq!(last_installed(&updates), None);
    let reason = pending_unknown(&updates);
    assert!(
        reason.contains("when the last update was installed is unknown too")
            && reason.contains("5/16/2019 00:00:00"),
        "{reason}"
    );
}

#[test]
fn a_non_us_locale_is_unknown_and_get_hotfix_is_not_read() {
    let system = windows_with(EN_GB, "get-hotfix-en-us-one-update-2025");
    let updates = os_updates::probe(&system);
    assert_eq!(
        last_installed(&updates),
        None,
        "4/10/2025 would be the 4th of October in en-GB: no guess"
    );
    let reason = pending_unknown(&updates);
    assert!(
        reason.contains("en-GB locale as `dd/MM/yyyy HH:mm:ss`"),
        "{reason}"
    );
    assert!(!system.ran().iter().any(|line| line == GET_HOTFIX));

    let silent = FakeSystem::new(OsFamily::Windows).command_hangs(GET_CULTURE);
    let updates = os_updates::probe(&silent);
    assert_eq!(last_installed(&updates), None);
    assert!(pending_unknown(&updates).contains("did not answer"));
}

#[test]
fn core_judges_windows_by_the_age_of_the_last_update() {
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().expect("timestamp");
    let policy = Policy::parse(
        "[checks.os-updates]\nseverity = \"high\"\nrequire-automatic = false\n",
        "test.toml",
        now.to_zoned(jiff::tz::TimeZone::UTC).date(),
    )
    .expect("valid policy");
    let judge = |system: &FakeSystem| {
        let updates = os_updates::probe(system).value().expect("observed").clone();
        let mut facts = facts(updates, "windows", "10.0.22631");
        facts.host.os.family = OsFamily::Windows;
        evaluate(&policy, &facts, now, &FailingSince::new())
            .into_iter()
            .next()
            .expect("one finding")
    };

    let old = judge(&windows_with(EN_US, "get-hotfix-en-us-one-update-2025"));
    assert_eq!(old.status, Status::Fail);
    assert!(old.leak);
    assert_eq!(
        old.summary,
        "no update installed since 2025-04-10 (593 days)"
    );

    let unknown = judge(&windows_with(EN_GB, "get-hotfix-en-us-one-update-2025"));
    assert_eq!(unknown.status, Status::Unknown);
    assert!(unknown.leak, "unknown leaks under the default treatment");
}
