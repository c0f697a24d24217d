use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(shipshape::exit::ERROR)
}
