//! The facts of a simulated fleet: machines as varied as a real company's
//! (Linux distributions, macOS and Windows releases; encrypted disks and
//! not; pending updates, some of them security fixes; firewalls on, off and
//! unreadable; SSH keys of every algorithm and size; SSH servers with safe
//! and unsafe settings), drawn from a seed so a run can be repeated.
//!
//! Each machine draws from its own random stream (the fleet's seed mixed
//! with its index), so machine 17 is the same whatever else the run does,
//! and [`Machine::change`] draws its changes from the same stream.

mod change;
mod disk;
mod firewall;
mod host;
mod ssh;
mod updates;

use jiff::Timestamp;
use rand::{Rng, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use shipshape_core::Facts;
use shipshape_core::facts::{Observed, OsFamily};

/// One simulated machine: what its probes would observe now.
#[derive(Debug, Clone)]
pub struct Machine {
    facts: Facts,
    rng: ChaCha8Rng,
}

impl Machine {
    /// Machine `index` of the fleet drawn from `seed`, observed at `now`
    /// (timestamps in its facts, such as when the package lists were last
    /// refreshed, are relative to `now`).
    pub fn new(seed: u64, index: u64, now: Timestamp) -> Machine {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, index));
        let facts = draw(&mut rng, index, now);
        Machine { facts, rng }
    }

    /// What the machine's probes observe.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Something changes on the machine between two runs, as machines change:
    /// updates arrive or get installed, a key is added or removed, the
    /// firewall is switched, the kernel is upgraded. The facts always differ
    /// afterwards, so the next report goes in full.
    pub fn change(&mut self, now: Timestamp) {
        change::change(&mut self.facts, &mut self.rng, now);
    }
}

/// The users of one machine: the owner first, sometimes a second person.
struct People {
    users: Vec<&'static str>,
    /// Whether the agent ran as root (the timer does), so it could read
    /// every user's `~/.ssh` and sshd's effective configuration.
    root: bool,
}

fn draw(rng: &mut ChaCha8Rng, index: u64, now: Timestamp) -> Facts {
    let release = host::release(rng);
    let people = People {
        users: host::users(rng),
        root: rng.gen_bool(0.85),
    };
    let host = host::host(rng, release, &people, index);
    let family = host.os.family;
    Facts {
        disk_encryption: disk::disk_encryption(rng, family),
        os_updates: Observed::Observed(updates::os_updates(rng, release, now)),
        firewall: firewall::firewall(rng, family, &people),
        ssh_keys: ssh::ssh_keys(rng, family, &people),
        ssh_server: ssh::ssh_server(rng, family, &people),
        host,
    }
}

/// SplitMix64's finalizer over the seed and the index: neighbouring
/// indexes get unrelated streams.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One of `choices`, each as likely as its weight.
fn pick<'a, T>(rng: &mut impl Rng, choices: &'a [(u32, T)]) -> &'a T {
    let total: u32 = choices.iter().map(|(weight, _)| weight).sum();
    let mut roll = rng.gen_range(0..total);
    for (weight, choice) in choices {
        if roll < *weight {
            return choice;
        }
        roll -= weight;
    }
    &choices[choices.len() - 1].1
}

/// `count` distinct entries of `names`, in a random order.
fn some_of(rng: &mut impl Rng, names: &[&str], count: usize) -> Vec<String> {
    rand::seq::index::sample(rng, names.len(), count.min(names.len()))
        .into_iter()
        .map(|position| names[position].to_owned())
        .collect()
}

/// Lowercase hex of `bytes` random bytes.
fn hex(rng: &mut impl Rng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.r#gen::<u8>()))
        .collect()
}

/// Where a family keeps a user's home.
fn home(family: OsFamily, user: &str) -> String {
    match family {
        OsFamily::Linux if user == "root" => "/root".to_owned(),
        OsFamily::Linux => format!("/home/{user}"),
        OsFamily::Macos => format!("/Users/{user}"),
        OsFamily::Windows => format!("C:\\Users\\{user}"),
    }
}

#[cfg(test)]
mod tests;
