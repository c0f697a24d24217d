use std::path::Path;

use shipshape_core::facts::{Host, OsFamily, OsInfo};

use super::{ParseError, first_line};
use crate::system::System;

/// What `sw_vers` says about the running macOS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwVers {
    /// "macOS", or "Mac OS X" before Big Sur.
    pub product_name: String,
    pub product_version: String,
    pub build_version: Option<String>,
}

/// Reads `sw_vers`: `Key:` then one tab (before macOS 11) or two, then the value.
pub fn parse_sw_vers(text: &str) -> Result<SwVers, ParseError> {
    let mut product_name = None;
    let mut product_version = None;
    let mut build_version = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        match key.trim() {
            "ProductName" => product_name = value,
            "ProductVersion" => product_version = value,
            "BuildVersion" => build_version = value,
            _ => {}
        }
    }
    let product_version =
        product_version.ok_or_else(|| ParseError::new("sw_vers", "no ProductVersion line"))?;
    Ok(SwVers {
        product_name: product_name.unwrap_or_else(|| "macOS".to_owned()),
        product_version,
        build_version,
    })
}

/// The running macOS, as `sw_vers` tells it.
pub(crate) fn sw_vers(system: &dyn System) -> Result<SwVers, String> {
    let output = system
        .run(Path::new("/usr/bin/sw_vers"), &[])
        .map_err(|error| error.to_string())?;
    parse_sw_vers(&output.stdout).map_err(|error| error.to_string())
}

pub(super) fn probe(system: &dyn System) -> Host {
    let os = match sw_vers(system) {
        Ok(sw_vers) => OsInfo {
            family: OsFamily::Macos,
            id: "macos".to_owned(),
            name: sw_vers.product_name,
            version: Some(sw_vers.product_version),
            build: sw_vers.build_version,
        },
        Err(error) => {
            tracing::debug!(%error, "sw_vers");
            OsInfo {
                family: OsFamily::Macos,
                id: "macos".to_owned(),
                name: "macOS".to_owned(),
                version: None,
                build: None,
            }
        }
    };
    let hostname = first_line(system, "/bin/hostname", &[])
        .or_else(|| first_line(system, "/usr/sbin/scutil", &["--get", "LocalHostName"]))
        .unwrap_or_default();
    Host {
        hostname,
        os,
        kernel: first_line(system, "/usr/bin/uname", &["-r"]),
        arch: std::env::consts::ARCH.to_owned(),
        hardware_id: None,
    }
}
