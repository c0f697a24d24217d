//! `shipshape-server`: the fleet side of Shipshape. Enrollment, signed
//! reports and the fleet report arrive with the next milestone; this binary
//! already validates policies with the same core the agent uses.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--version" || flag == "-V" => {
            println!("shipshape-server {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "shipshape-server {}: the server is not built yet; only --version works",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
