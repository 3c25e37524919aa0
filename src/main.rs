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
        Cmd::Demo(mut o) => {
            use std::io::IsTerminal;
            o.console = !o.headless && std::io::stdout().is_terminal();
            if o.console {
                // Log lines would scribble over the console: they go to a file instead.
                std::fs::create_dir_all(&o.data_dir)?;
                let log = o.data_dir.join("demo.log");
                cli::init_tracing_to_file("warn,rumqttd=off", &log)?;
            } else {
                cli::init_tracing("warn,rumqttd=off");
            }
            simulations::demo::run(o).await
        }
    }
}
