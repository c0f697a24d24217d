//! The disk-encryption probe on captured outputs of Linux, macOS and Windows,
//! live on this machine, and judged by the core check.

use std::path::PathBuf;

use jiff::Timestamp;
use shipshape::probes::disk_encryption::{self, linux, macos, windows};
use shipshape::system::fake::{FakeSystem, fixture_body};
use shipshape::system::{CommandOutput, RealSystem, System};
use shipshape_core::facts::{
    DiskEncryption, Facts, Host, Observed, OsFamily, OsInfo, Volume, VolumeEncryption,
};
use shipshape_core::{FailingSince, Policy, Status, evaluate};

const LSBLK: &str = "/usr/bin/lsblk";
const FDESETUP: &str = "/usr/bin/fdesetup status";
const DISKUTIL: &str = "/usr/sbin/diskutil apfs list -plist";
const POWERSHELL: &str = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe -NoProfile -NonInteractive -Command Get-BitLockerVolume | Format-List";
const MANAGE_BDE: &str = r"C:\Windows\System32\manage-bde.exe -status";

fn fixture(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/disk-encryption")
        .join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
    fixture_body(&text).to_owned()
}

fn observed(fact: &Observed<DiskEncryption>) -> &DiskEncryption {
    fact.value()
        .unwrap_or_else(|| panic!("expected observed facts, got {fact:?}"))
}

fn volume<'a>(facts: &'a DiskEncryption, mount_point: &str) -> &'a Volume {
    facts
        .volumes
        .iter()
        .find(|volume| volume.mount_point == mount_point)
        .unwrap_or_else(|| panic!("no volume {mount_point} in {facts:#?}"))
}

fn state<'a>(facts: &'a DiskEncryption, mount_point: &str) -> &'a VolumeEncryption {
    &volume(facts, mount_point).encryption
}

/// A Linux machine whose only view of its disks is `lsblk`'s tree: no
/// mountinfo, no sysfs, and an lsblk that does not answer `-J`.
fn linux_with_lsblk_tree(body: &str) -> FakeSystem {
    FakeSystem::new(OsFamily::Linux).command(LSBLK, body)
}

#[test]
fn lsblk_arch_luks_root_is_encrypted_and_boot_is_not() {
    let system = linux_with_lsblk_tree(&fixture("linux/lsblk-arch-luks-root-and-swap.txt"));
    let fact = disk_encryption::probe(&system);
    let facts = observed(&fact);
    assert_eq!(state(facts, "/"), &VolumeEncryption::Encrypted);
    assert_eq!(
        volume(facts, "/").device.as_deref(),
        Some("/dev/mapper/cryptroot")
    );
    assert_eq!(state(facts, "/boot"), &VolumeEncryption::NotEncrypted);
    assert!(
        facts
            .volumes
            .iter()
            .all(|volume| volume.mount_point != "[SWAP]")
    );
    assert_eq!(system.ran(), ["/usr/bin/lsblk -J", "/usr/bin/lsblk"]);
    insta::assert_json_snapshot!("disk_encryption_lsblk_arch", fact);
}

#[test]
fn lsblk_manjaro_lvm_on_luks_root_is_encrypted() {
    let fact = disk_encryption::probe(&linux_with_lsblk_tree(&fixture(
        "linux/lsblk-manjaro-lvm-on-luks-root.txt",
    )));
    let root = volume(observed(&fact), "/");
    assert_eq!(root.encryption, VolumeEncryption::Encrypted);
    assert_eq!(root.method.as_deref(), Some("dm-crypt"));
    assert!(
        root.detail.as_deref().unwrap().starts_with(
            "LVM manjaro--vg0-manjaro--root on dm-crypt manjaro-crypt on partition sda2"
        ),
        "{root:?}"
    );
    insta::assert_json_snapshot!("disk_encryption_lsblk_manjaro", fact);
}

#[test]
fn lsblk_omv_luks_data_only_leaves_root_unencrypted() {
    let fact = disk_encryption::probe(&linux_with_lsblk_tree(&fixture(
        "linux/lsblk-omv-luks-data-only.txt",
    )));
    let facts = observed(&fact);
    assert_eq!(state(facts, "/"), &VolumeEncryption::NotEncrypted);
    assert_eq!(
        state(facts, "/srv/dev-disk-by-label-crypttest"),
        &VolumeEncryption::Encrypted
    );
    assert_eq!(
        state(facts, "/srv/dev-disk-by-label-vdd"),
        &VolumeEncryption::Encrypted
    );
    insta::assert_json_snapshot!("disk_encryption_lsblk_omv", fact);
}

#[test]
fn lsblk_armbian_root_on_a_second_mountpoint_line_is_encrypted() {
    let fact = disk_encryption::probe(&linux_with_lsblk_tree(&fixture(
        "linux/lsblk-armbian-luks-root-multi-mountpoints.txt",
    )));
    let facts = observed(&fact);
    assert_eq!(state(facts, "/"), &VolumeEncryption::Encrypted);
    assert_eq!(state(facts, "/var/log.hdd"), &VolumeEncryption::Encrypted);
    assert_eq!(state(facts, "/var/log"), &VolumeEncryption::NotEncrypted);
    assert_eq!(state(facts, "/boot"), &VolumeEncryption::NotEncrypted);
    insta::assert_json_snapshot!("disk_encryption_lsblk_armbian", fact);
}

#[test]
fn lsblk_ubuntu_partial_shows_home_encrypted_and_no_root() {
    let fact = disk_encryption::probe(&linux_with_lsblk_tree(&fixture(
        "linux/lsblk-ubuntu-lvm-on-luks-home-partial.txt",
    )));
    let facts = observed(&fact);
    assert_eq!(state(facts, "/home"), &VolumeEncryption::Encrypted);
    assert!(facts.volumes.iter().all(|volume| volume.mount_point != "/"));
    insta::assert_json_snapshot!("disk_encryption_lsblk_ubuntu_partial", fact);
}

#[test]
fn lsblk_fjp_json_with_luks_on_other_disks_leaves_root_unencrypted() {
    let lsblk = linux::parse_lsblk_json(&fixture("linux/lsblk-fJp-luks-not-root.txt")).unwrap();
    let facts = DiskEncryption {
        volumes: lsblk.volumes(),
    };
    assert_eq!(state(&facts, "/"), &VolumeEncryption::NotEncrypted);
    assert_eq!(volume(&facts, "/").device.as_deref(), Some("/dev/sda3"));
    assert_eq!(state(&facts, "/boot/efi"), &VolumeEncryption::NotEncrypted);
    assert_eq!(facts.volumes.len(), 2, "{facts:#?}");
    // A LUKS header is not a cipher until it is opened (a child of it would be).
    let header = lsblk.layer("/dev/mapper/LvmEncrypt-lvmcryptroot").unwrap();
    assert!(!header.encrypted(), "{header:?}");
}

#[test]
fn this_machine_lsblk_json_shows_a_plain_root() {
    let system = FakeSystem::new(OsFamily::Linux).command(
        "/usr/bin/lsblk -J",
        fixture("linux/lsblk-J-debian12-vm-plain-root.txt"),
    );
    let fact = disk_encryption::probe(&system);
    let root = volume(observed(&fact), "/");
    assert_eq!(root.encryption, VolumeEncryption::NotEncrypted);
    assert_eq!(root.device.as_deref(), Some("/dev/vda"));
    assert_eq!(system.ran(), ["/usr/bin/lsblk -J"]);
}

#[test]
fn this_machine_mountinfo_and_sysfs_show_a_plain_root_and_skip_pseudo_filesystems() {
    let uevent = fixture("linux/sysfs-dev-block-254-0-uevent-debian12-vm.txt");
    let system = FakeSystem::new(OsFamily::Linux)
        .file(
            "/proc/self/mountinfo",
            fixture("linux/mountinfo-debian12-vm-plain-root.txt"),
        )
        .file("/sys/dev/block/254:0/uevent", uevent.clone())
        .file("/sys/class/block/vda/uevent", uevent);
    let fact = disk_encryption::probe(&system);
    let facts = observed(&fact);
    // `/run/netns` is a bind mount (ip netns) of a directory on the same ext4.
    let mounts: Vec<&str> = facts
        .volumes
        .iter()
        .map(|volume| volume.mount_point.as_str())
        .collect();
    assert_eq!(mounts, ["/", "/run/netns"]);
    for volume in &facts.volumes {
        assert_eq!(volume.encryption, VolumeEncryption::NotEncrypted);
        assert_eq!(volume.detail.as_deref(), Some("ext4 on disk vda"));
    }
    assert!(
        system.ran().is_empty(),
        "sysfs answers without lsblk: {:?}",
        system.ran()
    );
    insta::assert_json_snapshot!("disk_encryption_this_machine_sysfs", fact);
}

#[test]
fn this_machine_mountinfo_without_sysfs_falls_back_to_lsblk_by_device_number() {
    let system = FakeSystem::new(OsFamily::Linux)
        .file(
            "/proc/self/mountinfo",
            fixture("linux/mountinfo-debian12-vm-plain-root.txt"),
        )
        .command(
            "/usr/bin/lsblk -J",
            fixture("linux/lsblk-J-debian12-vm-plain-root.txt"),
        );
    let fact = disk_encryption::probe(&system);
    let root = volume(observed(&fact), "/");
    assert_eq!(root.encryption, VolumeEncryption::NotEncrypted);
    assert_eq!(root.detail.as_deref(), Some("ext4 on disk vda"));
}

/// A constructed machine (not a capture): LVM on LUKS for `/`, an unrelated
/// LUKS disk on `/data`, btrfs `/home` on a plain partition, a ZFS dataset
/// without the zfs tool, laid out in sysfs as the kernel does.
fn constructed_lvm_on_luks() -> FakeSystem {
    let mountinfo = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/mapper/vg0-root rw
28 27 259:1 / /boot rw,relatime shared:2 - ext4 /dev/nvme0n1p1 rw
29 27 254:3 / /data rw,relatime shared:3 - xfs /dev/mapper/data_crypt rw
30 27 0:45 /@home /home rw,relatime shared:4 - btrfs /dev/nvme0n1p4 rw,subvol=/@home
31 27 0:50 / /tank rw,relatime shared:5 - zfs tank/data rw
32 27 7:3 / /snap/core/1 ro,relatime shared:6 - squashfs /dev/loop3 ro
";
    FakeSystem::new(OsFamily::Linux)
        .file("/proc/self/mountinfo", mountinfo)
        .file(
            "/sys/dev/block/254:1/uevent",
            "MAJOR=254\nMINOR=1\nDEVNAME=dm-1\nDEVTYPE=disk\n",
        )
        .file("/sys/class/block/dm-1/dm/uuid", "LVM-Qm3nQmXW\n")
        .file("/sys/class/block/dm-1/dm/name", "vg0-root\n")
        .file("/sys/class/block/dm-1/slaves/dm-0", "")
        .file(
            "/sys/class/block/dm-0/dm/uuid",
            "CRYPT-LUKS2-3f1c0e5d9a7b4c2e8d6f1a0b9c8d7e6f-nvme0n1p3_crypt\n",
        )
        .file("/sys/class/block/dm-0/dm/name", "nvme0n1p3_crypt\n")
        .file("/sys/class/block/dm-0/slaves/nvme0n1p3", "")
        .file(
            "/sys/dev/block/259:1/uevent",
            "MAJOR=259\nMINOR=1\nDEVNAME=nvme0n1p1\nDEVTYPE=partition\n",
        )
        .file("/sys/class/block/nvme0n1p1/partition", "1\n")
        .file("/sys/class/block/nvme0n1p3/partition", "3\n")
        .file("/sys/class/block/nvme0n1p4/partition", "4\n")
        .file("/sys/block/nvme0n1/nvme0n1p1/partition", "1\n")
        .file("/sys/block/nvme0n1/nvme0n1p3/partition", "3\n")
        .file("/sys/block/nvme0n1/nvme0n1p4/partition", "4\n")
        .file(
            "/sys/dev/block/254:3/uevent",
            "MAJOR=254\nMINOR=3\nDEVNAME=dm-3\nDEVTYPE=disk\n",
        )
        .file(
            "/sys/class/block/dm-3/dm/uuid",
            "CRYPT-LUKS2-aa01bb02cc03dd04ee05ff0600112233-data_crypt\n",
        )
        .file("/sys/class/block/dm-3/dm/name", "data_crypt\n")
}

#[test]
fn sysfs_lvm_on_luks_root_is_encrypted_and_other_mounts_keep_their_own_state() {
    let fact = disk_encryption::probe(&constructed_lvm_on_luks());
    let facts = observed(&fact);
    let root = volume(facts, "/");
    assert_eq!(root.encryption, VolumeEncryption::Encrypted);
    assert_eq!(root.method.as_deref(), Some("dm-crypt LUKS2"));
    assert_eq!(root.device.as_deref(), Some("/dev/mapper/vg0-root"));
    assert_eq!(
        root.detail.as_deref(),
        Some("ext4 on LVM vg0-root on dm-crypt LUKS2 nvme0n1p3_crypt")
    );
    assert_eq!(state(facts, "/data"), &VolumeEncryption::Encrypted);
    assert_eq!(state(facts, "/boot"), &VolumeEncryption::NotEncrypted);
    let home = volume(facts, "/home");
    assert_eq!(home.encryption, VolumeEncryption::NotEncrypted);
    assert_eq!(
        home.detail.as_deref(),
        Some("btrfs on partition nvme0n1p4 on disk nvme0n1")
    );
    let VolumeEncryption::Unknown { reason } = state(facts, "/tank") else {
        panic!("ZFS without the zfs tool must be unknown: {facts:#?}");
    };
    assert_eq!(
        reason,
        "cannot ask ZFS about tank/data: /usr/sbin/zfs is not installed"
    );
    assert!(
        facts
            .volumes
            .iter()
            .all(|volume| !volume.mount_point.starts_with("/snap"))
    );
    assert!(
        facts
            .volumes
            .iter()
            .all(|volume| volume.mount_point != "/proc")
    );
}

#[test]
fn a_hung_zfs_gives_unknown_for_its_dataset_only() {
    let system = constructed_lvm_on_luks()
        .command_hangs("/usr/sbin/zfs get -H -o value encryption,keystatus tank/data");
    let fact = disk_encryption::probe(&system);
    let facts = observed(&fact);
    let VolumeEncryption::Unknown { reason } = state(facts, "/tank") else {
        panic!("a hung zfs must be unknown: {facts:#?}");
    };
    assert!(reason.contains("did not answer within 10 s"), "{reason}");
    assert_eq!(state(facts, "/"), &VolumeEncryption::Encrypted);
}

#[test]
fn an_overlay_root_is_unknown_not_skipped() {
    let system = FakeSystem::new(OsFamily::Linux).file(
        "/proc/self/mountinfo",
        "500 400 0:52 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n",
    );
    let fact = disk_encryption::probe(&system);
    let VolumeEncryption::Unknown { reason } = state(observed(&fact), "/") else {
        panic!("{fact:?}");
    };
    assert!(
        reason.contains("overlay") && reason.contains("container"),
        "{reason}"
    );
}

#[test]
fn no_mountinfo_and_a_missing_or_hung_lsblk_give_unknown() {
    let missing = disk_encryption::probe(&FakeSystem::new(OsFamily::Linux));
    assert_eq!(
        missing.unknown_reason(),
        Some(
            "/proc/self/mountinfo is unreadable and lsblk could not be run: /usr/bin/lsblk is not installed"
        )
    );
    let hung = disk_encryption::probe(
        &FakeSystem::new(OsFamily::Linux).command_hangs("/usr/bin/lsblk -J"),
    );
    assert!(
        hung.unknown_reason().unwrap().contains("did not answer"),
        "{hung:?}"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn live_probe_on_this_machine_reports_root_as_lsblk_sees_it() {
    let system = RealSystem::default();
    let fact = disk_encryption::probe(&system);
    let facts = observed(&fact);
    let root = volume(facts, "/");
    assert!(
        !matches!(root.encryption, VolumeEncryption::Unknown { .. }),
        "{root:?}"
    );
    let Some(lsblk) = system.find_program(&["/usr/bin/lsblk", "/bin/lsblk"]) else {
        return;
    };
    let output = system.run(&lsblk, &["-J"]).unwrap();
    let view = linux::parse_lsblk_json(&output.stdout).unwrap();
    let seen_by_lsblk = view.volumes();
    if let Some(lsblk_root) = seen_by_lsblk
        .iter()
        .find(|volume| volume.mount_point == "/")
    {
        assert_eq!(
            root.encryption, lsblk_root.encryption,
            "sysfs: {root:?}, lsblk: {lsblk_root:?}"
        );
        assert_eq!(root.device, lsblk_root.device);
    }
}

#[test]
fn fdesetup_on_with_the_apfs_data_volume() {
    let system = FakeSystem::new(OsFamily::Macos)
        .command(
            FDESETUP,
            fixture("macos/fdesetup-status-on-master-keychain.txt"),
        )
        .command(
            DISKUTIL,
            fixture("macos/diskutil-apfs-list-plist-filevault-yes.txt"),
        );
    let fact = disk_encryption::probe(&system);
    let root = volume(observed(&fact), "/");
    assert_eq!(root.encryption, VolumeEncryption::Encrypted);
    assert_eq!(root.method.as_deref(), Some("FileVault"));
    assert_eq!(root.device.as_deref(), Some("disk3s5"));
    assert_eq!(observed(&fact).volumes.len(), 1);
    insta::assert_json_snapshot!("disk_encryption_macos_filevault_on", fact);
}

#[test]
fn diskutil_apfs_list_names_every_volume_and_its_filevault_flag() {
    let volumes =
        macos::parse_apfs_list(&fixture("macos/diskutil-apfs-list-plist-filevault-yes.txt"))
            .unwrap();
    assert_eq!(volumes.len(), 13);
    let encrypted: Vec<(&str, &str)> = volumes
        .iter()
        .filter(|volume| volume.filevault)
        .map(|volume| (volume.device.as_str(), volume.name.as_str()))
        .collect();
    assert_eq!(
        encrypted,
        [
            ("disk3s1", "Macintosh HD"),
            ("disk3s5", "Data"),
            ("disk3s7", "Nix Store")
        ]
    );
    let data = volumes
        .iter()
        .find(|volume| volume.roles == ["Data"])
        .unwrap();
    assert_eq!((data.container.as_str(), data.migrating), ("disk3", false));
}

#[test]
fn without_fdesetup_the_data_volume_flag_decides() {
    let system = FakeSystem::new(OsFamily::Macos).command(
        DISKUTIL,
        fixture("macos/diskutil-apfs-list-plist-filevault-yes.txt"),
    );
    let fact = disk_encryption::probe(&system);
    assert_eq!(state(observed(&fact), "/"), &VolumeEncryption::Encrypted);
}

#[test]
fn a_hung_fdesetup_without_diskutil_is_unknown() {
    let system = FakeSystem::new(OsFamily::Macos).command_hangs(FDESETUP);
    let fact = disk_encryption::probe(&system);
    let VolumeEncryption::Unknown { reason } = state(observed(&fact), "/") else {
        panic!("{fact:?}");
    };
    assert_eq!(
        reason,
        "cannot ask fdesetup: /usr/bin/fdesetup did not answer within 10 s and was stopped"
    );
}

#[test]
fn get_bitlockervolume_on_is_encrypted() {
    let system = FakeSystem::new(OsFamily::Windows).command(
        POWERSHELL,
        fixture("windows/get-bitlockervolume-formatlist-c-on.txt"),
    );
    let fact = disk_encryption::probe(&system);
    let c = volume(observed(&fact), "C:");
    assert_eq!(c.encryption, VolumeEncryption::Encrypted);
    assert_eq!(c.method.as_deref(), Some("BitLocker XtsAes128"));
    insta::assert_json_snapshot!("disk_encryption_windows_get_bitlockervolume_on", fact);
}

#[test]
fn get_bitlockervolume_with_crlf_line_endings_reads_the_same() {
    let body = fixture("windows/get-bitlockervolume-formatlist-encrypted-protection-off.txt");
    let crlf = body.replace('\n', "\r\n");
    assert_eq!(
        windows::parse_get_bitlockervolume(&crlf).unwrap(),
        windows::parse_get_bitlockervolume(&body).unwrap()
    );
}

#[test]
fn get_bitlockervolume_encrypted_with_protection_off_is_protection_off() {
    let system = FakeSystem::new(OsFamily::Windows).command(
        POWERSHELL,
        fixture("windows/get-bitlockervolume-formatlist-encrypted-protection-off.txt"),
    );
    let fact = disk_encryption::probe(&system);
    assert_eq!(
        state(observed(&fact), "C:"),
        &VolumeEncryption::ProtectionOff
    );
}

#[test]
fn get_bitlockervolume_table_lists_os_first_and_reads_progress() {
    let volumes = windows::parse_get_bitlockervolume(&fixture(
        "windows/get-bitlockervolume-table-c-decrypted.txt",
    ))
    .unwrap();
    let states: Vec<(Option<&str>, bool, &VolumeEncryption)> = volumes
        .iter()
        .map(|volume| {
            (
                volume.mount_point.as_deref(),
                volume.operating_system,
                &volume.encryption,
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (
                Some("D:"),
                false,
                &VolumeEncryption::Encrypting { percent: Some(1.0) }
            ),
            (Some("E:"), false, &VolumeEncryption::NotEncrypted),
            (Some("C:"), true, &VolumeEncryption::NotEncrypted),
            (Some("F:"), false, &VolumeEncryption::NotEncrypted),
            (Some("G:"), false, &VolumeEncryption::NotEncrypted),
        ]
    );
    assert!(
        volumes[0].detail.contains("{RecoveryPassword, Pas..."),
        "{:?}",
        volumes[0]
    );
}

#[test]
fn manage_bde_protection_on_is_encrypted_when_powershell_is_missing() {
    let system = FakeSystem::new(OsFamily::Windows).privileged(true).command(
        MANAGE_BDE,
        fixture("windows/manage-bde-status-c-protection-on.txt"),
    );
    let fact = disk_encryption::probe(&system);
    let c = volume(observed(&fact), "C:");
    assert_eq!(c.encryption, VolumeEncryption::Encrypted);
    assert_eq!(c.method.as_deref(), Some("BitLocker XTS-AES 128"));
    assert_eq!(
        c.detail.as_deref(),
        Some("OS Volume, Used Space Only Encrypted, Protection On")
    );
    insta::assert_json_snapshot!("disk_encryption_windows_manage_bde_on", fact);
}

#[test]
fn manage_bde_used_space_with_protection_off_and_decimal_comma_is_protection_off() {
    let volumes = windows::parse_manage_bde(&fixture(
        "windows/manage-bde-status-c-used-space-protection-off-partial.txt",
    ))
    .unwrap();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].encryption, VolumeEncryption::ProtectionOff);
    assert_eq!(
        volumes[0].mount_point, None,
        "the pasted block does not name its volume"
    );
    assert_eq!(volumes[0].method.as_deref(), Some("BitLocker XTS-AES 128"));
}

#[test]
fn manage_bde_refused_without_admin_asks_for_an_elevated_terminal() {
    let system = FakeSystem::new(OsFamily::Windows).command_output(
        MANAGE_BDE,
        CommandOutput {
            code: Some(-1),
            stdout: String::new(),
            stderr: String::new(),
        },
    );
    let fact = disk_encryption::probe(&system);
    assert_eq!(
        fact.unknown_reason(),
        Some(
            "reading BitLocker status needs an administrator: run `shipshape check` from an elevated terminal"
        )
    );
}

#[test]
fn a_hung_powershell_and_missing_manage_bde_give_unknown() {
    let system = FakeSystem::new(OsFamily::Windows).command_hangs(POWERSHELL);
    let reason = disk_encryption::probe(&system)
        .unknown_reason()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("did not answer") && reason.contains("manage-bde.exe is not installed"),
        "{reason}"
    );
}

fn facts_for(family: OsFamily, disk: Observed<DiskEncryption>) -> Facts {
    Facts {
        host: Host {
            hostname: "laptop-7".to_owned(),
            os: OsInfo {
                family,
                id: family.as_str().to_owned(),
                name: family.as_str().to_owned(),
                version: None,
                build: None,
            },
            kernel: None,
            arch: "x86_64".to_owned(),
            hardware_id: None,
        },
        disk_encryption: disk,
        os_updates: Observed::unknown("not collected in this test"),
        firewall: Observed::unknown("not collected in this test"),
        ssh_keys: Observed::unknown("not collected in this test"),
        ssh_server: Observed::unknown("not collected in this test"),
    }
}

fn judge(policy: &str, family: OsFamily, disk: Observed<DiskEncryption>) -> (Status, String) {
    let now: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
    let policy = Policy::parse(
        policy,
        "test.toml",
        now.to_zoned(jiff::tz::TimeZone::UTC).date(),
    )
    .unwrap();
    let findings = evaluate(&policy, &facts_for(family, disk), now, &FailingSince::new());
    let finding = findings
        .iter()
        .find(|finding| finding.check == "disk-encryption")
        .unwrap();
    (finding.status, finding.summary.clone())
}

const DEFAULT_MOUNTS: &str = "[checks.disk-encryption]\nseverity = \"critical\"\n";
const ROOT_ONLY: &str =
    "[checks.disk-encryption]\nseverity = \"critical\"\nlinux-mounts = [\"/\"]\n";

#[test]
fn core_passes_lvm_on_luks_and_fails_luks_data_only() {
    let manjaro = disk_encryption::probe(&linux_with_lsblk_tree(&fixture(
        "linux/lsblk-manjaro-lvm-on-luks-root.txt",
    )));
    assert_eq!(
        judge(DEFAULT_MOUNTS, OsFamily::Linux, manjaro).0,
        Status::Pass
    );
    let omv = disk_encryption::probe(&linux_with_lsblk_tree(&fixture(
        "linux/lsblk-omv-luks-data-only.txt",
    )));
    let (status, summary) = judge(DEFAULT_MOUNTS, OsFamily::Linux, omv);
    assert_eq!(
        (status, summary.as_str()),
        (Status::Fail, "/ not encrypted")
    );
}

#[test]
fn core_checks_home_on_its_own_mount() {
    let constructed = disk_encryption::probe(&constructed_lvm_on_luks());
    let (status, summary) = judge(DEFAULT_MOUNTS, OsFamily::Linux, constructed.clone());
    assert_eq!(
        (status, summary.as_str()),
        (Status::Fail, "/home not encrypted")
    );
    assert_eq!(
        judge(ROOT_ONLY, OsFamily::Linux, constructed).0,
        Status::Pass
    );
    let partial = disk_encryption::probe(&linux_with_lsblk_tree(&fixture(
        "linux/lsblk-ubuntu-lvm-on-luks-home-partial.txt",
    )));
    assert_eq!(
        judge(DEFAULT_MOUNTS, OsFamily::Linux, partial).0,
        Status::Unknown
    );
}

#[test]
fn core_judges_filevault_and_bitlocker() {
    let mac = FakeSystem::new(OsFamily::Macos).command(
        FDESETUP,
        fixture("macos/fdesetup-status-on-master-keychain.txt"),
    );
    assert_eq!(
        judge(
            DEFAULT_MOUNTS,
            OsFamily::Macos,
            disk_encryption::probe(&mac)
        )
        .0,
        Status::Pass
    );
    let off = FakeSystem::new(OsFamily::Windows).command(
        POWERSHELL,
        fixture("windows/get-bitlockervolume-formatlist-encrypted-protection-off.txt"),
    );
    let (status, summary) = judge(
        DEFAULT_MOUNTS,
        OsFamily::Windows,
        disk_encryption::probe(&off),
    );
    assert_eq!(status, Status::Fail);
    assert!(
        summary.starts_with("C: encrypted but protection is off"),
        "{summary}"
    );
}
