//! Linux: every mounted filesystem with the chain of block devices under it.
//!
//! The mounts come from `/proc/self/mountinfo`; each mount's device chain is
//! followed through sysfs (`/sys/class/block/<dev>/dm/uuid` starting with
//! `CRYPT-LUKS2-` is a dm-crypt layer, `slaves/` leads one layer down). A
//! volume is encrypted only when every path down from it meets a cipher, so
//! LVM-on-LUKS counts and an unrelated LUKS data disk does not. Where sysfs
//! cannot be read, `lsblk` (JSON, or its tree on an lsblk without `-J`) gives
//! the same chains. ZFS datasets ask `zfs get encryption`.
//!
//! No step needs root: sysfs and mountinfo are world-readable.

use std::io;
use std::path::Path;

use shipshape_core::facts::{DiskEncryption, Observed, Volume, VolumeEncryption};

use super::{ParseError, failure, run, unknown_volume};
use crate::probes::needs_root;
use crate::system::{CommandError, System};

const LSBLK: &[&str] = &["/usr/bin/lsblk", "/bin/lsblk"];
const ZFS: &[&str] = &["/usr/sbin/zfs", "/sbin/zfs"];

/// How deep a device stack may be before we call it a loop.
const MAX_DEPTH: usize = 16;

/// Filesystems with no device of their own.
const PSEUDO: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Filesystems whose data lives on another machine.
const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "fuse.sshfs",
    "ceph",
    "glusterfs",
];

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    /// `major:minor` of the device (`0:…` for btrfs subvolumes, ZFS and pseudo filesystems).
    pub device_number: String,
    pub fstype: String,
    pub source: String,
}

/// One block device in a stack, with the devices it is built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    /// What kind of device it is ("disk", "partition", "LVM", "dm-crypt LUKS2").
    pub kind: String,
    /// Whether this layer is a cipher.
    pub cipher: bool,
    pub below: Vec<Layer>,
}

impl Layer {
    /// Encrypted when this layer is a cipher or every device under it is.
    pub fn encrypted(&self) -> bool {
        self.cipher || (!self.below.is_empty() && self.below.iter().all(Layer::encrypted))
    }

    /// The first cipher in the stack.
    fn method(&self) -> Option<String> {
        if self.cipher {
            return Some(self.kind.clone());
        }
        self.below.iter().find_map(Layer::method)
    }

    /// "LVM vg0-root on dm-crypt LUKS2 nvme0n1p3_crypt on partition nvme0n1p3 on disk nvme0n1".
    fn chain(&self) -> String {
        let this = format!("{} {}", self.kind, self.name);
        match self.below.as_slice() {
            [] => this,
            [one] => format!("{this} on {}", one.chain()),
            many => {
                let parts: Vec<String> = many.iter().map(Layer::chain).collect();
                format!("{this} on ({})", parts.join(" + "))
            }
        }
    }

    /// The path the OS gives this device under /dev.
    fn device_path(&self) -> String {
        if self.name.starts_with('/') {
            self.name.clone()
        } else if self.is_device_mapper() {
            format!("/dev/mapper/{}", self.name)
        } else {
            format!("/dev/{}", self.name)
        }
    }

    fn is_device_mapper(&self) -> bool {
        self.kind.starts_with("dm-")
            || matches!(
                self.kind.as_str(),
                "LVM" | "lvm" | "crypt" | "device-mapper" | "multipath"
            )
    }
}

/// The facts for a mount on a device stack.
fn volume(mount_point: &str, fstype: Option<&str>, layer: &Layer) -> Volume {
    let encrypted = layer.encrypted();
    let chain = layer.chain();
    Volume {
        mount_point: mount_point.to_owned(),
        device: Some(layer.device_path()),
        encryption: if encrypted {
            VolumeEncryption::Encrypted
        } else {
            VolumeEncryption::NotEncrypted
        },
        method: if encrypted { layer.method() } else { None },
        detail: Some(match fstype {
            Some(fstype) => format!("{fstype} on {chain}"),
            None => chain,
        }),
    }
}

/// Parses `/proc/self/mountinfo` (proc(5)): later mounts over the same point hide earlier ones.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, ParseError> {
    let mut mounts: Vec<Mount> = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let separator = fields
            .iter()
            .skip(6)
            .position(|field| *field == "-")
            .map(|at| at + 6)
            .ok_or_else(|| {
                ParseError::new(format!(
                    "mountinfo line without its ` - ` separator: `{line}`"
                ))
            })?;
        let (Some(fstype), Some(source)) = (fields.get(separator + 1), fields.get(separator + 2))
        else {
            return Err(ParseError::new(format!(
                "mountinfo line without filesystem type and source: `{line}`"
            )));
        };
        let mount = Mount {
            mount_point: unescape(fields[4]),
            device_number: fields[2].to_owned(),
            fstype: (*fstype).to_owned(),
            source: unescape(source),
        };
        mounts.retain(|seen| seen.mount_point != mount.mount_point);
        mounts.push(mount);
    }
    if mounts.is_empty() {
        return Err(ParseError::new("mountinfo lists no mounts"));
    }
    Ok(mounts)
}

/// Undoes the kernel's octal escapes (`\040` for a space) in mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let octal = bytes
            .get(at + 1..at + 4)
            .filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match (bytes[at], octal) {
            (b'\\', Some(digits)) => {
                out.push(
                    digits
                        .iter()
                        .fold(0u8, |value, digit| value.wrapping_mul(8) + (digit - b'0')),
                );
                at += 4;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One device as `lsblk` shows it, wherever it appears in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LsblkDevice {
    pub name: String,
    pub device_number: Option<String>,
    /// lsblk's TYPE (`disk`, `part`, `crypt`, `lvm`, …); absent from `lsblk -f`.
    pub kind: Option<String>,
    pub fstype: Option<String>,
    pub mount_points: Vec<String>,
    /// Names of the devices it sits on (its parents in lsblk's tree).
    pub parents: Vec<String>,
}

/// Every device lsblk printed, each once, in the order first seen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lsblk {
    pub devices: Vec<LsblkDevice>,
}

impl Lsblk {
    fn add(&mut self, device: LsblkDevice, parent: Option<&str>) -> usize {
        let at = match self
            .devices
            .iter()
            .position(|seen| seen.name == device.name)
        {
            Some(at) => {
                // A device on several parents appears under each: its mounts may be on any copy.
                if self.devices[at].mount_points.is_empty() {
                    self.devices[at].mount_points = device.mount_points;
                }
                at
            }
            None => {
                self.devices.push(LsblkDevice {
                    parents: Vec::new(),
                    ..device
                });
                self.devices.len() - 1
            }
        };
        if let Some(parent) =
            parent.filter(|parent| !self.devices[at].parents.iter().any(|seen| seen == parent))
        {
            self.devices[at].parents.push(parent.to_owned());
        }
        at
    }

    fn get(&self, name: &str) -> Option<&LsblkDevice> {
        self.devices.iter().find(|device| device.name == name)
    }

    /// The device stack under `name`.
    pub fn layer(&self, name: &str) -> Option<Layer> {
        self.layer_at(name, 0)
    }

    fn layer_at(&self, name: &str, depth: usize) -> Option<Layer> {
        let device = self.get(name)?;
        if depth > MAX_DEPTH {
            return None;
        }
        let kind = device.kind.as_deref().unwrap_or("device");
        // `lsblk -f` has no TYPE: the opened mapping of a LUKS header is its child.
        let under_luks = device
            .parents
            .iter()
            .filter_map(|parent| self.get(parent))
            .any(|parent| parent.fstype.as_deref() == Some("crypto_LUKS"));
        let cipher = kind == "crypt" || under_luks;
        let kind = match (cipher, under_luks, kind) {
            (true, true, _) => "dm-crypt LUKS".to_owned(),
            (true, false, _) => "dm-crypt".to_owned(),
            (false, _, "part") => "partition".to_owned(),
            (false, _, "lvm") => "LVM".to_owned(),
            (false, _, other) => other.to_owned(),
        };
        let below = device
            .parents
            .iter()
            .map(|parent| self.layer_at(parent, depth + 1))
            .collect::<Option<Vec<Layer>>>()?;
        Some(Layer {
            name: device.name.clone(),
            kind,
            cipher,
            below,
        })
    }

    /// The device mounted at `mount_point`, or with the number `major:minor`.
    fn find(&self, mount_point: &str, device_number: &str) -> Option<&LsblkDevice> {
        self.devices
            .iter()
            .find(|device| device.device_number.as_deref() == Some(device_number))
            .or_else(|| {
                self.devices
                    .iter()
                    .find(|device| device.mount_points.iter().any(|m| m == mount_point))
            })
    }

    /// One volume per mounted filesystem lsblk shows (swap is no filesystem).
    pub fn volumes(&self) -> Vec<Volume> {
        let mut volumes: Vec<Volume> = Vec::new();
        for device in &self.devices {
            for mount_point in device.mount_points.iter().filter(|m| m.starts_with('/')) {
                let volume = match self.layer(&device.name) {
                    Some(layer) => volume(mount_point, device.fstype.as_deref(), &layer),
                    None => unknown_volume(
                        mount_point,
                        None,
                        format!("lsblk shows a device loop under {}", device.name),
                    ),
                };
                volumes.retain(|seen| seen.mount_point != volume.mount_point);
                volumes.push(volume);
            }
        }
        volumes
    }
}

/// Parses `lsblk -J` (any columns that include NAME; TYPE, FSTYPE, MAJ:MIN
/// and MOUNTPOINTS or the older MOUNTPOINT are used when present).
pub fn parse_lsblk_json(text: &str) -> Result<Lsblk, ParseError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| ParseError::new(format!("lsblk -J printed no JSON: {error}")))?;
    let roots = value
        .get("blockdevices")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| ParseError::new("lsblk -J printed no `blockdevices` list"))?;
    let mut lsblk = Lsblk::default();
    fn walk(
        lsblk: &mut Lsblk,
        node: &serde_json::Value,
        parent: Option<&str>,
    ) -> Result<(), ParseError> {
        let text = |key: &str| {
            node.get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let name = text("name").ok_or_else(|| ParseError::new("an lsblk -J device has no name"))?;
        let mut mount_points: Vec<String> = node
            .get("mountpoints")
            .and_then(serde_json::Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        mount_points.extend(text("mountpoint"));
        let device = LsblkDevice {
            name: name.clone(),
            device_number: text("maj:min"),
            kind: text("type"),
            fstype: text("fstype"),
            mount_points,
            parents: Vec::new(),
        };
        lsblk.add(device, parent);
        for child in node
            .get("children")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(lsblk, child, Some(&name))?;
        }
        Ok(())
    }
    for root in roots {
        walk(&mut lsblk, root, None)?;
    }
    Ok(lsblk)
}

/// Parses lsblk's default tree (`NAME MAJ:MIN RM SIZE RO TYPE MOUNTPOINT[S]`),
/// drawn with Unicode or ASCII (C locale) branches; the header may be missing.
pub fn parse_lsblk_tree(text: &str) -> Result<Lsblk, ParseError> {
    let mut lsblk = Lsblk::default();
    // The stack of names by tree depth, to find each line's parent.
    let mut path: Vec<String> = Vec::new();
    let mut last: Option<usize> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("NAME ") {
            continue;
        }
        if trimmed.starts_with('/') && line.starts_with(char::is_whitespace) {
            // A further mount point of the device above, on its own line.
            let at = last.ok_or_else(|| {
                ParseError::new(format!("lsblk mount point before any device: `{line}`"))
            })?;
            lsblk.devices[at].mount_points.push(trimmed.to_owned());
            continue;
        }
        let indent = line
            .chars()
            .take_while(|c| matches!(c, ' ' | '│' | '├' | '└' | '─' | '|' | '`' | '-'))
            .count();
        let rest: String = line.chars().skip(indent).collect();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 6 || !fields[1].contains(':') {
            return Err(ParseError::new(format!(
                "lsblk line is not NAME MAJ:MIN RM SIZE RO TYPE: `{line}`"
            )));
        }
        let depth = indent / 2;
        path.truncate(depth);
        let parent = path.last().cloned();
        let device = LsblkDevice {
            name: fields[0].to_owned(),
            device_number: Some(fields[1].to_owned()),
            kind: Some(fields[5].to_owned()),
            fstype: None,
            mount_points: fields
                .get(6..)
                .filter(|rest| !rest.is_empty())
                .map(|rest| rest.join(" "))
                .into_iter()
                .collect(),
            parents: Vec::new(),
        };
        let at = lsblk.add(device, parent.as_deref());
        path.push(fields[0].to_owned());
        last = Some(at);
    }
    if lsblk.devices.is_empty() {
        return Err(ParseError::new("lsblk printed no devices"));
    }
    Ok(lsblk)
}

/// Parses `zfs get -H -o value encryption,keystatus <dataset>`.
pub fn parse_zfs_encryption(text: &str) -> Result<(VolumeEncryption, Option<String>), ParseError> {
    let mut lines = text.lines().map(str::trim);
    match lines.next() {
        Some("off") => Ok((VolumeEncryption::NotEncrypted, None)),
        Some(cipher) if !cipher.is_empty() && !cipher.contains(char::is_whitespace) => Ok((
            VolumeEncryption::Encrypted,
            Some(format!("ZFS native encryption {cipher}")),
        )),
        _ => Err(ParseError::new(format!(
            "zfs get printed no encryption value: `{}`",
            text.trim()
        ))),
    }
}

/// Observes every mounted filesystem's encryption.
pub fn probe(system: &dyn System) -> Observed<DiskEncryption> {
    let mountinfo = system.read_to_string(Path::new("/proc/self/mountinfo"));
    let mounts = match mountinfo.as_deref().map(parse_mountinfo) {
        Ok(Ok(mounts)) => mounts,
        Ok(Err(error)) => return Observed::unknown(format!("could not read the mounts: {error}")),
        // Without mountinfo lsblk still knows the mounts.
        Err(_) => {
            return match lsblk(system) {
                Ok(lsblk) => Observed::Observed(DiskEncryption {
                    volumes: lsblk.volumes(),
                }),
                Err(reason) => {
                    Observed::unknown(format!("/proc/self/mountinfo is unreadable and {reason}"))
                }
            };
        }
    };
    let sysfs = Sysfs { system };
    let sysfs_readable = system.read_dir(Path::new("/sys/class/block")).is_ok();
    let mut lsblk_view: Option<Result<Lsblk, String>> = None;
    let mut volumes = Vec::new();
    for mount in &mounts {
        let volume = match backing(mount) {
            Backing::None => continue,
            Backing::Container => unknown_volume(
                &mount.mount_point,
                None,
                format!(
                    "the root filesystem is {} from {}, not a disk (a container?): check the host's disk encryption",
                    mount.fstype, mount.source
                ),
            ),
            Backing::Network => unknown_volume(
                &mount.mount_point,
                Some(mount.source.clone()),
                format!(
                    "{} is a network filesystem ({}): its encryption is the server's",
                    mount.mount_point, mount.fstype
                ),
            ),
            Backing::Zfs => zfs_volume(system, mount),
            Backing::Block if sysfs_readable => match sysfs.mount_layer(mount) {
                Ok(layer) => volume(&mount.mount_point, Some(&mount.fstype), &layer),
                Err(error) if error.kind() == io::ErrorKind::PermissionDenied => unknown_volume(
                    &mount.mount_point,
                    Some(mount.source.clone()),
                    needs_root(
                        &format!("reading the devices under {} in /sys", mount.mount_point),
                        system,
                    ),
                ),
                Err(error) => unknown_volume(
                    &mount.mount_point,
                    Some(mount.source.clone()),
                    format!(
                        "could not follow the devices under {} in /sys: {error}",
                        mount.mount_point
                    ),
                ),
            },
            Backing::Block => {
                let view = lsblk_view.get_or_insert_with(|| lsblk(system));
                match view {
                    Ok(view) => match view.find(&mount.mount_point, &mount.device_number) {
                        Some(device) => match view.layer(&device.name) {
                            Some(layer) => volume(&mount.mount_point, Some(&mount.fstype), &layer),
                            None => unknown_volume(
                                &mount.mount_point,
                                None,
                                "lsblk shows a device loop",
                            ),
                        },
                        None => unknown_volume(
                            &mount.mount_point,
                            Some(mount.source.clone()),
                            format!(
                                "/sys is unreadable and lsblk does not show the device {}",
                                mount.source
                            ),
                        ),
                    },
                    Err(reason) => unknown_volume(
                        &mount.mount_point,
                        Some(mount.source.clone()),
                        format!("/sys/class/block is unreadable and {reason}"),
                    ),
                }
            }
        };
        volumes.push(volume);
    }
    Observed::Observed(DiskEncryption { volumes })
}

/// What a mount is stored on.
enum Backing {
    Block,
    Zfs,
    Network,
    /// `/` on overlay or tmpfs: a container's view, the disk is elsewhere.
    Container,
    /// A pseudo filesystem: nothing to encrypt.
    None,
}

fn backing(mount: &Mount) -> Backing {
    let fstype = mount.fstype.as_str();
    if fstype == "zfs" {
        Backing::Zfs
    } else if NETWORK.contains(&fstype) {
        Backing::Network
    } else if !PSEUDO.contains(&fstype)
        && (!mount.device_number.starts_with("0:") || mount.source.starts_with("/dev/"))
    {
        Backing::Block
    } else if mount.mount_point == "/" {
        Backing::Container
    } else {
        Backing::None
    }
}

/// `lsblk -J`, or lsblk's tree where `-J` is not understood.
fn lsblk(system: &dyn System) -> Result<Lsblk, String> {
    let not_run = |error: CommandError| format!("lsblk could not be run: {error}");
    match run(system, LSBLK, &["-J"]) {
        Ok(output) if output.success() => {
            if let Ok(lsblk) = parse_lsblk_json(&output.stdout) {
                return Ok(lsblk);
            }
        }
        Ok(_) | Err(CommandError::Io { .. }) => {}
        Err(error) => return Err(not_run(error)),
    }
    let output = run(system, LSBLK, &[]).map_err(not_run)?;
    if !output.success() {
        return Err(failure("lsblk", &output));
    }
    parse_lsblk_tree(&output.stdout)
        .map_err(|error| format!("lsblk printed an unexpected tree: {error}"))
}

fn zfs_volume(system: &dyn System, mount: &Mount) -> Volume {
    let dataset = mount.source.as_str();
    let device = Some(dataset.to_owned());
    let output = match run(
        system,
        ZFS,
        &["get", "-H", "-o", "value", "encryption,keystatus", dataset],
    ) {
        Ok(output) => output,
        Err(error) => {
            return unknown_volume(
                &mount.mount_point,
                device,
                format!("cannot ask ZFS about {dataset}: {error}"),
            );
        }
    };
    if !output.success() {
        let reason = if output.stderr.to_lowercase().contains("permission denied") {
            needs_root(&format!("reading ZFS encryption of {dataset}"), system)
        } else {
            failure("zfs get", &output)
        };
        return unknown_volume(&mount.mount_point, device, reason);
    }
    match parse_zfs_encryption(&output.stdout) {
        Ok((encryption, method)) => Volume {
            mount_point: mount.mount_point.clone(),
            device,
            encryption,
            method,
            detail: Some(format!("ZFS dataset {dataset}")),
        },
        Err(error) => unknown_volume(&mount.mount_point, device, error.to_string()),
    }
}

/// The block device tree as sysfs shows it.
struct Sysfs<'a> {
    system: &'a dyn System,
}

impl Sysfs<'_> {
    fn read(&self, path: &str) -> io::Result<String> {
        self.system
            .read_to_string(Path::new(path))
            .map(|text| text.trim().to_owned())
    }

    fn exists(&self, path: &str) -> bool {
        self.system.symlink_metadata(Path::new(path)).is_ok()
    }

    fn mount_layer(&self, mount: &Mount) -> io::Result<Layer> {
        let name = if mount.device_number.starts_with("0:") {
            // btrfs shows an anonymous device number: its source names the real device.
            self.name_of_source(&mount.source)?
        } else {
            let uevent = self.read(&format!("/sys/dev/block/{}/uevent", mount.device_number))?;
            uevent
                .lines()
                .find_map(|line| line.strip_prefix("DEVNAME="))
                .map(str::to_owned)
                .ok_or_else(|| {
                    io::Error::other(format!("no DEVNAME for device {}", mount.device_number))
                })?
        };
        self.layer(&name, 0)
    }

    fn name_of_source(&self, source: &str) -> io::Result<String> {
        if let Some(mapped) = source.strip_prefix("/dev/mapper/") {
            for entry in self.system.read_dir(Path::new("/sys/class/block"))? {
                let name = file_name(&entry);
                if self
                    .read(&format!("/sys/class/block/{name}/dm/name"))
                    .is_ok_and(|dm| dm == mapped)
                {
                    return Ok(name);
                }
            }
        } else if let Some(name) = source
            .strip_prefix("/dev/")
            .filter(|name| !name.contains('/'))
        {
            if self.exists(&format!("/sys/class/block/{name}")) {
                return Ok(name.to_owned());
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no block device in /sys for {source}"),
        ))
    }

    fn layer(&self, name: &str, depth: usize) -> io::Result<Layer> {
        if depth > MAX_DEPTH {
            return Err(io::Error::other(format!(
                "the device stack under {name} is deeper than {MAX_DEPTH}"
            )));
        }
        let base = format!("/sys/class/block/{name}");
        let (shown, kind, cipher) = match self.read(&format!("{base}/dm/uuid")) {
            Ok(uuid) => {
                let shown = self
                    .read(&format!("{base}/dm/name"))
                    .unwrap_or_else(|_| name.to_owned());
                let (kind, cipher) = dm_kind(&uuid);
                (shown, kind, cipher)
            }
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => return Err(error),
            Err(_) if self.exists(&format!("{base}/partition")) => {
                let disk = self.disk_of_partition(name)?;
                return Ok(Layer {
                    name: name.to_owned(),
                    kind: "partition".to_owned(),
                    cipher: false,
                    below: vec![self.layer(&disk, depth + 1)?],
                });
            }
            Err(_) if name.starts_with("md") => (name.to_owned(), "md RAID".to_owned(), false),
            Err(_) if name.starts_with("loop") => (name.to_owned(), "loop".to_owned(), false),
            Err(_) => (name.to_owned(), "disk".to_owned(), false),
        };
        let below = if cipher {
            Vec::new()
        } else {
            match self.system.read_dir(Path::new(&format!("{base}/slaves"))) {
                Ok(slaves) => slaves
                    .iter()
                    .map(|slave| self.layer(&file_name(slave), depth + 1))
                    .collect::<io::Result<Vec<Layer>>>()?,
                Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(error) => return Err(error),
            }
        };
        Ok(Layer {
            name: shown,
            kind,
            cipher,
            below,
        })
    }

    /// Partitions are subdirectories of their disk under /sys/block.
    fn disk_of_partition(&self, partition: &str) -> io::Result<String> {
        self.system
            .read_dir(Path::new("/sys/block"))?
            .iter()
            .map(|disk| file_name(disk))
            .find(|disk| self.exists(&format!("/sys/block/{disk}/{partition}")))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no disk in /sys/block holds {partition}"),
                )
            })
    }
}

/// What a device-mapper device is, from its uuid (`CRYPT-LUKS2-…`, `LVM-…`).
fn dm_kind(uuid: &str) -> (String, bool) {
    const CIPHERS: &[&str] = &[
        "LUKS1", "LUKS2", "PLAIN", "LOOPAES", "TCRYPT", "BITLK", "FVAULT2",
    ];
    if let Some(rest) = uuid.strip_prefix("CRYPT-") {
        let kind = rest.split('-').next().unwrap_or_default();
        return if CIPHERS.contains(&kind) {
            (format!("dm-crypt {kind}"), true)
        } else {
            // dm-verity and dm-integrity are set up by cryptsetup but do not encrypt.
            (format!("dm-{}", kind.to_lowercase()), false)
        };
    }
    let kind = match uuid.split('-').next().unwrap_or_default() {
        "LVM" => "LVM",
        "mpath" => "multipath",
        part if part.starts_with("part") => "partition",
        _ => "device-mapper",
    };
    (kind.to_owned(), false)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescapes_spaces_and_keeps_the_last_mount() {
        let text = "36 35 98:0 / /mnt/my\\040disk rw - ext4 /dev/sdb1 rw\n37 35 98:1 / /mnt/my\\040disk rw - xfs /dev/sdc1 rw\n";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, "/mnt/my disk");
        assert_eq!(mounts[0].fstype, "xfs");
    }

    #[test]
    fn mountinfo_with_optional_fields_finds_the_separator() {
        let text =
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n";
        let mounts = parse_mountinfo(text).unwrap();
        assert_eq!(mounts[0].source, "/dev/root");
        assert_eq!(mounts[0].device_number, "98:0");
        assert!(parse_mountinfo("36 35 98:0 / / rw shared:1 ext4\n").is_err());
    }

    #[test]
    fn verity_is_not_a_cipher_but_luks_and_plain_are() {
        assert_eq!(
            dm_kind("CRYPT-LUKS2-0123-root"),
            ("dm-crypt LUKS2".to_owned(), true)
        );
        assert_eq!(
            dm_kind("CRYPT-PLAIN-swap"),
            ("dm-crypt PLAIN".to_owned(), true)
        );
        assert_eq!(
            dm_kind("CRYPT-VERITY-abcd-usr"),
            ("dm-verity".to_owned(), false)
        );
        assert_eq!(dm_kind("LVM-abc"), ("LVM".to_owned(), false));
    }

    #[test]
    fn a_stack_is_encrypted_only_when_every_leg_is() {
        let leaf = |name: &str, cipher: bool| Layer {
            name: name.to_owned(),
            kind: if cipher {
                "dm-crypt".to_owned()
            } else {
                "partition".to_owned()
            },
            cipher,
            below: Vec::new(),
        };
        let raid = |legs: Vec<Layer>| Layer {
            name: "md0".to_owned(),
            kind: "md RAID".to_owned(),
            cipher: false,
            below: legs,
        };
        assert!(raid(vec![leaf("a", true), leaf("b", true)]).encrypted());
        assert!(!raid(vec![leaf("a", true), leaf("b", false)]).encrypted());
        assert!(!raid(Vec::new()).encrypted());
    }
}
