//! The firewall probe: every captured output under fixtures/firewall through
//! the probe on a scripted machine, the order of Linux backends, tools that are
//! missing or hang, and the real agent binary against real nftables rulesets
//! in a network namespace.

use std::path::{Path, PathBuf};

use shipshape::probes::firewall::{self, parse_socketfilterfw};
use shipshape::system::CommandOutput;
use shipshape::system::fake::{FakeSystem, fixture_body};
use shipshape_core::facts::{Facts, Firewall, Inbound, Observed, OsFamily};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/firewall")
}

fn fixture(relative: &str) -> String {
    let text = std::fs::read_to_string(fixture_dir().join(relative)).unwrap();
    fixture_body(&text).to_owned()
}

/// Snapshots under the same name whether this file runs inside `main` or on its own.
fn snapshot(name: String, fact: Observed<Firewall>) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_json_snapshot!(name, fact));
}

/// One line a person can compare with the fixture's `# expect:`.
fn summary(fact: &Observed<Firewall>) -> String {
    let Some(firewall) = fact.value() else {
        return format!("unknown: {}", fact.unknown_reason().unwrap_or_default());
    };
    let mut line = format!(
        "{}: {}, inbound {}",
        firewall.backend,
        if firewall.enabled { "on" } else { "off" },
        if firewall.inbound == Inbound::Blocked {
            "blocked"
        } else {
            "allowed"
        }
    );
    match &firewall.stealth {
        Some(Observed::Observed(on)) => {
            line.push_str(if *on { ", stealth on" } else { ", stealth off" })
        }
        Some(Observed::Unknown { .. }) => line.push_str(", stealth unknown"),
        None => {}
    }
    for profile in &firewall.profiles {
        line.push_str(&format!(
            ", {} {} {}",
            profile.name,
            if profile.enabled { "on" } else { "off" },
            if profile.inbound == Inbound::Blocked {
                "blocked"
            } else {
                "allowed"
            }
        ));
    }
    line
}

const NFT: &str = "/usr/sbin/nft -j list ruleset";
const EMPTY_RULESET: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]}"#;

fn linux_root() -> FakeSystem {
    FakeSystem::new(OsFamily::Linux).privileged(true)
}

/// Each Linux fixture, the machine that prints it, and what its `# expect:` says the probe concludes.
fn linux_cases() -> Vec<(&'static str, FakeSystem, &'static str)> {
    let nft = |file: &str| linux_root().command(NFT, fixture(&format!("linux/{file}")));
    let iptables = |file: &str| {
        linux_root().command("/usr/sbin/iptables -S", fixture(&format!("linux/{file}")))
    };
    let firewalld = |file: &str| {
        linux_root()
            .command(
                "/usr/bin/firewall-cmd --state",
                fixture("linux/firewall-cmd-state-running.txt"),
            )
            .command(
                "/usr/bin/firewall-cmd --list-all",
                fixture(&format!("linux/{file}")),
            )
    };
    let ufw = |file: &str| {
        linux_root()
            .command(
                "/usr/sbin/ufw status verbose",
                fixture(&format!("linux/{file}")),
            )
            .command(NFT, EMPTY_RULESET)
    };
    vec![
        (
            "nft-json-empty-ruleset",
            nft("nft-json-empty-ruleset.txt"),
            "none: off, inbound allowed",
        ),
        (
            "nft-json-debian-default-conf",
            nft("nft-json-debian-default-conf.txt"),
            "none: off, inbound allowed",
        ),
        (
            "nft-json-inet-filter-policy-drop",
            nft("nft-json-inet-filter-policy-drop.txt"),
            "nftables: on, inbound blocked",
        ),
        (
            "nft-json-accept-policy-ssh",
            nft("nft-json-accept-policy-ssh.txt"),
            "nftables: on, inbound allowed",
        ),
        (
            "nft-json-final-reject",
            nft("nft-json-final-reject.txt"),
            "nftables: on, inbound blocked",
        ),
        (
            "nft-json-tailscale-only",
            nft("nft-json-tailscale-only.txt"),
            "none: off, inbound allowed",
        ),
        (
            "nft-json-two-base-chains",
            nft("nft-json-two-base-chains.txt"),
            "nftables: on, inbound blocked",
        ),
        (
            "nft-json-firewalld-filter-input",
            nft("nft-json-firewalld-filter-input.txt"),
            "nftables: on, inbound blocked",
        ),
        (
            "nft-json-nixos-iptables-nft",
            nft("nft-json-nixos-iptables-nft.txt"),
            "nftables: on, inbound blocked",
        ),
        (
            "nft-json-docker-tailscale-iptables-nft",
            nft("nft-json-docker-tailscale-iptables-nft.txt"),
            "none: off, inbound allowed",
        ),
        (
            "nft-json-ufw-fail2ban-iptables-nft",
            nft("nft-json-ufw-fail2ban-iptables-nft.txt"),
            "nftables: on, inbound blocked",
        ),
        (
            "iptables-S-docker-tailscale-policy-accept",
            iptables("iptables-S-docker-tailscale-policy-accept.txt"),
            "none: off, inbound allowed",
        ),
        (
            "iptables-S-docker-tailscale-replayed",
            iptables("iptables-S-docker-tailscale-replayed.txt"),
            "none: off, inbound allowed",
        ),
        (
            "iptables-S-ufw-fail2ban-policy-drop",
            iptables("iptables-S-ufw-fail2ban-policy-drop.txt"),
            "iptables: on, inbound blocked",
        ),
        (
            "iptables-S-ufw-fail2ban-replayed",
            iptables("iptables-S-ufw-fail2ban-replayed.txt"),
            "iptables: on, inbound blocked",
        ),
        (
            "nft-json-drop-policy-eth0-accept",
            nft("nft-json-drop-policy-eth0-accept.txt"),
            "nftables: on, inbound allowed",
        ),
        (
            "iptables-S-drop-policy-eth0-accept",
            iptables("iptables-S-drop-policy-eth0-accept.txt"),
            "iptables: on, inbound allowed",
        ),
        (
            "ufw-status-verbose-active",
            ufw("ufw-status-verbose-active.txt"),
            "ufw: on, inbound blocked",
        ),
        (
            "ufw-status-inactive",
            ufw("ufw-status-inactive.txt"),
            "none: off, inbound allowed",
        ),
        (
            "firewall-cmd-list-all-fedora-workstation",
            firewalld("firewall-cmd-list-all-fedora-workstation.txt"),
            "firewalld: on, inbound blocked",
        ),
        (
            "firewall-cmd-list-all-home-zone",
            firewalld("firewall-cmd-list-all-home-zone.txt"),
            "firewalld: on, inbound blocked",
        ),
    ]
}

#[test]
fn linux_fixtures() {
    for (case, system, expected) in linux_cases() {
        let fact = firewall::probe(&system);
        assert_eq!(summary(&fact), expected, "{case}: {fact:#?}");
        snapshot(format!("firewall-linux-{case}"), fact);
    }
}

#[test]
fn every_fixture_is_tested() {
    let tested: Vec<String> = linux_cases()
        .into_iter()
        .map(|(case, _, _)| format!("linux/{case}.txt"))
        .chain(["linux/firewall-cmd-state-running.txt".to_owned()])
        .chain(MACOS.iter().map(|case| format!("macos/{}", case.file)))
        .chain(WINDOWS.iter().map(|(file, _)| format!("windows/{file}")))
        .collect();
    for os in ["linux", "macos", "windows"] {
        for entry in std::fs::read_dir(fixture_dir().join(os)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "txt") {
                let name = format!("{os}/{}", path.file_name().unwrap().to_string_lossy());
                assert!(tested.contains(&name), "{name} is not tested");
            }
        }
    }
}

#[test]
fn an_accept_for_a_whole_network_link_is_named_in_notes() {
    for file in [
        "nft-json-drop-policy-eth0-accept.txt",
        "iptables-S-drop-policy-eth0-accept.txt",
    ] {
        let command = if file.starts_with("nft") {
            NFT
        } else {
            "/usr/sbin/iptables -S"
        };
        let system = linux_root().command(command, fixture(&format!("linux/{file}")));
        let firewall = firewall::probe(&system).value().cloned().unwrap();
        assert!(
            firewall
                .notes
                .iter()
                .any(|note| note.ends_with("accepts everything arriving on eth0")),
            "{file}: {:?}",
            firewall.notes
        );
    }
}

#[test]
fn set_aside_chains_are_named_in_notes() {
    let system = linux_root().command(NFT, fixture("linux/nft-json-tailscale-only.txt"));
    let firewall = firewall::probe(&system).value().cloned().unwrap();
    assert!(
        firewall
            .notes
            .iter()
            .any(|note| note.contains("ts-input") && note.contains("Tailscale")),
        "{:?}",
        firewall.notes
    );
    let system = linux_root().command(
        NFT,
        fixture("linux/nft-json-docker-tailscale-iptables-nft.txt"),
    );
    let notes = firewall::probe(&system).value().cloned().unwrap().notes;
    assert!(
        notes.contains(&"set aside chain ts-input (Tailscale)".to_owned()),
        "{notes:?}"
    );
}

/// A macOS fixture and what its `# expect:` says the parser reads.
struct MacCase {
    file: &'static str,
    state: Option<u8>,
    block_all: Option<bool>,
    stealth: Option<&'static str>,
}

const fn mac_case(
    file: &'static str,
    state: Option<u8>,
    block_all: Option<bool>,
    stealth: Option<&'static str>,
) -> MacCase {
    MacCase {
        file,
        state,
        block_all,
        stealth,
    }
}

const MACOS: &[MacCase] = &[
    mac_case(
        "socketfilterfw-getglobalstate-blocking-all.txt",
        Some(2),
        None,
        None,
    ),
    mac_case(
        "socketfilterfw-getglobalstate-state2.txt",
        Some(2),
        None,
        None,
    ),
    mac_case(
        "socketfilterfw-getstealthmode-error.txt",
        None,
        None,
        Some("unknown"),
    ),
    mac_case(
        "socketfilterfw-multi-state1-stealth-error.txt",
        Some(1),
        Some(false),
        Some("unknown"),
    ),
    mac_case(
        "socketfilterfw-multi-state2-stealth-on.txt",
        Some(2),
        Some(false),
        Some("on"),
    ),
    mac_case(
        "socketfilterfw-setglobalstate-off-state0.txt",
        Some(0),
        None,
        None,
    ),
    mac_case(
        "socketfilterfw-setstealthmode-on.txt",
        None,
        None,
        Some("on"),
    ),
];

#[test]
fn macos_fixtures_parse() {
    for MacCase {
        file,
        state,
        block_all,
        stealth,
    } in MACOS
    {
        let parsed = parse_socketfilterfw(&fixture(&format!("macos/{file}"))).unwrap();
        assert_eq!(parsed.state, *state, "{file}");
        assert_eq!(parsed.block_all, *block_all, "{file}");
        let seen = parsed.stealth.as_ref().map(|stealth| match stealth {
            Observed::Observed(true) => "on",
            Observed::Observed(false) => "off",
            Observed::Unknown { .. } => "unknown",
        });
        assert_eq!(seen, *stealth, "{file}");
    }
}

const SOCKETFILTERFW: &str = "/usr/libexec/ApplicationFirewall/socketfilterfw";

fn mac(global: &str, stealth: &str) -> FakeSystem {
    FakeSystem::new(OsFamily::Macos)
        .command(
            &format!("{SOCKETFILTERFW} --getglobalstate"),
            fixture(&format!("macos/{global}")),
        )
        .command(
            &format!("{SOCKETFILTERFW} --getstealthmode"),
            fixture(&format!("macos/{stealth}")),
        )
}

#[test]
fn macos_probe() {
    let cases = [
        (
            "blocking-all-stealth-error",
            mac(
                "socketfilterfw-getglobalstate-blocking-all.txt",
                "socketfilterfw-getstealthmode-error.txt",
            ),
            "socketfilterfw: on, inbound blocked, stealth unknown",
        ),
        (
            "state2-stealth-on",
            mac(
                "socketfilterfw-getglobalstate-state2.txt",
                "socketfilterfw-setstealthmode-on.txt",
            ),
            "socketfilterfw: on, inbound blocked, stealth on",
        ),
        (
            "off",
            mac(
                "socketfilterfw-setglobalstate-off-state0.txt",
                "socketfilterfw-setstealthmode-on.txt",
            ),
            "socketfilterfw: off, inbound allowed, stealth on",
        ),
    ];
    for (case, system, expected) in cases {
        let fact = firewall::probe(&system);
        assert_eq!(summary(&fact), expected, "{case}");
        snapshot(format!("firewall-macos-{case}"), fact);
    }
}

/// Windows fixtures and what their `# expect:` says.
const WINDOWS: &[(&str, &str)] = &[
    (
        "netsh-advfirewall-monitor-show-firewall-public-on.txt",
        "windows-firewall: on, inbound blocked, Public on blocked",
    ),
    (
        "netsh-advfirewall-show-currentprofile-domain-on.txt",
        "windows-firewall: on, inbound blocked, Domain on blocked",
    ),
];

const NETSH: &str = r"C:\Windows\System32\netsh.exe advfirewall show allprofiles";

#[test]
fn windows_fixtures() {
    for (file, expected) in WINDOWS {
        let body = fixture(&format!("windows/{file}"));
        for (line_ending, text) in [("lf", body.clone()), ("crlf", body.replace('\n', "\r\n"))] {
            let system = FakeSystem::new(OsFamily::Windows).command(NETSH, text);
            let fact = firewall::probe(&system);
            assert_eq!(summary(&fact), *expected, "{file} ({line_ending})");
            if line_ending == "lf" {
                snapshot(
                    format!("firewall-windows-{}", file.trim_end_matches(".txt")),
                    fact,
                );
            }
        }
    }
}

#[test]
fn windows_one_open_profile_lets_traffic_in() {
    let domain = fixture("windows/netsh-advfirewall-show-currentprofile-domain-on.txt");
    let public = fixture("windows/netsh-advfirewall-monitor-show-firewall-public-on.txt").replace(
        "State                                 ON",
        "State                                 OFF",
    );
    let system =
        FakeSystem::new(OsFamily::Windows).command(NETSH, format!("{domain}\n{public}\nOk.\n"));
    assert_eq!(
        summary(&firewall::probe(&system)),
        "windows-firewall: off, inbound allowed, Domain on blocked, Public off blocked"
    );
}

fn unknown_reason(fact: &Observed<Firewall>) -> String {
    fact.unknown_reason()
        .unwrap_or_else(|| panic!("expected unknown: {fact:#?}"))
        .to_owned()
}

#[test]
fn missing_or_hung_tools_are_unknown() {
    let hung = linux_root().command_hangs(NFT);
    assert!(unknown_reason(&firewall::probe(&hung)).contains("did not answer"));

    let bare = linux_root();
    assert!(
        unknown_reason(&firewall::probe(&bare)).contains("neither nft nor iptables is installed")
    );

    let hung_firewalld = linux_root()
        .command_hangs("/usr/bin/firewall-cmd --state")
        .command(NFT, fixture("linux/nft-json-inet-filter-policy-drop.txt"));
    assert!(
        unknown_reason(&firewall::probe(&hung_firewalld)).contains("firewall-cmd did not answer")
    );

    let no_mac_tool = FakeSystem::new(OsFamily::Macos);
    assert!(unknown_reason(&firewall::probe(&no_mac_tool)).contains("is not installed"));

    let hung_stealth = FakeSystem::new(OsFamily::Macos)
        .command(
            &format!("{SOCKETFILTERFW} --getglobalstate"),
            fixture("macos/socketfilterfw-getglobalstate-state2.txt"),
        )
        .command_hangs(&format!("{SOCKETFILTERFW} --getstealthmode"));
    assert_eq!(
        summary(&firewall::probe(&hung_stealth)),
        "socketfilterfw: on, inbound blocked, stealth unknown"
    );

    let hung_netsh = FakeSystem::new(OsFamily::Windows).command_hangs(NETSH);
    assert!(unknown_reason(&firewall::probe(&hung_netsh)).contains("did not answer"));

    let garbage = linux_root().command(NFT, "Error: syntax error\n");
    assert!(
        unknown_reason(&firewall::probe(&garbage)).contains("could not read the output of nft")
    );
}

#[test]
fn without_root_the_ruleset_is_unknown_and_says_why() {
    let refused = CommandOutput {
        code: Some(1),
        stdout: String::new(),
        stderr: "Error: Could not process rule: Operation not permitted\n".to_owned(),
    };
    let system = FakeSystem::new(OsFamily::Linux).command_output(NFT, refused);
    assert!(unknown_reason(&firewall::probe(&system)).contains("sudo shipshape check"));

    let ufw_enabled = FakeSystem::new(OsFamily::Linux)
        .file("/usr/sbin/ufw", "")
        .file(
            "/etc/ufw/ufw.conf",
            "# /etc/ufw/ufw.conf\nENABLED=yes\nLOGLEVEL=low\n",
        );
    let reason = unknown_reason(&firewall::probe(&ufw_enabled));
    assert!(
        reason.contains("ufw") && reason.contains("needs root"),
        "{reason}"
    );
}

#[test]
fn a_running_manager_decides_before_the_kernel_rules() {
    let firewalld_over_nft = linux_root()
        .command("/usr/bin/firewall-cmd --state", "running\n")
        .command(
            "/usr/bin/firewall-cmd --list-all",
            "trusted (active)\n  target: ACCEPT\n  interfaces: eth0\n",
        )
        .command(NFT, fixture("linux/nft-json-inet-filter-policy-drop.txt"));
    assert_eq!(
        summary(&firewall::probe(&firewalld_over_nft)),
        "firewalld: on, inbound allowed"
    );
    assert!(
        !firewalld_over_nft
            .ran()
            .iter()
            .any(|line| line.starts_with("/usr/sbin/nft"))
    );

    let stopped_firewalld = linux_root()
        .command_output(
            "/usr/bin/firewall-cmd --state",
            CommandOutput {
                code: Some(252),
                stdout: "not running\n".to_owned(),
                stderr: String::new(),
            },
        )
        .command(NFT, fixture("linux/nft-json-final-reject.txt"));
    let fact = firewall::probe(&stopped_firewalld);
    assert_eq!(summary(&fact), "nftables: on, inbound blocked");
    assert!(
        fact.value()
            .unwrap()
            .notes
            .contains(&"firewalld is installed but not running".to_owned())
    );
}

#[test]
fn legacy_iptables_is_read_when_nftables_filters_nothing() {
    let system = linux_root()
        .command(NFT, EMPTY_RULESET)
        .file("/proc/net/ip_tables_names", "filter\n")
        .command(
            "/usr/sbin/iptables-legacy -S",
            fixture("linux/iptables-S-ufw-fail2ban-policy-drop.txt"),
        );
    assert_eq!(
        summary(&firewall::probe(&system)),
        "iptables: on, inbound blocked"
    );

    let no_legacy_tables = linux_root().command(NFT, EMPTY_RULESET).command(
        "/usr/sbin/iptables-legacy -S",
        fixture("linux/iptables-S-ufw-fail2ban-policy-drop.txt"),
    );
    assert_eq!(
        summary(&firewall::probe(&no_legacy_tables)),
        "none: off, inbound allowed"
    );
}

/// A network namespace that is deleted when the test ends, even on failure.
struct Namespace {
    name: String,
}

const IP: &str = "/usr/sbin/ip";

impl Namespace {
    /// Creates the namespace, or says why the kernel or the tools refused.
    fn create(case: &str) -> Result<Self, String> {
        let name = format!("shipshape-fw-{}-{case}", std::process::id());
        let output = assert_cmd::Command::new(IP)
            .args(["netns", "add", &name])
            .output()
            .map_err(|error| format!("cannot run {IP}: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "`ip netns add` refused: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Namespace { name })
    }

    fn exec(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(IP);
        command.args(["netns", "exec", &self.name]);
        command
    }

    fn load(&self, ruleset: &Path) {
        self.exec()
            .arg("nft")
            .arg("-f")
            .arg(ruleset)
            .assert()
            .success();
    }

    /// The facts the real agent binary observes inside the namespace.
    fn agent_facts(&self) -> Facts {
        let state = tempfile::tempdir().unwrap();
        let output = self
            .exec()
            .arg(env!("CARGO_BIN_EXE_shipshape"))
            .args(["facts", "--only", "firewall"])
            .env("SHIPSHAPE_STATE_DIR", state.path())
            .env("SHIPSHAPE_CONFIG_DIR", state.path().join("config"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let deleted = assert_cmd::Command::new(IP)
            .args(["netns", "del", &self.name])
            .output();
        if !deleted.is_ok_and(|output| output.status.success()) {
            eprintln!("could not delete network namespace {}", self.name);
        }
    }
}

#[test]
fn live_nftables_rulesets_in_a_network_namespace() {
    let rulesets = fixture_dir().join("linux/rulesets");
    let cases = [
        (
            "drop",
            Some("inet-filter-policy-drop.nft"),
            "nftables: on, inbound blocked",
        ),
        (
            "accept",
            Some("accept-policy-ssh.nft"),
            "nftables: on, inbound allowed",
        ),
        (
            "tailscale",
            Some("tailscale-nftables-mode.nft"),
            "none: off, inbound allowed",
        ),
        ("empty", None, "none: off, inbound allowed"),
    ];
    for (case, ruleset, expected) in cases {
        let namespace = match Namespace::create(case) {
            Ok(namespace) => namespace,
            Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("the live firewall test must run in CI: {reason}")
            }
            Err(reason) => {
                eprintln!(
                    "skipping the live firewall test: {reason} (run as root with network namespace support)"
                );
                return;
            }
        };
        if let Some(ruleset) = ruleset {
            namespace.load(&rulesets.join(ruleset));
        }
        let facts = namespace.agent_facts();
        assert_eq!(
            summary(&facts.firewall),
            expected,
            "{case}: {:#?}",
            facts.firewall
        );
        if case == "tailscale" {
            let notes = &facts.firewall.value().unwrap().notes;
            assert!(
                notes.iter().any(|note| note.contains("Tailscale")),
                "{notes:?}"
            );
        }
    }
}
