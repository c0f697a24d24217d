//! macOS homes: the folders in `/Users` (not `Shared`) and root's `/var/root`.

use std::path::{Path, PathBuf};

use super::{Home, folders_as_homes};
use crate::system::System;

/// Every account's home; the error is why `/Users` could not be listed.
pub(super) fn all_homes(system: &dyn System) -> Result<Vec<Home>, String> {
    let mut homes = folders_as_homes(system, Path::new("/Users"), |name| {
        name == "Shared" || name.starts_with('.')
    })?;
    homes.push(Home {
        owner: "root".to_owned(),
        dir: PathBuf::from("/var/root"),
    });
    Ok(homes)
}
