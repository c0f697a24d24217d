//! ssh-server: captured `sshd -T`, `launchctl`, `Get-Service` outputs and real
//! sshd_config files, run through the probe on a fake machine of each OS.

use std::path::Path;

use shipshape::probes::ssh_server::probe;
use shipshape::system::CommandOutput;
use shipshape::system::fake::{FakeSystem, fixture_body};
use shipshape_core::facts::{Observed, OsFamily, ServiceState, SshServer, SshdConfig};

const SSHD: &str = "/usr/sbin/sshd";
const POWERSHELL_GET_SERVICE: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe -NoProfile -NonInteractive -Command Get-Service sshd";
const LAUNCHCTL_PRINT: &str = "/bin/launchctl print system/com.openssh.sshd";

fn fixture(os: &str, name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ssh-server")
        .join(os)
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    fixture_body(&text).to_owned()
}

fn server(fact: Observed<SshServer>) -> SshServer {
    match fact {
        Observed::Observed(server) => server,
        Observed::Unknown { reason } => {
            panic!("expected an observed server, got unknown: {reason}")
        }
    }
}

fn config(server: &SshServer) -> &SshdConfig {
    match &server.config {
        Some(Observed::Observed(config)) => config,
        other => panic!("expected an observed config, got {other:?}"),
    }
}

/// (PasswordAuthentication, KbdInteractiveAuthentication, UsePAM, PermitEmptyPasswords, PermitRootLogin)
type Logins<'a> = (bool, bool, bool, bool, &'a str);

fn logins(config: &SshdConfig) -> Logins<'_> {
    (
        config.password_authentication,
        config.kbd_interactive_authentication,
        config.use_pam,
        config.permit_empty_passwords,
        &config.permit_root_login,
    )
}

fn enabled_linux() -> FakeSystem {
    FakeSystem::new(OsFamily::Linux).file(SSHD, "").file(
        "/etc/systemd/system/multi-user.target.wants/ssh.service",
        "",
    )
}

#[test]
fn sshd_t_fixtures_give_the_effective_settings() {
    let cases: [(&str, Logins<'_>); 4] = [
        (
            "sshd-T-debian12-stock.txt",
            (true, false, true, false, "prohibit-password"),
        ),
        (
            "sshd-T-debian-without-password.txt",
            (true, false, true, false, "prohibit-password"),
        ),
        (
            "sshd-T-rhel-permitrootlogin-yes.txt",
            (true, false, true, false, "yes"),
        ),
        (
            "sshd-T-rhel9-root-yes-password-no-partial.txt",
            (false, false, true, false, "yes"),
        ),
    ];
    for (name, expected) in cases {
        let system = enabled_linux()
            .privileged(true)
            .command("/usr/sbin/sshd -T", fixture("linux", name));
        let found = server(probe(&system));
        assert_eq!(found.state, ServiceState::Running, "{name}");
        assert_eq!(config(&found).source, "sshd -T", "{name}");
        assert_eq!(logins(config(&found)), expected, "{name}");
        insta::assert_json_snapshot!(format!("ssh_server__linux__{name}"), found);
    }
}

const CLOUD_INIT_DROP_IN: &str = "PasswordAuthentication no\n";

#[test]
fn failing_sshd_t_falls_back_to_the_config_files() {
    let system = enabled_linux()
        .privileged(true)
        .command_output(
            "/usr/sbin/sshd -T",
            CommandOutput {
                code: Some(255),
                stdout: String::new(),
                stderr: fixture("linux", "sshd-T-missing-privsep-dir.txt"),
            },
        )
        .file(
            "/etc/ssh/sshd_config",
            fixture("linux", "sshd-config-debian12-stock.txt"),
        )
        .file(
            "/etc/ssh/sshd_config.d/50-cloud-init.conf",
            CLOUD_INIT_DROP_IN,
        );
    let found = server(probe(&system));
    let config = config(&found);
    assert_eq!(
        config.source,
        "/etc/ssh/sshd_config, /etc/ssh/sshd_config.d/50-cloud-init.conf"
    );
    assert_eq!(
        logins(config),
        (false, false, true, false, "prohibit-password")
    );
    insta::assert_json_snapshot!("ssh_server__linux__fallback_to_files", found);
}

#[test]
fn unprivileged_reads_the_files_without_running_sshd() {
    let system = enabled_linux()
        .command(
            "/usr/sbin/sshd -T",
            fixture("linux", "sshd-T-rhel-permitrootlogin-yes.txt"),
        )
        .file(
            "/etc/ssh/sshd_config",
            fixture("linux", "sshd-config-debian12-stock.txt"),
        );
    let found = server(probe(&system));
    assert_eq!(
        logins(config(&found)),
        (true, false, true, false, "prohibit-password")
    );
    assert!(system.ran().is_empty(), "ran {:?}", system.ran());
}

#[test]
fn include_first_value_wins_and_match_blocks_end_with_their_file() {
    let system = FakeSystem::new(OsFamily::Linux)
        .file(SSHD, "")
        .file(
            "/etc/ssh/sshd_config",
            "# PermitRootLogin yes\n\
             permitrootlogin \"no\"   # quoted, lowercase keyword\n\
             Include sshd_config.d/*.conf /etc/ssh/extra.conf\n\
             PasswordAuthentication yes\n\
             Match User bob\n\
             \x20 PermitEmptyPasswords yes\n\
             \x20 Include /etc/ssh/match-only.conf\n",
        )
        .file(
            "/etc/ssh/sshd_config.d/10-first.conf",
            "PasswordAuthentication=no\nMatch Address 10.0.0.0/8\n  KbdInteractiveAuthentication yes\n",
        )
        .file("/etc/ssh/sshd_config.d/20-second.conf", "ChallengeResponseAuthentication no\nPermitRootLogin yes\n")
        .file("/etc/ssh/sshd_config.d/README", "UsePAM yes\n")
        .file("/etc/ssh/sshd_config.d/.hidden.conf", "UsePAM yes\n")
        .file("/etc/ssh/extra.conf", "Include nested.conf\n")
        .file("/etc/ssh/nested.conf", "PermitEmptyPasswords no\n")
        .file("/etc/ssh/match-only.conf", "UsePAM yes\n");
    let found = server(probe(&system));
    assert_eq!(found.state, ServiceState::Disabled);
    let config = config(&found);
    assert_eq!(logins(config), (false, false, false, false, "no"));
    assert_eq!(
        config.source,
        "/etc/ssh/sshd_config, /etc/ssh/sshd_config.d/10-first.conf, /etc/ssh/sshd_config.d/20-second.conf, \
         /etc/ssh/extra.conf, /etc/ssh/nested.conf"
    );
}

#[test]
fn without_lines_sshd_defaults_apply_and_without_prohibit_password_is_normalized() {
    let system = enabled_linux().file("/etc/ssh/sshd_config", "PermitRootLogin without-password\n");
    assert_eq!(
        logins(config(&server(probe(&system)))),
        (true, true, false, false, "prohibit-password")
    );
}

#[test]
fn a_bad_value_makes_the_config_unknown_with_its_place() {
    let system = enabled_linux().file("/etc/ssh/sshd_config", "\nPasswordAuthentication maybe\n");
    let found = server(probe(&system));
    assert_eq!(
        found.config,
        Some(Observed::unknown(
            "/etc/ssh/sshd_config line 2: `maybe` is not a valid value for PasswordAuthentication"
        ))
    );
}

#[test]
fn linux_state_from_install_enablement_and_processes() {
    let absent = server(probe(&FakeSystem::new(OsFamily::Linux)));
    assert_eq!(absent.state, ServiceState::NotInstalled);
    assert_eq!(absent.config, None);

    let installed = FakeSystem::new(OsFamily::Linux)
        .file(SSHD, "")
        .file("/etc/ssh/sshd_config", "")
        .file("/proc/1/comm", "systemd\n")
        .file("/proc/self/comm", "sshd\n");
    assert_eq!(server(probe(&installed)).state, ServiceState::Disabled);

    let running = FakeSystem::new(OsFamily::Linux)
        .file(SSHD, "")
        .file("/etc/ssh/sshd_config", "")
        .file("/proc/1/comm", "systemd\n")
        .file("/proc/812/comm", "sshd\n");
    assert_eq!(server(probe(&running)).state, ServiceState::Running);

    let socket = FakeSystem::new(OsFamily::Linux)
        .file(SSHD, "")
        .file("/etc/ssh/sshd_config", "")
        .file("/etc/systemd/system/sockets.target.wants/ssh.socket", "");
    assert_eq!(server(probe(&socket)).state, ServiceState::Running);
}

fn launchctl(name: &str, code: i32) -> CommandOutput {
    CommandOutput {
        code: Some(code),
        stdout: fixture("macos", name),
        stderr: String::new(),
    }
}

#[test]
fn macos_remote_login_from_launchd() {
    let cases = [
        ("launchctl-print-sshd-off.txt", 113, ServiceState::Disabled),
        (
            "launchctl-print-sshd-on-partial.txt",
            0,
            ServiceState::Running,
        ),
    ];
    for (name, code, state) in cases {
        let system = FakeSystem::new(OsFamily::Macos)
            .command_output(LAUNCHCTL_PRINT, launchctl(name, code))
            .file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*\n")
            .file(
                "/etc/ssh/sshd_config.d/100-macos.conf",
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            );
        let found = server(probe(&system));
        assert_eq!(found.state, state, "{name}");
        assert_eq!(
            logins(config(&found)),
            (false, false, false, false, "prohibit-password"),
            "{name}"
        );
        insta::assert_json_snapshot!(format!("ssh_server__macos__{name}"), found);
    }
}

#[test]
fn macos_root_falls_back_to_launchd_when_systemsetup_refuses() {
    let system = FakeSystem::new(OsFamily::Macos)
        .privileged(true)
        .command(
            "/usr/sbin/systemsetup -getremotelogin",
            fixture("macos", "systemsetup-getremotelogin-not-admin.txt"),
        )
        .command_output(
            LAUNCHCTL_PRINT,
            launchctl("launchctl-print-sshd-on-partial.txt", 0),
        )
        .file("/etc/ssh/sshd_config", "");
    assert_eq!(server(probe(&system)).state, ServiceState::Running);
    assert_eq!(
        system.ran()[..2],
        ["/usr/sbin/systemsetup -getremotelogin", LAUNCHCTL_PRINT]
    );
}

#[test]
fn macos_root_trusts_systemsetup() {
    let system = FakeSystem::new(OsFamily::Macos)
        .privileged(true)
        .command(
            "/usr/sbin/systemsetup -getremotelogin",
            "Remote Login: Off\n",
        )
        .file("/etc/ssh/sshd_config", "");
    assert_eq!(server(probe(&system)).state, ServiceState::Disabled);
}

#[test]
fn macos_unexpected_launchctl_answer_is_unknown() {
    let system = FakeSystem::new(OsFamily::Macos).command_output(
        LAUNCHCTL_PRINT,
        CommandOutput {
            code: Some(1),
            stdout: String::new(),
            stderr: "Operation not permitted\n".to_owned(),
        },
    );
    let reason = probe(&system)
        .unknown_reason()
        .map(str::to_owned)
        .expect("unknown");
    assert!(
        reason.starts_with("checking Remote Login needs root"),
        "{reason}"
    );
}

fn windows_with_service(output: CommandOutput) -> FakeSystem {
    FakeSystem::new(OsFamily::Windows)
        .command_output(POWERSHELL_GET_SERVICE, output)
        .file(
            r"C:\ProgramData\ssh\sshd_config",
            fixture("windows", "sshd-config-win32-openssh-default.txt"),
        )
}

#[test]
fn windows_service_state_and_default_config() {
    let cases = [
        ("get-service-sshd-running.txt", ServiceState::Running),
        ("get-service-sshd-stopped.txt", ServiceState::Disabled),
    ];
    for (name, state) in cases {
        let system = windows_with_service(CommandOutput {
            code: Some(0),
            stdout: fixture("windows", name),
            stderr: String::new(),
        });
        let found = server(probe(&system));
        assert_eq!(found.state, state, "{name}");
        assert_eq!(
            logins(config(&found)),
            (true, true, false, false, "prohibit-password"),
            "{name}"
        );
        insta::assert_json_snapshot!(format!("ssh_server__windows__{name}"), found);
    }
}

#[test]
fn windows_without_the_service_has_no_server() {
    let system = windows_with_service(CommandOutput {
        code: Some(1),
        stdout: String::new(),
        stderr: "Get-Service : Cannot find any service with service name 'sshd'.\r\n".to_owned(),
    });
    assert_eq!(
        server(probe(&system)),
        SshServer {
            state: ServiceState::NotInstalled,
            config: None,
        }
    );
}

#[test]
fn windows_unreadable_powershell_answer_is_unknown() {
    let system = FakeSystem::new(OsFamily::Windows).command_hangs(POWERSHELL_GET_SERVICE);
    let reason = probe(&system)
        .unknown_reason()
        .map(str::to_owned)
        .expect("unknown");
    assert!(
        reason.starts_with("asking for the sshd service failed:"),
        "{reason}"
    );
    assert!(reason.contains("did not answer within"), "{reason}");
}
