//! `shipshape-server`: collects the agents' signed reports and shows the
//! security team which machines leak.

fn main() {
    println!("shipshape-server {}", env!("CARGO_PKG_VERSION"));
}
