//! `nft -j list ruleset`: the kernel's nftables ruleset as JSON (libnftables
//! JSON schema 1), which also holds the rules of iptables-nft.

use serde_json::{Map, Value};

use super::ParseError;
use super::rules::{BaseChain, Chains, Filtering, Rule, Step, external_interface, set_aside};

/// Statements that only let some packets through to the rule's verdict.
const CONDITIONS: &[&str] = &[
    "match", "limit", "quota", "ct count", "vmap", "synproxy", "fwd",
];

/// Statements that act on a packet but let it continue.
const SIDE_EFFECTS: &[&str] = &[
    "counter",
    "log",
    "mangle",
    "set",
    "map",
    "notrack",
    "ct helper",
    "ct timeout",
    "ct expectation",
    "snat",
    "dnat",
    "masquerade",
    "redirect",
    "tproxy",
    "secmark",
    "dup",
    "meter",
];

/// Judges a ruleset: which `filter` chains on the `input` hook of the ip, ip6
/// and inet families drop unsolicited traffic.
pub fn parse_nft_ruleset(json: &str) -> Result<Filtering, ParseError> {
    let document: Value = serde_json::from_str(json)
        .map_err(|error| ParseError::new("nft", format!("not JSON: {error}")))?;
    let items = document
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError::new("nft", "no \"nftables\" array"))?;
    let mut chains = Chains::default();
    let mut bases = Vec::new();
    let mut set_aside_notes = Vec::new();
    for item in items {
        if let Some(chain) = item.get("chain").and_then(Value::as_object) {
            let (family, table, name) = names(chain)?;
            let key = format!("{family} {table}");
            chains.chain_mut(&key, name);
            let on_input = str_field(chain, "hook") == Some("input")
                && str_field(chain, "type") == Some("filter")
                && matches!(family, "ip" | "ip6" | "inet");
            if !on_input {
                continue;
            }
            if let Some(owner) = set_aside(table).or_else(|| set_aside(name)) {
                set_aside_notes.push(format!(
                    "set aside input chain {family} {table} {name} ({owner})"
                ));
                continue;
            }
            bases.push(BaseChain {
                label: format!("{family} {table} {name}"),
                table: key,
                name: name.to_owned(),
                policy_drop: str_field(chain, "policy") == Some("drop"),
            });
        } else if let Some(rule) = item.get("rule").and_then(Value::as_object) {
            let (family, table, _) = names(rule)?;
            let chain = str_field(rule, "chain")
                .ok_or_else(|| ParseError::new("nft", "a rule without a chain"))?;
            let expr = rule.get("expr").and_then(Value::as_array).ok_or_else(|| {
                ParseError::new("nft", format!("rule in chain {chain} without \"expr\""))
            })?;
            chains
                .chain_mut(&format!("{family} {table}"), chain)
                .push(reduce(expr));
        }
    }
    if bases.is_empty() && set_aside_notes.is_empty() {
        set_aside_notes
            .push("the nftables ruleset has no filter chain on the input hook".to_owned());
    }
    let mut filtering = chains.judge(&bases, "nftables");
    filtering.notes.extend(set_aside_notes);
    Ok(filtering)
}

fn str_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Family, table and name of a chain or rule object.
fn names(object: &Map<String, Value>) -> Result<(&str, &str, &str), ParseError> {
    match (str_field(object, "family"), str_field(object, "table")) {
        (Some(family), Some(table)) => {
            Ok((family, table, str_field(object, "name").unwrap_or_default()))
        }
        _ => Err(ParseError::new(
            "nft",
            "a chain or rule without family and table",
        )),
    }
}

/// A rule's statements reduced to its conditions and its first verdict.
fn reduce(expr: &[Value]) -> Rule {
    let mut rule = Rule {
        conditional: false,
        uncertain: false,
        opens: None,
        step: Step::Continue,
    };
    let mut opening = Vec::new();
    let mut narrowed = false;
    for statement in expr {
        let Some((kind, body)) = statement
            .as_object()
            .and_then(|object| object.iter().next())
        else {
            rule.uncertain = true;
            continue;
        };
        let step = match kind.as_str() {
            "accept" | "queue" => Step::Accept,
            "drop" | "reject" => Step::Drop,
            "return" => Step::Return,
            "jump" | "goto" => {
                let target = body
                    .get("target")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if kind == "jump" {
                    Step::Jump(target)
                } else {
                    Step::Goto(target)
                }
            }
            "continue" => Step::Continue,
            "xt" => match (
                body.get("type").and_then(Value::as_str),
                body.get("name").and_then(Value::as_str),
            ) {
                (Some("target"), Some("REJECT")) => Step::Drop,
                (Some("target"), _) => continue,
                _ => {
                    rule.conditional = true;
                    narrowed = true;
                    continue;
                }
            },
            "match" => {
                rule.conditional = true;
                match opening_match(body) {
                    Some(what) => opening.push(what),
                    None => narrowed = true,
                }
                continue;
            }
            kind if CONDITIONS.contains(&kind) => {
                rule.conditional = true;
                narrowed = true;
                continue;
            }
            kind if SIDE_EFFECTS.contains(&kind) => continue,
            _ => {
                rule.uncertain = true;
                continue;
            }
        };
        rule.step = step;
        break;
    }
    if !narrowed && !opening.is_empty() {
        rule.opens = Some(opening.join(", "));
    }
    rule
}

/// What unsolicited traffic a `match` statement still lets through: an
/// input-interface match on a real network link, or a conntrack state match
/// that includes `new`. `None` for a match that narrows the rule to some traffic.
fn opening_match(body: &Value) -> Option<String> {
    if !matches!(
        body.get("op").and_then(Value::as_str),
        None | Some("==" | "in")
    ) {
        return None;
    }
    let right = body.get("right")?;
    let words: Vec<&str> = match right {
        Value::String(word) => vec![word.as_str()],
        Value::Object(set) => set
            .get("set")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect(),
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let left = body.get("left")?;
    if let Some(key) = left.pointer("/meta/key").and_then(Value::as_str) {
        return (matches!(key, "iifname" | "iif")
            && !words.is_empty()
            && words.iter().all(|name| external_interface(name)))
        .then(|| format!("everything arriving on {}", words.join(", ")));
    }
    (left.pointer("/ct/key").and_then(Value::as_str) == Some("state") && words.contains(&"new"))
        .then(|| "every new connection".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rules as iptables-nft 1.8.9 wrote them on this machine: compat `xt` matches and targets.
    const IPTABLES_NFT: &str = r#"{"nftables": [
        {"table": {"family": "ip", "name": "filter", "handle": 1}},
        {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 6, "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
        {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 8, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "REJECT"}}]}}
    ]}"#;

    #[test]
    fn an_xt_reject_target_blocks_and_an_xt_match_is_a_condition() {
        let judged = parse_nft_ruleset(IPTABLES_NFT).unwrap();
        assert!(judged.filters && judged.blocked, "{judged:?}");
    }

    #[test]
    fn an_unknown_statement_keeps_a_drop_from_counting() {
        let json = IPTABLES_NFT.replace(
            r#"{"counter": {"packets": 0, "bytes": 0}}, {"xt""#,
            r#"{"future": {}}, {"xt""#,
        );
        assert!(!parse_nft_ruleset(&json).unwrap().blocked);
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(
            parse_nft_ruleset("Error: Could not process rule: Operation not permitted").is_err()
        );
    }
}
