//! `iptables -S`: the filter table's rules in iptables-save form.

use super::ParseError;
use super::rules::{BaseChain, Chains, Filtering, Rule, Step, external_interface};

const TABLE: &str = "filter";

/// Judges the INPUT chain of `iptables -S` output.
pub fn parse_iptables_list_rules(text: &str) -> Result<Filtering, ParseError> {
    let mut chains = Chains::default();
    let mut input_policy_drop = None;
    let mut rules: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
    {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("-P"), Some(chain)) => {
                let policy = words.next().unwrap_or_default();
                chains.chain_mut(TABLE, chain);
                if chain == "INPUT" {
                    input_policy_drop = Some(policy == "DROP");
                }
            }
            (Some("-N"), Some(chain)) => {
                chains.chain_mut(TABLE, chain);
            }
            (Some("-A"), Some(chain)) => rules.push((chain.to_owned(), words.collect())),
            _ => {
                return Err(ParseError::new(
                    "iptables",
                    format!("unexpected line `{line}`"),
                ));
            }
        }
    }
    let Some(policy_drop) = input_policy_drop else {
        return Err(ParseError::new("iptables", "no policy for the INPUT chain"));
    };
    let known = chains.tables.get(TABLE).cloned().unwrap_or_default();
    for (chain, words) in rules {
        let rule = reduce(&words, |name| known.contains_key(name));
        chains.chain_mut(TABLE, &chain).push(rule);
    }
    Ok(chains.judge(
        &[BaseChain {
            label: "filter INPUT".to_owned(),
            table: TABLE.to_owned(),
            name: "INPUT".to_owned(),
            policy_drop,
        }],
        "iptables",
    ))
}

/// One `-A` rule's words (after the chain name) reduced to its conditions and target.
fn reduce(words: &[&str], is_chain: impl Fn(&str) -> bool) -> Rule {
    let target_at = words
        .iter()
        .position(|word| matches!(*word, "-j" | "-g" | "--jump" | "--goto"));
    let before = without_comments(&words[..target_at.unwrap_or(words.len())]);
    let conditional = !before.is_empty();
    let step = match target_at.and_then(|at| Some((words[at], *words.get(at + 1)?))) {
        None => Step::Continue,
        Some((_, "ACCEPT" | "NFQUEUE")) => Step::Accept,
        Some((_, "DROP" | "REJECT")) => Step::Drop,
        Some((_, "RETURN")) => Step::Return,
        Some((flag, target))
            if is_chain(target) || !target.chars().all(|c| c.is_ascii_uppercase()) =>
        {
            if matches!(flag, "-g" | "--goto") {
                Step::Goto(target.to_owned())
            } else {
                Step::Jump(target.to_owned())
            }
        }
        Some(_) => Step::Continue,
    };
    Rule {
        conditional,
        uncertain: false,
        opens: opening(&before),
        step,
    }
}

/// What unsolicited traffic a rule's matches still let through: only an
/// input interface that is a real network link (`-i eth0`), and/or a
/// conntrack state match that includes NEW. `None` when anything narrows it.
fn opening(matches: &[&str]) -> Option<String> {
    let mut opening = Vec::new();
    let mut at = 0;
    while at < matches.len() {
        match (matches[at], matches.get(at + 1).copied()) {
            ("-i" | "--in-interface", Some(name)) if external_interface(name) => {
                opening.push(format!("everything arriving on {name}"));
                at += 2;
            }
            ("-m", Some("conntrack" | "state")) => at += 2,
            ("--ctstate" | "--state", Some(states))
                if states.split(',').any(|state| state == "NEW") =>
            {
                opening.push("every new connection".to_owned());
                at += 2;
            }
            _ => return None,
        }
    }
    (!opening.is_empty()).then(|| opening.join(", "))
}

/// The words of a rule's match part with `-m comment --comment …` removed.
fn without_comments<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let mut kept = Vec::new();
    let mut at = 0;
    while at < words.len() {
        if words[at] == "-m" && words.get(at + 1) == Some(&"comment") {
            at += 2;
            continue;
        }
        if words[at] == "--comment" {
            at += 1;
            let opens_quote = words.get(at).is_some_and(|word| word.starts_with('"'));
            let closes_itself = words
                .get(at)
                .is_some_and(|word| word.len() > 1 && word.ends_with('"'));
            if opens_quote && !closes_itself {
                at += 1;
                while at < words.len() && !words[at].ends_with('"') {
                    at += 1;
                }
            }
            at += 1;
            continue;
        }
        kept.push(words[at]);
        at += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_reject_blocks_despite_accept_policy() {
        let text = "-P INPUT ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                    -A INPUT -m comment --comment \"last rule\" -j REJECT --reject-with icmp-host-prohibited\n";
        let judged = parse_iptables_list_rules(text).unwrap();
        assert!(judged.filters && judged.blocked, "{judged:?}");
    }

    #[test]
    fn a_commented_accept_is_still_unconditional() {
        let text = "-P INPUT DROP\n-A INPUT -m comment --comment \"open all\" -j ACCEPT\n";
        assert!(!parse_iptables_list_rules(text).unwrap().blocked);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(
            parse_iptables_list_rules("iptables: Permission denied (you must be root).\n").is_err()
        );
    }
}
