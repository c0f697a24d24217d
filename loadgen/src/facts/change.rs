//! How a machine changes between two runs of its agent.

use jiff::Timestamp;
use rand::Rng;
use shipshape_core::Facts;
use shipshape_core::facts::{Inbound, Observed};

use super::{pick, ssh, updates};

#[derive(Debug, Clone, Copy)]
enum Change {
    Updates,
    SshKeys,
    Firewall,
    Kernel,
}

/// Changes `facts` as a run later would find them: mostly the package
/// lists (new updates, or all of them installed), sometimes a key added or
/// removed, the firewall switched or the kernel upgraded. Where the drawn
/// change does not apply (the fact is unknown), the kernel is upgraded, so
/// the facts always end up different.
pub(super) fn change(facts: &mut Facts, rng: &mut impl Rng, now: Timestamp) {
    let change = *pick(
        rng,
        &[
            (60, Change::Updates),
            (15, Change::SshKeys),
            (10, Change::Firewall),
            (15, Change::Kernel),
        ],
    );
    let changed = match change {
        Change::Updates => updates(facts, rng, now),
        Change::SshKeys => ssh_keys(facts, rng),
        Change::Firewall => firewall(facts),
        Change::Kernel => {
            upgrade_kernel(facts);
            true
        }
    };
    if !changed {
        upgrade_kernel(facts);
    }
}

/// New updates arrive, or everything pending is installed; on Windows, an
/// update is installed now.
fn updates(facts: &mut Facts, rng: &mut impl Rng, now: Timestamp) -> bool {
    let Observed::Observed(os_updates) = &mut facts.os_updates else {
        return false;
    };
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let Observed::Observed(pending) = &mut os_updates.pending else {
        let before = os_updates.last_installed.replace(now);
        return before != Some(now);
    };
    if pending.total > 0 && rng.gen_bool(0.4) {
        pending.total = 0;
        pending.security = 0;
        pending.security_packages.clear();
    } else {
        pending.total += rng.gen_range(1..=6);
        let names = updates::security_names(&pending.manager);
        if !names.is_empty() && rng.gen_bool(0.5) {
            let name = names[rng.gen_range(0..names.len())];
            if !pending.security_packages.iter().any(|known| known == name) {
                pending.security_packages.push(name.to_owned());
                pending.security += 1;
            }
        }
    }
    pending.metadata_updated = Some(now);
    true
}

/// A key is added, or (half the time, when there is one) removed.
fn ssh_keys(facts: &mut Facts, rng: &mut impl Rng) -> bool {
    let family = facts.host.os.family;
    let Observed::Observed(ssh) = &mut facts.ssh_keys else {
        return false;
    };
    let before = ssh.keys.len();
    if before > 0 && rng.gen_bool(0.5) {
        ssh.keys.remove(rng.gen_range(0..before));
    } else {
        ssh::add_key(rng, family, &ssh.scanned, &mut ssh.keys);
    }
    ssh.keys.len() != before
}

/// The firewall is switched off, or back on.
fn firewall(facts: &mut Facts) -> bool {
    let Observed::Observed(firewall) = &mut facts.firewall else {
        return false;
    };
    firewall.enabled = !firewall.enabled;
    firewall.inbound = if firewall.enabled {
        Inbound::Blocked
    } else {
        Inbound::Allowed
    };
    for profile in &mut firewall.profiles {
        profile.enabled = firewall.enabled;
        profile.inbound = firewall.inbound;
    }
    true
}

fn upgrade_kernel(facts: &mut Facts) {
    let kernel = facts.host.kernel.get_or_insert_with(|| "0".to_owned());
    *kernel = next_kernel(kernel);
}

/// The next kernel release: the last number of the upstream version (before
/// any `-` or `+`) moves up: `6.12.43+deb13-amd64` → `6.12.44+deb13-amd64`,
/// `24.6.0` → `24.6.1`, `10.0.26100` → `10.0.26101`.
pub(super) fn next_kernel(kernel: &str) -> String {
    let upstream_end = kernel.find(['-', '+']).unwrap_or(kernel.len());
    let (upstream, rest) = kernel.split_at(upstream_end);
    let digits_start = upstream
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .len();
    let (prefix, digits) = upstream.split_at(digits_start);
    match digits.parse::<u64>() {
        Ok(number) => format!("{prefix}{}{rest}", number + 1),
        Err(_) => format!("{upstream}.1{rest}"),
    }
}
