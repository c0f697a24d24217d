//! Who the machine is: hostname, OS name and version, kernel, hardware id.
//!
//! Never fails: a part that cannot be read stays empty, because every other
//! check still needs a host to attach its findings to.

mod linux;
pub(crate) mod macos;
pub(crate) mod windows;

pub use linux::parse_os_release;
pub use macos::{SwVers, parse_sw_vers};
pub use windows::{
    RegistryValue, SystemInfo, WindowsVersion, parse_reg_query, parse_systeminfo,
    parse_windows_version,
};

use shipshape_core::facts::{Host, OsFamily};

use crate::system::System;

/// Observes who the machine is. Never fails: what cannot be read stays empty.
pub fn probe(system: &dyn System) -> Host {
    match system.os() {
        OsFamily::Linux => linux::probe(system),
        OsFamily::Macos => macos::probe(system),
        OsFamily::Windows => windows::probe(system),
    }
}

pub use super::ParseError;

/// The trimmed first line of a command's stdout, when it ran, succeeded and printed one.
pub(crate) fn first_line(system: &dyn System, program: &str, args: &[&str]) -> Option<String> {
    let output = system.run(std::path::Path::new(program), args).ok()?;
    if !output.success() {
        return None;
    }
    output
        .stdout
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}
