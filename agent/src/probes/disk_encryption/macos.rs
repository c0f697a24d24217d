//! macOS: FileVault, from `fdesetup status`; `diskutil apfs list -plist`
//! names the APFS Data volume it protects and stands in when fdesetup cannot
//! answer. Both run without root.

use shipshape_core::facts::{DiskEncryption, Observed, Volume, VolumeEncryption};

use super::{ParseError, failure, run};
use crate::system::System;

const FDESETUP: &[&str] = &["/usr/bin/fdesetup"];
const DISKUTIL: &[&str] = &["/usr/sbin/diskutil"];

/// Parses `fdesetup status` ("FileVault is On.", "FileVault is Off.",
/// "Encryption in progress: Percent completed = 45", "Decryption in progress…").
pub fn parse_fdesetup_status(text: &str) -> Result<VolumeEncryption, ParseError> {
    let percent = |line: &str| {
        line.split_once('=')
            .and_then(|(_, value)| value.trim().trim_end_matches('%').parse::<f64>().ok())
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    if let Some(line) = lines
        .iter()
        .find(|line| line.starts_with("Decryption in progress"))
    {
        return Ok(VolumeEncryption::Decrypting {
            percent: percent(line),
        });
    }
    if let Some(line) = lines
        .iter()
        .find(|line| line.starts_with("Encryption in progress"))
    {
        return Ok(VolumeEncryption::Encrypting {
            percent: percent(line),
        });
    }
    if lines.iter().any(|line| line.starts_with("FileVault is On")) {
        return Ok(VolumeEncryption::Encrypted);
    }
    // Also "FileVault is Off, but will be enabled after the next restart.": off until then.
    if lines
        .iter()
        .any(|line| line.starts_with("FileVault is Off"))
    {
        return Ok(VolumeEncryption::NotEncrypted);
    }
    Err(ParseError::new(format!(
        "fdesetup status said neither On nor Off: `{}`",
        text.trim()
    )))
}

/// One APFS volume from `diskutil apfs list -plist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApfsVolume {
    pub container: String,
    pub device: String,
    pub name: String,
    pub roles: Vec<String>,
    pub filevault: bool,
    /// An encryption or decryption is running.
    pub migrating: bool,
}

/// Parses `diskutil apfs list -plist` into its volumes.
pub fn parse_apfs_list(text: &str) -> Result<Vec<ApfsVolume>, ParseError> {
    let root = plist::parse(text)?;
    let containers = root
        .get("Containers")
        .and_then(plist::Value::as_array)
        .ok_or_else(|| ParseError::new("diskutil apfs list printed no Containers"))?;
    let mut volumes = Vec::new();
    for container in containers {
        let reference = container
            .get("ContainerReference")
            .and_then(plist::Value::as_str)
            .unwrap_or_default();
        for volume in container
            .get("Volumes")
            .and_then(plist::Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |key: &str| {
                volume
                    .get(key)
                    .and_then(plist::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let flag = |key: &str| {
                volume
                    .get(key)
                    .and_then(plist::Value::as_bool)
                    .unwrap_or(false)
            };
            volumes.push(ApfsVolume {
                container: reference.to_owned(),
                device: text("DeviceIdentifier"),
                name: text("Name"),
                roles: volume
                    .get("Roles")
                    .and_then(plist::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|role| role.as_str().map(str::to_owned))
                    .collect(),
                filevault: flag("FileVault"),
                migrating: flag("CryptoMigrationOn"),
            });
        }
    }
    Ok(volumes)
}

/// Observes FileVault on the startup disk's Data volume.
pub fn probe(system: &dyn System) -> Observed<DiskEncryption> {
    let data = run(system, DISKUTIL, &["apfs", "list", "-plist"])
        .ok()
        .filter(|output| output.success())
        .and_then(|output| parse_apfs_list(&output.stdout).ok())
        .and_then(|volumes| {
            volumes
                .into_iter()
                .find(|volume| volume.roles.iter().any(|role| role == "Data"))
        });
    let status = match run(system, FDESETUP, &["status"]) {
        Ok(output) if output.success() => {
            parse_fdesetup_status(&output.stdout).map_err(|error| error.to_string())
        }
        Ok(output) => Err(failure("fdesetup status", &output)),
        Err(error) => Err(format!("cannot ask fdesetup: {error}")),
    };
    let encryption = match (status, &data) {
        (Ok(state), _) => state,
        (Err(_), Some(data)) if !data.migrating => {
            if data.filevault {
                VolumeEncryption::Encrypted
            } else {
                VolumeEncryption::NotEncrypted
            }
        }
        (Err(reason), _) => VolumeEncryption::Unknown { reason },
    };
    let method = matches!(
        encryption,
        VolumeEncryption::Encrypted | VolumeEncryption::Encrypting { .. }
    )
    .then(|| "FileVault".to_owned());
    let detail = data.as_ref().map(|data| {
        format!(
            "APFS volume \"{}\" ({}) in container {}, FileVault {}",
            data.name,
            data.device,
            data.container,
            if data.filevault { "yes" } else { "no" }
        )
    });
    Observed::Observed(DiskEncryption {
        volumes: vec![Volume {
            mount_point: "/".to_owned(),
            device: data.map(|data| data.device),
            encryption,
            method,
            detail,
        }],
    })
}

/// Just enough of Apple's XML property lists for diskutil's output.
mod plist {
    use super::ParseError;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Dict(Vec<(String, Value)>),
        Array(Vec<Value>),
        String(String),
        Bool(bool),
        /// Numbers, dates and data: read as text, unused here.
        Scalar(String),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Dict(entries) => entries
                    .iter()
                    .find(|(name, _)| name == key)
                    .map(|(_, value)| value),
                _ => None,
            }
        }

        pub fn as_array(&self) -> Option<&[Value]> {
            match self {
                Value::Array(items) => Some(items),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(text) => Some(text),
                _ => None,
            }
        }

        pub fn as_bool(&self) -> Option<bool> {
            match self {
                Value::Bool(flag) => Some(*flag),
                _ => None,
            }
        }
    }

    /// Parses the value inside `<plist>`.
    pub fn parse(text: &str) -> Result<Value, ParseError> {
        let start = text
            .find("<plist")
            .and_then(|at| text[at..].find('>').map(|end| at + end + 1))
            .ok_or_else(|| ParseError::new("not a property list: no <plist> element"))?;
        let mut reader = Reader {
            rest: &text[start..],
        };
        reader.value()
    }

    struct Reader<'a> {
        rest: &'a str,
    }

    impl Reader<'_> {
        /// The next tag's inside (`dict`, `/dict`, `true/`), skipping text between tags.
        fn tag(&mut self) -> Result<String, ParseError> {
            let open = self
                .rest
                .find('<')
                .ok_or_else(|| ParseError::new("property list ends early"))?;
            let close = self.rest[open..]
                .find('>')
                .map(|at| open + at)
                .ok_or_else(|| ParseError::new("property list has an unclosed tag"))?;
            let tag = self.rest[open + 1..close].trim().to_owned();
            self.rest = &self.rest[close + 1..];
            Ok(tag)
        }

        /// The text up to `</name>`, with XML entities decoded.
        fn text(&mut self, name: &str) -> Result<String, ParseError> {
            let end = format!("</{name}>");
            let at = self.rest.find(&end).ok_or_else(|| {
                ParseError::new(format!("property list has an unclosed <{name}>"))
            })?;
            let text = self.rest[..at]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&");
            self.rest = &self.rest[at + end.len()..];
            Ok(text)
        }

        fn value(&mut self) -> Result<Value, ParseError> {
            let tag = self.tag()?;
            self.value_of(&tag)
        }

        fn value_of(&mut self, tag: &str) -> Result<Value, ParseError> {
            match tag {
                "dict" => {
                    let mut entries = Vec::new();
                    loop {
                        match self.tag()?.as_str() {
                            "/dict" => return Ok(Value::Dict(entries)),
                            "key" => {
                                let key = self.text("key")?;
                                entries.push((key, self.value()?));
                            }
                            other => {
                                return Err(ParseError::new(format!(
                                    "property list dict has <{other}> where a key belongs"
                                )));
                            }
                        }
                    }
                }
                "array" => {
                    let mut items = Vec::new();
                    loop {
                        match self.tag()?.as_str() {
                            "/array" => return Ok(Value::Array(items)),
                            other => items.push(self.value_of(other)?),
                        }
                    }
                }
                "dict/" => Ok(Value::Dict(Vec::new())),
                "array/" => Ok(Value::Array(Vec::new())),
                "true/" => Ok(Value::Bool(true)),
                "false/" => Ok(Value::Bool(false)),
                "string/" => Ok(Value::String(String::new())),
                "string" => self.text("string").map(Value::String),
                "integer" | "real" | "date" | "data" => self.text(tag).map(Value::Scalar),
                other => Err(ParseError::new(format!(
                    "property list has an unexpected <{other}>"
                ))),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn nested_values_and_entities() {
            let text = "<plist version=\"1.0\"><dict><key>A</key><array><string>x &amp; y</string><true/></array>\
                        <key>B</key><integer>3</integer><key>C</key><dict/></dict></plist>";
            let value = parse(text).unwrap();
            let items = value.get("A").and_then(Value::as_array).unwrap();
            assert_eq!(items[0].as_str(), Some("x & y"));
            assert_eq!(items[1].as_bool(), Some(true));
            assert_eq!(value.get("B"), Some(&Value::Scalar("3".to_owned())));
            assert_eq!(value.get("C"), Some(&Value::Dict(Vec::new())));
            assert!(parse("<plist><dict><string>no key</string></dict></plist>").is_err());
            assert!(parse("no plist").is_err());
        }
    }
}
