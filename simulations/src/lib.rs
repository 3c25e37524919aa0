//! LockerFleet simulations: a fleet of real agents on fake hardware, the demo, and benchmark
//! commands. Binaries: `fleet-sim` here, and `lockerfleet demo` at the workspace root.

pub mod api;
pub mod bench;
pub mod checks;
pub mod console_bench;
pub mod day;
pub mod demo;
pub mod fleet;
pub mod footprint_bench;
pub mod history;
pub mod history_bench;
pub mod layout;
pub mod locust_bench;
pub mod netem;
pub mod relay_bench;
pub mod report;
pub mod scale_bench;
pub mod scenario;
pub mod schedule;
pub mod sim;
pub mod usage_bench;
