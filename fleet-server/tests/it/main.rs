//! Integration tests of the fleet server crate: storage on SQLite and PostgreSQL.

mod alarms;
mod flows;
mod store;
