//! The settings sshd applies, from `sshd -T` or from its config files.
//!
//! Reading the files follows sshd's own rules: keywords are case-insensitive,
//! the first value obtained wins, `Include` is expanded in place (relative to
//! the config directory, globs sorted), and lines after a `Match` apply only
//! to some connections, so they do not count for the global value; a `Match`
//! block ends with the file it is in.

use std::io;
use std::path::{Path, PathBuf};

use shipshape_core::facts::{Observed, SshdConfig};

use super::ParseError;
use crate::probes::needs_root;
use crate::system::{FileKind, System};

/// sshd's own limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

/// The login settings seen so far; `None` until a line sets one.
#[derive(Debug, Default)]
struct Settings {
    password_authentication: Option<bool>,
    kbd_interactive_authentication: Option<bool>,
    use_pam: Option<bool>,
    permit_empty_passwords: Option<bool>,
    permit_root_login: Option<String>,
}

impl Settings {
    /// Takes `value` for `keyword` unless an earlier line already set it.
    fn apply(
        &mut self,
        keyword: &str,
        value: &str,
        place: &dyn Fn() -> String,
    ) -> Result<(), ParseError> {
        let flag = |slot: &mut Option<bool>| -> Result<(), ParseError> {
            if slot.is_none() {
                *slot = Some(yes_no(value).ok_or_else(|| bad_value(place(), keyword, value))?);
            }
            Ok(())
        };
        match keyword.to_ascii_lowercase().as_str() {
            "passwordauthentication" => flag(&mut self.password_authentication),
            "kbdinteractiveauthentication" | "challengeresponseauthentication" => {
                flag(&mut self.kbd_interactive_authentication)
            }
            "usepam" => flag(&mut self.use_pam),
            "permitemptypasswords" => flag(&mut self.permit_empty_passwords),
            "permitrootlogin" => {
                if self.permit_root_login.is_none() {
                    let normalized = match value.to_ascii_lowercase().as_str() {
                        "without-password" | "prohibit-password" => "prohibit-password",
                        "yes" => "yes",
                        "no" => "no",
                        "forced-commands-only" => "forced-commands-only",
                        _ => return Err(bad_value(place(), keyword, value)),
                    };
                    self.permit_root_login = Some(normalized.to_owned());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The settings with sshd's compiled-in defaults for what no line set.
    fn finish(self, source: String) -> SshdConfig {
        SshdConfig {
            source,
            password_authentication: self.password_authentication.unwrap_or(true),
            kbd_interactive_authentication: self.kbd_interactive_authentication.unwrap_or(true),
            use_pam: self.use_pam.unwrap_or(false),
            permit_empty_passwords: self.permit_empty_passwords.unwrap_or(false),
            permit_root_login: self
                .permit_root_login
                .unwrap_or_else(|| "prohibit-password".to_owned()),
        }
    }
}

fn yes_no(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn bad_value(place: String, keyword: &str, value: &str) -> ParseError {
    ParseError::BadValue {
        place,
        keyword: keyword.to_owned(),
        value: value.to_owned(),
    }
}

/// Parses `sshd -T`: one lowercase `keyword value…` per line, every setting printed.
pub fn parse_sshd_t(text: &str) -> Result<SshdConfig, ParseError> {
    let mut settings = Settings::default();
    for (number, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        let (Some(keyword), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        settings.apply(keyword, value, &|| format!("sshd -T line {}", number + 1))?;
    }
    if settings.password_authentication.is_none() {
        return Err(ParseError::Missing("passwordauthentication"));
    }
    if settings.permit_root_login.is_none() {
        return Err(ParseError::Missing("permitrootlogin"));
    }
    if settings.kbd_interactive_authentication.is_none() {
        return Err(ParseError::Missing("kbdinteractiveauthentication"));
    }
    Ok(settings.finish("sshd -T".to_owned()))
}

/// Splits a config line into words as sshd does: whitespace or one `=` after
/// the keyword, double or single quotes group, an unquoted `#` starts a comment.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.trim().chars().peekable();
    loop {
        while chars
            .next_if(|c| c.is_whitespace() || (*c == '=' && words.len() == 1))
            .is_some()
        {}
        let Some(&first) = chars.peek() else { break };
        if first == '#' {
            break;
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(&c) = chars.peek() {
            match quote {
                Some(open) if c == open => quote = None,
                Some(_) => word.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() || (c == '=' && words.is_empty()) => break,
                None => word.push(c),
            }
            chars.next();
        }
        words.push(word);
    }
    words
}

/// Reads the `main` sshd_config and what it includes; relative includes
/// are taken from `config_dir`, as sshd does.
pub fn read_sshd_config(
    system: &dyn System,
    main: &Path,
    config_dir: &Path,
) -> Observed<SshdConfig> {
    let mut reader = ConfigReader {
        system,
        config_dir,
        settings: Settings::default(),
        read: Vec::new(),
    };
    match reader.file(main, 0) {
        Ok(()) => Observed::Observed(reader.settings.finish(reader.read.join(", "))),
        Err(reason) => Observed::unknown(reason),
    }
}

struct ConfigReader<'a> {
    system: &'a dyn System,
    config_dir: &'a Path,
    settings: Settings,
    read: Vec<String>,
}

impl ConfigReader<'_> {
    fn file(&mut self, path: &Path, depth: usize) -> Result<(), String> {
        let text = self
            .system
            .read_to_string(path)
            .map_err(|error| match error.kind() {
                io::ErrorKind::PermissionDenied => {
                    needs_root(&format!("reading {}", path.display()), self.system)
                }
                _ => format!("reading {} failed: {error}", path.display()),
            })?;
        self.read.push(path.display().to_string());
        for (number, line) in text.lines().enumerate() {
            let place = || format!("{} line {}", path.display(), number + 1);
            let words = words(line);
            let Some((keyword, args)) = words.split_first() else {
                continue;
            };
            if keyword.eq_ignore_ascii_case("match") {
                break;
            }
            if keyword.eq_ignore_ascii_case("include") {
                if depth + 1 >= MAX_INCLUDE_DEPTH {
                    return Err(format!(
                        "{}: includes nest deeper than sshd allows",
                        place()
                    ));
                }
                for pattern in args {
                    for included in self.expand(pattern) {
                        self.file(&included, depth + 1)?;
                    }
                }
                continue;
            }
            if let Some(value) = args.first() {
                self.settings
                    .apply(keyword, value, &place)
                    .map_err(|error| error.to_string())?;
            }
        }
        Ok(())
    }

    /// The files an `Include` argument names, sorted; a glob may match none.
    fn expand(&self, pattern: &str) -> Vec<PathBuf> {
        let path = if is_absolute(pattern) {
            PathBuf::from(pattern)
        } else {
            self.config_dir.join(pattern)
        };
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_file = |path: &Path| {
            self.system
                .symlink_metadata(path)
                .is_ok_and(|info| matches!(info.kind, FileKind::File | FileKind::Symlink))
        };
        if !name.contains(['*', '?']) {
            return if is_file(&path) {
                vec![path]
            } else {
                Vec::new()
            };
        }
        let parent = path.parent().unwrap_or(self.config_dir);
        let mut matched: Vec<PathBuf> = self
            .system
            .read_dir(parent)
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| {
                let entry_name = entry
                    .file_name()
                    .map(|name| name.to_string_lossy())
                    .unwrap_or_default();
                (name.starts_with('.') || !entry_name.starts_with('.'))
                    && wildcard(name.as_bytes(), entry_name.as_bytes())
                    && is_file(entry)
            })
            .collect();
        matched.sort();
        matched
    }
}

/// Absolute on Unix (`/etc/…`) or Windows (`C:\…`, `C:/…`), whatever OS runs the agent.
fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.starts_with('/')
        || path.starts_with('\\')
        || (bytes.len() > 2 && bytes[1] == b':' && matches!(bytes[2], b'\\' | b'/'))
}

/// Shell-style matching of `*` and `?` within one file name.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| wildcard(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && wildcard(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_sshd_quoting_and_comments() {
        assert_eq!(
            words("  PasswordAuthentication no  # old"),
            ["PasswordAuthentication", "no"]
        );
        assert_eq!(words("PermitRootLogin=yes"), ["PermitRootLogin", "yes"]);
        assert_eq!(
            words("Include \"/etc/ssh/my dir/*.conf\" b.conf"),
            ["Include", "/etc/ssh/my dir/*.conf", "b.conf"]
        );
        assert!(words("# PasswordAuthentication yes").is_empty());
        assert!(words("   ").is_empty());
    }

    #[test]
    fn wildcards_match_within_a_name() {
        assert!(wildcard(b"*.conf", b"50-cloud-init.conf"));
        assert!(!wildcard(b"*.conf", b"50-cloud-init.conf.bak"));
        assert!(wildcard(b"0?-x", b"01-x"));
        assert!(wildcard(b"*", b"anything"));
    }

    #[test]
    fn windows_and_unix_absolute_paths() {
        assert!(is_absolute("/etc/ssh/x"));
        assert!(is_absolute(r"C:\ProgramData\ssh\x"));
        assert!(!is_absolute("sshd_config.d/*.conf"));
    }

    #[test]
    fn sshd_t_without_the_root_login_line_is_an_error() {
        let error = parse_sshd_t("passwordauthentication no\nkbdinteractiveauthentication no\n")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "`sshd -T` printed no `permitrootlogin` line"
        );
    }

    #[test]
    fn bad_value_names_the_line() {
        let error = parse_sshd_t("passwordauthentication maybe\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "sshd -T line 1: `maybe` is not a valid value for passwordauthentication"
        );
    }
}
