//! No parser panics, whatever a tool prints: every parser reads every fixture
//! (its own tool's and every other's), cut short at every line, and with
//! Windows line endings. A parser may refuse the text; it may never crash.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use shipshape::probes::{disk_encryption, firewall, host, os_updates, ssh_keys, ssh_server};
use shipshape::system::CommandOutput;
use shipshape::system::fake::fixture_body;

type Parser = (&'static str, fn(&str));

/// Parsers answer with values or errors; here only whether they return at all matters.
fn ignore<T>(_answer: T) {}

const PARSERS: &[Parser] = &[
    ("parse_mountinfo", |t| {
        ignore(disk_encryption::linux::parse_mountinfo(t))
    }),
    ("parse_lsblk_json", |t| {
        ignore(disk_encryption::linux::parse_lsblk_json(t))
    }),
    ("parse_lsblk_tree", |t| {
        ignore(disk_encryption::linux::parse_lsblk_tree(t))
    }),
    ("parse_zfs_encryption", |t| {
        ignore(disk_encryption::linux::parse_zfs_encryption(t))
    }),
    ("parse_fdesetup_status", |t| {
        ignore(disk_encryption::macos::parse_fdesetup_status(t))
    }),
    ("parse_apfs_list", |t| {
        ignore(disk_encryption::macos::parse_apfs_list(t))
    }),
    ("parse_get_bitlockervolume", |t| {
        ignore(disk_encryption::windows::parse_get_bitlockervolume(t))
    }),
    ("parse_manage_bde", |t| {
        ignore(disk_encryption::windows::parse_manage_bde(t))
    }),
    ("parse_os_release", |t| ignore(host::parse_os_release(t))),
    ("parse_sw_vers", |t| ignore(host::parse_sw_vers(t))),
    ("parse_reg_query", |t| ignore(host::parse_reg_query(t))),
    ("parse_windows_version", |t| {
        ignore(host::parse_windows_version(t))
    }),
    ("parse_systeminfo", |t| ignore(host::parse_systeminfo(t))),
    ("parse_apt_get_upgrade", |t| {
        ignore(os_updates::parse_apt_get_upgrade(t))
    }),
    ("parse_dnf_check_update", |t| {
        ignore(os_updates::parse_dnf_check_update(t))
    }),
    ("parse_updateinfo_list", |t| {
        ignore(os_updates::parse_updateinfo_list(t))
    }),
    ("parse_dnf5_updateinfo_summary", |t| {
        ignore(os_updates::parse_dnf5_updateinfo_summary(t))
    }),
    ("parse_zypper_list_patches", |t| {
        ignore(os_updates::parse_zypper_list_patches(t))
    }),
    ("parse_zypper_list_updates", |t| {
        ignore(os_updates::parse_zypper_list_updates(t))
    }),
    ("parse_pacman_qu", |t| {
        ignore(os_updates::parse_pacman_qu(t))
    }),
    ("parse_dnf_automatic_conf", |t| {
        ignore(os_updates::parse_dnf_automatic_conf(t))
    }),
    ("parse_softwareupdate_list", |t| {
        ignore(os_updates::parse_softwareupdate_list(t))
    }),
    ("parse_softwareupdate_prefs", |t| {
        ignore(os_updates::parse_softwareupdate_prefs(t))
    }),
    ("parse_date_culture", |t| {
        ignore(os_updates::parse_date_culture(t))
    }),
    ("parse_get_hotfix", |t| {
        ignore(os_updates::parse_get_hotfix(t))
    }),
    ("parse_iptables_list_rules", |t| {
        ignore(firewall::parse_iptables_list_rules(t))
    }),
    ("parse_nft_ruleset", |t| {
        ignore(firewall::parse_nft_ruleset(t))
    }),
    ("parse_ufw_status", |t| {
        ignore(firewall::parse_ufw_status(t))
    }),
    ("parse_firewalld_zone", |t| {
        ignore(firewall::parse_firewalld_zone(t))
    }),
    ("parse_socketfilterfw", |t| {
        ignore(firewall::parse_socketfilterfw(t))
    }),
    ("parse_netsh_profiles", |t| {
        ignore(firewall::parse_netsh_profiles(t))
    }),
    ("parse_passwd", |t| ignore(ssh_keys::parse_passwd(t))),
    ("parse_private_key", |t| {
        ignore(ssh_keys::parse_private_key(t.as_bytes(), Some(t)))
    }),
    ("parse_sshd_t", |t| ignore(ssh_server::parse_sshd_t(t))),
    ("parse_remote_login", |t| {
        ignore(ssh_server::parse_remote_login(t))
    }),
    ("parse_get_service", |t| {
        ignore(ssh_server::parse_get_service(t, t))
    }),
    ("parse_launchctl_print", |t| {
        let output = CommandOutput {
            code: Some(0),
            stdout: t.to_owned(),
            stderr: t.to_owned(),
        };
        ignore(ssh_server::parse_launchctl_print(&output))
    }),
];

fn text_fixtures(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text_fixtures(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "txt") {
            found.push(path);
        }
    }
}

/// The body, cut after each of up to 40 evenly spread lines, and with CRLF endings.
fn variants(body: &str) -> Vec<String> {
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    let step = lines.len().div_ceil(40).max(1);
    let mut variants: Vec<String> = (0..=lines.len())
        .step_by(step)
        .map(|end| lines[..end].concat())
        .collect();
    variants.push(body.replace('\n', "\r\n"));
    variants.push(body.replace('\t', " "));
    variants
}

#[test]
fn no_parser_panics_on_any_fixture_or_any_prefix_of_one() {
    let mut fixtures = Vec::new();
    text_fixtures(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        &mut fixtures,
    );
    assert!(
        fixtures.len() > 100,
        "found only {} fixtures",
        fixtures.len()
    );
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut panics = Vec::new();
    for path in &fixtures {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for variant in variants(fixture_body(&text)) {
            for (name, parse) in PARSERS {
                if catch_unwind(AssertUnwindSafe(|| parse(&variant))).is_err() {
                    panics.push(format!(
                        "{name} on {} ({} bytes)",
                        path.display(),
                        variant.len()
                    ));
                }
            }
        }
    }
    std::panic::set_hook(previous_hook);
    panics.dedup_by(|a, b| a.split(" (").next() == b.split(" (").next());
    assert!(
        panics.is_empty(),
        "parsers panicked:\n{}",
        panics.join("\n")
    );
}
