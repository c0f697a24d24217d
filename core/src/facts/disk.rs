use serde::{Deserialize, Serialize};

/// Encryption of the volumes that hold the system and users' data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskEncryption {
    pub volumes: Vec<Volume>,
}

/// One volume the check cares about (Linux: a mount point such as `/` or
/// `/home`; macOS: the APFS system/data volume; Windows: a drive such as `C:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// `/`, `/home`, `C:`, …
    pub mount_point: String,
    /// Backing device as the OS names it (`/dev/mapper/root`, `disk3s5`, `C:`).
    pub device: Option<String>,
    pub encryption: VolumeEncryption,
    /// How it is encrypted ("dm-crypt LUKS2", "ZFS aes-256-gcm", "FileVault", "BitLocker XTS-AES 128").
    pub method: Option<String>,
    /// The chain from mount to cipher, for evidence ("ext4 on LVM vg0-root on dm-crypt nvme0n1p3_crypt").
    pub detail: Option<String>,
}

/// Where a volume stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum VolumeEncryption {
    Encrypted,
    NotEncrypted,
    Encrypting {
        percent: Option<f64>,
    },
    Decrypting {
        percent: Option<f64>,
    },
    /// Encrypted, but the key is not protected (BitLocker suspended or
    /// "waiting for activation"): as good as unencrypted.
    ProtectionOff,
    Unknown {
        reason: String,
    },
}
