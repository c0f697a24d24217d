//! What the employee was last told, and what to tell them now: a pure
//! comparison of the new findings with the remembered state.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use shipshape_core::checks::CheckId;
use shipshape_core::report::CheckReport;
use shipshape_core::{Finding, Status, Verdict};

use super::{Message, Urgency};
use crate::atomic::{self, Access};

/// At most this many checks are named in one notification; the rest are counted.
const MAX_NAMED: usize = 3;

/// What the employee was last told, as kept in `notified.json`. A missing
/// file means nothing was ever told, which reads as "shipshape": the first
/// run with a leak notifies, a first clean run says nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Told {
    /// Whether they were told the machine leaks, and not told since that it is shipshape.
    pub leaky: bool,
    /// The checks they were told leak (check ids).
    pub leaking: BTreeSet<String>,
}

/// What to say now, and what will have been told once it is said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub message: Option<Message>,
    pub next: Told,
}

impl Told {
    /// The state on disk; missing or unreadable reads as never told, so a
    /// leak is told again rather than never.
    pub fn load(path: &Path) -> Told {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Told::default();
        };
        serde_json::from_str(&text).unwrap_or_else(|error| {
            tracing::warn!("ignoring {}: {error}", path.display());
            Told::default()
        })
    }

    /// Writes the state atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        atomic::write(path, &json, Access::Everyone)
    }
}

/// Compares this run's findings with what was told. A check leaks here when
/// it failed past its grace; an unknown finding neither tells of a leak nor
/// clears one (the run could not see), and neither does a check this run
/// left out (`--only`). Bailed out is said only after a full run of the
/// policy finds the machine shipshape with no told leak left.
pub fn decide(told: &Told, report: &CheckReport, only: &[CheckId]) -> Decision {
    let full = only.is_empty();
    let finding = |id: &str| report.findings.iter().find(|finding| finding.check == id);
    let mut leaking: BTreeSet<String> = told
        .leaking
        .iter()
        .filter(|id| match finding(id) {
            Some(finding) => finding.status == Status::Unknown,
            None => !full,
        })
        .cloned()
        .collect();
    let mut newly: Vec<&Finding> = Vec::new();
    for finding in report.findings.iter().filter(|finding| leaks(finding)) {
        leaking.insert(finding.check.clone());
        if !told.leaking.contains(&finding.check) {
            newly.push(finding);
        }
    }
    if !newly.is_empty() {
        return Decision {
            message: Some(sprang(&newly)),
            next: Told {
                leaky: true,
                leaking,
            },
        };
    }
    if told.leaky && full && leaking.is_empty() && report.verdict == Verdict::Shipshape {
        return Decision {
            message: Some(bailed_out()),
            next: Told::default(),
        };
    }
    Decision {
        message: None,
        next: Told {
            leaky: told.leaky,
            leaking,
        },
    }
}

/// A leak the run saw for itself: failing past grace, not merely unknown.
fn leaks(finding: &Finding) -> bool {
    finding.leak && finding.status != Status::Unknown
}

fn sprang(newly: &[&Finding]) -> Message {
    let mut newly = newly.to_vec();
    // The most severe first, in catalog order within a severity.
    newly.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    let mut names: Vec<&str> = newly
        .iter()
        .take(MAX_NAMED)
        .map(|finding| title(&finding.check))
        .collect();
    let more = newly.len().saturating_sub(MAX_NAMED);
    let more_text = format!("{more} more");
    if more > 0 {
        names.push(&more_text);
    }
    let listed = match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    Message {
        urgency: Urgency::Critical,
        title: "Your machine sprang a leak".to_owned(),
        body: format!("{listed}. Run `shipshape check` to see how to fix it."),
    }
}

fn bailed_out() -> Message {
    Message {
        urgency: Urgency::Normal,
        title: "Bailed out".to_owned(),
        body: "This machine is shipshape again.".to_owned(),
    }
}

/// A check's short name; the id itself for a check this agent does not know.
fn title(check: &str) -> &str {
    check.parse::<CheckId>().map_or(check, |id| id.info().title)
}

#[cfg(test)]
mod tests {
    use super::super::sample::{finding, report};
    use super::*;
    use shipshape_core::Severity;

    fn told(leaking: &[CheckId]) -> Told {
        Told {
            leaky: !leaking.is_empty(),
            leaking: leaking.iter().map(|id| id.as_str().to_owned()).collect(),
        }
    }

    use CheckId::{DiskEncryption, Firewall, OsUpdates, SshKeys, SshServer};

    #[test]
    fn a_new_leak_is_told_then_not_again_while_it_lasts() {
        let run = report(vec![
            finding(DiskEncryption, Status::Pass, false),
            finding(Firewall, Status::Fail, true),
        ]);
        let first = decide(&Told::default(), &run, &[]);
        let message = first.message.expect("a new leak is told");
        assert_eq!(message.urgency, Urgency::Critical);
        assert_eq!(message.title, "Your machine sprang a leak");
        assert_eq!(
            message.body,
            "Firewall. Run `shipshape check` to see how to fix it."
        );
        assert_eq!(first.next, told(&[Firewall]));
        let second = decide(&first.next, &run, &[]);
        assert_eq!(second.message, None);
        assert_eq!(second.next, first.next);
    }

    #[test]
    fn a_further_leak_is_told_alone() {
        let run = report(vec![
            finding(DiskEncryption, Status::Fail, true),
            finding(Firewall, Status::Fail, true),
        ]);
        let decision = decide(&told(&[Firewall]), &run, &[]);
        assert_eq!(
            decision.message.unwrap().body,
            "Disk encryption. Run `shipshape check` to see how to fix it."
        );
        assert_eq!(decision.next, told(&[DiskEncryption, Firewall]));
    }

    #[test]
    fn the_most_severe_are_named_first_and_the_rest_counted() {
        let mut findings: Vec<Finding> = [DiskEncryption, OsUpdates, Firewall, SshKeys, SshServer]
            .into_iter()
            .map(|id| finding(id, Status::Fail, true))
            .collect();
        findings[2].severity = Severity::Critical;
        let decision = decide(&Told::default(), &report(findings), &[]);
        assert_eq!(
            decision.message.unwrap().body,
            "Firewall, Disk encryption, OS updates and 2 more. Run `shipshape check` to see how to fix it."
        );
        let two = report(vec![
            finding(Firewall, Status::Fail, true),
            finding(SshKeys, Status::Fail, true),
        ]);
        assert_eq!(
            decide(&Told::default(), &two, &[]).message.unwrap().body,
            "Firewall and SSH keys. Run `shipshape check` to see how to fix it."
        );
    }

    #[test]
    fn a_fixed_leak_is_forgotten_silently_while_another_remains_and_told_again_if_it_returns() {
        let fixed = report(vec![
            finding(DiskEncryption, Status::Fail, true),
            finding(Firewall, Status::Pass, false),
        ]);
        let decision = decide(&told(&[DiskEncryption, Firewall]), &fixed, &[]);
        assert_eq!(decision.message, None);
        assert_eq!(decision.next, told(&[DiskEncryption]));
        let back = report(vec![
            finding(DiskEncryption, Status::Fail, true),
            finding(Firewall, Status::Fail, true),
        ]);
        let again = decide(&decision.next, &back, &[]);
        assert_eq!(
            again.message.unwrap().body,
            "Firewall. Run `shipshape check` to see how to fix it."
        );
    }

    #[test]
    fn bailing_out_is_told_once() {
        let clean = report(vec![
            finding(DiskEncryption, Status::Pass, false),
            finding(Firewall, Status::Warn, false),
        ]);
        let decision = decide(&told(&[Firewall]), &clean, &[]);
        let message = decision.message.expect("bailed out is told");
        assert_eq!(message.urgency, Urgency::Normal);
        assert_eq!(message.title, "Bailed out");
        assert_eq!(message.body, "This machine is shipshape again.");
        assert_eq!(decision.next, Told::default());
        assert_eq!(decide(&decision.next, &clean, &[]).message, None);
    }

    #[test]
    fn a_first_clean_run_says_nothing() {
        let clean = report(vec![finding(Firewall, Status::Pass, false)]);
        let decision = decide(&Told::default(), &clean, &[]);
        assert_eq!(decision.message, None);
        assert_eq!(decision.next, Told::default());
    }

    #[test]
    fn unknown_neither_tells_a_leak_nor_clears_one() {
        let unknown = report(vec![
            finding(DiskEncryption, Status::Unknown, true),
            finding(Firewall, Status::Unknown, true),
        ]);
        assert_eq!(unknown.verdict, Verdict::Leaky);
        let fresh = decide(&Told::default(), &unknown, &[]);
        assert_eq!(fresh.message, None);
        assert_eq!(fresh.next, Told::default());
        let kept = decide(&told(&[Firewall]), &unknown, &[]);
        assert_eq!(kept.message, None);
        assert_eq!(kept.next, told(&[Firewall]));
    }

    #[test]
    fn no_bailing_out_while_an_unknown_leaks_the_machine() {
        let run = report(vec![
            finding(DiskEncryption, Status::Unknown, true),
            finding(Firewall, Status::Pass, false),
        ]);
        let decision = decide(&told(&[Firewall]), &run, &[]);
        assert_eq!(decision.message, None);
        let waiting = Told {
            leaky: true,
            leaking: BTreeSet::new(),
        };
        assert_eq!(decision.next, waiting);
        let clean = report(vec![
            finding(DiskEncryption, Status::Pass, false),
            finding(Firewall, Status::Pass, false),
        ]);
        let later = decide(&waiting, &clean, &[]);
        assert_eq!(later.message.unwrap().title, "Bailed out");
    }

    #[test]
    fn a_run_limited_by_only_keeps_what_it_did_not_look_at() {
        let only_firewall = report(vec![finding(Firewall, Status::Pass, false)]);
        let decision = decide(
            &told(&[DiskEncryption, Firewall]),
            &only_firewall,
            &[Firewall],
        );
        assert_eq!(decision.message, None);
        assert_eq!(decision.next, told(&[DiskEncryption]));
        let alone = decide(&told(&[Firewall]), &only_firewall, &[Firewall]);
        assert_eq!(alone.message, None, "a partial run never says bailed out");
        let full = decide(&told(&[DiskEncryption]), &only_firewall, &[]);
        assert_eq!(
            full.message.unwrap().title,
            "Bailed out",
            "a full run forgets checks the policy no longer runs"
        );
    }

    #[test]
    fn the_state_file_round_trips_and_a_broken_one_reads_as_never_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notified.json");
        assert_eq!(Told::load(&path), Told::default());
        let state = told(&[Firewall, SshKeys]);
        state.save(&path).unwrap();
        assert_eq!(Told::load(&path), state);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"leaking\": [\n    \"firewall\",\n    \"ssh-keys\"\n  ]"),
            "{text}"
        );
        std::fs::write(&path, "{\"leaky\": tru").unwrap();
        assert_eq!(Told::load(&path), Told::default());
    }
}
