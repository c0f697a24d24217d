use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::facts::*;
use crate::finding::Verdict;

fn now() -> Timestamp {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn policy(text: &str) -> Policy {
    Policy::parse(text, "test.toml", date(2026, 11, 24)).unwrap()
}

fn key(path: &str, algorithm: &str, bits: Option<u32>, encrypted: bool, mode: u32) -> SshKey {
    SshKey {
        owner: "anna".into(),
        path: path.into(),
        format: KeyFormat::Openssh,
        algorithm: Some(algorithm.into()),
        bits,
        encrypted,
        hardware_backed: algorithm.starts_with("sk-"),
        mode: Some(mode),
        fingerprint: None,
        note: None,
    }
}

/// A Debian laptop that is shipshape under the default policy.
fn shipshape_facts() -> Facts {
    Facts {
        host: Host {
            hostname: "anna-laptop".into(),
            os: OsInfo {
                family: OsFamily::Linux,
                id: "debian".into(),
                name: "Debian GNU/Linux 12 (bookworm)".into(),
                version: Some("12".into()),
                build: None,
            },
            kernel: Some("6.1.0-27-amd64".into()),
            arch: "x86_64".into(),
            hardware_id: None,
        },
        disk_encryption: Observed::Observed(DiskEncryption {
            volumes: vec![
                Volume {
                    mount_point: "/".into(),
                    device: Some("/dev/mapper/vg-root".into()),
                    encryption: VolumeEncryption::Encrypted,
                    method: Some("dm-crypt LUKS2".into()),
                    detail: None,
                },
                Volume {
                    mount_point: "/boot".into(),
                    device: Some("/dev/nvme0n1p2".into()),
                    encryption: VolumeEncryption::NotEncrypted,
                    method: None,
                    detail: None,
                },
            ],
        }),
        os_updates: Observed::Observed(OsUpdates {
            pending: Observed::Observed(PendingUpdates {
                manager: "apt".into(),
                total: 2,
                security: 0,
                security_packages: vec![],
                held_back: 0,
                metadata_updated: Some(now() - SignedDuration::from_hours(20)),
            }),
            automatic: Observed::Observed(AutomaticUpdates {
                enabled: true,
                mechanism: "unattended-upgrades".into(),
                detail: None,
            }),
            last_installed: None,
        }),
        firewall: Observed::Observed(Firewall {
            backend: "nftables".into(),
            enabled: true,
            inbound: Inbound::Blocked,
            stealth: None,
            profiles: vec![],
            notes: vec![],
        }),
        ssh_keys: Observed::Observed(SshKeys {
            keys: vec![
                key(
                    "/home/anna/.ssh/id_ed25519",
                    "ssh-ed25519",
                    Some(256),
                    true,
                    0o600,
                ),
                key(
                    "/home/anna/.ssh/id_sk",
                    "sk-ssh-ed25519@openssh.com",
                    None,
                    false,
                    0o600,
                ),
            ],
            scanned: vec!["/home/anna/.ssh".into()],
            unreadable: vec![],
        }),
        ssh_server: Observed::Observed(SshServer {
            state: ServiceState::Running,
            config: Some(Observed::Observed(SshdConfig {
                source: "sshd -T".into(),
                password_authentication: false,
                kbd_interactive_authentication: false,
                use_pam: true,
                permit_empty_passwords: false,
                permit_root_login: "prohibit-password".into(),
            })),
        }),
    }
}

fn default_policy() -> Policy {
    policy(include_str!("../../../policies/default.toml"))
}

fn status_of<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings
        .iter()
        .find(|finding| finding.check == check)
        .unwrap()
}

#[test]
fn a_shipshape_machine_passes_every_check() {
    let findings = evaluate(
        &default_policy(),
        &shipshape_facts(),
        now(),
        &FailingSince::new(),
    );
    let statuses: Vec<(&str, Status)> = findings
        .iter()
        .map(|f| (f.check.as_str(), f.status))
        .collect();
    assert!(
        statuses.iter().all(|(_, status)| *status == Status::Pass),
        "{statuses:?}"
    );
    assert_eq!(Verdict::of(&findings), Verdict::Shipshape);
}

#[test]
fn default_policy_leaks_what_the_issue_says_it_leaks() {
    let mut facts = shipshape_facts();
    facts.disk_encryption = Observed::Observed(DiskEncryption {
        volumes: vec![Volume {
            mount_point: "/".into(),
            device: Some("/dev/sda2".into()),
            encryption: VolumeEncryption::NotEncrypted,
            method: None,
            detail: None,
        }],
    });
    if let Observed::Observed(firewall) = &mut facts.firewall {
        firewall.inbound = Inbound::Allowed;
    }
    facts.ssh_keys = Observed::Observed(SshKeys {
        keys: vec![
            key("/h/.ssh/id_rsa", "ssh-rsa", Some(2048), true, 0o600),
            key("/h/.ssh/id_dsa", "ssh-dss", Some(1024), true, 0o600),
            key("/h/.ssh/id_plain", "ssh-ed25519", Some(256), false, 0o600),
            key("/h/.ssh/id_open", "ssh-ed25519", Some(256), true, 0o644),
            key("/h/.ssh/id_ok", "ssh-rsa", Some(4096), true, 0o600),
        ],
        scanned: vec!["/h/.ssh".into()],
        unreadable: vec![],
    });
    let findings = evaluate(&default_policy(), &facts, now(), &FailingSince::new());
    for check in ["disk-encryption", "firewall", "ssh-keys"] {
        let finding = status_of(&findings, check);
        assert_eq!(finding.status, Status::Fail, "{check}: {finding:?}");
        assert!(finding.leak, "{check} leaks");
        assert!(finding.remediation.is_some(), "{check} says how to fix it");
    }
    let keys = status_of(&findings, "ssh-keys");
    assert!(
        keys.summary.starts_with("4 of 5 keys leak"),
        "{}",
        keys.summary
    );
    for needle in [
        "RSA 2048 bits < 3072",
        "DSA is forbidden",
        "no passphrase",
        "mode 0644",
    ] {
        assert!(
            keys.summary.contains(needle),
            "missing {needle}: {}",
            keys.summary
        );
    }
    assert!(
        keys.remediation
            .as_deref()
            .unwrap()
            .contains("ssh-keygen -p -f /h/.ssh/id_plain")
    );
    assert!(
        keys.remediation
            .as_deref()
            .unwrap()
            .contains("chmod 600 /h/.ssh/id_open")
    );
    assert_eq!(Verdict::of(&findings), Verdict::Leaky);
}

#[test]
fn sshd_password_and_root_password_login_leak() {
    let mut facts = shipshape_facts();
    let config = |password: bool, kbd: bool, root: &str| {
        Observed::Observed(SshServer {
            state: ServiceState::Running,
            config: Some(Observed::Observed(SshdConfig {
                source: "sshd -T".into(),
                password_authentication: password,
                kbd_interactive_authentication: kbd,
                use_pam: true,
                permit_empty_passwords: false,
                permit_root_login: root.into(),
            })),
        })
    };
    for (server, expected) in [
        (config(true, false, "prohibit-password"), Status::Fail),
        (config(false, true, "no"), Status::Fail),
        (config(false, false, "yes"), Status::Fail),
        (config(false, false, "without-password"), Status::Pass),
    ] {
        facts.ssh_server = server;
        let findings = evaluate(&default_policy(), &facts, now(), &FailingSince::new());
        assert_eq!(
            status_of(&findings, "ssh-server").status,
            expected,
            "{:?}",
            facts.ssh_server
        );
    }
}

#[test]
fn unknown_leaks_by_default_and_can_be_reported_only() {
    let mut facts = shipshape_facts();
    facts.firewall =
        Observed::unknown("`nft` needs root: run `sudo shipshape check` for a full check");
    let findings = evaluate(&default_policy(), &facts, now(), &FailingSince::new());
    let firewall = status_of(&findings, "firewall");
    assert_eq!(firewall.status, Status::Unknown);
    assert!(firewall.leak);
    assert!(
        firewall.summary.contains("needs root"),
        "{}",
        firewall.summary
    );

    let lenient = policy("unknown = \"report\"\n[checks.firewall]\nseverity = \"high\"\n");
    let findings = evaluate(&lenient, &facts, now(), &FailingSince::new());
    assert!(!findings[0].leak);
    assert_eq!(Verdict::of(&findings), Verdict::Shipshape);

    let per_check = policy(
        "unknown = \"report\"\n[checks.firewall]\nseverity = \"high\"\nunknown = \"leak\"\n",
    );
    assert!(evaluate(&per_check, &facts, now(), &FailingSince::new())[0].leak);
}

#[test]
fn grace_warns_until_it_runs_out() {
    let mut facts = shipshape_facts();
    if let Observed::Observed(updates) = &mut facts.os_updates {
        updates.pending = Observed::Observed(PendingUpdates {
            manager: "apt".into(),
            total: 3,
            security: 2,
            security_packages: vec!["openssl".into(), "sudo".into()],
            held_back: 0,
            metadata_updated: Some(now()),
        });
    }
    let policy = default_policy();
    let fresh = evaluate(&policy, &facts, now(), &FailingSince::new());
    let updates = status_of(&fresh, "os-updates");
    assert_eq!(updates.status, Status::Warn);
    assert!(!updates.leak);
    assert!(
        updates
            .summary
            .contains("2 security updates pending (openssl, sudo)"),
        "{}",
        updates.summary
    );
    assert!(
        updates.summary.contains("grace until 2026-12-08 12:00 UTC"),
        "{}",
        updates.summary
    );

    let mut since = FailingSince::new();
    since.insert(
        CheckId::OsUpdates,
        now() - SignedDuration::from_hours(15 * 24),
    );
    let old = evaluate(&policy, &facts, now(), &since);
    let updates = status_of(&old, "os-updates");
    assert_eq!(updates.status, Status::Fail);
    assert!(updates.leak);
}

#[test]
fn stale_metadata_and_old_os_are_judged() {
    let mut facts = shipshape_facts();
    if let Observed::Observed(updates) = &mut facts.os_updates {
        if let Observed::Observed(pending) = &mut updates.pending {
            pending.metadata_updated = Some(now() - SignedDuration::from_hours(30 * 24));
        }
    }
    let findings = evaluate(&default_policy(), &facts, now(), &FailingSince::new());
    let updates = status_of(&findings, "os-updates");
    assert_eq!(updates.status, Status::Unknown);
    assert!(
        updates
            .remediation
            .as_deref()
            .unwrap()
            .contains("sudo apt update")
    );

    let mut facts = shipshape_facts();
    facts.host.os.version = Some("11".into());
    let findings = evaluate(&default_policy(), &facts, now(), &FailingSince::new());
    let updates = status_of(&findings, "os-updates");
    assert!(
        updates.summary.contains("older than the minimum 12"),
        "{}",
        updates.summary
    );
}

#[test]
fn exceptions_and_platforms() {
    let text = "[checks.firewall]\nseverity = \"high\"\n[checks.ssh-keys]\nseverity = \"high\"\nplatforms = [\"macos\"]\n\
                [[exceptions]]\ncheck = \"firewall\"\nhosts = [\"anna-*\"]\nreason = \"SEC-1\"\nexpires = 2026-12-31\n";
    let policy = policy(text);
    let mut facts = shipshape_facts();
    if let Observed::Observed(firewall) = &mut facts.firewall {
        firewall.enabled = false;
    }
    let findings = evaluate(&policy, &facts, now(), &FailingSince::new());
    let firewall = status_of(&findings, "firewall");
    assert_eq!(firewall.status, Status::Excepted);
    assert!(!firewall.leak);
    assert_eq!(firewall.summary, "excepted until 2026-12-31: SEC-1");
    assert!(firewall.evidence[0].starts_with("would be fail: no firewall is on"));
    assert_eq!(status_of(&findings, "ssh-keys").status, Status::Skipped);

    let after_expiry: Timestamp = "2027-01-01T00:00:01Z".parse().unwrap();
    let findings = evaluate(&policy, &facts, after_expiry, &FailingSince::new());
    assert_eq!(status_of(&findings, "firewall").status, Status::Fail);
}

#[test]
fn below_leak_severity_fails_without_leaking() {
    let policy = policy("leak-severity = \"critical\"\n[checks.firewall]\nseverity = \"high\"\n");
    let mut facts = shipshape_facts();
    if let Observed::Observed(firewall) = &mut facts.firewall {
        firewall.enabled = false;
    }
    let findings = evaluate(&policy, &facts, now(), &FailingSince::new());
    assert_eq!(findings[0].status, Status::Fail);
    assert!(!findings[0].leak);
}

#[test]
fn facts_round_trip_through_json() {
    let facts = shipshape_facts();
    let json = serde_json::to_string(&facts).unwrap();
    assert_eq!(serde_json::from_str::<Facts>(&json).unwrap(), facts);
    assert!(
        json.contains(r#""disk_encryption":{"observed":{"volumes":[{"mount_point":"/""#),
        "{json}"
    );
}

fn finding_with(check: CheckId, status: Status) -> Finding {
    Finding {
        check: check.to_string(),
        status,
        severity: crate::finding::Severity::High,
        leak: false,
        summary: String::new(),
        evidence: Vec::new(),
        remediation: None,
    }
}

#[test]
fn grace_clocks_start_on_failure_stop_on_pass_and_ignore_unknown() {
    let start = now();
    let later = start + SignedDuration::from_hours(5);
    let mut since = FailingSince::new();
    advance_failing_since(
        &mut since,
        &[
            finding_with(CheckId::Firewall, Status::Fail),
            finding_with(CheckId::OsUpdates, Status::Warn),
            finding_with(CheckId::SshKeys, Status::Unknown),
        ],
        start,
    );
    assert_eq!(since.get(&CheckId::Firewall), Some(&start));
    assert_eq!(since.get(&CheckId::OsUpdates), Some(&start));
    assert_eq!(since.get(&CheckId::SshKeys), None);

    advance_failing_since(
        &mut since,
        &[
            finding_with(CheckId::Firewall, Status::Fail),
            finding_with(CheckId::OsUpdates, Status::Unknown),
            finding_with(CheckId::SshKeys, Status::Pass),
        ],
        later,
    );
    assert_eq!(
        since.get(&CheckId::Firewall),
        Some(&start),
        "a clock keeps its start"
    );
    assert_eq!(
        since.get(&CheckId::OsUpdates),
        Some(&start),
        "unknown leaves it running"
    );

    advance_failing_since(
        &mut since,
        &[finding_with(CheckId::Firewall, Status::Pass)],
        later,
    );
    assert_eq!(since.get(&CheckId::Firewall), None, "a pass stops it");
}
