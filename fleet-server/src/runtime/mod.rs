//! The server's long-running tasks, apart from the rules they carry out: the device side (the
//! broker link or external-broker client, the ingest writer, presence, certificate renewal and
//! revocation) and the fleet-wide background work (alarm sweeps, notifications, the InfluxDB
//! export, leadership, change notices across replicas). `lib.rs::start` wires them; each stops
//! on the process's one cancellation token in the order `RunningServer::shutdown` gives.

pub mod alarms;
pub(crate) mod amqp;
pub(crate) mod bus;
pub(crate) mod change_bridge;
pub(crate) mod delivery;
pub(crate) mod export;
pub(crate) mod heartbeats;
pub mod ingest;
pub(crate) mod leader;
pub(crate) mod link;
pub(crate) mod notify;
pub(crate) mod presence;
pub(crate) mod renewal;
pub(crate) mod retention;
pub(crate) mod revocations;
pub(crate) mod sms_gateways;
