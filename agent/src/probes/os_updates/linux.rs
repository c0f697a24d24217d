mod apt_native;

use std::path::{Path, PathBuf};

use shipshape_core::facts::{AutomaticUpdates, Observed, OsUpdates, PendingUpdates};

use super::{ParseError, newest_modified};
use crate::system::{CommandOutput, System};

const APT_GET: &str = "/usr/bin/apt-get";
const DNF5: &str = "/usr/bin/dnf5";
const DNF: &str = "/usr/bin/dnf";
const YUM: &str = "/usr/bin/yum";
const ZYPPER: &str = "/usr/bin/zypper";
const PACMAN: &str = "/usr/bin/pacman";
const TIMERS: &str = "/etc/systemd/system/timers.target.wants";

/// One package an upgrade would install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPackage {
    pub name: String,
    pub security: bool,
}

/// What `apt-get -s upgrade` would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptUpgrade {
    pub packages: Vec<PendingPackage>,
    /// "… and N not upgraded": kept back, they need a manual decision.
    pub held_back: u32,
}

/// Reads `apt-get -s upgrade`: one `Inst name [old] (new Origin:version/suite, … [arch])`
/// line per package; a package is a security update when one of its origins is a
/// `-security` suite (`jammy-security`, Debian's `bookworm-security`). Kept-back
/// packages are counted from the summary line, which lists them reliably.
pub fn parse_apt_get_upgrade(text: &str) -> Result<AptUpgrade, ParseError> {
    let mut packages = Vec::new();
    let mut held_back = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Inst ") {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let origins = rest
                .split_once('(')
                .and_then(|(_, after)| after.split_once(')'))
                .map(|(inside, _)| inside.to_ascii_lowercase())
                .unwrap_or_default();
            packages.push(PendingPackage {
                name,
                security: origins.contains("-security"),
            });
        } else if let Some(count) = line
            .trim()
            .strip_suffix(" not upgraded.")
            .and_then(|start| start.rsplit_once(' '))
        {
            held_back = count.1.parse().ok();
        }
    }
    let held_back = held_back.ok_or_else(|| {
        ParseError::new(
            "apt-get",
            "no summary line (\"… upgraded, … and N not upgraded.\")",
        )
    })?;
    Ok(AptUpgrade {
        packages,
        held_back,
    })
}

/// Reads `dnf check-update` / `yum check-update`: `name.arch  version  repo`
/// lines (a long name wraps onto a line of its own), up to "Obsoleting Packages".
pub fn parse_dnf_check_update(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut wrapped: Option<&str> = None;
    for line in text.lines() {
        if line.starts_with("Obsoleting") {
            break;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match (tokens.as_slice(), wrapped.take()) {
            ([name, version, _repo], None)
                if name.contains('.') && version.contains(|c: char| c.is_ascii_digit()) =>
            {
                names.push(package_name_from_arch(name));
            }
            ([version, _repo], Some(name)) if version.contains(|c: char| c.is_ascii_digit()) => {
                names.push(package_name_from_arch(name));
            }
            ([name], None) if name.contains('.') && !line.starts_with(' ') => wrapped = Some(name),
            _ => {}
        }
    }
    names
}

fn package_name_from_arch(name_arch: &str) -> String {
    name_arch
        .rsplit_once('.')
        .map_or(name_arch, |(name, _)| name)
        .to_owned()
}

/// The name of an RPM `name-version-release.arch`.
fn package_name_from_nevra(nevra: &str) -> String {
    let without_arch = nevra.rsplit_once('.').map_or(nevra, |(rest, _)| rest);
    let mut parts = without_arch.rsplitn(3, '-');
    let (_release, _version) = (parts.next(), parts.next());
    parts.next().unwrap_or(without_arch).to_owned()
}

/// Reads `dnf updateinfo list --security` / `yum updateinfo list security`:
/// `ADVISORY  Severity/Sec.  name-version-release.arch`. Returns the distinct
/// package names that have a pending security advisory, sorted.
pub fn parse_updateinfo_list(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            match tokens.as_slice() {
                [_advisory, kind, nevra]
                    if kind.ends_with("Sec.") || kind.eq_ignore_ascii_case("security") =>
                {
                    Some(package_name_from_nevra(nevra))
                }
                _ => None,
            }
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Reads dnf5's `updateinfo summary`: the top-level `Security : N` line counts
/// pending security advisories (advisories, not packages).
pub fn parse_dnf5_updateinfo_summary(text: &str) -> Result<u32, ParseError> {
    if text.trim().is_empty() {
        return Ok(0);
    }
    text.lines()
        .filter(|line| !line.starts_with(' '))
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "Security").then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| ParseError::new("dnf updateinfo summary", "no \"Security : N\" line"))
}

/// A zypper patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub name: String,
    pub category: String,
    pub status: String,
}

/// The `|`-separated tables zypper prints: each a header row, a `---+---` rule, rows.
/// A zypper table: its header cells and its rows of cells.
type ZypperTable = (Vec<String>, Vec<Vec<String>>);

fn zypper_tables(text: &str) -> Vec<ZypperTable> {
    let cells = |line: &str| {
        line.split('|')
            .map(|cell| cell.trim().to_owned())
            .collect::<Vec<_>>()
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut tables = Vec::new();
    let mut at = 0;
    while at + 1 < lines.len() {
        let is_rule = |line: &str| !line.is_empty() && line.chars().all(|c| c == '-' || c == '+');
        if lines[at].contains('|') && is_rule(lines[at + 1]) {
            let header = cells(lines[at]);
            let mut rows = Vec::new();
            at += 2;
            while at < lines.len() && lines[at].contains('|') {
                let row = cells(lines[at]);
                if row.len() == header.len() {
                    rows.push(row);
                }
                at += 1;
            }
            tables.push((header, rows));
        } else {
            at += 1;
        }
    }
    tables
}

/// The tables of a zypper listing; an output with neither a table nor
/// "No updates found." is not one zypper prints for a listing.
fn zypper_tables_or_none(text: &str, tool: &'static str) -> Result<Vec<ZypperTable>, ParseError> {
    let tables = zypper_tables(text);
    if tables.is_empty() && !text.contains("No updates found.") {
        return Err(ParseError::new(
            tool,
            "no table and no \"No updates found.\"",
        ));
    }
    Ok(tables)
}

fn column<'a>(header: &[String], row: &'a [String], name: &str) -> Option<&'a str> {
    let index = header.iter().position(|cell| cell == name)?;
    row.get(index).map(String::as_str)
}

/// Reads `zypper list-patches`: the needed patches, with their category.
pub fn parse_zypper_list_patches(text: &str) -> Result<Vec<Patch>, ParseError> {
    let tables = zypper_tables_or_none(text, "zypper list-patches")?;
    Ok(tables
        .iter()
        .flat_map(|(header, rows)| {
            rows.iter().filter_map(move |row| {
                let status = column(header, row, "Status").unwrap_or("needed");
                Some(Patch {
                    name: column(header, row, "Name")?.to_owned(),
                    category: column(header, row, "Category")?.to_owned(),
                    status: status.to_owned(),
                })
            })
        })
        .filter(|patch| patch.status == "needed")
        .collect())
}

/// Reads `zypper list-updates`: the names of packages with a newer version.
pub fn parse_zypper_list_updates(text: &str) -> Result<Vec<String>, ParseError> {
    let tables = zypper_tables_or_none(text, "zypper list-updates")?;
    Ok(tables
        .iter()
        .flat_map(|(header, rows)| {
            rows.iter()
                .filter_map(move |row| column(header, row, "Name").map(str::to_owned))
        })
        .collect())
}

/// Reads `pacman -Qu`: `name old -> new`, with ` [ignored]` for packages
/// pacman.conf holds back. Returns (pending, ignored) names.
pub fn parse_pacman_qu(text: &str) -> (Vec<String>, Vec<String>) {
    let mut pending = Vec::new();
    let mut ignored = Vec::new();
    for line in text.lines().filter(|line| line.contains(" -> ")) {
        let name = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        if line.trim_end().ends_with("[ignored]") {
            ignored.push(name);
        } else {
            pending.push(name);
        }
    }
    (pending, ignored)
}

/// The settings of dnf-automatic that decide whether it installs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnfAutomaticConf {
    pub apply_updates: Option<bool>,
    pub upgrade_type: Option<String>,
}

/// Reads `[commands]` of /etc/dnf/automatic.conf (INI).
pub fn parse_dnf_automatic_conf(text: &str) -> DnfAutomaticConf {
    let mut conf = DnfAutomaticConf::default();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with(['#', ';']) || line.is_empty() {
            continue;
        }
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = name.trim().to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if section != "commands" {
            continue;
        }
        let value = value.trim();
        match key.trim() {
            "apply_updates" => conf.apply_updates = parse_bool(value),
            "upgrade_type" => conf.upgrade_type = Some(value.to_owned()),
            _ => {}
        }
    }
    conf
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Some(true),
        "no" | "false" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// A token of apt.conf(5) syntax.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    Open,
    Close,
    End,
}

fn apt_tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &text[at..];
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
        } else if rest.starts_with("//") || c == b'#' {
            at += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            at += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if c == b'{' || c == b'}' || c == b';' {
            tokens.push(match c {
                b'{' => Token::Open,
                b'}' => Token::Close,
                _ => Token::End,
            });
            at += 1;
        } else if c == b'"' {
            let end = rest[1..].find('"').map_or(rest.len(), |end| end + 1);
            tokens.push(Token::Word(&rest[1..end]));
            at += (end + 1).min(rest.len());
        } else {
            let end = rest
                .find(|c: char| c.is_ascii_whitespace() || "{};\"".contains(c))
                .unwrap_or(rest.len());
            tokens.push(Token::Word(&rest[..end]));
            at += end;
        }
    }
    tokens
}

/// The value apt's configuration gives `key` (`APT::Periodic::Unattended-Upgrade`),
/// reading `files` in order so that later ones override earlier ones, as apt
/// does. Understands `A::B "v";`, nested `A { B "v"; };` scopes and comments.
pub fn apt_config_value<'a>(files: &[&'a str], key: &str) -> Option<&'a str> {
    let mut found = None;
    for text in files {
        let mut scope: Vec<&str> = Vec::new();
        let mut pending: Vec<&'a str> = Vec::new();
        for token in apt_tokens(text) {
            match token {
                Token::Word(word) => pending.push(word),
                Token::Open => {
                    scope.push(pending.first().copied().unwrap_or_default());
                    pending.clear();
                }
                Token::Close => {
                    scope.pop();
                    pending.clear();
                }
                Token::End => {
                    if let [name, value, ..] = pending.as_slice() {
                        let full: Vec<&str> = scope.iter().copied().chain([*name]).collect();
                        if full.join("::").eq_ignore_ascii_case(key) {
                            found = Some(*value);
                        }
                    }
                    pending.clear();
                }
            }
        }
    }
    found
}

/// Files apt reads from a `.d` directory: names of `[A-Za-z0-9_.-]` with no
/// extension or `.conf`, in order.
fn apt_conf_parts(system: &dyn System) -> Vec<PathBuf> {
    let mut entries = system
        .read_dir(Path::new("/etc/apt/apt.conf.d"))
        .unwrap_or_default();
    entries.retain(|path| {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        valid_chars && (!name.contains('.') || name.ends_with(".conf"))
    });
    entries.sort();
    entries
}

pub(super) fn probe(system: &dyn System) -> OsUpdates {
    if system.find_program(&[APT_GET]).is_some() {
        OsUpdates {
            pending: apt_pending(system),
            automatic: apt_automatic(system),
            last_installed: None,
        }
    } else if let Some(program) = system.find_program(&[DNF5, DNF, YUM]) {
        OsUpdates {
            pending: dnf_pending(system, &program),
            automatic: dnf_automatic(system, &program),
            last_installed: None,
        }
    } else if system.find_program(&[ZYPPER]).is_some() {
        OsUpdates {
            pending: zypper_pending(system),
            automatic: Observed::unknown(
                "Shipshape cannot yet tell whether openSUSE installs updates on its own; \
                 ask IT how updates are scheduled on this machine",
            ),
            last_installed: None,
        }
    } else if system.find_program(&[PACMAN]).is_some() {
        OsUpdates {
            pending: pacman_pending(system),
            automatic: Observed::unknown(
                "Arch Linux has no standard automatic-update service to check; \
                 ask IT for an exception if updates are scheduled another way",
            ),
            last_installed: None,
        }
    } else {
        let reason = "no supported package manager found (apt-get, dnf, yum, zypper or pacman)";
        OsUpdates {
            pending: Observed::unknown(reason),
            automatic: Observed::unknown(reason),
            last_installed: None,
        }
    }
}

/// Runs a package-manager query; `ok_codes` are the exit codes that mean an answer.
fn query(
    system: &dyn System,
    program: &str,
    args: &[&str],
    ok_codes: &[i32],
) -> Result<CommandOutput, String> {
    let output = system
        .run(Path::new(program), args)
        .map_err(|error| error.to_string())?;
    match output.code {
        Some(code) if ok_codes.contains(&code) => Ok(output),
        code => {
            let message = output
                .stderr
                .lines()
                .chain(output.stdout.lines())
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or("no message");
            let code =
                code.map_or_else(|| "a signal".to_owned(), |code| format!("exit code {code}"));
            Err(format!(
                "`{program} {}` failed with {code}: {message}",
                args.join(" ")
            ))
        }
    }
}

/// Reads apt's metadata natively when it can (milliseconds); otherwise asks
/// `apt-get -s upgrade` (seconds: it builds apt's cache and runs the resolver).
fn apt_upgrade(system: &dyn System) -> Result<AptUpgrade, String> {
    match apt_native::read_upgrade(system) {
        Ok(upgrade) => return Ok(upgrade),
        Err(reason) => tracing::debug!("asking apt-get -s upgrade: {reason}"),
    }
    let output = query(
        system,
        APT_GET,
        &["-s", "-o", "Debug::NoLocking=1", "upgrade"],
        &[0],
    )?;
    parse_apt_get_upgrade(&output.stdout).map_err(|error| error.to_string())
}

fn apt_pending(system: &dyn System) -> Observed<PendingUpdates> {
    let upgrade = match apt_upgrade(system) {
        Ok(upgrade) => upgrade,
        Err(reason) => return Observed::unknown(reason),
    };
    let security_packages: Vec<String> = upgrade
        .packages
        .iter()
        .filter(|package| package.security)
        .map(|package| package.name.clone())
        .collect();
    // apt writes the lists with the server's modification time, so the newest
    // Release file approximates the last refresh; the stamp, where present, is exact.
    let lists = Path::new("/var/lib/apt/lists");
    let mut candidates: Vec<PathBuf> =
        vec![PathBuf::from("/var/lib/apt/periodic/update-success-stamp")];
    candidates.extend(
        system
            .read_dir(lists)
            .unwrap_or_default()
            .into_iter()
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.ends_with("InRelease") || name.ends_with("_Release"))
            }),
    );
    let candidates: Vec<&Path> = candidates.iter().map(PathBuf::as_path).collect();
    Observed::Observed(PendingUpdates {
        manager: "apt".to_owned(),
        total: count(upgrade.packages.len()),
        security: count(security_packages.len()),
        security_packages,
        held_back: upgrade.held_back,
        metadata_updated: newest_modified(system, &candidates, 0),
    })
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn apt_automatic(system: &dyn System) -> Observed<AutomaticUpdates> {
    let mechanism = "unattended-upgrades".to_owned();
    if system
        .find_program(&["/usr/bin/unattended-upgrade"])
        .is_none()
    {
        return Observed::Observed(AutomaticUpdates {
            enabled: false,
            mechanism,
            detail: Some("unattended-upgrades is not installed".to_owned()),
        });
    }
    let mut paths = apt_conf_parts(system);
    paths.push(PathBuf::from("/etc/apt/apt.conf"));
    let texts: Vec<(PathBuf, String)> = paths
        .into_iter()
        .filter_map(|path| system.read_to_string(&path).ok().map(|text| (path, text)))
        .collect();
    let key = "APT::Periodic::Unattended-Upgrade";
    let all: Vec<&str> = texts.iter().map(|(_, text)| text.as_str()).collect();
    let value = apt_config_value(&all, key);
    let periodic_enabled = apt_config_value(&all, "APT::Periodic::Enable") != Some("0");
    let source = texts
        .iter()
        .rev()
        .find(|(_, text)| apt_config_value(&[text.as_str()], key).is_some())
        .map(|(path, _)| path.display().to_string());
    // The value is an interval ("1" = daily, also "always" or "12h"); "0" or nothing is off.
    let enabled = periodic_enabled && value.is_some_and(|value| !value.is_empty() && value != "0");
    let detail = match (value, source) {
        (Some(value), Some(source)) if periodic_enabled => format!("{key} \"{value}\" in {source}"),
        (Some(_), Some(_)) => {
            "APT::Periodic::Enable \"0\" turns the periodic apt jobs off".to_owned()
        }
        _ => {
            format!("unattended-upgrades is installed but {key} is not set in /etc/apt/apt.conf.d")
        }
    };
    Observed::Observed(AutomaticUpdates {
        enabled,
        mechanism,
        detail: Some(detail),
    })
}

fn dnf_pending(system: &dyn System, program: &Path) -> Observed<PendingUpdates> {
    let program_text = program.display().to_string();
    let program_str = program_text.as_str();
    let manager = if program_str == YUM { "yum" } else { "dnf" };
    // -C: cache only, never refresh metadata over the network. Exit 100: updates available.
    let names = match query(
        system,
        program_str,
        &["-C", "--quiet", "check-update"],
        &[0, 100],
    ) {
        Ok(output) => parse_dnf_check_update(&output.stdout),
        Err(reason) => return Observed::unknown(reason),
    };
    let (security, security_packages) = if program_str == DNF5 {
        match query(
            system,
            program_str,
            &["-C", "--quiet", "updateinfo", "summary"],
            &[0],
        )
        .and_then(|output| {
            parse_dnf5_updateinfo_summary(&output.stdout).map_err(|error| error.to_string())
        }) {
            Ok(advisories) => (advisories, Vec::new()),
            Err(reason) => return Observed::unknown(reason),
        }
    } else {
        let args: &[&str] = if program_str == YUM {
            &["-C", "--quiet", "updateinfo", "list", "security"]
        } else {
            &["-C", "--quiet", "updateinfo", "list", "--security"]
        };
        match query(system, program_str, args, &[0]) {
            Ok(output) => {
                let packages = parse_updateinfo_list(&output.stdout);
                (count(packages.len()), packages)
            }
            Err(reason) => return Observed::unknown(reason),
        }
    };
    let caches = [
        Path::new("/var/cache/libdnf5"),
        Path::new("/var/cache/dnf"),
        Path::new("/var/cache/yum"),
    ];
    Observed::Observed(PendingUpdates {
        manager: manager.to_owned(),
        total: count(names.len()),
        security,
        security_packages,
        held_back: 0,
        metadata_updated: newest_modified(system, &caches, 2),
    })
}

fn dnf_automatic(system: &dyn System, program: &Path) -> Observed<AutomaticUpdates> {
    if program == Path::new(YUM) {
        return Observed::unknown(
            "Shipshape cannot yet tell whether yum-cron installs updates; ask IT to check it",
        );
    }
    let timers: Vec<String> = system
        .read_dir(Path::new(TIMERS))
        .unwrap_or_default()
        .iter()
        .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
        .filter(|name| name.starts_with("dnf-automatic") || name.starts_with("dnf5-automatic"))
        .collect();
    let conf = system
        .read_to_string(Path::new("/etc/dnf/automatic.conf"))
        .map(|text| parse_dnf_automatic_conf(&text))
        .unwrap_or_default();
    let installs = |timer: &str| match timer {
        "dnf-automatic-install.timer" => true,
        "dnf-automatic.timer" | "dnf5-automatic.timer" => conf.apply_updates == Some(true),
        _ => false,
    };
    let enabled = timers.iter().any(|timer| installs(timer));
    let detail = if timers.is_empty() {
        "no dnf-automatic timer is enabled".to_owned()
    } else if enabled {
        format!(
            "{} enabled{}",
            timers.join(", "),
            conf.upgrade_type
                .as_deref()
                .map(|kind| format!(", upgrade_type = {kind}"))
                .unwrap_or_default()
        )
    } else {
        format!(
            "{} enabled, but it only downloads or notifies (apply_updates is not yes in /etc/dnf/automatic.conf)",
            timers.join(", ")
        )
    };
    Observed::Observed(AutomaticUpdates {
        enabled,
        mechanism: "dnf-automatic".to_owned(),
        detail: Some(detail),
    })
}

fn zypper_pending(system: &dyn System) -> Observed<PendingUpdates> {
    let base = ["--no-refresh", "--non-interactive"];
    let patches = match query(
        system,
        ZYPPER,
        &[&base[..], &["list-patches"]].concat(),
        &[0],
    )
    .and_then(|output| parse_zypper_list_patches(&output.stdout).map_err(|error| error.to_string()))
    {
        Ok(patches) => patches,
        Err(reason) => return Observed::unknown(reason),
    };
    // Package updates are the fuller count (rolling Tumbleweed has no patches);
    // fall back to the patch count when the list cannot be read.
    let updates = query(
        system,
        ZYPPER,
        &[&base[..], &["list-updates"]].concat(),
        &[0],
    )
    .ok()
    .and_then(|output| parse_zypper_list_updates(&output.stdout).ok());
    let security_packages: Vec<String> = patches
        .iter()
        .filter(|patch| patch.category == "security")
        .map(|patch| patch.name.clone())
        .collect();
    Observed::Observed(PendingUpdates {
        manager: "zypper".to_owned(),
        total: count(updates.map_or(patches.len(), |updates| updates.len())),
        security: count(security_packages.len()),
        security_packages,
        held_back: 0,
        metadata_updated: newest_modified(system, &[Path::new("/var/cache/zypp/raw")], 2),
    })
}

/// pacman cannot tell security updates apart, so `security` stays 0; core
/// says so in its evidence.
fn pacman_pending(system: &dyn System) -> Observed<PendingUpdates> {
    // -Qu reads the local sync databases only; exit 1 with no output means nothing to upgrade.
    let output = match query(system, PACMAN, &["-Qu"], &[0, 1]) {
        Ok(output) => output,
        Err(reason) => return Observed::unknown(reason),
    };
    if output.code == Some(1) && !output.stdout.trim().is_empty() {
        return Observed::unknown(format!("pacman -Qu failed: {}", output.stderr.trim()));
    }
    let (pending, ignored) = parse_pacman_qu(&output.stdout);
    Observed::Observed(PendingUpdates {
        manager: "pacman".to_owned(),
        total: count(pending.len()),
        security: 0,
        security_packages: Vec::new(),
        held_back: count(ignored.len()),
        metadata_updated: newest_modified(system, &[Path::new("/var/lib/pacman/sync")], 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_apt_files_override_earlier_ones_and_scopes_nest() {
        let first = "APT::Periodic::Unattended-Upgrade \"1\";";
        let second =
            "// off again\nAPT {\n  Periodic {\n    Unattended-Upgrade \"0\"; # why\n  };\n};\n";
        let key = "APT::Periodic::Unattended-Upgrade";
        assert_eq!(apt_config_value(&[first], key), Some("1"));
        assert_eq!(apt_config_value(&[first, second], key), Some("0"));
        assert_eq!(apt_config_value(&[second, first], key), Some("1"));
    }

    #[test]
    fn apt_lists_and_comments_do_not_look_like_the_key() {
        let text = "/* APT::Periodic::Unattended-Upgrade \"1\"; */\nDPkg::Post-Invoke { \"rm -f x || true\"; };\n";
        assert_eq!(
            apt_config_value(&[text], "APT::Periodic::Unattended-Upgrade"),
            None
        );
    }

    #[test]
    fn rpm_names_drop_version_release_and_arch() {
        assert_eq!(
            package_name_from_nevra("389-ds-base-libs-1.3.1.6-26.el7_0.x86_64"),
            "389-ds-base-libs"
        );
    }
}
