//! LockerFleet simulations: a fleet of real agents on fake hardware, the demo, and benchmark
//! commands. Binaries: `fleet-sim` here, and `lockerfleet demo` at the workspace root.

pub(crate) mod api;
pub mod bench;
pub(crate) mod checks;
pub mod cluster_bench;
pub mod console_bench;
pub(crate) mod day;
pub mod demo;
pub(crate) mod fleet;
pub mod footprint_bench;
pub mod handshake_bench;
pub mod heartbeat_bench;
pub(crate) mod history;
pub mod history_bench;
pub mod lab;
pub(crate) mod layout;
pub mod locust_bench;
pub(crate) mod netem;
pub mod planner_bench;
pub(crate) mod relay_bench;
pub(crate) mod report;
pub mod retention_bench;
pub mod rollout_bench;
pub mod scale_bench;
pub(crate) mod scenario;
pub(crate) mod schedule;
pub(crate) mod scratch_pg;
pub mod sim;
pub mod usage_bench;
