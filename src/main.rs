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
    // One readable line on failure, also where RUST_BACKTRACE is set.
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    simulations::init_tracing("warn,rumqttd=off");
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Cmd::Demo(o) => simulations::demo::run(o).await,
    }
}
