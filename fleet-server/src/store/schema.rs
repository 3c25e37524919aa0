//! The database schema, one text for SQLite and PostgreSQL.
//!
//! Written for the common subset that `sqlx::Any` supports: BIGINT for integers, booleans and
//! epoch-millisecond times, TEXT for ids and JSON, application-assigned keys (no
//! AUTOINCREMENT/IDENTITY), `$n` placeholders. See `docs/adr/0003-one-schema-two-databases.md`.

/// Bumped when a statement below changes; the server refuses a database from a newer version.
pub const SCHEMA_VERSION: i64 = 1;

pub const STATEMENTS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS devices (
        device_id TEXT PRIMARY KEY,
        boxes BIGINT NOT NULL DEFAULT 0,
        agent_version TEXT,
        online BIGINT NOT NULL DEFAULT 0,
        last_seen BIGINT,
        presence_changed_at BIGINT,
        presence_reason TEXT,
        acked_seq BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS events (
        device_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        received_at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        box_no BIGINT,
        body TEXT NOT NULL,
        PRIMARY KEY (device_id, seq)
    )",
    "CREATE TABLE IF NOT EXISTS boxes (
        device_id TEXT NOT NULL,
        box_no BIGINT NOT NULL,
        door_open BIGINT NOT NULL DEFAULT 0,
        door_seq BIGINT NOT NULL DEFAULT 0,
        door_changed_at BIGINT,
        occupied BIGINT,
        occupied_seq BIGINT NOT NULL DEFAULT 0,
        occupied_changed_at BIGINT,
        PRIMARY KEY (device_id, box_no)
    )",
    "CREATE TABLE IF NOT EXISTS presence_log (
        device_id TEXT NOT NULL,
        ts BIGINT NOT NULL,
        session BIGINT NOT NULL,
        online BIGINT NOT NULL,
        reason TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS presence_log_device ON presence_log (device_id, ts)",
    "CREATE TABLE IF NOT EXISTS commands (
        command_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        box_no BIGINT NOT NULL,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        status_rank BIGINT NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL,
        idempotency_key TEXT,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        sent_at BIGINT,
        delivered_at BIGINT,
        finished_at BIGINT,
        detail TEXT
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS commands_idempotency ON commands (actor, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS commands_open ON commands (status_rank, expires_at)",
    "CREATE TABLE IF NOT EXISTS audit (
        audit_id TEXT PRIMARY KEY,
        ts BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        device_id TEXT,
        box_no BIGINT,
        command_id TEXT,
        reason TEXT
    )",
    "CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts)",
    "CREATE TABLE IF NOT EXISTS api_tokens (
        token_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
];
