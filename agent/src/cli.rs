//! The `shipshape` command line: what each subcommand does, from arguments to exit code.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use shipshape_core::checks::{CATALOG, CheckId};
use shipshape_core::report::{CheckReport, PolicyRef, SCHEMA_VERSION};
use shipshape_core::{Verdict, evaluate};

use crate::exit;
use crate::output;
use crate::paths::Paths;
use crate::policy_source;
use crate::probes;
use crate::state::GraceState;
use crate::system::{RealSystem, System};

/// Keeps this machine shipshape: checks disk encryption, OS updates, the
/// firewall and SSH against a policy, and says exactly how to fix each leak.
#[derive(Debug, Parser)]
#[command(name = "shipshape", version, about, long_about = None)]
pub struct Cli {
    /// More diagnostics on stderr (-v: debug, -vv: trace). SHIPSHAPE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check this machine against the policy and say how to fix each leak.
    ///
    /// Exit code 0: shipshape; 1: leaky; 2: usage or policy error.
    Check(CheckArgs),
    /// Print the raw facts the probes observe, as JSON, without judging them.
    Facts(FactsArgs),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Policy file to judge by (default: configured, else cached from the server, else built-in).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Run only this check (repeatable).
    #[arg(long = "only", value_name = "ID", value_parser = parse_check_id)]
    pub only: Vec<CheckId>,
    /// Output for people (`human`) or programs (`json`).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FactsArgs {
    /// Observe only this check's facts (repeatable).
    #[arg(long = "only", value_name = "ID", value_parser = parse_check_id)]
    pub only: Vec<CheckId>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check that a policy file is valid; errors name the line and column.
    Validate {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// How `check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

fn parse_check_id(text: &str) -> Result<CheckId, String> {
    text.parse()
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let system = RealSystem::default();
    let paths = Paths::discover(system.is_privileged());
    match cli.command {
        Command::Check(args) => check(&system, &paths, args),
        Command::Facts(args) => {
            let wanted = wanted(&args.only);
            let facts = probes::collect(&system, &wanted);
            print_json(&facts)?;
            Ok(exit::SHIPSHAPE)
        }
        Command::Policy(PolicyCommand::Validate { file }) => {
            let loaded = policy_source::from_file(&file, Timestamp::now())?;
            let policy = &loaded.policy;
            let checks: Vec<&str> = policy
                .checks
                .iter()
                .map(|check| check.id().as_str())
                .collect();
            println!(
                "{}: valid policy `{}`: {} check{} ({}), leaky at {} and above, {} exception{}",
                file.display(),
                policy.name,
                checks.len(),
                if checks.len() == 1 { "" } else { "s" },
                checks.join(", "),
                policy.leak_severity,
                policy.exceptions.len(),
                if policy.exceptions.len() == 1 {
                    ""
                } else {
                    "s"
                },
            );
            Ok(exit::SHIPSHAPE)
        }
    }
}

fn wanted(only: &[CheckId]) -> Vec<CheckId> {
    if only.is_empty() {
        CATALOG.iter().map(|info| info.id).collect()
    } else {
        only.to_vec()
    }
}

fn check(system: &dyn System, paths: &Paths, args: CheckArgs) -> anyhow::Result<u8> {
    let now = Timestamp::now();
    let loaded = policy_source::resolve(args.policy.as_deref(), paths, now)?;
    let policy = &loaded.policy;
    for id in &args.only {
        if policy.checks.get(*id).is_none() {
            anyhow::bail!(
                "policy `{}` does not run the check `{id}` given to --only",
                policy.name
            );
        }
    }
    let mut wanted = wanted(&args.only);
    wanted.retain(|id| policy.checks.get(*id).is_some());
    let facts = probes::collect(system, &wanted);
    let mut grace = GraceState::load(&paths.grace_state());
    let mut findings = evaluate(policy, &facts, now, grace.failing_since());
    findings.retain(|finding| wanted.iter().any(|id| id.as_str() == finding.check));
    grace.record(&findings, now);
    if let Err(error) = grace.save(&paths.grace_state()) {
        tracing::warn!("could not remember when checks started failing: {error:#}");
    }
    let report = CheckReport {
        schema: SCHEMA_VERSION,
        verdict: Verdict::of(&findings),
        checked_at: now,
        host: facts.host,
        policy: PolicyRef {
            name: policy.name.clone(),
            source: loaded.source,
        },
        findings,
    };
    match args.format {
        Format::Json => print_json(&report)?,
        Format::Human => {
            let mut stdout = anstream::stdout();
            output::human(&mut stdout, &report).context("could not write the report")?;
        }
    }
    Ok(match report.verdict {
        Verdict::Shipshape => exit::SHIPSHAPE,
        Verdict::Leaky => exit::LEAKY,
    })
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}
