//! End-to-end tests: the real `fleet-server` and `device-agent` binaries as processes, talking
//! over real TLS sockets, checked through the HTTP API and the MQTT port as a device sees it.

mod harness;

mod alarms;
mod backup;
mod broker_cluster;
mod broker_front;
mod configuration;
mod console;
mod contract;
mod database_failover;
mod delivery;
mod demo;
mod deployments;
mod diagnostics;
mod export;
mod external_broker;
mod failover;
mod faults;
mod flows;
mod install;
mod lock_boards;
mod releases;
mod remote_open;
mod security;
mod simulator;
mod skew;
mod sms_gateways;
mod usage;
mod whole_tier;
