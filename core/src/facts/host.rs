use serde::{Deserialize, Serialize};

/// Who the machine is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub hostname: String,
    pub os: OsInfo,
    /// Kernel release (`uname -r`, Darwin version, NT build).
    pub kernel: Option<String>,
    /// CPU architecture as Rust names it (`x86_64`, `aarch64`).
    pub arch: String,
    /// A stable machine identifier: `/etc/machine-id`, IOPlatformUUID or MachineGuid.
    pub hardware_id: Option<String>,
}

/// The operating system, as precise as the probe could tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsInfo {
    pub family: OsFamily,
    /// Machine-friendly id: os-release `ID` on Linux (`debian`, `ubuntu`,
    /// `fedora`), `macos` or `windows`. Policies key minimum versions by it.
    pub id: String,
    /// Human name ("Debian GNU/Linux 12 (bookworm)", "macOS 14.5", "Windows 11 Pro").
    pub name: String,
    /// Dotted version ("12", "24.04", "14.5", "10.0.22631"); `None` when unknown
    /// (Arch and other rolling releases have none).
    pub version: Option<String>,
    /// Build ("23F79", "22631.4460"), where the OS has one.
    pub build: Option<String>,
}

/// The three platforms Shipshape runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    Linux,
    Macos,
    Windows,
}

impl OsFamily {
    /// The family this binary was built for.
    pub const fn current() -> Self {
        if cfg!(target_os = "macos") {
            OsFamily::Macos
        } else if cfg!(target_os = "windows") {
            OsFamily::Windows
        } else {
            OsFamily::Linux
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::Linux => "linux",
            OsFamily::Macos => "macos",
            OsFamily::Windows => "windows",
        }
    }
}

impl std::fmt::Display for OsFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OsFamily::Linux => "Linux",
            OsFamily::Macos => "macOS",
            OsFamily::Windows => "Windows",
        })
    }
}
