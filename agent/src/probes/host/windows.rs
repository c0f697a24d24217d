use std::path::Path;

use shipshape_core::facts::{Host, OsFamily, OsInfo};

use super::ParseError;
use crate::system::System;

pub(crate) const REG: &str = r"C:\Windows\System32\reg.exe";
pub(crate) const SYSTEMINFO: &str = r"C:\Windows\System32\systeminfo.exe";
const CURRENT_VERSION_KEY: &str = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
/// The first build of Windows 10; from here on the version is 10.0 whatever the registry says.
const WINDOWS_10_FIRST_BUILD: u32 = 10240;
/// The first build of Windows 11, which still calls itself "Windows 10" in ProductName.
const WINDOWS_11_FIRST_BUILD: u32 = 22000;

/// One value line of `reg query`: `    Name    REG_TYPE    data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryValue {
    pub name: String,
    /// `REG_SZ`, `REG_DWORD`, …
    pub kind: String,
    pub data: String,
}

impl RegistryValue {
    /// A `REG_DWORD` as a number (`reg` prints it in hex: `0x4`).
    pub fn dword(&self) -> Option<u32> {
        let digits = self.data.strip_prefix("0x")?;
        u32::from_str_radix(digits, 16).ok()
    }
}

/// Reads the value lines of `reg query KEY` (key lines, blank lines and the
/// `End of search` trailer are skipped). Names may contain spaces, so a line
/// is split at its `REG_` type.
pub fn parse_reg_query(text: &str) -> Vec<RegistryValue> {
    text.lines()
        .filter(|line| line.starts_with([' ', '\t']))
        .filter_map(|line| {
            let at = line.find("    REG_")?;
            let name = line[..at].trim().to_owned();
            let rest = &line[at..].trim_start();
            let (kind, data) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            Some(RegistryValue {
                name,
                kind: kind.to_owned(),
                data: data.trim().to_owned(),
            })
        })
        .collect()
}

/// The Windows version facts from `HKLM\…\Windows NT\CurrentVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsVersion {
    /// As the registry says it; Windows 11 still says "Windows 10" here.
    pub product_name: Option<String>,
    pub display_version: Option<String>,
    /// "6.3" on every Windows since 8.1; meaningful only before Windows 10.
    pub current_version: Option<String>,
    pub build: u32,
    /// Update build revision: the patch level within a build.
    pub ubr: Option<u32>,
}

/// Reads `reg query "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"`.
pub fn parse_windows_version(text: &str) -> Result<WindowsVersion, ParseError> {
    let values = parse_reg_query(text);
    let get = |name: &str| {
        values
            .iter()
            .find(|value| value.name.eq_ignore_ascii_case(name))
            .filter(|value| !value.data.is_empty())
    };
    let build = get("CurrentBuild")
        .or_else(|| get("CurrentBuildNumber"))
        .and_then(|value| value.data.parse().ok())
        .ok_or_else(|| ParseError::new("reg query", "no CurrentBuild value"))?;
    Ok(WindowsVersion {
        product_name: get("ProductName").map(|value| value.data.clone()),
        display_version: get("DisplayVersion").map(|value| value.data.clone()),
        current_version: get("CurrentVersion").map(|value| value.data.clone()),
        build,
        ubr: get("UBR").and_then(RegistryValue::dword),
    })
}

/// What `systeminfo` says; its list of installed hotfixes is evidence of patching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    pub host_name: Option<String>,
    pub os_name: Option<String>,
    /// "10.0.19042", "6.1.7601".
    pub os_version: String,
    pub build: u32,
    /// In the order systeminfo lists them.
    pub hotfixes: Vec<String>,
}

/// Reads `systeminfo` (English labels; CRLF or LF).
pub fn parse_systeminfo(text: &str) -> Result<SystemInfo, ParseError> {
    let mut host_name = None;
    let mut os_name = None;
    let mut os_version = None;
    let mut hotfixes = Vec::new();
    let mut in_hotfixes = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if in_hotfixes && let Some((_, hotfix)) = line.split_once("]:") {
                hotfixes.push(hotfix.trim().to_owned());
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        in_hotfixes = key == "Hotfix(s)";
        match key {
            "Host Name" => host_name = value,
            "OS Name" => os_name = value,
            "OS Version" => os_version = value,
            _ => {}
        }
    }
    let os_version =
        os_version.ok_or_else(|| ParseError::new("systeminfo", "no \"OS Version\" line"))?;
    let build = os_version
        .rsplit_once("Build ")
        .and_then(|(_, build)| build.trim().parse().ok())
        .ok_or_else(|| {
            ParseError::new("systeminfo", format!("no build number in \"{os_version}\""))
        })?;
    let version = os_version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(SystemInfo {
        host_name,
        os_name,
        os_version: version,
        build,
        hotfixes,
    })
}

/// The product name as people know it: "Windows 11 Pro" for a build Windows
/// itself still labels "Windows 10 Pro".
fn product_name(name: &str, build: u32) -> String {
    let name = name.trim();
    let name = name.strip_prefix("Microsoft ").unwrap_or(name);
    match name.strip_prefix("Windows 10") {
        Some(rest) if build >= WINDOWS_11_FIRST_BUILD => format!("Windows 11{rest}"),
        _ => name.to_owned(),
    }
}

/// "10.0.<build>" from Windows 10 on; before that, the NT version the source gives.
fn version(build: u32, nt_version: Option<&str>) -> String {
    match nt_version {
        Some(nt) if build < WINDOWS_10_FIRST_BUILD => format!("{nt}.{build}"),
        _ => format!("10.0.{build}"),
    }
}

pub(super) fn probe(system: &dyn System) -> Host {
    let mut hostname = system.env("COMPUTERNAME");
    let registry = system
        .run(Path::new(REG), &["query", CURRENT_VERSION_KEY])
        .map_err(|error| error.to_string())
        .and_then(|output| {
            parse_windows_version(&output.stdout).map_err(|error| error.to_string())
        });
    let os = match registry {
        Ok(found) => {
            let version = version(found.build, found.current_version.as_deref());
            OsInfo {
                family: OsFamily::Windows,
                id: "windows".to_owned(),
                name: product_name(
                    found.product_name.as_deref().unwrap_or("Windows"),
                    found.build,
                ),
                version: Some(version),
                build: Some(match found.ubr {
                    Some(ubr) => format!("{}.{ubr}", found.build),
                    None => found.build.to_string(),
                }),
            }
        }
        Err(error) => {
            tracing::debug!(%error, "reg query CurrentVersion");
            let info = system
                .run(Path::new(SYSTEMINFO), &[])
                .ok()
                .and_then(|output| parse_systeminfo(&output.stdout).ok());
            match info {
                Some(info) => {
                    hostname = hostname.or(info.host_name);
                    let nt = info.os_version.rsplit_once('.').map(|(nt, _)| nt);
                    OsInfo {
                        family: OsFamily::Windows,
                        id: "windows".to_owned(),
                        name: product_name(
                            info.os_name.as_deref().unwrap_or("Windows"),
                            info.build,
                        ),
                        version: Some(version(info.build, nt)),
                        build: Some(info.build.to_string()),
                    }
                }
                None => OsInfo {
                    family: OsFamily::Windows,
                    id: "windows".to_owned(),
                    name: "Windows".to_owned(),
                    version: None,
                    build: None,
                },
            }
        }
    };
    Host {
        hostname: hostname.unwrap_or_default(),
        kernel: os.version.clone(),
        os,
        arch: std::env::consts::ARCH.to_owned(),
        hardware_id: None,
    }
}
