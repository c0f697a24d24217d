use shipshape_core::facts::{Host, OsInfo};

use crate::system::System;

/// Observes who the machine is. Never fails: what cannot be read stays empty.
pub fn probe(system: &dyn System) -> Host {
    let family = system.os();
    Host {
        hostname: String::new(),
        os: OsInfo {
            family,
            id: family.as_str().to_owned(),
            name: family.to_string(),
            version: None,
            build: None,
        },
        kernel: None,
        arch: std::env::consts::ARCH.to_owned(),
        hardware_id: None,
    }
}

