//! The database schema, one text for SQLite and PostgreSQL.
//!
//! Written for the common subset that `sqlx::Any` supports: BIGINT for integers, booleans and
//! epoch-millisecond times, TEXT for ids and JSON, application-assigned keys (no
//! AUTOINCREMENT/IDENTITY), `$n` placeholders. See `docs/adr/0003-one-schema-two-databases.md`.

/// The newest version below; the server refuses a database from a newer one.
pub const SCHEMA_VERSION: i64 = 22;

/// Each version's statements, applied in order to a database at an older version. A new
/// version appends here; statements of a released version never change.
pub(super) const MIGRATIONS: &[(i64, &[&str])] = &[
    (1, V1),
    (2, V2),
    (3, V3),
    (4, V4),
    (5, V5),
    (6, V6),
    (7, V7),
    (8, V8),
    (9, V9),
    // The audit log refuses UPDATE and DELETE: triggers differ between SQLite and
    // PostgreSQL, so `store::audit::guard` writes them for the database in use.
    (10, &[]),
    (11, V11),
    (12, V12),
    (13, V13),
    (14, V14),
    (15, V15),
    (16, V16),
    (17, V17),
    (18, V18),
    (19, V19),
    (20, V20),
    (21, V21),
    (22, V22),
];

const V1: &[&str] = &[
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

/// Sites, cabinet and box configuration, items with their history, staff, unmet demand and
/// the notification outbox (issue 3: locker service flows).
const V2: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sites (
        site_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        address TEXT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    // Admin configuration of a device; `devices` holds what the device itself reports.
    "CREATE TABLE IF NOT EXISTS cabinets (
        device_id TEXT PRIMARY KEY,
        site_id TEXT NOT NULL,
        name TEXT NOT NULL,
        codes_version BIGINT NOT NULL DEFAULT 0,
        codes_applied BIGINT NOT NULL DEFAULT 0,
        codes_sent_at BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS cabinets_site ON cabinets (site_id)",
    "CREATE TABLE IF NOT EXISTS box_config (
        device_id TEXT NOT NULL,
        box_no BIGINT NOT NULL,
        size TEXT NOT NULL,
        accessible BIGINT NOT NULL DEFAULT 0,
        in_service BIGINT NOT NULL DEFAULT 1,
        service_note TEXT,
        PRIMARY KEY (device_id, box_no)
    )",
    "CREATE TABLE IF NOT EXISTS items (
        item_id TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        case_number TEXT NOT NULL,
        phone TEXT NOT NULL,
        site_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        box_no BIGINT NOT NULL,
        size TEXT NOT NULL,
        state TEXT NOT NULL,
        holds_box BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        idempotency_key TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        valid_from BIGINT NOT NULL,
        valid_until BIGINT NOT NULL,
        deadline BIGINT,
        due_by BIGINT,
        code_tag TEXT,
        in_box_at BIGINT,
        deposited_by TEXT,
        finished_at BIGINT,
        finished_by TEXT,
        late_deposit BIGINT NOT NULL DEFAULT 0,
        reminded_at BIGINT
    )",
    // One item holds a box at a time: the database, not the allocator, has the last word.
    "CREATE UNIQUE INDEX IF NOT EXISTS items_box_held ON items (device_id, box_no) WHERE holds_box = 1",
    "CREATE UNIQUE INDEX IF NOT EXISTS items_idempotency ON items (created_by, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS items_state ON items (state, site_id)",
    "CREATE INDEX IF NOT EXISTS items_case ON items (case_number)",
    // Code material per cabinet, and the cabinet view.
    "CREATE INDEX IF NOT EXISTS items_device ON items (device_id, state)",
    "CREATE TABLE IF NOT EXISTS item_history (
        item_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        state TEXT NOT NULL,
        actor TEXT NOT NULL,
        detail TEXT
    )",
    "CREATE INDEX IF NOT EXISTS item_history_item ON item_history (item_id, at)",
    "CREATE TABLE IF NOT EXISTS unmet_demand (
        at BIGINT NOT NULL,
        site_id TEXT,
        device_id TEXT,
        flow TEXT NOT NULL,
        size TEXT NOT NULL,
        reason TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS unmet_demand_site ON unmet_demand (site_id, at)",
    "CREATE TABLE IF NOT EXISTS staff (
        staff_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        site_id TEXT,
        salt TEXT NOT NULL,
        hash TEXT NOT NULL,
        iterations BIGINT NOT NULL,
        active BIGINT NOT NULL DEFAULT 1,
        created_at BIGINT NOT NULL
    )",
    // The durable outbox of SMS and webhooks. `body` is sealed (encrypted) when it holds a
    // code, and wiped once sent.
    "CREATE TABLE IF NOT EXISTS notifications (
        notification_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        item_id TEXT,
        event TEXT NOT NULL,
        body TEXT,
        state TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_at BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS notifications_due ON notifications (state, next_attempt_at)",
    "ALTER TABLE audit ADD COLUMN item_id TEXT",
    "ALTER TABLE audit ADD COLUMN outcome TEXT",
];

/// Alarms and their history (issue 4: faults and alarms).
const V3: &[&str] = &[
    // `box_no` 0: the device itself. State: active, acknowledged, cleared.
    "CREATE TABLE IF NOT EXISTS alarms (
        alarm_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        box_no BIGINT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        site_id TEXT,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        count BIGINT NOT NULL,
        evidence TEXT,
        acked_by TEXT,
        acked_at BIGINT,
        ack_note TEXT,
        cleared_at BIGINT,
        cleared_by TEXT,
        clear_note TEXT,
        escalated_at BIGINT
    )",
    // One open alarm per (device, box, kind): repeats bump it instead.
    "CREATE UNIQUE INDEX IF NOT EXISTS alarms_open ON alarms (device_id, box_no, kind) WHERE state <> 'cleared'",
    "CREATE INDEX IF NOT EXISTS alarms_state ON alarms (state, last_seen)",
    "CREATE TABLE IF NOT EXISTS alarm_history (
        alarm_id TEXT NOT NULL,
        at BIGINT NOT NULL,
        state TEXT NOT NULL,
        actor TEXT NOT NULL,
        detail TEXT
    )",
    "CREATE INDEX IF NOT EXISTS alarm_history_alarm ON alarm_history (alarm_id, at)",
];

/// Presence layers, station devices and alarm notifications (issue 4, second part).
const V4: &[&str] = &[
    // The last heartbeat as the server received it (server clock), and what it said.
    "ALTER TABLE devices ADD COLUMN profile TEXT",
    "ALTER TABLE devices ADD COLUMN heartbeat_at BIGINT",
    "ALTER TABLE devices ADD COLUMN heartbeat_secs BIGINT",
    "ALTER TABLE devices ADD COLUMN uptime_s BIGINT",
    "ALTER TABLE devices ADD COLUMN lock_bus TEXT",
    "ALTER TABLE devices ADD COLUMN lock_bus_detail TEXT",
    "ALTER TABLE devices ADD COLUMN power TEXT",
    "ALTER TABLE devices ADD COLUMN outbox_pending BIGINT",
    "ALTER TABLE devices ADD COLUMN station TEXT",
    // `session` rows come from the broker front, `heartbeat` rows from the alarm sweep.
    "ALTER TABLE presence_log ADD COLUMN layer TEXT NOT NULL DEFAULT 'session'",
    "ALTER TABLE staff ADD COLUMN phone TEXT",
    "ALTER TABLE staff ADD COLUMN on_duty BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE notifications ADD COLUMN site_id TEXT",
    "ALTER TABLE notifications ADD COLUMN alarm_id TEXT",
    "CREATE INDEX IF NOT EXISTS notifications_site ON notifications (site_id, created_at)",
    // Uses per hour (the overview's last 24 hours) read item history by state and time.
    "CREATE INDEX IF NOT EXISTS item_history_state_at ON item_history (state, at)",
    // When on-duty staff were told of an alarm, and how that went (sent, rate_limited,
    // nobody_on_duty, suppressed).
    "ALTER TABLE alarms ADD COLUMN notified_at BIGINT",
    "ALTER TABLE alarms ADD COLUMN notify_outcome TEXT",
    // Alarms from before notifications existed are not sent out after an upgrade.
    "UPDATE alarms SET notified_at = last_seen, notify_outcome = 'predates_notifications'",
];

/// The overview's usage rate today reads items that left their box today by time.
const V5: &[&str] = &["CREATE INDEX IF NOT EXISTS items_finished ON items (finished_at)"];

/// Usage rollups (issue 6): per hour, box-milliseconds holding an item in the box
/// (`occupied_ms`), held by an item at all, reservations included (`held_ms`), and out of
/// service (`oos_ms`); items placed (`uses`) and reservations refused for lack of a box
/// (`unmet`). Kept per box, cabinet and site as items move (`store::usage`), so reports sum
/// at most one row per hour and scope instead of scanning items.
const V6: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS usage_box_hour (
        device_id TEXT NOT NULL,
        box_no BIGINT NOT NULL,
        hour BIGINT NOT NULL,
        occupied_ms BIGINT NOT NULL DEFAULT 0,
        held_ms BIGINT NOT NULL DEFAULT 0,
        oos_ms BIGINT NOT NULL DEFAULT 0,
        uses BIGINT NOT NULL DEFAULT 0,
        unmet BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (device_id, box_no, hour)
    )",
    "CREATE TABLE IF NOT EXISTS usage_cabinet_hour (
        device_id TEXT NOT NULL,
        hour BIGINT NOT NULL,
        occupied_ms BIGINT NOT NULL DEFAULT 0,
        held_ms BIGINT NOT NULL DEFAULT 0,
        oos_ms BIGINT NOT NULL DEFAULT 0,
        uses BIGINT NOT NULL DEFAULT 0,
        unmet BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (device_id, hour)
    )",
    "CREATE TABLE IF NOT EXISTS usage_site_hour (
        site_id TEXT NOT NULL,
        hour BIGINT NOT NULL,
        occupied_ms BIGINT NOT NULL DEFAULT 0,
        held_ms BIGINT NOT NULL DEFAULT 0,
        oos_ms BIGINT NOT NULL DEFAULT 0,
        uses BIGINT NOT NULL DEFAULT 0,
        unmet BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (site_id, hour)
    )",
    // Fleet and kind reports read every site's hours in a range: a covering index spares a
    // table lookup per row (5x faster on SQLite in `fleet-sim bench usage`).
    "CREATE INDEX IF NOT EXISTS usage_site_hour_hour ON usage_site_hour
        (hour, site_id, occupied_ms, held_ms, oos_ms, uses, unmet)",
    // Box-hours in service need to know since when a box exists and since when it is out of
    // service. Boxes from before this version count from their cabinet's creation, and those
    // out of service now from the cabinet's last change (the best time the data still has).
    "ALTER TABLE box_config ADD COLUMN created_at BIGINT",
    "ALTER TABLE box_config ADD COLUMN out_since BIGINT",
    "UPDATE box_config SET created_at = (SELECT c.created_at FROM cabinets c WHERE c.device_id = box_config.device_id)",
    "UPDATE box_config SET out_since = (SELECT c.updated_at FROM cabinets c WHERE c.device_id = box_config.device_id) WHERE in_service = 0",
];

/// The planner's inputs as last uploaded by the service platform (issue 6): where demand
/// comes from and where new clusters could go.
const V7: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS planning_demand (
        point_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        enterprises BIGINT NOT NULL,
        monthly_cases DOUBLE PRECISION NOT NULL,
        cluster TEXT
    )",
    "CREATE TABLE IF NOT EXISTS planning_candidates (
        candidate_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        lat DOUBLE PRECISION NOT NULL,
        lon DOUBLE PRECISION NOT NULL,
        max_boxes BIGINT
    )",
];

// The code-set retransmission clock moved into the server's memory: writing it took the
// writer once per code set sent, behind ingest, under every reservation burst.
const V8: &[&str] = &["ALTER TABLE cabinets DROP COLUMN codes_sent_at"];

/// Issue 8: the audit log becomes a hash chain (`store::audit`; rows written before are
/// chained by the migration, oldest first), and API tokens expire, can be revoked and can be
/// limited to sites (`sites`: a JSON array of site ids; NULL: every site).
const V9: &[&str] = &[
    "ALTER TABLE audit ADD COLUMN seq BIGINT",
    "ALTER TABLE audit ADD COLUMN hash TEXT",
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_seq ON audit (seq)",
    "ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT",
    "ALTER TABLE api_tokens ADD COLUMN revoked_at BIGINT",
    "ALTER TABLE api_tokens ADD COLUMN sites TEXT",
    "ALTER TABLE api_tokens ADD COLUMN created_by TEXT",
];

/// Issue 8: the cabinet's clock offset from the server's, as its heartbeat reports it.
const V11: &[&str] = &["ALTER TABLE devices ADD COLUMN clock_offset_ms BIGINT"];

/// Issue 22: agent releases, signed with a release key (`protocol::release`). The manifest is
/// kept as the exact text that was signed, so a cabinet can verify it again; the binary in the
/// database (not beside one replica) so every replica can serve it.
const V12: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS releases (
        target TEXT NOT NULL,
        version TEXT NOT NULL,
        major BIGINT NOT NULL,
        minor BIGINT NOT NULL,
        patch BIGINT NOT NULL,
        manifest TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        notes TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        uploaded_at BIGINT,
        withdrawn_at BIGINT,
        withdrawn_by TEXT,
        withdraw_note TEXT,
        PRIMARY KEY (target, version)
    )",
    "CREATE TABLE IF NOT EXISTS release_binaries (
        target TEXT NOT NULL,
        version TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (target, version)
    )",
];

/// Issue 22: where the last release offered to a device stands on it, from its `release`
/// events (the newest by the device's clock wins).
const V13: &[&str] = &[
    "ALTER TABLE devices ADD COLUMN release_version TEXT",
    "ALTER TABLE devices ADD COLUMN release_state TEXT",
    "ALTER TABLE devices ADD COLUMN release_reason TEXT",
    "ALTER TABLE devices ADD COLUMN release_at BIGINT",
];

/// Issue 22: deployments of a release to many devices in waves, and where each device of one
/// stands.
const V14: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS deployments (
        deployment_id TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        version TEXT NOT NULL,
        rollback BIGINT NOT NULL,
        window_from TEXT,
        window_to TEXT,
        utc_offset_minutes BIGINT NOT NULL,
        waves TEXT NOT NULL,
        success_percent BIGINT NOT NULL,
        max_failures_percent BIGINT NOT NULL,
        soak_secs BIGINT NOT NULL,
        manual BIGINT NOT NULL,
        deadline_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        wave BIGINT NOT NULL,
        wave_started_at BIGINT,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS deployments_state ON deployments (state)",
    "CREATE TABLE IF NOT EXISTS deployment_devices (
        deployment_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        wave BIGINT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        from_version TEXT,
        offered_at BIGINT,
        succeeded_at BIGINT,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (deployment_id, device_id)
    )",
];

/// Issue 22: labels an administrator puts on devices (deployments and configuration select
/// by them); kept apart from `devices` so a device can be labelled before it first connects.
const V15: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS device_labels (
        device_id TEXT NOT NULL,
        label_key TEXT NOT NULL,
        label_value TEXT NOT NULL,
        PRIMARY KEY (device_id, label_key)
    )",
    "CREATE INDEX IF NOT EXISTS device_labels_pair ON device_labels (label_key, label_value)",
];

/// Issue 22: central configuration — the desired settings per layer (fleet, site kind, site,
/// label, device), and what each device reports in effect.
const V16: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS config_layers (
        scope TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        settings TEXT NOT NULL,
        revision BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        updated_by TEXT NOT NULL,
        PRIMARY KEY (scope, scope_key)
    )",
    "ALTER TABLE devices ADD COLUMN config_version TEXT",
    "ALTER TABLE devices ADD COLUMN config_state TEXT",
    "ALTER TABLE devices ADD COLUMN config_reason TEXT",
    "ALTER TABLE devices ADD COLUMN config_settings TEXT",
    "ALTER TABLE devices ADD COLUMN config_at BIGINT",
];

/// Issue 22: remote diagnostics — what an operator asked a cabinet for (log lines or a
/// doctor report) and its answer; the newest few per device are kept.
const V17: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS diagnostics (
        id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        lines BIGINT,
        state TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        sent_at BIGINT,
        answered_at BIGINT,
        report TEXT
    )",
    "CREATE INDEX IF NOT EXISTS diagnostics_device ON diagnostics (device_id, requested_at)",
    "CREATE INDEX IF NOT EXISTS diagnostics_state ON diagnostics (state, expires_at)",
];

/// Issue 23: a site's language (what its citizens' SMS are written in) and time zone (how
/// its times read), and the SMS templates administrators write per site (or fleet-wide: site
/// `''`), language and flow.
const V18: &[&str] = &[
    "ALTER TABLE sites ADD COLUMN lang TEXT",
    "ALTER TABLE sites ADD COLUMN time_zone TEXT",
    "CREATE TABLE IF NOT EXISTS sms_templates (
        site_id TEXT NOT NULL,
        lang TEXT NOT NULL,
        flow TEXT NOT NULL,
        body TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (site_id, lang, flow)
    )",
];

/// Issue 25: retention — how far each class of rows has been cleared and how many rows that
/// removed (`store::retention`).
const V19: &[&str] = &["CREATE TABLE IF NOT EXISTS retention_marks (
        class TEXT PRIMARY KEY,
        before_ms BIGINT NOT NULL,
        rows_removed BIGINT NOT NULL,
        at BIGINT NOT NULL
    )"];

/// Issue 25: restores from backup, and the device events a restore lost (sequence numbers
/// the cabinets had deleted after the server's receipt, which the restored database never
/// held), found when each cabinet comes back.
const V20: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS restores (
        restored_at BIGINT NOT NULL,
        backup_taken_at BIGINT NOT NULL,
        source TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS event_gaps (
        device_id TEXT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        detected_at BIGINT NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (device_id, first_seq)
    )",
];

/// Issue 25: the audit log's archived prefix — the last row moved to an archive file (JSON
/// lines, `fleet-server audit archive`); the chain in the database continues from it.
const V21: &[&str] = &["CREATE TABLE IF NOT EXISTS audit_anchor (
        seq BIGINT PRIMARY KEY,
        hash TEXT NOT NULL,
        archived_at BIGINT NOT NULL,
        archive TEXT NOT NULL
    )"];

/// Issue 26: a demand point may come without monthly cases (coverage by enterprises needs
/// none); rows from before were all given them.
const V22: &[&str] =
    &["ALTER TABLE planning_demand ADD COLUMN cases_known BIGINT NOT NULL DEFAULT 1"];
