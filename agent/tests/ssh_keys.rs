//! ssh-keys: real keys made with ssh-keygen, read through the real system;
//! key fixtures and homes of every OS through the fake one.

use std::io;
use std::path::{Path, PathBuf};

use shipshape::probes::ssh_keys::{Home, KeyInfo, homes, parse_private_key, probe, scan_homes};
use shipshape::system::fake::{FakeSystem, fixture_body};
use shipshape::system::{CommandError, CommandOutput, FileInfo, RealSystem, System};
use shipshape_core::facts::{KeyFormat, Observed, OsFamily, SshKey, SshKeys};

const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

fn key_fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ssh-keys/any")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    fixture_body(&text).to_owned()
}

fn observed(keys: Observed<SshKeys>) -> SshKeys {
    match keys {
        Observed::Observed(keys) => keys,
        Observed::Unknown { reason } => panic!("expected keys, got unknown: {reason}"),
    }
}

fn only_key(keys: &SshKeys) -> &SshKey {
    assert_eq!(keys.keys.len(), 1, "{keys:#?}");
    &keys.keys[0]
}

// ---- live: real keys from ssh-keygen ----

/// One key to generate, and what the probe must conclude about it.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    passphrase: &'static str,
    format: KeyFormat,
    algorithm: Option<&'static str>,
    bits: Option<u32>,
    mode: u32,
    /// Delete the `.pub` after generating, so only the private file speaks.
    drop_pub: bool,
}

const fn case(
    name: &'static str,
    args: &'static [&'static str],
    format: KeyFormat,
    algorithm: &'static str,
    bits: u32,
) -> Case {
    Case {
        name,
        args,
        passphrase: "",
        format,
        algorithm: Some(algorithm),
        bits: Some(bits),
        mode: 0o600,
        drop_pub: false,
    }
}

const fn encrypted(case: Case) -> Case {
    Case {
        passphrase: "correct horse battery",
        ..case
    }
}

fn cases() -> Vec<Case> {
    use KeyFormat::{Openssh, Pem, Pkcs8};
    vec![
        case(
            "id_ed25519",
            &["-t", "ed25519"],
            Openssh,
            "ssh-ed25519",
            256,
        ),
        encrypted(case(
            "id_ed25519_pass",
            &["-t", "ed25519"],
            Openssh,
            "ssh-ed25519",
            256,
        )),
        case(
            "id_rsa2048",
            &["-t", "rsa", "-b", "2048"],
            Openssh,
            "ssh-rsa",
            2048,
        ),
        case(
            "id_rsa4096",
            &["-t", "rsa", "-b", "4096"],
            Openssh,
            "ssh-rsa",
            4096,
        ),
        case(
            "id_ecdsa256",
            &["-t", "ecdsa", "-b", "256"],
            Openssh,
            "ecdsa-sha2-nistp256",
            256,
        ),
        encrypted(case(
            "id_ecdsa384",
            &["-t", "ecdsa", "-b", "384"],
            Openssh,
            "ecdsa-sha2-nistp384",
            384,
        )),
        case(
            "pem_rsa",
            &["-t", "rsa", "-b", "2048", "-m", "PEM"],
            Pem,
            "ssh-rsa",
            2048,
        ),
        encrypted(case(
            "pem_rsa_pass",
            &["-t", "rsa", "-b", "2048", "-m", "PEM"],
            Pem,
            "ssh-rsa",
            2048,
        )),
        case(
            "pem_ecdsa",
            &["-t", "ecdsa", "-b", "521", "-m", "PEM"],
            Pem,
            "ecdsa-sha2-nistp521",
            521,
        ),
        case(
            "pkcs8_rsa",
            &["-t", "rsa", "-b", "3072", "-m", "PKCS8"],
            Pkcs8,
            "ssh-rsa",
            3072,
        ),
        encrypted(case(
            "pkcs8_rsa_pass",
            &["-t", "rsa", "-b", "2048", "-m", "PKCS8"],
            Pkcs8,
            "ssh-rsa",
            2048,
        )),
        case(
            "pkcs8_ecdsa",
            &["-t", "ecdsa", "-b", "384", "-m", "PKCS8"],
            Pkcs8,
            "ecdsa-sha2-nistp384",
            384,
        ),
        encrypted(case(
            "pkcs8_ecdsa_pass",
            &["-t", "ecdsa", "-b", "256", "-m", "PKCS8"],
            Pkcs8,
            "ecdsa-sha2-nistp256",
            256,
        )),
        Case {
            mode: 0o644,
            ..case(
                "id_ed25519_world_readable",
                &["-t", "ed25519"],
                Openssh,
                "ssh-ed25519",
                256,
            )
        },
        Case {
            bits: None,
            drop_pub: true,
            ..encrypted(case(
                "pem_rsa_pass_no_pub",
                &["-t", "rsa", "-b", "2048", "-m", "PEM"],
                Pem,
                "ssh-rsa",
                0,
            ))
        },
        Case {
            algorithm: None,
            bits: None,
            drop_pub: true,
            ..encrypted(case(
                "pkcs8_pass_no_pub",
                &["-t", "ecdsa", "-m", "PKCS8"],
                Pkcs8,
                "",
                0,
            ))
        },
    ]
}

/// `ssh-keygen` must be there in CI; elsewhere its absence skips the live test.
fn ssh_keygen(system: &RealSystem) -> Option<PathBuf> {
    let found = system.find_program(&[SSH_KEYGEN]);
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{SSH_KEYGEN} is missing on CI: install openssh-client"
        );
        eprintln!("skipping: {SSH_KEYGEN} is not installed");
    }
    found
}

fn keygen(system: &RealSystem, keygen: &Path, args: &[&str]) -> CommandOutput {
    let output = system.run(keygen, args).expect("ssh-keygen runs");
    assert!(
        output.success(),
        "ssh-keygen {args:?} failed: {}",
        output.stderr
    );
    output
}

/// `ssh-keygen -lf key.pub` → (bits, fingerprint).
fn reference_fingerprint(system: &RealSystem, keygen_path: &Path, public: &Path) -> (u32, String) {
    let output = keygen(system, keygen_path, &["-l", "-f", public.to_str().unwrap()]);
    let mut words = output.stdout.split_whitespace();
    let bits = words
        .next()
        .and_then(|bits| bits.parse().ok())
        .expect("bits");
    (bits, words.next().expect("fingerprint").to_owned())
}

#[cfg(unix)]
#[test]
fn live_keys_from_ssh_keygen_are_described_like_ssh_keygen_does() {
    use std::os::unix::fs::PermissionsExt;

    let system = RealSystem::default();
    let Some(keygen_path) = ssh_keygen(&system) else {
        return;
    };
    let home = tempfile::tempdir().expect("temp home");
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();

    let mut expected = Vec::new();
    for case in cases() {
        let path = ssh.join(case.name);
        let mut args = case.args.to_vec();
        let file = path.to_str().unwrap();
        args.extend(["-q", "-C", "live-test", "-N", case.passphrase, "-f", file]);
        keygen(&system, &keygen_path, &args);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(case.mode)).unwrap();
        let public = path.with_file_name(format!("{}.pub", case.name));
        let reference = reference_fingerprint(&system, &keygen_path, &public);
        if case.drop_pub {
            std::fs::remove_file(&public).unwrap();
        }
        expected.push((case, path, reference));
    }
    let mut dsa_made = Vec::new();
    for (name, format) in [
        ("id_dsa", "RFC4716"),
        ("pem_dsa", "PEM"),
        ("pkcs8_dsa", "PKCS8"),
    ] {
        let path = ssh.join(name);
        let file = path.to_str().unwrap();
        let args = ["-q", "-t", "dsa", "-m", format, "-N", "", "-f", file];
        if system
            .run(&keygen_path, &args)
            .is_ok_and(|output| output.success())
        {
            dsa_made.push(path);
        }
    }
    if dsa_made.is_empty() {
        eprintln!("not testing DSA: this ssh-keygen no longer makes DSA keys (OpenSSH >= 9.8)");
    }
    std::fs::write(
        ssh.join("config"),
        "Host *\n  IdentityFile ~/.ssh/id_ed25519\n",
    )
    .unwrap();
    std::fs::write(ssh.join("known_hosts"), "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n").unwrap();
    std::fs::write(ssh.join("notes.txt"), "not a key\n").unwrap();
    std::fs::write(ssh.join("huge"), vec![b'-'; 200 * 1024]).unwrap();
    std::fs::create_dir(ssh.join("old")).unwrap();
    std::os::unix::fs::symlink(ssh.join("id_ed25519"), ssh.join("linked_key")).unwrap();

    let found = scan_homes(
        &system,
        &[Home {
            owner: "tester".to_owned(),
            dir: home.path().to_owned(),
        }],
    );

    assert_eq!(found.scanned, [ssh.display().to_string()]);
    assert_eq!(
        found.unreadable,
        [format!(
            "{} is a symlink and was not followed: check the file it points to",
            ssh.join("linked_key").display()
        )]
    );
    assert_eq!(
        found.keys.len(),
        expected.len() + dsa_made.len(),
        "{found:#?}"
    );
    for (case, path, (reference_bits, reference_fingerprint)) in &expected {
        let key = found
            .keys
            .iter()
            .find(|key| key.path == path.display().to_string())
            .unwrap_or_else(|| panic!("{} not found", case.name));
        let name = case.name;
        assert_eq!(key.owner, "tester");
        assert_eq!(key.format, case.format, "{name}");
        assert_eq!(key.algorithm.as_deref(), case.algorithm, "{name}");
        assert_eq!(key.bits, case.bits, "{name}");
        assert_eq!(key.encrypted, !case.passphrase.is_empty(), "{name}");
        assert!(!key.hardware_backed, "{name}");
        assert_eq!(key.mode, Some(case.mode), "{name}");
        if case.drop_pub {
            assert_eq!(key.fingerprint, None, "{name}");
            assert!(
                key.note
                    .as_deref()
                    .is_some_and(|note| note.contains("no .pub file")),
                "{name}: {key:?}"
            );
        } else {
            assert_eq!(key.bits, Some(*reference_bits), "{name}");
            assert_eq!(
                key.fingerprint.as_deref(),
                Some(reference_fingerprint.as_str()),
                "{name}"
            );
            assert_eq!(key.note, None, "{name}");
        }
    }
    for dsa in &dsa_made {
        let key = found
            .keys
            .iter()
            .find(|key| key.path == dsa.display().to_string())
            .expect("DSA key");
        let (bits, fingerprint) =
            reference_fingerprint(&system, &keygen_path, &dsa.with_extension("pub"));
        assert_eq!(key.algorithm.as_deref(), Some("ssh-dss"), "{key:?}");
        assert_eq!(key.bits, Some(bits), "{key:?}");
        assert_eq!(key.fingerprint, Some(fingerprint), "{key:?}");
    }

    // Facts carry no key material: no line of any private key file shows up.
    let facts = serde_json::to_string(&found).unwrap();
    for (_, path, _) in &expected {
        let content = std::fs::read_to_string(path).unwrap();
        for line in content
            .lines()
            .filter(|line| line.len() > 20 && !line.starts_with("-----"))
        {
            assert!(
                !facts.contains(line),
                "facts leak a line of {}",
                path.display()
            );
        }
    }
}

// ---- key fixtures (pure parsing) ----

fn parsed(text: &str) -> KeyInfo {
    parse_private_key(text.as_bytes(), None).expect("a key")
}

/// Asserts that `key` is the passphrase-protected ed25519 key both
/// `openssh-ed25519-encrypted.txt` and `putty-ed25519-encrypted.txt` hold.
fn assert_encrypted_ed25519_fixture(key: &KeyInfo) {
    assert_eq!(key.algorithm.as_deref(), Some("ssh-ed25519"), "{key:?}");
    assert!(key.encrypted, "{key:?}");
    assert_eq!(
        key.fingerprint.as_deref(),
        Some("SHA256:zr9w+nnfFFzyur5fUnPWDzC3CxKTdZv9J87tkLC55hY"),
        "{key:?}"
    );
}

#[test]
fn putty_keys_are_described_from_their_public_blob() {
    let plain = parsed(&key_fixture("putty-ecdsa256.txt"));
    assert_eq!(plain.format, KeyFormat::Putty);
    assert_eq!(plain.algorithm.as_deref(), Some("ecdsa-sha2-nistp256"));
    assert_eq!(plain.bits, Some(256));
    assert!(!plain.encrypted);
    assert_eq!(
        plain.fingerprint.as_deref(),
        Some("SHA256:3rRHtZbLX+fYTpywTrNQ8sZZQp2Kiw6v1k9Zi6i4BO8")
    );

    assert_encrypted_ed25519_fixture(&parsed(&key_fixture("putty-ed25519-encrypted.txt")));
}

#[test]
fn crlf_line_endings_do_not_hide_a_key() {
    let crlf = key_fixture("openssh-ed25519-encrypted.txt").replace('\n', "\r\n");
    assert_encrypted_ed25519_fixture(&parsed(&crlf));
}

// ---- homes on every OS, through the fake system ----

#[test]
fn windows_user_profile_keys_have_no_mode() {
    let profile = PathBuf::from(r"C:\Users\alice");
    let system = FakeSystem::new(OsFamily::Windows)
        .env_var("USERPROFILE", r"C:\Users\alice")
        .env_var("USERNAME", "alice")
        .file(
            profile.join(".ssh").join("id_rsa"),
            key_fixture("pem-rsa2048.txt"),
        )
        .file(
            profile.join(".ssh").join("known_hosts"),
            "host ssh-ed25519 AAAA\n",
        );
    let keys = observed(probe(&system));
    let key = only_key(&keys);
    assert_eq!(key.owner, "alice");
    assert_eq!(key.format, KeyFormat::Pem);
    assert_eq!(key.algorithm.as_deref(), Some("ssh-rsa"));
    assert_eq!(key.bits, Some(2048));
    assert_eq!(key.mode, None);
    assert_eq!(
        key.fingerprint.as_deref(),
        Some("SHA256:PR3BVzkOF89Z52lnff0Cd+bQx3oy4p11d5/4SQ72pXM")
    );
    assert_eq!(keys.scanned, [profile.join(".ssh").display().to_string()]);
}

#[test]
fn windows_elevated_scans_every_profile_but_the_shared_ones() {
    let users = PathBuf::from(r"C:\Users");
    let mut system = FakeSystem::new(OsFamily::Windows).privileged(true);
    for profile in ["alice", "Public", "Default", "bob"] {
        system = system.file(
            users.join(profile).join(".ssh").join("id_ed25519"),
            key_fixture("openssh-ed25519-encrypted.txt"),
        );
    }
    let keys = observed(probe(&system));
    let owners: Vec<&str> = keys.keys.iter().map(|key| key.owner.as_str()).collect();
    assert_eq!(owners, ["alice", "bob"]);
}

#[test]
fn macos_root_scans_users_and_var_root_but_not_shared() {
    let system = FakeSystem::new(OsFamily::Macos)
        .privileged(true)
        .file_with(
            "/Users/alice/.ssh/id_ed25519",
            key_fixture("openssh-ed25519-encrypted.txt"),
            0o600,
            501,
        )
        .file_with(
            "/Users/Shared/.ssh/id_rsa",
            key_fixture("pem-rsa2048.txt"),
            0o644,
            0,
        )
        .file_with("/Users/.localized", "", 0o644, 0)
        .file_with(
            "/var/root/.ssh/id_rsa",
            key_fixture("pem-rsa2048.txt"),
            0o640,
            0,
        );
    let keys = observed(probe(&system));
    let seen: Vec<(&str, &str, Option<u32>)> = keys
        .keys
        .iter()
        .map(|key| (key.owner.as_str(), key.path.as_str(), key.mode))
        .collect();
    assert_eq!(
        seen,
        [
            ("alice", "/Users/alice/.ssh/id_ed25519", Some(0o600)),
            ("root", "/var/root/.ssh/id_rsa", Some(0o640)),
        ]
    );
    assert_eq!(keys.scanned, ["/Users/alice/.ssh", "/var/root/.ssh"]);
}

#[test]
fn macos_user_sees_only_their_own_home() {
    let system = FakeSystem::new(OsFamily::Macos)
        .env_var("HOME", "/Users/alice")
        .env_var("USER", "alice")
        .file_with(
            "/Users/alice/.ssh/id_ed25519",
            key_fixture("openssh-ed25519-encrypted.txt"),
            0o600,
            501,
        )
        .file_with(
            "/Users/bob/.ssh/id_ed25519",
            key_fixture("openssh-ed25519-encrypted.txt"),
            0o600,
            502,
        );
    let keys = observed(probe(&system));
    assert_eq!(only_key(&keys).path, "/Users/alice/.ssh/id_ed25519");
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                      daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
                      alias:x:1001:1001:Same home:/home/alice:/bin/bash\n";

#[test]
fn linux_root_scans_passwd_homes_and_home_directories() {
    let system = FakeSystem::new(OsFamily::Linux)
        .privileged(true)
        .file("/etc/passwd", PASSWD)
        .file_with(
            "/root/.ssh/id_rsa",
            key_fixture("pem-rsa2048.txt"),
            0o600,
            0,
        )
        .file_with(
            "/home/alice/.ssh/id_ed25519",
            key_fixture("openssh-ed25519-encrypted.txt"),
            0o600,
            1000,
        )
        .file_with(
            "/home/ldapuser/.ssh/id_ed25519",
            key_fixture("openssh-ed25519-encrypted.txt"),
            0o600,
            5000,
        );
    let (found, unreadable) = homes(&system);
    let owners: Vec<(&str, &Path)> = found
        .iter()
        .map(|home| (home.owner.as_str(), home.dir.as_path()))
        .collect();
    assert_eq!(
        owners,
        [
            ("root", Path::new("/root")),
            ("alice", Path::new("/home/alice")),
            ("ldapuser", Path::new("/home/ldapuser")),
        ]
    );
    assert!(unreadable.is_empty());
    let keys = observed(probe(&system));
    assert_eq!(keys.keys.len(), 3);
    assert_eq!(
        keys.scanned,
        ["/root/.ssh", "/home/alice/.ssh", "/home/ldapuser/.ssh"]
    );
}

#[test]
fn linux_user_without_user_variable_is_named_from_passwd() {
    let system = FakeSystem::new(OsFamily::Linux)
        .env_var("HOME", "/home/alice")
        .file("/etc/passwd", PASSWD)
        .file_with(
            "/home/alice/.ssh/id_ed25519",
            key_fixture("openssh-ed25519-encrypted.txt"),
            0o600,
            1000,
        );
    assert_eq!(only_key(&observed(probe(&system))).owner, "alice");
}

#[test]
fn no_home_at_all_is_observed_empty() {
    let keys = observed(probe(&FakeSystem::new(OsFamily::Linux)));
    assert!(keys.keys.is_empty());
    assert!(keys.scanned.is_empty());
    assert!(keys.unreadable.is_empty());
}

#[test]
fn unreadable_passwd_falls_back_to_the_invoking_user() {
    let system = FakeSystem::new(OsFamily::Linux)
        .privileged(true)
        .env_var("HOME", "/root")
        .env_var("USER", "root")
        .file_with(
            "/root/.ssh/id_rsa",
            key_fixture("pem-rsa2048.txt"),
            0o600,
            0,
        );
    let keys = observed(probe(&system));
    assert_eq!(only_key(&keys).owner, "root");
    assert_eq!(keys.unreadable.len(), 1);
    assert!(
        keys.unreadable[0].starts_with("reading /etc/passwd failed"),
        "{:?}",
        keys.unreadable
    );
}

/// A fake machine that refuses some paths, as file permissions would.
#[derive(Debug)]
struct Refusing {
    inner: FakeSystem,
    refused: Vec<PathBuf>,
}

impl Refusing {
    fn check(&self, path: &Path) -> io::Result<()> {
        if self.refused.iter().any(|refused| refused == path) {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        } else {
            Ok(())
        }
    }
}

impl System for Refusing {
    fn os(&self) -> OsFamily {
        self.inner.os()
    }
    fn run(&self, program: &Path, args: &[&str]) -> Result<CommandOutput, CommandError> {
        self.inner.run(program, args)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(path)?;
        self.inner.read(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.check(path)?;
        self.inner.read_dir(path)
    }
    fn symlink_metadata(&self, path: &Path) -> io::Result<FileInfo> {
        self.inner.symlink_metadata(path)
    }
    fn is_privileged(&self) -> bool {
        self.inner.is_privileged()
    }
    fn env(&self, name: &str) -> Option<String> {
        self.inner.env(name)
    }
}

#[test]
fn refused_directories_and_files_are_reported_with_what_to_do() {
    let system = Refusing {
        inner: FakeSystem::new(OsFamily::Linux)
            .env_var("HOME", "/home/alice")
            .env_var("USER", "alice")
            .file_with(
                "/home/alice/.ssh/id_ed25519",
                key_fixture("openssh-ed25519-encrypted.txt"),
                0o600,
                1000,
            )
            .file_with(
                "/home/alice/.ssh/id_work",
                key_fixture("pem-rsa2048.txt"),
                0o600,
                0,
            ),
        refused: vec![PathBuf::from("/home/alice/.ssh/id_work")],
    };
    let keys = observed(probe(&system));
    assert_eq!(only_key(&keys).path, "/home/alice/.ssh/id_ed25519");
    assert_eq!(
        keys.unreadable,
        [
            "reading /home/alice/.ssh/id_work needs root: run `sudo shipshape check` for a full check"
        ]
    );

    let root = Refusing {
        inner: FakeSystem::new(OsFamily::Linux)
            .privileged(true)
            .file("/etc/passwd", PASSWD)
            .file_with(
                "/home/alice/.ssh/id_ed25519",
                key_fixture("openssh-ed25519-encrypted.txt"),
                0o600,
                1000,
            ),
        refused: vec![PathBuf::from("/home/alice/.ssh")],
    };
    let keys = observed(probe(&root));
    assert!(keys.keys.is_empty());
    assert!(keys.scanned.is_empty());
    assert_eq!(
        keys.unreadable,
        ["reading /home/alice/.ssh was refused even with full privileges"]
    );
}
