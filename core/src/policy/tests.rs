use jiff::civil::date;

use super::*;

const DEFAULT: &str = include_str!("../../../policies/default.toml");
const STRICT: &str = include_str!("../../../policies/strict.toml");

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, "test.toml", date(2026, 11, 24))
}

#[test]
fn shipped_policies_parse_and_run_every_check() {
    for (text, name) in [(DEFAULT, "default"), (STRICT, "strict")] {
        let policy = parse(text).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(policy.name, name);
        let ids: Vec<CheckId> = policy.checks.iter().map(|check| check.id()).collect();
        let all: Vec<CheckId> = crate::checks::CATALOG.iter().map(|info| info.id).collect();
        assert_eq!(ids, all, "{name} runs every check in the catalog");
    }
}

#[test]
fn unknown_key_names_line_and_column() {
    let text =
        "leak-severity = \"high\"\n[checks.firewall]\nseverity = \"high\"\nrequire-stelth = true\n";
    let error = parse(text).unwrap_err();
    assert_eq!((error.line, error.column), (4, 1));
    assert!(
        error.message.contains("unknown field `require-stelth`"),
        "{}",
        error.message
    );
    assert!(error.to_string().starts_with("test.toml:4:1: "), "{error}");
}

#[test]
fn unknown_check_is_rejected() {
    let error = parse("[checks.antivirus]\nseverity = \"low\"\n").unwrap_err();
    assert_eq!(error.line, 1);
    assert!(error.message.contains("antivirus"), "{}", error.message);
}

#[test]
fn bad_severity_lists_the_choices() {
    let error = parse("[checks.firewall]\nseverity = \"urgent\"\n").unwrap_err();
    assert_eq!((error.line, error.column), (2, 12));
    assert!(
        error
            .message
            .contains("`low`, `medium`, `high`, `critical`"),
        "{}",
        error.message
    );
}

#[test]
fn bad_grace_and_mode_and_version_are_located() {
    let error = parse("[checks.firewall]\nseverity = \"high\"\ngrace = \"soon\"\n").unwrap_err();
    assert_eq!(error.line, 3);
    assert!(
        error.message.contains("`soon` is not a duration"),
        "{}",
        error.message
    );

    let error = parse("[checks.ssh-keys]\nseverity = \"high\"\nmax-mode = \"0999\"\n").unwrap_err();
    assert_eq!((error.line, error.column), (3, 12));
    assert!(
        error.message.contains("not an octal file mode"),
        "{}",
        error.message
    );

    let error = parse("[checks.os-updates]\nseverity = \"high\"\n[checks.os-updates.min-version]\nubuntu = \"jammy\"\n")
        .unwrap_err();
    assert_eq!((error.line, error.column), (4, 10));
    assert!(
        error.message.contains("min-version.ubuntu"),
        "{}",
        error.message
    );
}

const FIREWALL: &str = "[checks.firewall]\nseverity = \"high\"\n";

#[test]
fn expired_exception_is_an_error_at_its_date() {
    let text = format!(
        "{FIREWALL}\n[[exceptions]]\ncheck = \"firewall\"\nhosts = [\"lab-1\"]\nreason = \"lab\"\nexpires = 2026-11-23\n"
    );
    let error = parse(&text).unwrap_err();
    assert_eq!((error.line, error.column), (8, 11));
    assert!(
        error.message.contains("expired on 2026-11-23"),
        "{}",
        error.message
    );
}

#[test]
fn exception_needs_every_key_and_a_real_check() {
    let missing = format!(
        "{FIREWALL}[[exceptions]]\ncheck = \"firewall\"\nhosts = [\"a\"]\nexpires = 2027-01-01\n"
    );
    assert!(
        parse(&missing)
            .unwrap_err()
            .message
            .contains("missing field `reason`")
    );

    let not_run = format!(
        "{FIREWALL}[[exceptions]]\ncheck = \"ssh-keys\"\nhosts = [\"a\"]\nreason = \"r\"\nexpires = 2027-01-01\n"
    );
    let error = parse(&not_run).unwrap_err();
    assert_eq!(error.line, 4);
    assert!(error.message.contains("does not run"), "{}", error.message);

    let datetime = format!(
        "{FIREWALL}[[exceptions]]\ncheck = \"firewall\"\nhosts = [\"a\"]\nreason = \"r\"\nexpires = 2027-01-01T10:00:00Z\n"
    );
    assert!(parse(&datetime).unwrap_err().message.contains("plain date"));

    let empty_hosts = format!(
        "{FIREWALL}[[exceptions]]\ncheck = \"firewall\"\nhosts = []\nreason = \"r\"\nexpires = 2027-01-01\n"
    );
    assert!(
        parse(&empty_hosts)
            .unwrap_err()
            .message
            .contains("at least one")
    );
}

#[test]
fn exceptions_match_hosts_case_insensitively_with_globs_until_expiry() {
    let text = format!(
        "{FIREWALL}[[exceptions]]\ncheck = \"firewall\"\nhosts = [\"lab-*\", \"Build-01\"]\nreason = \"r\"\nexpires = 2027-01-31\n"
    );
    let policy = parse(&text).unwrap();
    let today = date(2026, 12, 1);
    assert!(
        policy
            .exception_for(CheckId::Firewall, "LAB-7", today)
            .is_some()
    );
    assert!(
        policy
            .exception_for(CheckId::Firewall, "build-01", today)
            .is_some()
    );
    assert!(
        policy
            .exception_for(CheckId::Firewall, "build-011", today)
            .is_none()
    );
    assert!(
        policy
            .exception_for(CheckId::Firewall, "mylab-7", today)
            .is_none()
    );
    assert!(
        policy
            .exception_for(CheckId::SshKeys, "lab-7", today)
            .is_none()
    );
    assert!(
        policy
            .exception_for(CheckId::Firewall, "lab-7", date(2027, 2, 1))
            .is_none()
    );
}

#[test]
fn glob_handles_stars_anywhere() {
    assert!(glob_match("*", "anything"));
    assert!(glob_match("a*c*e", "abcde"));
    assert!(glob_match("*-mac", "anna-mac"));
    assert!(!glob_match("*-mac", "anna-mac2"));
    assert!(!glob_match("a*c*e", "abcd"));
    assert!(glob_match("ab*b", "abb"));
    assert!(!glob_match("ab*ab", "ab"));
}

#[test]
fn name_defaults_to_the_file_stem() {
    let policy =
        Policy::parse(FIREWALL, "/etc/shipshape/laptops.toml", date(2026, 11, 24)).unwrap();
    assert_eq!(policy.name, "laptops");
    assert_eq!(policy.leak_severity, Severity::High);
    assert_eq!(policy.unknown, UnknownTreatment::Leak);
}

#[test]
fn empty_platforms_is_an_error() {
    let error = parse("[checks.firewall]\nseverity = \"high\"\nplatforms = []\n").unwrap_err();
    assert_eq!(error.line, 1);
    assert!(
        error.message.contains("`platforms` of `firewall` is empty"),
        "{}",
        error.message
    );
}

/// Found by `fuzz/` (target `policy`): the TOML parser reports a control
/// character in a comment with an empty message, which left the error as a
/// bare `test.toml:2:2: `.
#[test]
fn control_character_in_a_comment_is_named() {
    for (text, at, code) in [
        ("#\0", (1, 2), "U+0000"),
        (
            "leak-severity = \"high\"\n# pasted \u{1b}[31m\n",
            (2, 10),
            "U+001B",
        ),
        ("# stray\r\n#\r", (2, 2), "U+000D"),
    ] {
        let error = parse(text).unwrap_err();
        assert_eq!((error.line, error.column), at, "{text:?}");
        assert!(
            error
                .message
                .starts_with(&format!("unexpected control character {code}: ")),
            "{text:?}: {error}"
        );
    }
}
