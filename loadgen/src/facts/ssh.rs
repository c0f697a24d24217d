//! SSH: users' private keys of every algorithm and size, and the SSH
//! server with safe and unsafe settings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::Rng;
use shipshape_core::facts::{
    KeyFormat, Observed, OsFamily, ServiceState, SshKey, SshKeys, SshServer, SshdConfig,
};

use super::{People, home, pick};

/// A kind of key people keep in `~/.ssh`: file name, algorithm, the sizes
/// it comes in, its container and whether a hardware token holds it.
struct KeyKind {
    file: &'static str,
    algorithm: &'static str,
    bits: &'static [u32],
    format: KeyFormat,
    hardware: bool,
}

const KEY_KINDS: &[(u32, KeyKind)] = &[
    (
        45,
        KeyKind {
            file: "id_ed25519",
            algorithm: "ssh-ed25519",
            bits: &[256],
            format: KeyFormat::Openssh,
            hardware: false,
        },
    ),
    (
        22,
        KeyKind {
            file: "id_rsa",
            algorithm: "ssh-rsa",
            bits: &[2048, 3072, 3072, 4096],
            format: KeyFormat::Openssh,
            hardware: false,
        },
    ),
    (
        5,
        KeyKind {
            file: "deploy_rsa",
            algorithm: "ssh-rsa",
            bits: &[1024, 2048, 4096],
            format: KeyFormat::Pem,
            hardware: false,
        },
    ),
    (
        10,
        KeyKind {
            file: "id_ecdsa",
            algorithm: "ecdsa-sha2-nistp256",
            bits: &[256],
            format: KeyFormat::Openssh,
            hardware: false,
        },
    ),
    (
        3,
        KeyKind {
            file: "id_ecdsa_384",
            algorithm: "ecdsa-sha2-nistp384",
            bits: &[384],
            format: KeyFormat::Openssh,
            hardware: false,
        },
    ),
    (
        10,
        KeyKind {
            file: "id_ed25519_sk",
            algorithm: "sk-ssh-ed25519@openssh.com",
            bits: &[256],
            format: KeyFormat::Openssh,
            hardware: true,
        },
    ),
    (
        2,
        KeyKind {
            file: "id_dsa",
            algorithm: "ssh-dss",
            bits: &[1024],
            format: KeyFormat::Openssh,
            hardware: false,
        },
    ),
    (
        3,
        KeyKind {
            file: "work.ppk",
            algorithm: "ssh-rsa",
            bits: &[2048, 4096],
            format: KeyFormat::Putty,
            hardware: false,
        },
    ),
];

pub(super) fn ssh_keys(rng: &mut impl Rng, family: OsFamily, people: &People) -> Observed<SshKeys> {
    if rng.gen_bool(0.02) {
        return Observed::unknown(format!(
            "{}/.ssh cannot be read: permission denied",
            home(family, people.users[0])
        ));
    }
    let separator = if family == OsFamily::Windows {
        '\\'
    } else {
        '/'
    };
    let mut scanned: Vec<String> = people
        .users
        .iter()
        .map(|user| format!("{}{separator}.ssh", home(family, user)))
        .collect();
    let mut unreadable = Vec::new();
    if family == OsFamily::Linux {
        if people.root {
            scanned.push("/root/.ssh".to_owned());
        } else if let Some(other) = people.users.get(1) {
            unreadable.push(format!(
                "{}/.ssh: permission denied: run as root",
                home(family, other)
            ));
            scanned.pop();
        }
    }
    let count = *pick(rng, &[(30, 0), (35, 1), (20, 2), (10, 3), (5, 4)]);
    let mut keys: Vec<SshKey> = Vec::with_capacity(count);
    for _ in 0..count {
        add_key(rng, family, &scanned, &mut keys);
    }
    Observed::Observed(SshKeys {
        keys,
        scanned,
        unreadable,
    })
}

/// Adds a new key in one of the `scanned` directories to `keys`, unless
/// one with its file name is already there.
pub(super) fn add_key(
    rng: &mut impl Rng,
    family: OsFamily,
    scanned: &[String],
    keys: &mut Vec<SshKey>,
) {
    let Some(dir) = scanned.get(rng.gen_range(0..scanned.len().max(1))) else {
        return;
    };
    let separator = if family == OsFamily::Windows {
        '\\'
    } else {
        '/'
    };
    // `/home/ana/.ssh`, `/root/.ssh`, `C:\Users\ana\.ssh`: the user is the home's name.
    let owner = dir.rsplit(separator).nth(1).unwrap_or("root").to_owned();
    let kind = pick(rng, KEY_KINDS);
    let path = format!("{dir}{separator}{}", kind.file);
    if keys.iter().any(|key| key.path == path) {
        return;
    }
    let bits = kind.bits[rng.gen_range(0..kind.bits.len())];
    let encrypted = !kind.hardware && rng.gen_bool(0.55);
    let mode = (family != OsFamily::Windows)
        .then(|| *pick(rng, &[(85, 0o600), (8, 0o644), (4, 0o640), (3, 0o400)]));
    let mut fingerprint = [0u8; 32];
    rng.fill(&mut fingerprint);
    keys.push(SshKey {
        owner,
        path,
        format: kind.format,
        algorithm: Some(kind.algorithm.to_owned()),
        bits: Some(bits),
        encrypted,
        hardware_backed: kind.hardware,
        mode,
        fingerprint: Some(format!("SHA256:{}", STANDARD_NO_PAD.encode(fingerprint))),
        note: (kind.format == KeyFormat::Pem && encrypted)
            .then(|| "encrypted PEM: algorithm and size read from the .pub beside it".to_owned()),
    });
}

pub(super) fn ssh_server(
    rng: &mut impl Rng,
    family: OsFamily,
    people: &People,
) -> Observed<SshServer> {
    let state = match family {
        OsFamily::Linux => *pick(
            rng,
            &[
                (50, ServiceState::NotInstalled),
                (10, ServiceState::Disabled),
                (40, ServiceState::Running),
            ],
        ),
        OsFamily::Macos => *pick(
            rng,
            &[(85, ServiceState::Disabled), (15, ServiceState::Running)],
        ),
        OsFamily::Windows => *pick(
            rng,
            &[
                (90, ServiceState::NotInstalled),
                (10, ServiceState::Running),
            ],
        ),
    };
    if state == ServiceState::NotInstalled {
        return Observed::Observed(SshServer {
            state,
            config: None,
        });
    }
    let config = if family == OsFamily::Linux && !people.root {
        Observed::unknown(
            "sshd -T needs root to read the host keys: run `sudo shipshape check` for a full check",
        )
    } else {
        let passwords = rng.gen_bool(0.12);
        Observed::Observed(SshdConfig {
            source: match family {
                OsFamily::Windows => "C:\\ProgramData\\ssh\\sshd_config".to_owned(),
                _ => "sshd -T".to_owned(),
            },
            password_authentication: passwords,
            kbd_interactive_authentication: passwords && rng.gen_bool(0.5),
            use_pam: family != OsFamily::Windows,
            permit_empty_passwords: false,
            permit_root_login: pick(rng, &[(80, "prohibit-password"), (15, "no"), (5, "yes")])
                .to_string(),
        })
    };
    Observed::Observed(SshServer {
        state,
        config: Some(config),
    })
}
