//! Windows homes: the profile folders in `C:\Users`, without the shared ones.

use std::path::Path;

use super::Home;
use crate::system::{FileKind, System};

/// Profile folders that belong to no one user.
const SHARED_PROFILES: &[&str] = &["public", "default", "default user", "all users"];

/// Every account's profile; the error is why `C:\Users` could not be listed.
pub(super) fn all_homes(system: &dyn System) -> Result<Vec<Home>, String> {
    let users = Path::new(r"C:\Users");
    let entries = system.read_dir(users).map_err(|error| {
        format!(
            "listing {} failed ({error}): only the invoking user's keys were examined",
            users.display()
        )
    })?;
    Ok(entries
        .into_iter()
        .filter(|dir| {
            system
                .symlink_metadata(dir)
                .is_ok_and(|info| info.kind == FileKind::Dir)
        })
        .filter_map(|dir| {
            let owner = dir.file_name()?.to_string_lossy().into_owned();
            (!SHARED_PROFILES.contains(&owner.to_lowercase().as_str()))
                .then_some(Home { owner, dir })
        })
        .collect())
}
