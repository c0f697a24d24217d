use serde::{Deserialize, Serialize};

use super::Observed;

/// Private SSH keys found in users' `~/.ssh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKeys {
    pub keys: Vec<SshKey>,
    /// The `.ssh` directories that were read.
    pub scanned: Vec<String>,
    /// Directories that could not be read, with why ("permission denied: run as root").
    pub unreadable: Vec<String>,
}

/// One private key, described without its material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKey {
    /// The user whose `~/.ssh` holds it.
    pub owner: String,
    pub path: String,
    pub format: KeyFormat,
    /// OpenSSH algorithm name (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`,
    /// `ssh-dss`, `sk-ssh-ed25519@openssh.com`); `None` when it cannot be told.
    pub algorithm: Option<String>,
    /// Key size in bits (RSA: bit length of the modulus), where it can be told.
    pub bits: Option<u32>,
    /// Protected by a passphrase.
    pub encrypted: bool,
    /// A FIDO/U2F `sk-*` key: the secret lives on a hardware token.
    pub hardware_backed: bool,
    /// Unix permission bits (e.g. 0o600); `None` where the OS has none.
    pub mode: Option<u32>,
    /// `SHA256:…` fingerprint of the public key, where it could be derived.
    pub fingerprint: Option<String>,
    /// Why something above could not be told.
    pub note: Option<String>,
}

/// The container format of a private key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----`
    Openssh,
    /// PKCS#1 / SEC1 / DSA PEM (`-----BEGIN RSA PRIVATE KEY-----`, …)
    Pem,
    /// `-----BEGIN PRIVATE KEY-----` or `-----BEGIN ENCRYPTED PRIVATE KEY-----`
    Pkcs8,
    /// PuTTY `.ppk`
    Putty,
}

/// The machine's SSH server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshServer {
    pub state: ServiceState,
    /// The effective configuration; `None` when no server is installed.
    pub config: Option<Observed<SshdConfig>>,
}

/// Whether the SSH server accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    NotInstalled,
    /// Installed but neither running nor enabled.
    Disabled,
    /// Enabled at boot or running now.
    Running,
}

/// The settings that decide who may log in, as sshd applies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshdConfig {
    /// `sshd -T` or the config files read (`/etc/ssh/sshd_config` + includes).
    pub source: String,
    pub password_authentication: bool,
    pub kbd_interactive_authentication: bool,
    pub use_pam: bool,
    pub permit_empty_passwords: bool,
    /// `yes`, `prohibit-password`, `forced-commands-only` or `no`.
    pub permit_root_login: String,
}
