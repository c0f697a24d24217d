use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use shipshape_core::facts::{Observed, OsFamily, ServiceState, VolumeEncryption};
use shipshape_core::wire::facts_hash;
use shipshape_core::{FailingSince, Policy, Verdict, evaluate};

use super::change::next_kernel;
use super::*;

const FLEET: u64 = 2_000;

fn now() -> Timestamp {
    "2026-11-24T09:12:00Z".parse().unwrap()
}

fn fleet(seed: u64) -> Vec<Facts> {
    (0..FLEET)
        .map(|index| Machine::new(seed, index, now()).facts().clone())
        .collect()
}

/// How many of `fleet` fall under each label `label` gives them.
fn shares(fleet: &[Facts], label: impl Fn(&Facts) -> Vec<String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for facts in fleet {
        for label in label(facts) {
            *counts.entry(label).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn the_same_seed_draws_the_same_fleet_and_another_seed_another() {
    assert_eq!(fleet(1), fleet(1));
    let (one, two) = (fleet(1), fleet(2));
    let same = one.iter().zip(&two).filter(|(a, b)| a == b).count();
    assert_eq!(same, 0, "machines alike under seeds 1 and 2");
    // A machine does not depend on how many others there are.
    assert_eq!(Machine::new(1, 17, now()).facts(), &one[17]);
}

#[test]
fn hostnames_and_hardware_ids_are_unique() {
    let fleet = fleet(3);
    let hostnames: BTreeSet<&str> = fleet
        .iter()
        .map(|facts| facts.host.hostname.as_str())
        .collect();
    let hardware: BTreeSet<_> = fleet.iter().map(|facts| &facts.host.hardware_id).collect();
    assert_eq!(hostnames.len(), fleet.len());
    assert_eq!(hardware.len(), fleet.len());
}

#[test]
fn the_fleet_runs_every_platform_and_many_releases() {
    let fleet = fleet(1);
    let families = shares(&fleet, |facts| {
        vec![facts.host.os.family.as_str().to_owned()]
    });
    let share = |family: &str| families[family] as f64 / FLEET as f64;
    assert!((0.35..0.60).contains(&share("linux")), "{families:?}");
    assert!((0.20..0.45).contains(&share("macos")), "{families:?}");
    assert!((0.10..0.30).contains(&share("windows")), "{families:?}");
    let releases = shares(&fleet, |facts| {
        vec![format!("{} {:?}", facts.host.os.id, facts.host.os.version)]
    });
    assert!(releases.len() >= 15, "{releases:?}");
    let ids = shares(&fleet, |facts| vec![facts.host.os.id.clone()]);
    for id in [
        "debian",
        "ubuntu",
        "fedora",
        "rhel",
        "opensuse-leap",
        "arch",
        "macos",
        "windows",
    ] {
        assert!(ids.contains_key(id), "no {id} in {ids:?}");
    }
    let arches = shares(&fleet, |facts| vec![facts.host.arch.clone()]);
    assert_eq!(arches.len(), 2, "{arches:?}");
}

#[test]
fn disks_are_encrypted_or_not_or_unknown() {
    let states = shares(&fleet(1), |facts| match &facts.disk_encryption {
        Observed::Unknown { .. } => vec!["unknown".to_owned()],
        Observed::Observed(disk) => disk
            .volumes
            .iter()
            .map(|volume| {
                match volume.encryption {
                    VolumeEncryption::Encrypted => "encrypted",
                    VolumeEncryption::NotEncrypted => "not encrypted",
                    VolumeEncryption::Encrypting { .. } => "encrypting",
                    VolumeEncryption::Decrypting { .. } => "decrypting",
                    VolumeEncryption::ProtectionOff => "protection off",
                    VolumeEncryption::Unknown { .. } => "volume unknown",
                }
                .to_owned()
            })
            .collect(),
    });
    for state in [
        "encrypted",
        "not encrypted",
        "encrypting",
        "protection off",
        "unknown",
    ] {
        assert!(states.contains_key(state), "no {state} disk in {states:?}");
    }
    assert!(
        states["encrypted"] > states["not encrypted"] * 5,
        "{states:?}"
    );
}

#[test]
fn updates_pending_some_for_security_some_lists_stale() {
    let fleet = fleet(1);
    let pending: Vec<_> = fleet
        .iter()
        .filter_map(|facts| facts.os_updates.value()?.pending.value())
        .collect();
    let security: Vec<u32> = pending.iter().map(|pending| pending.security).collect();
    assert!(security.contains(&0));
    assert!(security.iter().any(|count| (1..=5).contains(count)));
    assert!(security.iter().any(|count| *count > 30));
    for pending in &pending {
        assert!(pending.total >= pending.security, "{pending:?}");
        assert!(pending.security_packages.len() <= pending.security as usize);
    }
    let managers = shares(&fleet, |facts| {
        facts
            .os_updates
            .value()
            .and_then(|updates| updates.pending.value())
            .map(|pending| vec![pending.manager.clone()])
            .unwrap_or_default()
    });
    assert_eq!(
        managers.keys().map(String::as_str).collect::<Vec<_>>(),
        ["apt", "dnf", "pacman", "softwareupdate", "zypper"]
    );
    let stale = pending
        .iter()
        .filter(|pending| {
            pending
                .metadata_updated
                .is_some_and(|at| now().duration_since(at).as_hours() > 14 * 24)
        })
        .count();
    assert!(
        stale > 0 && stale < pending.len() / 10,
        "{stale} stale lists"
    );
    let automatic_off = fleet
        .iter()
        .filter(|facts| {
            facts
                .os_updates
                .value()
                .and_then(|updates| updates.automatic.value())
                .is_some_and(|automatic| !automatic.enabled)
        })
        .count();
    assert!(automatic_off > 0);
}

#[test]
fn firewalls_on_off_and_unreadable_on_every_backend() {
    let fleet = fleet(1);
    let backends = shares(&fleet, |facts| match &facts.firewall {
        Observed::Observed(firewall) => vec![format!("{} {}", firewall.backend, firewall.enabled)],
        Observed::Unknown { .. } => vec!["unknown".to_owned()],
    });
    for backend in [
        "nftables true",
        "ufw true",
        "firewalld true",
        "iptables true",
        "none false",
        "socketfilterfw true",
        "socketfilterfw false",
        "windows-firewall true",
        "windows-firewall false",
        "unknown",
    ] {
        assert!(
            backends.contains_key(backend),
            "no {backend} in {backends:?}"
        );
    }
}

#[test]
fn ssh_keys_of_every_algorithm_and_size() {
    let fleet = fleet(1);
    let keys: Vec<_> = fleet
        .iter()
        .filter_map(|facts| facts.ssh_keys.value())
        .flat_map(|ssh| &ssh.keys)
        .collect();
    let kinds: BTreeSet<(String, u32)> = keys
        .iter()
        .map(|key| {
            (
                key.algorithm.clone().unwrap_or_default(),
                key.bits.unwrap_or(0),
            )
        })
        .collect();
    for kind in [
        ("ssh-ed25519", 256),
        ("ssh-rsa", 1024),
        ("ssh-rsa", 2048),
        ("ssh-rsa", 3072),
        ("ssh-rsa", 4096),
        ("ecdsa-sha2-nistp256", 256),
        ("ecdsa-sha2-nistp384", 384),
        ("sk-ssh-ed25519@openssh.com", 256),
        ("ssh-dss", 1024),
    ] {
        assert!(
            kinds.contains(&(kind.0.to_owned(), kind.1)),
            "no {kind:?} key in {kinds:?}"
        );
    }
    assert!(keys.iter().any(|key| key.encrypted));
    assert!(
        keys.iter()
            .any(|key| !key.encrypted && !key.hardware_backed)
    );
    assert!(keys.iter().any(|key| key.mode == Some(0o644)));
    let machines_without = fleet
        .iter()
        .filter(|facts| {
            facts
                .ssh_keys
                .value()
                .is_some_and(|ssh| ssh.keys.is_empty())
        })
        .count();
    assert!(machines_without > 0);
    for facts in &fleet {
        if let Some(ssh) = facts.ssh_keys.value() {
            let paths: BTreeSet<&str> = ssh.keys.iter().map(|key| key.path.as_str()).collect();
            assert_eq!(paths.len(), ssh.keys.len(), "a path twice: {ssh:?}");
            for key in &ssh.keys {
                assert!(
                    ssh.scanned
                        .iter()
                        .any(|dir| key.path.starts_with(dir.as_str())),
                    "{} is not in a scanned directory {:?}",
                    key.path,
                    ssh.scanned
                );
                assert_eq!(
                    key.mode.is_none(),
                    facts.host.os.family == OsFamily::Windows
                );
            }
        }
    }
}

#[test]
fn ssh_servers_off_and_on_with_safe_and_unsafe_settings() {
    let fleet = fleet(1);
    let servers: Vec<_> = fleet
        .iter()
        .filter_map(|facts| facts.ssh_server.value())
        .collect();
    for state in [
        ServiceState::NotInstalled,
        ServiceState::Disabled,
        ServiceState::Running,
    ] {
        assert!(
            servers.iter().any(|server| server.state == state),
            "no {state:?}"
        );
    }
    let configs: Vec<_> = servers
        .iter()
        .filter_map(|server| server.config.as_ref()?.value())
        .collect();
    assert!(configs.iter().any(|config| config.password_authentication));
    assert!(configs.iter().any(|config| !config.password_authentication));
    let root_logins: BTreeSet<&str> = configs
        .iter()
        .map(|config| config.permit_root_login.as_str())
        .collect();
    assert_eq!(
        root_logins,
        BTreeSet::from(["no", "prohibit-password", "yes"])
    );
    assert!(
        servers
            .iter()
            .any(|server| matches!(server.config, Some(Observed::Unknown { .. }))),
        "no sshd config unknown for want of root"
    );
}

#[test]
fn a_share_of_the_fleet_leaks_under_the_default_policy() {
    let policy = Policy::parse(
        include_str!("../../../policies/default.toml"),
        "default.toml",
        now().to_zoned(TimeZone::UTC).date(),
    )
    .unwrap();
    let fleet = fleet(1);
    let leaky = fleet
        .iter()
        .filter(|facts| {
            Verdict::of(&evaluate(&policy, facts, now(), &FailingSince::new())) == Verdict::Leaky
        })
        .count();
    let share = leaky as f64 / fleet.len() as f64;
    assert!(
        (0.25..0.75).contains(&share),
        "{leaky} of {} leaky",
        fleet.len()
    );
}

#[test]
fn a_change_always_changes_the_facts_and_is_drawn_from_the_seed() {
    let changes = |seed| {
        let mut machine = Machine::new(seed, 5, now());
        (0..50)
            .map(|run| {
                let before = facts_hash(machine.facts());
                machine.change(now() + jiff::SignedDuration::from_hours(run));
                let after = facts_hash(machine.facts());
                assert_ne!(before, after, "run {run} changed nothing");
                machine.facts().clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(changes(9), changes(9));
    assert_ne!(changes(9), changes(10));
    // Even at the same second, on every kind of machine.
    for index in 0..300 {
        let mut machine = Machine::new(4, index, now());
        for _ in 0..5 {
            let before = machine.facts().clone();
            machine.change(now());
            assert_ne!(&before, machine.facts(), "machine {index}");
        }
    }
}

#[test]
fn kernels_move_to_the_next_release() {
    assert_eq!(next_kernel("6.1.0-27-amd64"), "6.1.1-27-amd64");
    assert_eq!(next_kernel("6.12.43+deb13-amd64"), "6.12.44+deb13-amd64");
    assert_eq!(
        next_kernel("6.15.9-200.fc42.x86_64"),
        "6.15.10-200.fc42.x86_64"
    );
    assert_eq!(next_kernel("24.6.0"), "24.6.1");
    assert_eq!(next_kernel("10.0.26100"), "10.0.26101");
    assert_eq!(next_kernel("rolling"), "rolling.1");
}
