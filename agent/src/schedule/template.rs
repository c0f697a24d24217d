//! Filling the templates under `packaging/`: `@NAME@` placeholders, the
//! system-only blocks of the systemd service, and the quoting each format needs.

/// A line of its own that opens a block kept only in system units.
const SYSTEM_ONLY_BEGIN: &str = "@SYSTEM_ONLY_BEGIN@";
/// A line of its own that closes it.
const SYSTEM_ONLY_END: &str = "@SYSTEM_ONLY_END@";

/// Replaces each `@NAME@` by its value.
pub(super) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("@{name}@"), value)
        })
}

/// Keeps the lines between the system-only markers (`system`) or drops them
/// (a user unit); the marker lines themselves always go.
pub(super) fn system_only(template: &str, system: bool) -> String {
    let mut kept = String::with_capacity(template.len());
    let mut inside = false;
    for line in template.split_inclusive('\n') {
        match line.trim_end() {
            SYSTEM_ONLY_BEGIN => inside = true,
            SYSTEM_ONLY_END => inside = false,
            _ if inside && !system => {}
            _ => kept.push_str(line),
        }
    }
    kept
}

/// The `@NAME@` placeholders left in a text: none, once it is filled.
pub fn leftover_placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('@') {
            found.push(&rest[start..start + name_len + 2]);
            rest = &after[name_len + 1..];
        } else {
            rest = after;
        }
    }
    found
}

/// A program path as the first word of systemd's `ExecStart=`: quoted when it
/// holds anything but plain path characters, `%` and `$` doubled because
/// systemd expands specifiers and variables even inside quotes.
pub(super) fn systemd_exec_path(path: &str) -> String {
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._+-:@".contains(c));
    let doubled = path.replace('%', "%%").replace('$', "$$");
    if plain {
        doubled
    } else {
        format!("\"{}\"", doubled.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// A program path as Task Scheduler's `<Command>`: quoted when it has a space.
pub(super) fn windows_command(path: &str) -> String {
    if path.contains(' ') {
        format!("\"{path}\"")
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_placeholder_and_finds_the_ones_left() {
        let filled = fill("a=@A@ b=@B@ a=@A@ c=@C@", &[("A", "1"), ("B", "x@y")]);
        assert_eq!(filled, "a=1 b=x@y a=1 c=@C@");
        assert_eq!(leftover_placeholders(&filled), ["@C@"]);
        assert_eq!(
            leftover_placeholders("user@host @@ a@b.c @1@"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn system_only_blocks_stay_in_system_units_and_markers_always_go() {
        let template = "one\n@SYSTEM_ONLY_BEGIN@\ntwo\nthree\n@SYSTEM_ONLY_END@\nfour\n";
        assert_eq!(system_only(template, true), "one\ntwo\nthree\nfour\n");
        assert_eq!(system_only(template, false), "one\nfour\n");
    }

    #[test]
    fn paths_are_quoted_for_each_format() {
        assert_eq!(
            systemd_exec_path("/usr/bin/shipshape"),
            "/usr/bin/shipshape"
        );
        assert_eq!(
            systemd_exec_path("/opt/Ship Shape/bin/shipshape"),
            "\"/opt/Ship Shape/bin/shipshape\""
        );
        assert_eq!(
            systemd_exec_path("/opt/100%/$HOME"),
            "\"/opt/100%%/$$HOME\""
        );
        assert_eq!(systemd_exec_path("/opt/a\"b\\c"), "\"/opt/a\\\"b\\\\c\"");
        assert_eq!(
            windows_command(r"C:\Program Files\Shipshape\shipshape.exe"),
            r#""C:\Program Files\Shipshape\shipshape.exe""#
        );
        assert_eq!(
            windows_command(r"C:\Shipshape\shipshape.exe"),
            r"C:\Shipshape\shipshape.exe"
        );
    }
}
