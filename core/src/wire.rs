//! The JSON the agent and the server exchange over `/v1/…`: one definition,
//! used by both sides, so neither can drift from the other.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::facts::{Facts, Host};
use crate::finding::Finding;
use crate::report::CheckReport;

/// `POST /v1/enroll`: an enrollment token buys a device id for a public key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token as `shipshape-server token create --enroll` printed it.
    pub token: String,
    /// The device's Ed25519 public key: 32 bytes, standard base64.
    pub public_key: String,
    /// Who is asking: hostname, OS, hardware id.
    pub host: Host,
}

/// The answer to a successful enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    /// The device id; the agent signs every later request with it as `keyid`.
    pub device_id: String,
}

/// `POST /v1/reports` (signed): one run of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSubmission {
    /// Chosen by the agent (a UUID v7); a retry carries the same id and is
    /// answered with the same receipt, never stored twice.
    pub id: String,
    /// Everything the probes observed: the server re-grades these.
    pub facts: Facts,
    /// The agent's own verdict, under the policy it used.
    pub report: CheckReport,
    /// Reports the agent dropped from its full outbox since its last
    /// delivered one: the server counts them, so a gap is never silent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

/// `POST /v1/heartbeats` (signed): a run whose facts did not change since
/// the last acknowledged report, sent as their hash instead of in full. The
/// server grades the facts it already holds, or answers 409 with the code
/// [`RESEND_FULL`] when it holds none with that hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// As in [`ReportSubmission::id`]: the agent's idempotency key.
    pub id: String,
    /// [`facts_hash`] of the facts this run observed.
    pub facts_hash: String,
    pub report: CheckReport,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

/// The [`ApiError::code`] of a heartbeat whose facts the server does not hold.
pub const RESEND_FULL: &str = "resend-full";

/// The hash that stands for `facts` in a heartbeat: SHA-256 of their JSON,
/// as lowercase hex. Both sides compute it from the same typed value, so
/// field order and whitespace cannot make two equal facts differ.
pub fn facts_hash(facts: &Facts) -> String {
    facts_json_hash(&serde_json::to_vec(facts).unwrap_or_default())
}

/// [`facts_hash`] of facts already serialized by `serde_json` (as a server
/// stores them): the same hash without serializing them again.
pub fn facts_json_hash(json: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(json)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// The server's grade of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// A failing finding at or above the leak severity, after grace.
    Leaky,
    /// No report for longer than `stale-after`.
    Silent,
    /// No leak, but some check could not tell.
    Unknown,
    /// Every check passes, waits in grace, or is excepted or skipped.
    Compliant,
}

impl DeviceStatus {
    /// The lowercase name used in JSON, CSV and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Leaky => "leaky",
            DeviceStatus::Silent => "silent",
            DeviceStatus::Unknown => "unknown",
            DeviceStatus::Compliant => "compliant",
        }
    }
}

impl std::fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeviceStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "leaky" => Ok(DeviceStatus::Leaky),
            "silent" => Ok(DeviceStatus::Silent),
            "unknown" => Ok(DeviceStatus::Unknown),
            "compliant" => Ok(DeviceStatus::Compliant),
            other => Err(format!(
                "`{other}` is not a device status: expected leaky, silent, unknown or compliant"
            )),
        }
    }
}

/// The server's acknowledgement of a stored report. Once the agent holds
/// one, the report is safe and may leave the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub report_id: String,
    pub device_id: String,
    /// When the server first stored the report (a retry gets the same time).
    pub received_at: Timestamp,
    /// The device's grade under the server's active policy.
    pub status: DeviceStatus,
    /// The server's findings, which may differ from the agent's when the
    /// agent judged with another policy.
    pub findings: Vec<Finding>,
}

/// Every error the API answers with: a message a person can act on, and for
/// malformed JSON the path of the offending field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiError {
    pub error: String,
    /// The JSON path of the field that is wrong (`facts.host.os.family`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A machine-readable reason where the agent acts on it ([`RESEND_FULL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(hostname: &str) -> Facts {
        let mut facts: Facts = serde_json::from_value(serde_json::json!({
            "host": { "hostname": "laptop", "os": { "family": "linux", "id": "debian",
                      "name": "Debian GNU/Linux 12 (bookworm)", "version": "12", "build": null },
                      "kernel": "6.1.0", "arch": "x86_64", "hardware_id": null },
            "disk_encryption": { "unknown": { "reason": "not probed" } },
            "os_updates": { "unknown": { "reason": "not probed" } },
            "firewall": { "unknown": { "reason": "not probed" } },
            "ssh_keys": { "unknown": { "reason": "not probed" } },
            "ssh_server": { "unknown": { "reason": "not probed" } }
        }))
        .expect("valid facts");
        facts.host.hostname = hostname.to_owned();
        facts
    }

    #[test]
    fn equal_facts_hash_equal_and_any_change_changes_the_hash() {
        let hash = facts_hash(&facts("laptop"));
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(hash, facts_hash(&facts("laptop")));
        assert_ne!(hash, facts_hash(&facts("laptop2")));
    }

    #[test]
    fn the_hash_of_the_stored_json_is_the_hash_of_the_facts() {
        let facts = facts("laptop");
        let stored = serde_json::to_string(&facts).expect("facts serialize");
        assert_eq!(facts_json_hash(stored.as_bytes()), facts_hash(&facts));
        assert_ne!(facts_json_hash(b"{}"), facts_hash(&facts));
    }

    #[test]
    fn an_error_without_a_code_reads_and_writes_without_one() {
        let json = serde_json::json!({ "error": "nope" });
        let error: ApiError = serde_json::from_value(json).expect("an error without code");
        assert_eq!(error.code, None);
        assert_eq!(
            serde_json::to_value(&error).expect("serializes"),
            serde_json::json!({ "error": "nope" })
        );
    }

    /// The round trip `fuzz/`'s `report_json` target checks: serde_json's
    /// default float parsing is off by one bit for some numbers it writes
    /// itself (fixed by its `float_roundtrip` feature), so the
    /// server hashed other facts than the agent sent, and every heartbeat of
    /// a volume mid-decryption was answered "resend full". The agent's
    /// BitLocker probe reports 68.1% encrypted as `100.0 - 68.1` decrypted.
    #[test]
    fn facts_with_any_percent_hash_the_same_after_the_wire() {
        use crate::facts::{DiskEncryption, Observed, Volume, VolumeEncryption};
        for percent in [100.0 - 68.1, 100.0 * 2.0 / 13.0] {
            let mut sent = facts("laptop");
            sent.disk_encryption = Observed::Observed(DiskEncryption {
                volumes: vec![Volume {
                    mount_point: "C:".to_owned(),
                    device: None,
                    encryption: VolumeEncryption::Decrypting {
                        percent: Some(percent),
                    },
                    method: Some("XtsAes128".to_owned()),
                    detail: None,
                }],
            });
            let json = serde_json::to_string(&sent).expect("facts serialize");
            let received: Facts = serde_json::from_str(&json).expect("facts parse back");
            assert_eq!(received, sent, "{json}");
            assert_eq!(facts_hash(&received), facts_hash(&sent));
        }
    }
}
