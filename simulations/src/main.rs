//! `fleet-sim`: the demo fleet and the benchmark commands.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fleet-sim",
    version,
    about = "LockerFleet fleet simulator and benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole system with a simulated fleet (same as `lockerfleet demo`).
    Demo(simulations::demo::DemoOptions),
    /// Runs a scenario (simulations/scenarios/*.toml) and checks the run's invariants.
    Run(simulations::sim::RunOptions),
    /// Benchmarks; results belong in BENCHMARKS.md with the command line.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Durable ingest: events/s from record on the agent to commit and receipt.
    Ingest(simulations::bench::IngestOptions),
    /// Remote-open round trip p50/p99.
    Open(simulations::bench::OpenOptions),
    /// One-time codes: reservation, delivery to the cabinet, keypad, back to the server.
    Codes(simulations::bench::CodesOptions),
    /// The operator console: key-to-redraw time with a large fleet on screen.
    Console(simulations::console_bench::ConsoleOptions),
    /// Many devices connected to a fleet-server process (its RSS), and a reconnect storm.
    Scale(simulations::scale_bench::ScaleOptions),
    /// Usage reports: 90 days of rollups over 1,000 cabinets.
    Usage(simulations::usage_bench::UsageOptions),
    /// The demo's history: how long writing N days takes, and what they leave.
    History(simulations::history_bench::HistoryOptions),
    /// Durable ingest with locust (PyPI) as an independent load generator.
    Locust(simulations::locust_bench::LocustOptions),
    /// One device-agent process at rest: RSS, CPU share, binary size.
    Footprint(simulations::footprint_bench::FootprintOptions),
    /// A signed release rolled out in waves to many cabinets: server CPU, RSS, bytes served,
    /// time per wave, and remote opens and ingest with and without the rollout.
    Rollout(simulations::rollout_bench::RolloutOptions),
    /// The RabbitMQ broker tier against the embedded broker in one run (ingest, remote-open
    /// round trip), and the recovery from a broker node killed under it.
    Cluster(simulations::cluster_bench::ClusterOptions),
    /// What heartbeats cost the server, written together (heartbeat_flush_secs) against each
    /// when heard, in one run.
    Heartbeats(simulations::heartbeat_bench::HeartbeatOptions),
    /// A simulated year's database with retention and without, and remote opens during the
    /// first retention pass over it against opens with none running.
    Retention(simulations::retention_bench::RetentionOptions),
    /// The planner on generated cities of thousands of points against a proven bound.
    Planner(simulations::planner_bench::PlannerOptions),
    /// One TLS handshake's server CPU, full against resumed, with the front's settings.
    Handshakes(simulations::handshake_bench::HandshakeOptions),
}

fn main() -> std::process::ExitCode {
    cli::run_main(run)
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A scenario injects faults on purpose: the agents' and server's warnings about them
    // are the expected story, told by the report instead (LOCKERFLEET_LOG shows them). The
    // demo sets up its own (to a file behind the console).
    match cli.command {
        Cmd::Demo(_) => {}
        Cmd::Run(_) => cli::init_tracing("error,rumqttd=off"),
        _ => cli::init_tracing("warn,rumqttd=off"),
    }
    match cli.command {
        Cmd::Demo(o) => simulations::demo::main(o).await,
        Cmd::Run(o) => simulations::sim::run(o).await,
        Cmd::Bench(Bench::Ingest(o)) => simulations::bench::ingest(o).await,
        Cmd::Bench(Bench::Cluster(o)) => simulations::cluster_bench::cluster(o).await,
        Cmd::Bench(Bench::Heartbeats(o)) => simulations::heartbeat_bench::heartbeats(o).await,
        Cmd::Bench(Bench::Retention(o)) => simulations::retention_bench::retention(o).await,
        Cmd::Bench(Bench::Open(o)) => simulations::bench::open(o).await,
        Cmd::Bench(Bench::Planner(o)) => simulations::planner_bench::planner(o),
        Cmd::Bench(Bench::Handshakes(o)) => simulations::handshake_bench::handshakes(o),
        Cmd::Bench(Bench::Codes(o)) => simulations::bench::codes(o).await,
        Cmd::Bench(Bench::Console(o)) => simulations::console_bench::console(o),
        Cmd::Bench(Bench::Scale(o)) => simulations::scale_bench::scale(o).await,
        Cmd::Bench(Bench::Usage(o)) => simulations::usage_bench::usage(o).await,
        Cmd::Bench(Bench::History(o)) => simulations::history_bench::history(o).await,
        Cmd::Bench(Bench::Locust(o)) => simulations::locust_bench::locust(o).await,
        Cmd::Bench(Bench::Footprint(o)) => simulations::footprint_bench::footprint(o).await,
        Cmd::Bench(Bench::Rollout(o)) => simulations::rollout_bench::rollout(o).await,
    }
}
