use std::process::ExitCode;

use clap::Parser as _;
use shipshape_loadgen::cli::{Cli, Format};
use shipshape_loadgen::{output, run};

/// Exit code when the run could not be made (bad arguments are clap's 2 too).
const CANNOT_RUN: u8 = 2;

/// Signed requests a device may make per minute under the server's
/// default configuration.
const SERVER_DEFAULT_RATE_LIMIT: f64 = 60.0;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = cli.settings();
    let per_device_per_minute = settings.pacing.per_second() * 60.0 / settings.devices as f64;
    if per_device_per_minute > SERVER_DEFAULT_RATE_LIMIT {
        eprintln!(
            "shipshape-loadgen: note: each device sends {per_device_per_minute:.0} requests a minute; a server with the default rate-limit (60 a minute) answers 429 to the excess: raise rate-limit in its config, or add devices"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shipshape-loadgen: cannot start the async runtime: {error}");
            return ExitCode::from(CANNOT_RUN);
        }
    };
    let progress = |what: &str| eprintln!("shipshape-loadgen: {what}…");
    match runtime.block_on(run::run(&settings, &progress)) {
        Ok(results) => {
            let text = match cli.format {
                Format::Human => output::human(&results),
                Format::Json => output::json(&results),
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shipshape-loadgen: {error:#}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}
