//! macOS homes: the folders in `/Users` (not `Shared`) and root's `/var/root`.

use std::path::{Path, PathBuf};

use super::Home;
use crate::system::{FileKind, System};

/// Every account's home; the error is why `/Users` could not be listed.
pub(super) fn all_homes(system: &dyn System) -> Result<Vec<Home>, String> {
    let users = Path::new("/Users");
    let entries = system.read_dir(users).map_err(|error| {
        format!(
            "listing {} failed ({error}): only the invoking user's keys were examined",
            users.display()
        )
    })?;
    let mut homes: Vec<Home> = entries
        .into_iter()
        .filter(|dir| {
            system
                .symlink_metadata(dir)
                .is_ok_and(|info| info.kind == FileKind::Dir)
        })
        .filter_map(|dir| {
            let owner = dir.file_name()?.to_string_lossy().into_owned();
            (owner != "Shared" && !owner.starts_with('.')).then_some(Home { owner, dir })
        })
        .collect();
    homes.push(Home {
        owner: "root".to_owned(),
        dir: PathBuf::from("/var/root"),
    });
    Ok(homes)
}
