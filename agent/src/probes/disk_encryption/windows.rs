//! Windows: BitLocker, from `Get-BitLockerVolume` (enum names that do not
//! change with the display language), else `manage-bde -status`. Both need an
//! elevated process; the OS volume and every data volume with a drive letter
//! are reported.

use shipshape_core::facts::{DiskEncryption, Observed, Volume, VolumeEncryption};

use super::{ParseError, failure, run};
use crate::probes::POWERSHELL;
use crate::probes::needs_root;
use crate::probes::powershell::{Record, field, is_rule, list_records, table_records};
use crate::system::System;

const MANAGE_BDE: &[&str] = &[r"C:\Windows\System32\manage-bde.exe"];
const GET_BITLOCKER_VOLUME: &[&str] = &[
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    "Get-BitLockerVolume | Format-List",
];

/// One volume as BitLocker reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct BitLockerVolume {
    /// `C:`; `None` when the output did not name it.
    pub mount_point: Option<String>,
    pub operating_system: bool,
    pub encryption: VolumeEncryption,
    pub method: Option<String>,
    pub detail: String,
}

/// Parses `Get-BitLockerVolume | Format-List`, or its default table view.
pub fn parse_get_bitlockervolume(text: &str) -> Result<Vec<BitLockerVolume>, ParseError> {
    let records = if text.lines().any(is_rule) {
        table_records(text)
    } else {
        list_records(text)
    };
    if records.is_empty() {
        return Err(ParseError::new("Get-BitLockerVolume listed no volume"));
    }
    records.iter().map(bitlocker_record).collect()
}

fn percent(value: Option<&str>) -> Option<f64> {
    value.and_then(|text| {
        text.trim()
            .trim_end_matches('%')
            .replace(',', ".")
            .parse()
            .ok()
    })
}

fn bitlocker_record(record: &Record) -> Result<BitLockerVolume, ParseError> {
    let status = field(record, "VolumeStatus")
        .ok_or_else(|| ParseError::new("a BitLocker volume has no VolumeStatus"))?;
    let protection = field(record, "ProtectionStatus").unwrap_or("not shown");
    let progress = percent(field(record, "EncryptionPercentage"));
    let encryption = match status {
        "FullyEncrypted" | "FullyEncryptedWipeInProgress" | "FullyEncryptedWipePaused" => {
            match protection {
                "On" => VolumeEncryption::Encrypted,
                "Off" => VolumeEncryption::ProtectionOff,
                other => VolumeEncryption::Unknown {
                    reason: format!("BitLocker protection status is {other} (a locked volume?)"),
                },
            }
        }
        "FullyDecrypted" => VolumeEncryption::NotEncrypted,
        "EncryptionInProgress" | "EncryptionPaused" => {
            VolumeEncryption::Encrypting { percent: progress }
        }
        // EncryptionPercentage is what is still encrypted; the fact counts what is done.
        "DecryptionInProgress" | "DecryptionPaused" => VolumeEncryption::Decrypting {
            percent: progress.map(|encrypted| 100.0 - encrypted),
        },
        other => VolumeEncryption::Unknown {
            reason: format!("BitLocker volume status {other}"),
        },
    };
    let volume_type = field(record, "VolumeType").unwrap_or("volume");
    let mut detail = format!("{volume_type}, {status}, protection {protection}");
    if let Some(protectors) = field(record, "KeyProtector") {
        detail.push_str(&format!(", key protectors {protectors}"));
    }
    Ok(BitLockerVolume {
        mount_point: field(record, "MountPoint").map(str::to_owned),
        operating_system: volume_type == "OperatingSystem",
        method: field(record, "EncryptionMethod")
            .filter(|method| *method != "None")
            .map(|method| format!("BitLocker {method}")),
        encryption,
        detail,
    })
}

/// Parses `manage-bde -status` (English labels; other display languages are refused).
pub fn parse_manage_bde(text: &str) -> Result<Vec<BitLockerVolume>, ParseError> {
    let mut records: Vec<(Option<String>, Record)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Volume ") {
            let letter = rest.split_whitespace().next().unwrap_or_default();
            records.push((Some(letter.to_owned()), Vec::new()));
        } else if trimmed.starts_with('[') && trimmed.ends_with(" Volume]") {
            if let Some((_, record)) = records.last_mut() {
                record.push((
                    "Volume Type".to_owned(),
                    trimmed.trim_matches(['[', ']']).to_owned(),
                ));
            }
        } else if let Some((key, value)) = trimmed
            .split_once(':')
            .filter(|_| line.starts_with(char::is_whitespace))
        {
            if records.is_empty() {
                records.push((None, Vec::new()));
            }
            if let Some((_, record)) = records.last_mut() {
                record.push((key.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }
    let volumes: Vec<BitLockerVolume> = records
        .iter()
        .filter(|(_, record)| field(record, "Conversion Status").is_some())
        .map(|(mount_point, record)| manage_bde_record(mount_point.clone(), record))
        .collect();
    if volumes.is_empty() {
        return Err(ParseError::new(
            "manage-bde -status showed no volume with a Conversion Status",
        ));
    }
    Ok(volumes)
}

fn manage_bde_record(mount_point: Option<String>, record: &Record) -> BitLockerVolume {
    let conversion = field(record, "Conversion Status").unwrap_or_default();
    let protection = field(record, "Protection Status").unwrap_or("not shown");
    let progress = percent(field(record, "Percentage Encrypted"));
    let lower = conversion.to_lowercase();
    let encryption = if lower == "fully encrypted" || lower == "used space only encrypted" {
        if protection.eq_ignore_ascii_case("Protection On") {
            VolumeEncryption::Encrypted
        } else if protection.to_lowercase().starts_with("protection off") {
            VolumeEncryption::ProtectionOff
        } else {
            VolumeEncryption::Unknown {
                reason: format!("BitLocker protection status is {protection}"),
            }
        }
    } else if lower == "fully decrypted" {
        VolumeEncryption::NotEncrypted
    } else if lower.starts_with("encryption") {
        VolumeEncryption::Encrypting { percent: progress }
    } else if lower.starts_with("decryption") {
        VolumeEncryption::Decrypting {
            percent: progress.map(|encrypted| 100.0 - encrypted),
        }
    } else {
        VolumeEncryption::Unknown {
            reason: format!("BitLocker conversion status {conversion}"),
        }
    };
    let volume_type = field(record, "Volume Type").unwrap_or("volume");
    BitLockerVolume {
        mount_point,
        operating_system: volume_type == "OS Volume",
        method: field(record, "Encryption Method")
            .filter(|method| *method != "None")
            .map(|method| format!("BitLocker {method}")),
        detail: format!("{volume_type}, {conversion}, {protection}"),
        encryption,
    }
}

/// The OS volume first, then data volumes with a drive letter.
fn volumes(found: Vec<BitLockerVolume>) -> Vec<Volume> {
    let mut found: Vec<BitLockerVolume> = found
        .into_iter()
        .filter(|volume| {
            volume.operating_system || volume.mount_point.as_deref().is_some_and(is_drive_letter)
        })
        .collect();
    found.sort_by_key(|volume| !volume.operating_system);
    found
        .into_iter()
        .map(|volume| {
            let mount_point = volume
                .mount_point
                .unwrap_or_else(|| "unnamed volume".to_owned());
            Volume {
                device: Some(mount_point.clone()),
                mount_point,
                encryption: volume.encryption,
                method: volume.method,
                detail: Some(volume.detail),
            }
        })
        .collect()
}

fn is_drive_letter(mount_point: &str) -> bool {
    let bytes = mount_point.trim_end_matches('\\').as_bytes();
    bytes.len() == 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Observes BitLocker on the OS and data volumes.
pub fn probe(system: &dyn System) -> Observed<DiskEncryption> {
    let powershell = match run(system, &[POWERSHELL], GET_BITLOCKER_VOLUME) {
        Ok(output) if output.success() => {
            parse_get_bitlockervolume(&output.stdout).map_err(|error| error.to_string())
        }
        Ok(output) => Err(failure("Get-BitLockerVolume", &output)),
        Err(error) => Err(error.to_string()),
    };
    let first_reason = match powershell {
        Ok(found) => {
            return Observed::Observed(DiskEncryption {
                volumes: volumes(found),
            });
        }
        Err(reason) => reason,
    };
    match run(system, MANAGE_BDE, &["-status"]) {
        Ok(output) if output.success() => match parse_manage_bde(&output.stdout) {
            Ok(found) => Observed::Observed(DiskEncryption {
                volumes: volumes(found),
            }),
            Err(error) => Observed::unknown(format!("{first_reason}; {error}")),
        },
        Ok(_) if !system.is_privileged() => {
            Observed::unknown(needs_root("reading BitLocker status", system))
        }
        Ok(output) => Observed::unknown(format!(
            "{first_reason}; {}",
            failure("manage-bde -status", &output)
        )),
        Err(error) => Observed::unknown(format!("{first_reason}; {error}")),
    }
}
