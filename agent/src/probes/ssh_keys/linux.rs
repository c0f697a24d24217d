//! Linux homes: the accounts in `/etc/passwd`, and any directory under `/home`
//! (directory-service users have one without a passwd line).

use std::path::{Path, PathBuf};

use super::Home;
use crate::system::{FileKind, System};

/// Home fields that point at no real home.
const NOT_A_HOME: &[&str] = &[
    "",
    "/",
    "/nonexistent",
    "/dev/null",
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/var/empty",
];

/// The accounts of an `/etc/passwd` file with a plausible home, in file order.
pub fn parse_passwd(text: &str) -> Vec<Home> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('+') && !line.starts_with('-'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (name, home) = (*fields.first()?, *fields.get(5)?);
            (!name.is_empty() && !NOT_A_HOME.contains(&home.trim_end_matches('/'))).then(|| Home {
                owner: name.to_owned(),
                dir: PathBuf::from(home),
            })
        })
        .collect()
}

/// Every account's home; the error is why `/etc/passwd` could not be read.
pub(super) fn all_homes(system: &dyn System) -> Result<Vec<Home>, String> {
    let passwd = Path::new("/etc/passwd");
    let text = system.read_to_string(passwd).map_err(|error| {
        format!(
            "reading {} failed ({error}): only the invoking user's keys were examined",
            passwd.display()
        )
    })?;
    let mut homes = parse_passwd(&text);
    for dir in system.read_dir(Path::new("/home")).unwrap_or_default() {
        let is_dir = system
            .symlink_metadata(&dir)
            .is_ok_and(|info| info.kind == FileKind::Dir);
        if is_dir && !homes.iter().any(|home| home.dir == dir) {
            let owner = dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            homes.push(Home { owner, dir });
        }
    }
    Ok(homes)
}

/// The account whose home is `dir`, for when `USER` is unset.
pub(super) fn owner_of(system: &dyn System, dir: &Path) -> Option<String> {
    let text = system.read_to_string(Path::new("/etc/passwd")).ok()?;
    parse_passwd(&text)
        .into_iter()
        .find(|home| home.dir == dir)
        .map(|home| home.owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_skips_homes_that_are_not_homes() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                    # a comment\n\
                    +@netgroup::::::\n\
                    git:x:998:998::/var/lib/git/:/usr/bin/git-shell\n\
                    alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n";
        let homes = parse_passwd(text);
        let names: Vec<(&str, &str)> = homes
            .iter()
            .map(|home| (home.owner.as_str(), home.dir.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("root", "/root"),
                ("git", "/var/lib/git/"),
                ("alice", "/home/alice")
            ]
        );
    }
}
