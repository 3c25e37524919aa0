//! LockerFleet simulations: a fleet of real agents on fake hardware, the demo, and benchmark
//! commands. Binaries: `fleet-sim` here, and `lockerfleet demo` at the workspace root.

pub mod api;
pub mod bench;
pub mod demo;
pub mod fleet;

/// Logging for the demo and benchmark binaries: quiet by default so status lines stay readable.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKERFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
