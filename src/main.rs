//! `lockerfleet`: the workspace's default binary; `cargo run --release -- demo` runs the whole
//! system on embedded defaults.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lockerfleet",
    version,
    about = "LockerFleet: 24-hour locker fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Server, embedded broker, SQLite and a simulated fleet of real agents over TLS.
    Demo(simulations::demo::DemoOptions),
}

fn main() -> std::process::ExitCode {
    cli::run_main(run)
}

async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Cmd::Demo(o) => simulations::demo::main(o).await,
    }
}
