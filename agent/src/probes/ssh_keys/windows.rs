//! Windows homes: the profile folders in `C:\Users`, without the shared ones.

use std::path::Path;

use super::{Home, folders_as_homes};
use crate::system::System;

/// Profile folders that belong to no one user.
const SHARED_PROFILES: &[&str] = &["public", "default", "default user", "all users"];

/// Every account's profile; the error is why `C:\Users` could not be listed.
pub(super) fn all_homes(system: &dyn System) -> Result<Vec<Home>, String> {
    folders_as_homes(system, Path::new(r"C:\Users"), |name| {
        SHARED_PROFILES.contains(&name.to_lowercase().as_str())
    })
}
