use std::ops::Range;

use jiff::Timestamp;
use toml::Spanned;

use super::{Assessment, Check, CheckId, Common, Outcome, check_policy, observed};
use crate::facts::{Facts, OsFamily, SshKey};

check_policy! {
    /// `[checks.ssh-keys]`
    SshKeysPolicy => CheckId::SshKeys, {
        /// Every private key must have a passphrase.
        #[serde(default = "yes")]
        require_passphrase: bool,
        /// FIDO `sk-*` keys need no passphrase: the secret never leaves the token.
        #[serde(default = "yes")]
        allow_hardware_keys_without_passphrase: bool,
        /// Smallest acceptable RSA modulus (OpenSSH's own default since 8.0 is 3072).
        #[serde(default = "default_min_rsa_bits")]
        min_rsa_bits: u32,
        /// OpenSSH algorithm names that may not be used.
        #[serde(default = "default_forbidden")]
        forbidden_algorithms: Vec<String>,
        /// Most permissive file mode allowed, in octal ("0600": only the owner reads it).
        #[serde(default = "default_max_mode")]
        max_mode: Spanned<String>,
    }
}

fn yes() -> bool {
    true
}

fn default_min_rsa_bits() -> u32 {
    3072
}

fn default_forbidden() -> Vec<String> {
    vec!["ssh-dss".to_owned()]
}

fn default_max_mode() -> Spanned<String> {
    Spanned::new(0..0, "0600".to_owned())
}

impl SshKeysPolicy {
    fn max_mode_bits(&self) -> Result<u32, String> {
        let text = self.max_mode.get_ref();
        u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|mode| *mode <= 0o777)
            .ok_or_else(|| format!("max-mode `{text}` is not an octal file mode such as \"0600\""))
    }

    fn problems(&self, key: &SshKey, max_mode: u32) -> (Vec<String>, Vec<String>) {
        let mut fails = Vec::new();
        let mut unknowns = Vec::new();
        match key.algorithm.as_deref() {
            None => unknowns.push(format!(
                "algorithm unknown{}",
                key.note
                    .as_deref()
                    .map(|note| format!(" ({note})"))
                    .unwrap_or_default()
            )),
            Some(algorithm) => {
                if self
                    .forbidden_algorithms
                    .iter()
                    .any(|forbidden| forbidden == algorithm)
                {
                    fails.push(format!("{} is forbidden", algorithm_name(algorithm)));
                }
                if algorithm == "ssh-rsa" {
                    match key.bits {
                        Some(bits) if bits < self.min_rsa_bits => {
                            fails.push(format!("RSA {bits} bits < {}", self.min_rsa_bits))
                        }
                        Some(_) => {}
                        None => unknowns.push("RSA key size unknown".to_owned()),
                    }
                }
            }
        }
        let exempt = key.hardware_backed && self.allow_hardware_keys_without_passphrase;
        if self.require_passphrase && !key.encrypted && !exempt {
            fails.push("no passphrase".to_owned());
        }
        if let Some(mode) = key.mode {
            if mode & 0o777 & !max_mode != 0 {
                fails.push(format!(
                    "mode {:04o} (readable by others than its owner)",
                    mode & 0o7777
                ));
            }
        }
        (fails, unknowns)
    }
}

impl Check for SshKeysPolicy {
    fn id(&self) -> CheckId {
        Self::ID
    }

    fn common(&self) -> Common<'_> {
        self.common_settings()
    }

    fn validate(&self) -> Result<(), (Range<usize>, String)> {
        self.max_mode_bits()
            .map(|_| ())
            .map_err(|message| (self.max_mode.span(), message))
    }

    fn assess(&self, facts: &Facts, _now: Timestamp) -> Assessment {
        let keys = match observed(&facts.ssh_keys, "which SSH keys exist") {
            Ok(keys) => keys,
            Err(unknown) => return unknown,
        };
        let max_mode = self.max_mode_bits().unwrap_or(0o600);
        let family = facts.host.os.family;
        let mut evidence = Vec::new();
        let mut failing = Vec::new();
        let mut unknown = Vec::new();
        let mut fixes = Vec::new();
        for key in &keys.keys {
            let (fails, unknowns) = self.problems(key, max_mode);
            evidence.push(describe(key));
            if !fails.is_empty() {
                failing.push(format!("{} ({})", key.path, fails.join(", ")));
                fixes.extend(fixes_for(key, &fails, family));
            } else if !unknowns.is_empty() {
                unknown.push(format!("{} ({})", key.path, unknowns.join(", ")));
            }
        }
        evidence.extend(keys.unreadable.iter().map(|why| format!("not read: {why}")));
        let (outcome, summary) = if !failing.is_empty() {
            (
                Outcome::Fail,
                format!(
                    "{} of {} keys leak: {}",
                    failing.len(),
                    keys.keys.len(),
                    failing.join("; ")
                ),
            )
        } else if !unknown.is_empty() || !keys.unreadable.is_empty() {
            fixes.push("Run `sudo shipshape check` so every user's ~/.ssh can be read.".to_owned());
            let mut what = unknown;
            what.extend(keys.unreadable.iter().cloned());
            (
                Outcome::Unknown,
                format!("could not judge every key: {}", what.join("; ")),
            )
        } else if keys.keys.is_empty() {
            (Outcome::Pass, "no private keys found".to_owned())
        } else {
            (
                Outcome::Pass,
                format!(
                    "{} key{} protected and strong",
                    keys.keys.len(),
                    if keys.keys.len() == 1 { "" } else { "s" }
                ),
            )
        };
        fixes.dedup();
        Assessment {
            outcome,
            summary,
            evidence,
            remediation: (outcome != Outcome::Pass).then(|| fixes.join("\n")),
        }
    }
}

fn algorithm_name(algorithm: &str) -> &str {
    match algorithm {
        "ssh-dss" => "DSA",
        "ssh-rsa" => "RSA",
        "ssh-ed25519" => "Ed25519",
        other => other,
    }
}

fn describe(key: &SshKey) -> String {
    let mut parts = vec![
        key.algorithm
            .as_deref()
            .map_or("unknown algorithm", algorithm_name)
            .to_owned(),
    ];
    if let Some(bits) = key.bits {
        parts.push(format!("{bits} bits"));
    }
    parts.push(
        if key.encrypted {
            "passphrase"
        } else {
            "no passphrase"
        }
        .to_owned(),
    );
    if key.hardware_backed {
        parts.push("hardware-backed".to_owned());
    }
    if let Some(mode) = key.mode {
        parts.push(format!("mode {:04o}", mode & 0o7777));
    }
    if let Some(fingerprint) = &key.fingerprint {
        parts.push(fingerprint.clone());
    }
    format!("{} ({}): {}", key.path, key.owner, parts.join(", "))
}

fn fixes_for(key: &SshKey, fails: &[String], family: OsFamily) -> Vec<String> {
    let path = &key.path;
    let mut fixes = Vec::new();
    let weak = fails
        .iter()
        .any(|fail| fail.contains("forbidden") || fail.starts_with("RSA "));
    if weak {
        fixes.push(format!(
            "Replace {path}: `ssh-keygen -t ed25519` makes a strong new key; put its .pub where the old one was \
             authorised, then delete the old key."
        ));
    } else if fails.iter().any(|fail| fail == "no passphrase") {
        fixes.push(format!("Add a passphrase: `ssh-keygen -p -f {path}`."));
    }
    if fails.iter().any(|fail| fail.starts_with("mode ")) {
        fixes.push(match family {
            OsFamily::Windows => format!("Restrict {path} to your account: `icacls {path} /inheritance:r /grant:r %USERNAME%:R`."),
            _ => format!("Make it private: `chmod 600 {path}`."),
        });
    }
    fixes
}
