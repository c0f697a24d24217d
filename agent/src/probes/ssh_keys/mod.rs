use shipshape_core::facts::{Observed, SshKeys};

use crate::system::System;

/// Observes this fact group on the machine behind `system`.
pub fn probe(system: &dyn System) -> Observed<SshKeys> {
    let _ = system;
    Observed::unknown("this probe is being written")
}
