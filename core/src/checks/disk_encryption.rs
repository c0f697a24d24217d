use jiff::Timestamp;

use super::{Assessment, Check, CheckId, Common, check_policy, observed};
use crate::facts::{Facts, OsFamily, Volume, VolumeEncryption};

check_policy! {
    /// `[checks.disk-encryption]`
    DiskEncryptionPolicy => CheckId::DiskEncryption, {
        /// Linux: paths whose volume must be encrypted; each resolves to the
        /// mount that holds it, so `/home` on the root filesystem is checked as `/`.
        /// macOS and Windows: every system and fixed data volume must be.
        #[serde(default = "default_linux_mounts")]
        linux_mounts: Vec<String>,
    }
}

fn default_linux_mounts() -> Vec<String> {
    vec!["/".to_owned(), "/home".to_owned()]
}

impl Check for DiskEncryptionPolicy {
    fn id(&self) -> CheckId {
        Self::ID
    }

    fn common(&self) -> Common<'_> {
        self.common_settings()
    }

    fn assess(&self, facts: &Facts, _now: Timestamp) -> Assessment {
        let disk = match observed(&facts.disk_encryption, "whether the disk is encrypted") {
            Ok(disk) => disk,
            Err(unknown) => return unknown,
        };
        let family = facts.host.os.family;
        let volumes: Vec<&Volume> = match family {
            OsFamily::Linux => {
                let mut chosen: Vec<&Volume> = Vec::new();
                for path in &self.linux_mounts {
                    let Some(volume) = containing_volume(&disk.volumes, path) else {
                        return Assessment::unknown(
                            format!("found no mounted volume holding {path}"),
                            "Run `findmnt` to see the mounts, and `sudo shipshape check` for a full view.",
                        );
                    };
                    if !chosen
                        .iter()
                        .any(|seen| seen.mount_point == volume.mount_point)
                    {
                        chosen.push(volume);
                    }
                }
                chosen
            }
            OsFamily::Macos | OsFamily::Windows => disk.volumes.iter().collect(),
        };
        if volumes.is_empty() {
            return Assessment::unknown(
                "found no system volume to check",
                "Run `sudo shipshape check` so the probe can see every volume.",
            );
        }
        let evidence: Vec<String> = volumes.iter().map(|volume| describe(volume)).collect();
        let leaking: Vec<&&Volume> = volumes
            .iter()
            .filter(|volume| !matches!(volume.encryption, VolumeEncryption::Encrypted))
            .collect();
        let unknown: Vec<&&Volume> = leaking
            .iter()
            .copied()
            .filter(|volume| matches!(volume.encryption, VolumeEncryption::Unknown { .. }))
            .collect();
        if leaking.is_empty() {
            let names: Vec<&str> = volumes
                .iter()
                .map(|volume| volume.mount_point.as_str())
                .collect();
            return Assessment::pass(format!("{} encrypted", names.join(", ")))
                .with_evidence(evidence);
        }
        if leaking.len() == unknown.len() {
            let names: Vec<&str> = unknown
                .iter()
                .map(|volume| volume.mount_point.as_str())
                .collect();
            return Assessment::unknown(
                format!("could not tell whether {} is encrypted", names.join(", ")),
                "Run `sudo shipshape check`; if it stays unknown, ask IT to look at this machine's disk layout.",
            )
            .with_evidence(evidence);
        }
        let failing: Vec<&&&Volume> = leaking
            .iter()
            .filter(|volume| !matches!(volume.encryption, VolumeEncryption::Unknown { .. }))
            .collect();
        let names: Vec<String> = failing
            .iter()
            .map(|volume| format!("{} {}", volume.mount_point, state_words(&volume.encryption)))
            .collect();
        let protection_off = failing
            .iter()
            .any(|volume| matches!(volume.encryption, VolumeEncryption::ProtectionOff));
        Assessment::fail(names.join(", "), remediation(family, protection_off))
            .with_evidence(evidence)
    }
}

/// The volume whose mount point is the longest prefix of `path`.
fn containing_volume<'a>(volumes: &'a [Volume], path: &str) -> Option<&'a Volume> {
    volumes
        .iter()
        .filter(|volume| {
            let mount = volume.mount_point.trim_end_matches('/');
            path == volume.mount_point
                || mount.is_empty()
                || path
                    .strip_prefix(mount)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|volume| volume.mount_point.len())
}

fn state_words(state: &VolumeEncryption) -> String {
    let percent =
        |percent: &Option<f64>| percent.map(|p| format!(" ({p:.0}%)")).unwrap_or_default();
    match state {
        VolumeEncryption::Encrypted => "encrypted".to_owned(),
        VolumeEncryption::NotEncrypted => "not encrypted".to_owned(),
        VolumeEncryption::Encrypting { percent: p } => format!("still encrypting{}", percent(p)),
        VolumeEncryption::Decrypting { percent: p } => format!("decrypting{}", percent(p)),
        VolumeEncryption::ProtectionOff => {
            "encrypted but protection is off (key stored in the clear)".to_owned()
        }
        VolumeEncryption::Unknown { reason } => format!("unknown: {reason}"),
    }
}

fn describe(volume: &Volume) -> String {
    let mut line = format!(
        "{}: {}",
        volume.mount_point,
        state_words(&volume.encryption)
    );
    if let Some(method) = &volume.method {
        line.push_str(&format!(", {method}"));
    }
    if let Some(detail) = &volume.detail {
        line.push_str(&format!(" ({detail})"));
    } else if let Some(device) = &volume.device {
        line.push_str(&format!(" on {device}"));
    }
    line
}

fn remediation(family: OsFamily, protection_off: bool) -> String {
    match family {
        OsFamily::Macos => "Turn on FileVault: System Settings → Privacy & Security → FileVault → Turn On… \
             (or run `sudo fdesetup enable`). Keep the recovery key where IT asks you to."
            .to_owned(),
        OsFamily::Windows if protection_off => "Turn BitLocker protection back on: run `manage-bde -protectors -enable C:` \
             in an administrator terminal (or `Resume-BitLocker -MountPoint C:`), then back up the recovery key."
            .to_owned(),
        OsFamily::Windows => "Turn on BitLocker: Settings → Privacy & security → Device encryption, or Control Panel → \
             BitLocker Drive Encryption → Turn on BitLocker (or run `manage-bde -on C: -RecoveryPassword` as administrator)."
            .to_owned(),
        OsFamily::Linux => "Linux cannot encrypt a mounted root filesystem in place: back up your files, reinstall \
             choosing \"Encrypt the new installation\" (LUKS), and restore. A separate data partition can be \
             converted with `cryptsetup reencrypt --encrypt` while unmounted. Ask IT for the supported procedure."
            .to_owned(),
    }
}
