//! The `shipshape` command line: what each subcommand does, from arguments to exit code.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use shipshape_core::checks::CheckId;

use crate::enroll;
use crate::exit;
use crate::judge;
use crate::keystore::{Choice, OsKeyring};
use crate::notify;
use crate::output;
use crate::paths::Paths;
use crate::policy_source;
use crate::probes;
use crate::report;
use crate::schedule;
use crate::status;
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
    /// Enroll this machine with a Shipshape server: create its device key and register it.
    Enroll(EnrollArgs),
    /// Check this machine under the server's policy, queue the signed report and send the queue.
    ///
    /// The report waits in the outbox until the server acknowledges it; a
    /// server that is away only delays it. Exit code 0: shipshape (the
    /// server's grade when delivered, this machine's verdict when queued); 1:
    /// leaky; 2: not enrolled, an unusable config or outbox, or a report the
    /// server refused for good.
    Report(FormatArgs),
    /// Show the enrollment, the last report, the outbox and breaker, the policy, and the server.
    Status(FormatArgs),
    /// Run `shipshape report` on a timer: a systemd timer, launchd job or scheduled task.
    #[command(subcommand)]
    Schedule(schedule::Command),
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The server's base URL: https://…, or http:// to this machine only (tests).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The enrollment token from `shipshape-server token create --enroll`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SHIPSHAPE_ENROLL_TOKEN",
        hide_env_values = true
    )]
    pub token: String,
    /// Trust only the CA certificates in this PEM file for the server (a private CA).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Where to keep the device key: the OS keyring, a root-only 0600 file, or
    /// the keyring when one is available and the file otherwise.
    #[arg(long, value_enum, value_name = "STORE", default_value_t = Choice::Auto)]
    pub key_store: Choice,
}

#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Output for people (`human`) or programs (`json`).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
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
    /// Show no desktop notification of a new leak (or of bailing out), and remember none.
    #[arg(long)]
    pub no_notify: bool,
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

/// How a command prints its result.
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
        Command::Enroll(args) => enroll::run(
            &system,
            &paths,
            &OsKeyring,
            enroll::Request {
                server: args.server,
                token: args.token,
                ca_file: args.ca_file,
                key_store: args.key_store,
            },
        ),
        Command::Report(args) => report::run(&system, &paths, &OsKeyring, args.format),
        Command::Status(args) => status::run(&paths, &OsKeyring, args.format),
        Command::Schedule(command) => schedule::run(&system, &paths, command),
        Command::Facts(args) => {
            let wanted = judge::wanted(&args.only);
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

fn check(system: &dyn System, paths: &Paths, args: CheckArgs) -> anyhow::Result<u8> {
    let now = Timestamp::now();
    let loaded = policy_source::resolve(args.policy.as_deref(), paths, now)?;
    let judged = judge::run(system, paths, &loaded, &args.only, now)?;
    notify::after_run(
        system,
        paths,
        &judged.report,
        notify::Run {
            only: &args.only,
            opted_out: args.no_notify,
        },
    );
    let waiting = report::waiting_note(paths, now);
    match args.format {
        Format::Json => {
            print_json(&judged.report)?;
            if let Some(waiting) = waiting {
                eprintln!("shipshape: {waiting}");
            }
        }
        Format::Human => {
            let mut stdout = anstream::stdout();
            output::human(&mut stdout, &judged.report).context("could not write the report")?;
            if let Some(waiting) = waiting {
                writeln!(stdout, "{waiting}")?;
            }
        }
    }
    Ok(judged.exit_code())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}
