use std::path::Path;

use shipshape_core::facts::{Host, OsFamily, OsInfo};

use crate::system::System;

/// Reads os-release(5) text: `KEY=value` lines, values optionally quoted
/// shell-style, `#` comments. Missing keys take the defaults the format defines
/// (`ID=linux`, `NAME=Linux`).
pub fn parse_os_release(text: &str) -> OsInfo {
    let mut id = None;
    let mut name = None;
    let mut pretty_name = None;
    let mut version_id = None;
    let mut build_id = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        let slot = match key.trim() {
            "ID" => &mut id,
            "NAME" => &mut name,
            "PRETTY_NAME" => &mut pretty_name,
            "VERSION_ID" => &mut version_id,
            "BUILD_ID" => &mut build_id,
            _ => continue,
        };
        *slot = Some(value).filter(|value| !value.is_empty());
    }
    OsInfo {
        family: OsFamily::Linux,
        id: id.unwrap_or_else(|| "linux".to_owned()),
        name: pretty_name.or(name).unwrap_or_else(|| "Linux".to_owned()),
        // Some images leave a placeholder (`TEMPLATE_VERSION_ID`): a version starts with a digit.
        version: version_id.filter(|version| version.starts_with(|c: char| c.is_ascii_digit())),
        build: build_id,
    }
}

/// Removes shell quoting: `"a \"b\""`, `'a b'` or a bare word.
fn unquote(value: &str) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(quote @ ('"' | '\'')) => {
            let mut out = String::new();
            let mut escaped = false;
            for c in chars {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' && quote == '"' {
                    escaped = true;
                } else if c == quote {
                    break;
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => value.to_owned(),
    }
}

fn read_trimmed(system: &dyn System, paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|path| {
        let text = system.read_to_string(Path::new(path)).ok()?;
        text.lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
    })
}

pub(super) fn probe(system: &dyn System) -> Host {
    let os = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| system.read_to_string(Path::new(path)).ok())
        .map(|text| parse_os_release(&text))
        .unwrap_or_else(|| parse_os_release(""));
    // machine-id is 32 hex digits; on a first boot it can read "uninitialized".
    let hardware_id = read_trimmed(system, &["/etc/machine-id", "/var/lib/dbus/machine-id"])
        .filter(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()));
    Host {
        hostname: read_trimmed(system, &["/proc/sys/kernel/hostname", "/etc/hostname"])
            .unwrap_or_default(),
        os,
        kernel: read_trimmed(system, &["/proc/sys/kernel/osrelease"]),
        arch: std::env::consts::ARCH.to_owned(),
        hardware_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_keep_escaped_quotes_and_spaces() {
        let os = parse_os_release(
            "ID='my distro'\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\nVERSION_ID=3.1\n",
        );
        assert_eq!(os.id, "my distro");
        assert_eq!(os.name, "A \"quoted\" name");
        assert_eq!(os.version.as_deref(), Some("3.1"));
    }

    #[test]
    fn an_empty_file_takes_the_defaults() {
        let os = parse_os_release("");
        assert_eq!(
            (os.id.as_str(), os.name.as_str(), os.version),
            ("linux", "Linux", None)
        );
    }
}
