//! The `shipshape-server` command line: `serve`, and the admin commands
//! (`token`, `device`, `fleet`, `policy`) that open the database directly.

mod admin;
mod policy;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use shipshape_core::checks::CheckId;
use shipshape_core::wire::DeviceStatus;

use crate::config::{Database, FileConfig};
use crate::model::FleetCursor;
use crate::store::{PostgresStore, SqliteStore, Store};

/// Exit codes of `shipshape-server`, in one place.
pub mod exit {
    /// Done.
    pub const SUCCESS: u8 = 0;
    /// Bad usage, an invalid config or policy, or another error.
    pub const ERROR: u8 = 2;
}

/// Collects the agents' signed reports and shows the security team which
/// machines leak.
#[derive(Debug, Parser)]
#[command(name = "shipshape-server", version, about, long_about = None)]
pub struct Cli {
    /// More diagnostics on stderr (-v: debug, -vv: trace). SHIPSHAPE_SERVER_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (TOML): listen, db, tls-cert, tls-key, stale-after, public-url, policy,
    /// rate-limit, rate-limit-burst, max-concurrent-requests, request-timeout.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "SHIPSHAPE_SERVER_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Database: sqlite:PATH, or postgres://USER@HOST:PORT/DATABASE for
    /// several replicas [default: shipshape.db in the data directory,
    /// /var/lib/shipshape-server when root].
    #[arg(long, global = true, value_name = "URL", env = "SHIPSHAPE_SERVER_DB")]
    pub db: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and the fleet report.
    ///
    /// Prints `listening on http(s)://ADDRESS` on stdout once it accepts
    /// connections; logs go to stderr. Stops on SIGTERM or Ctrl-C.
    #[command(after_long_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Create, list and revoke enrollment and admin tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Revoke a device.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Print the fleet report.
    Fleet(FleetArgs),
    /// Try a policy on the fleet's stored facts.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

const SERVE_HELP: &str = "\
Start from nothing:
  shipshape-server token create --admin        # prints the admin token, once
  shipshape-server serve                       # then open http://127.0.0.1:8443/

Enroll machines with a token from `shipshape-server token create --enroll`.

See what a policy would change first (nothing is stored):
  shipshape-server policy simulate policy.toml

Replace the policy (validated, then every device is re-graded in the
background; GET /v1/policy/status tells how far it has come):
  curl -X PUT --data-binary @policy.toml \\
       -H \"Authorization: Bearer $ADMIN_TOKEN\" https://SERVER/v1/policy

The API is described at /openapi.json.";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (IP:PORT; port 0 picks a free one) [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR", env = "SHIPSHAPE_SERVER_LISTEN")]
    pub listen: Option<String>,
    /// PEM certificate chain, to serve HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Policy to grade with; activated (and the fleet re-graded) when it
    /// differs from the active one [default: the active one, else built-in].
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The URL agents use, when a proxy sits in front (signatures cover it).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// A device without a report for this long is silent [default: 48h].
    #[arg(long, value_name = "DURATION")]
    pub stale_after: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, on stdout, and stored hashed.
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The id `token list` shows.
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).args(["enroll", "admin"]))]
pub struct TokenCreateArgs {
    /// A token that enrolls devices (`shipshape enroll --token`).
    #[arg(long)]
    pub enroll: bool,
    /// A token for the fleet report and policy changes.
    #[arg(long)]
    pub admin: bool,
    /// How many devices it may enroll [default: unlimited].
    #[arg(long, value_name = "N", conflicts_with = "admin", value_parser = clap::value_parser!(u32).range(1..))]
    pub uses: Option<u32>,
    /// How long it stays valid: "24h", "7d", "2 weeks" [default: forever].
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Revoke a device: its signed requests are refused from now on.
    Revoke {
        /// The device id (see `shipshape-server fleet`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[arg(long, value_enum, default_value_t = FleetFormat::Table)]
    pub format: FleetFormat,
    /// Only devices with this status.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<DeviceStatus>,
    /// Only devices failing this check.
    #[arg(long, value_name = "CHECK")]
    pub check: Option<CheckId>,
    /// Start after this device: the cursor a page names as its next
    /// (table and json; csv lists every matching device).
    #[arg(long, value_name = "CURSOR", value_parser = parse_cursor)]
    pub after: Option<FleetCursor>,
    /// Every page, not only the first (table and json; csv always lists every matching device).
    #[arg(long, conflicts_with = "after")]
    pub all: bool,
    /// Devices per page.
    #[arg(long, default_value_t = crate::fleet::DEFAULT_PER_PAGE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::api::MAX_PER_PAGE)))]
    pub per_page: u32,
    /// A device without a report for this long is silent [default: 48h, or the config's].
    #[arg(long, value_name = "DURATION")]
    pub stale_after: Option<String>,
}

fn parse_cursor(text: &str) -> Result<FleetCursor, String> {
    FleetCursor::decode(text).map_err(|error| error.to_string())
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Grade every device's last stored facts under a policy and tell what
    /// would change: how many devices would leak, which would spring a leak
    /// and which would bail out. Nothing is stored.
    Simulate {
        /// The policy (TOML) to try.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

/// How `token list` and `policy simulate` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// How `fleet` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetFormat {
    Table,
    Json,
    Csv,
}

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.global.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    match cli.command {
        Command::Serve(args) => serve::serve(args, cli.global.db, file).await,
        Command::Token(command) => admin::token(command, &cli.global, file).await,
        Command::Device(command) => admin::device(command, &cli.global, file).await,
        Command::Fleet(args) => admin::fleet(args, &cli.global, file).await,
        Command::Policy(command) => policy::run(command, &cli.global, file).await,
    }
}

/// Opens (creating and migrating when needed) the database.
async fn open_store(db: &Database) -> anyhow::Result<Arc<dyn Store>> {
    match db {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create database directory {}", dir.display())
                })?;
            }
            let store =
                SqliteStore::open(path).with_context(|| format!("cannot open database {db}"))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let store = PostgresStore::open(url)
                .await
                .with_context(|| format!("cannot open database {db}"))?;
            Ok(Arc::new(store))
        }
    }
}
