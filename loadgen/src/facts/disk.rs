//! Disk encryption: LUKS, FileVault and BitLocker in their usual states,
//! and machines where the probe could not tell.

use rand::Rng;
use shipshape_core::facts::{DiskEncryption, Observed, OsFamily, Volume, VolumeEncryption};

use super::pick;

#[derive(Debug, Clone, Copy)]
enum State {
    Encrypted,
    Plain,
    Encrypting,
    ProtectionOff,
    Unreadable,
}

pub(super) fn disk_encryption(rng: &mut impl Rng, family: OsFamily) -> Observed<DiskEncryption> {
    match family {
        OsFamily::Linux => linux(rng),
        OsFamily::Macos => macos(rng),
        OsFamily::Windows => windows(rng),
    }
}

fn linux(rng: &mut impl Rng) -> Observed<DiskEncryption> {
    let state = *pick(
        rng,
        &[
            (88, State::Encrypted),
            (8, State::Plain),
            (4, State::Unreadable),
        ],
    );
    let (device, nvme) = if rng.gen_bool(0.8) {
        ("nvme0n1p3", true)
    } else {
        ("sda3", false)
    };
    let volume = |mount_point: &str, lv: &str, encrypted: bool| {
        if encrypted {
            Volume {
                mount_point: mount_point.to_owned(),
                device: Some(format!("/dev/mapper/vg0-{lv}")),
                encryption: VolumeEncryption::Encrypted,
                method: Some("dm-crypt LUKS2".to_owned()),
                detail: Some(format!(
                    "ext4 on LVM vg0-{lv} on dm-crypt {device}_crypt on {}",
                    if nvme { "NVMe disk" } else { "SATA disk" }
                )),
            }
        } else {
            Volume {
                mount_point: mount_point.to_owned(),
                device: Some(format!("/dev/{device}")),
                encryption: VolumeEncryption::NotEncrypted,
                method: None,
                detail: Some(format!("ext4 on partition {device}")),
            }
        }
    };
    let encrypted = match state {
        State::Unreadable => {
            return Observed::unknown(
                "lsblk is not installed and /sys/block cannot be read, so the layers under / are unknown",
            );
        }
        State::Encrypted => true,
        _ => false,
    };
    let mut volumes = vec![volume("/", "root", encrypted)];
    if rng.gen_bool(0.3) {
        volumes.push(volume("/home", "home", encrypted));
    }
    Observed::Observed(DiskEncryption { volumes })
}

fn macos(rng: &mut impl Rng) -> Observed<DiskEncryption> {
    let state = *pick(
        rng,
        &[
            (92, State::Encrypted),
            (5, State::Plain),
            (3, State::Encrypting),
        ],
    );
    let encryption = match state {
        State::Encrypted => VolumeEncryption::Encrypted,
        State::Encrypting => VolumeEncryption::Encrypting {
            percent: Some(f64::from(rng.gen_range(1..100u8))),
        },
        _ => VolumeEncryption::NotEncrypted,
    };
    Observed::Observed(DiskEncryption {
        volumes: vec![Volume {
            mount_point: "/".to_owned(),
            device: Some("disk3s1".to_owned()),
            encryption,
            method: matches!(state, State::Encrypted | State::Encrypting)
                .then(|| "FileVault".to_owned()),
            detail: Some(
                match state {
                    State::Encrypted => "FileVault is On.",
                    State::Encrypting => "Encryption in progress: Percent completed",
                    _ => "FileVault is Off.",
                }
                .to_owned(),
            ),
        }],
    })
}

fn windows(rng: &mut impl Rng) -> Observed<DiskEncryption> {
    let state = *pick(
        rng,
        &[
            (86, State::Encrypted),
            (4, State::ProtectionOff),
            (4, State::Plain),
            (2, State::Encrypting),
            (4, State::Unreadable),
        ],
    );
    if let State::Unreadable = state {
        return Observed::unknown(
            "manage-bde needs an elevated prompt: run `shipshape check` as Administrator for a full check",
        );
    }
    let drive = |letter: &str, state: State, rng: &mut dyn rand::RngCore| {
        let (encryption, conversion, protection) = match state {
            State::Encrypted => (
                VolumeEncryption::Encrypted,
                "Fully Encrypted",
                "Protection On",
            ),
            State::ProtectionOff => (
                VolumeEncryption::ProtectionOff,
                "Fully Encrypted",
                "Protection Off",
            ),
            State::Encrypting => (
                VolumeEncryption::Encrypting {
                    percent: Some(f64::from(rng.gen_range(1..100u8)) + 0.5),
                },
                "Encryption in Progress",
                "Protection Off",
            ),
            _ => (
                VolumeEncryption::NotEncrypted,
                "Fully Decrypted",
                "Protection Off",
            ),
        };
        let encrypted = !matches!(encryption, VolumeEncryption::NotEncrypted);
        Volume {
            mount_point: letter.to_owned(),
            device: Some(letter.to_owned()),
            encryption,
            method: encrypted.then(|| "XtsAes128".to_owned()),
            detail: Some(format!(
                "{}, {conversion}, {protection}",
                if letter == "C:" {
                    "Operating System Volume"
                } else {
                    "Fixed Data Drive"
                }
            )),
        }
    };
    let mut volumes = vec![drive("C:", state, rng)];
    if rng.gen_bool(0.2) {
        volumes.push(drive("D:", state, rng));
    }
    Observed::Observed(DiskEncryption { volumes })
}
