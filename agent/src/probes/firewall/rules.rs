//! The fate of an unsolicited packet in a set of netfilter chains, shared by
//! the nftables and iptables readers.
//!
//! The packet is one no narrowing condition matches: it is not part of an
//! established connection and no port was opened for it. Rules with such
//! conditions are therefore skipped (they allow or drop *some* traffic), and
//! the packet's fate is what the unconditional rules and the chain policy
//! decide. Two conditions do not narrow, because every unsolicited packet on
//! a network link meets them: the input interface being a real link (`eth0`)
//! and a conntrack state that includes `new`; an accept with only those opens
//! the machine. A rule whose conditions cannot be classified never counts as
//! a drop, so doubt leans towards "allowed".

use std::collections::{BTreeMap, BTreeSet};

/// What a reader concluded from a ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtering {
    /// Some input chain does more than accept everything.
    pub filters: bool,
    /// Some input chain drops or rejects unsolicited traffic.
    pub blocked: bool,
    /// What was looked at and what was set aside.
    pub notes: Vec<String>,
}

/// The verdict part of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
    /// No verdict: counters, logging, marks.
    Continue,
}

/// One rule, reduced to what decides an unsolicited packet's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The rule matches only some packets.
    pub conditional: bool,
    /// The rule holds a statement the reader does not know, which may be a condition.
    pub uncertain: bool,
    /// Conditions that an unsolicited packet still meets, so the rule decides its
    /// fate after all: "everything arriving on eth0", "every new connection".
    pub opens: Option<String>,
    pub step: Step,
}

/// A chain attached to the input hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseChain {
    /// How notes name it, e.g. `inet filter input`.
    pub label: String,
    /// The table whose regular chains it may jump to.
    pub table: String,
    pub name: String,
    pub policy_drop: bool,
}

/// Regular and base chains by table, then by name.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    pub tables: BTreeMap<String, BTreeMap<String, Vec<Rule>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Accept,
    Drop,
    /// The chain ended or returned without a verdict.
    Fallthrough,
}

/// Jumps deeper than this are not followed (netfilter itself allows 16 levels).
const MAX_DEPTH: usize = 32;

/// Software that adds chains for its own traffic, by chain or table name prefix.
const SET_ASIDE: &[(&str, &str)] = &[
    ("ts-", "Tailscale"),
    ("docker", "Docker"),
    ("f2b-", "fail2ban"),
    ("libvirt", "libvirt"),
    ("kube-", "Kubernetes"),
    ("cni-", "CNI"),
    ("netavark", "Podman"),
    ("crowdsec", "CrowdSec"),
];

/// Interface names of real network links (Ethernet, Wi-Fi, WWAN, bonds), as
/// the kernel and systemd name them; `+` and `*` are wildcards in rules.
/// Loopback and virtual interfaces (docker0, tailscale0, virbr0) are not.
pub(crate) fn external_interface(name: &str) -> bool {
    let name = name.trim_matches('"');
    ["eth", "en", "wl", "ww", "bond"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The software that owns a chain or table of this name, if it is not a firewall.
pub(crate) fn set_aside(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    SET_ASIDE
        .iter()
        .find(|(prefix, _)| lower.starts_with(prefix))
        .map(|&(_, owner)| owner)
}

impl Chains {
    /// The rules of a chain, created empty the first time it is named.
    pub(crate) fn chain_mut(&mut self, table: &str, chain: &str) -> &mut Vec<Rule> {
        self.tables
            .entry(table.to_owned())
            .or_default()
            .entry(chain.to_owned())
            .or_default()
    }

    /// Judges the input-hook base chains: a packet is dropped when any of them
    /// drops it (an accept in one base chain does not skip the others).
    pub(crate) fn judge(&self, bases: &[BaseChain], tool: &str) -> Filtering {
        let mut notes = BTreeSet::new();
        let mut filters = false;
        let mut blocked = false;
        for base in bases {
            let rules = self.rules(&base.table, &base.name);
            let does_something = base.policy_drop
                || rules.iter().any(|rule| match &rule.step {
                    Step::Jump(target) | Step::Goto(target) => set_aside(target).is_none(),
                    _ => true,
                });
            let fate = self.fate(&base.table, &base.name, 0, &mut notes);
            if !does_something {
                notes.insert(format!(
                    "{tool} input chain {} accepts everything and filters nothing",
                    base.label
                ));
                continue;
            }
            filters = true;
            let (fate, how) = match fate {
                Fate::Fallthrough if base.policy_drop => (Fate::Drop, "by its drop policy"),
                Fate::Fallthrough => (Fate::Accept, "by its accept policy"),
                other => (other, "by a rule every such packet meets"),
            };
            blocked |= fate == Fate::Drop;
            notes.insert(format!(
                "{tool} input chain {} {} unsolicited traffic {how}",
                base.label,
                if fate == Fate::Drop {
                    "drops"
                } else {
                    "accepts"
                }
            ));
        }
        Filtering {
            filters,
            blocked,
            notes: notes.into_iter().collect(),
        }
    }

    fn rules(&self, table: &str, chain: &str) -> &[Rule] {
        self.tables
            .get(table)
            .and_then(|chains| chains.get(chain))
            .map_or(&[], Vec::as_slice)
    }

    fn fate(&self, table: &str, chain: &str, depth: usize, notes: &mut BTreeSet<String>) -> Fate {
        if depth > MAX_DEPTH {
            return Fate::Fallthrough;
        }
        for rule in self.rules(table, chain) {
            if rule.conditional {
                if let (Some(what), Step::Accept) = (&rule.opens, &rule.step) {
                    notes.insert(format!("chain {chain} accepts {what}"));
                    return Fate::Accept;
                }
                continue;
            }
            match &rule.step {
                Step::Accept => return Fate::Accept,
                Step::Drop if rule.uncertain => {}
                Step::Drop => return Fate::Drop,
                Step::Return => return Fate::Fallthrough,
                Step::Continue => {}
                Step::Jump(target) => match self.called(table, target, depth, notes) {
                    Fate::Fallthrough => {}
                    decided => return decided,
                },
                Step::Goto(target) => return self.called(table, target, depth, notes),
            }
        }
        Fate::Fallthrough
    }

    /// The fate in a called chain; a set-aside chain's drops do not count.
    fn called(
        &self,
        table: &str,
        target: &str,
        depth: usize,
        notes: &mut BTreeSet<String>,
    ) -> Fate {
        let fate = self.fate(table, target, depth + 1, notes);
        match set_aside(target) {
            Some(owner) => {
                notes.insert(format!("set aside chain {target} ({owner})"));
                if fate == Fate::Drop {
                    Fate::Fallthrough
                } else {
                    fate
                }
            }
            None => fate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(conditional: bool, step: Step) -> Rule {
        Rule {
            conditional,
            uncertain: false,
            opens: None,
            step,
        }
    }

    #[test]
    fn an_accept_on_an_external_interface_opens_a_drop_policy() {
        let opening = Rule {
            opens: Some("everything arriving on eth0".to_owned()),
            ..rule(true, Step::Accept)
        };
        let set = chains(&[("in", vec![opening])]);
        let judged = set.judge(&[base("in", true)], "nftables");
        assert!(judged.filters && !judged.blocked, "{judged:?}");
        assert!(
            judged
                .notes
                .contains(&"chain in accepts everything arriving on eth0".to_owned())
        );
        assert!(external_interface("enp3s0") && external_interface("eth+"));
        assert!(
            !external_interface("lo")
                && !external_interface("docker0")
                && !external_interface("tailscale0")
        );
    }

    fn base(name: &str, policy_drop: bool) -> BaseChain {
        BaseChain {
            label: format!("t {name}"),
            table: "t".to_owned(),
            name: name.to_owned(),
            policy_drop,
        }
    }

    fn chains(list: &[(&str, Vec<Rule>)]) -> Chains {
        let mut chains = Chains::default();
        let table = chains.tables.entry("t".to_owned()).or_default();
        for (name, rules) in list {
            table.insert((*name).to_owned(), rules.clone());
        }
        chains
    }

    #[test]
    fn conditional_accepts_do_not_open_a_drop_policy() {
        let set = chains(&[("in", vec![rule(true, Step::Accept)])]);
        let judged = set.judge(&[base("in", true)], "nftables");
        assert!(judged.filters && judged.blocked);
    }

    #[test]
    fn a_drop_in_a_set_aside_chain_does_not_block() {
        let set = chains(&[
            (
                "in",
                vec![
                    rule(false, Step::Jump("ts-input".to_owned())),
                    rule(true, Step::Accept),
                ],
            ),
            ("ts-input", vec![rule(false, Step::Drop)]),
        ]);
        let judged = set.judge(&[base("in", false)], "nftables");
        assert!(judged.filters && !judged.blocked);
        assert!(
            judged
                .notes
                .contains(&"set aside chain ts-input (Tailscale)".to_owned())
        );
    }

    #[test]
    fn return_from_a_goto_chain_falls_to_the_policy() {
        let set = chains(&[
            (
                "in",
                vec![
                    rule(false, Step::Goto("zone".to_owned())),
                    rule(false, Step::Accept),
                ],
            ),
            ("zone", vec![rule(false, Step::Return)]),
        ]);
        assert!(set.judge(&[base("in", true)], "nftables").blocked);
    }

    #[test]
    fn an_uncertain_drop_does_not_count() {
        let set = chains(&[(
            "in",
            vec![Rule {
                uncertain: true,
                ..rule(false, Step::Drop)
            }],
        )]);
        assert!(!set.judge(&[base("in", false)], "nftables").blocked);
    }

    #[test]
    fn any_dropping_base_chain_blocks() {
        let set = chains(&[("a", vec![rule(false, Step::Accept)]), ("b", vec![])]);
        let judged = set.judge(&[base("a", false), base("b", true)], "nftables");
        assert!(judged.blocked);
    }
}
