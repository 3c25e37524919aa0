//! Server configuration: typed settings from a TOML file, `LOCKERFLEET_*` variables and flags.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config`), environment
//! variables, command-line flags. Every setting has a default, so `fleet-server` runs with none.

use crate::store::DbKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The settings the server runs with.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the SQLite database, generated tokens and the `listen.json` file live.
    pub data_dir: PathBuf,
    /// Folder with `ca.crt`, `server.crt`, `server.key` (`fleet-certs init`); default
    /// `{data_dir}/certs`.
    pub certs: Option<PathBuf>,
    /// TLS address for devices. Port 0 picks a free port (written to `listen.json`).
    pub mqtt_listen: SocketAddr,
    /// Address of the HTTP API.
    pub http_listen: SocketAddr,
    /// An existing MQTT broker to use instead of the embedded one (`mqtts://HOST:PORT`):
    /// the server connects with `{certs}/fleet-server.crt` and reads device traffic through
    /// shared subscriptions, so replicas on one PostgreSQL split the load. `mqtt_listen` and
    /// the front's limits then do not apply: the broker enforces its own (ADR 0012).
    /// Or a RabbitMQ cluster, `amqps://HOST:PORT,HOST:PORT,...` (every node's AMQP
    /// listener): replicas consume ordered partitions of the devices (ADR 0024).
    pub external_broker: Option<String>,
    /// The replicas' shared-subscription group on the external broker.
    pub broker_group: String,
    /// Partitions of the device traffic on a RabbitMQ cluster: the same on every replica.
    /// More partitions spread devices over more replicas; changing it moves devices between
    /// partitions, so stop the agents' traffic first (ADR 0024).
    pub broker_partitions: u16,
    /// `sqlite://PATH` or `postgres://...`; default a SQLite file in the data dir.
    pub database_url: Option<String>,
    /// Bearer token with the admin role; generated into `{data_dir}/admin-token` when unset.
    pub admin_token: Option<String>,
    /// How long a remote command may wait for delivery before it expires.
    pub command_ttl_secs: u64,
    pub max_connections: usize,
    pub max_packet_size: usize,
    pub handshake_timeout_ms: u64,
    /// TLS handshakes worked on at once; more connections wait their turn (see
    /// `broker::BrokerConfig::max_handshakes`).
    pub max_handshakes: usize,
    /// Of those, at most this many from one IP address (a client that says hello and
    /// stalls must not hold every slot).
    pub max_handshakes_per_ip: usize,
    /// MQTT publishes a device may send per second, sustained (0: no limit); beyond it the
    /// front stops reading from that device until its rate allows (TCP backpressure:
    /// nothing is dropped). Counted in `lockerfleet_broker_publish_throttled_total`.
    pub device_publish_per_sec: u32,
    /// Publishes a device may send at once above its rate (an outbox draining after a
    /// reconnect).
    pub device_publish_burst: u32,
    /// API requests one token may make per second, sustained (0: no limit); beyond it the
    /// answer is 429 with `Retry-After`. Counted in `lockerfleet_api_throttled_total`.
    pub api_requests_per_sec: u32,
    /// API requests one token may make at once above its rate.
    pub api_burst: u32,
    /// How often the audit chain's head (sequence and hash) is written to the log, so a log
    /// shipper keeps an anchor outside the database (0: never).
    pub audit_anchor_secs: u64,
    /// Most work in one ingest transaction, in plain events; a keypad event counts 50, a
    /// state snapshot 50, a heartbeat 4 (`store::event_cost`): bounds how long ingest holds
    /// the writer that commands and reservations also need.
    pub ingest_batch: usize,
    /// Ingest writers, each storing the devices of its lane (a device always in the same
    /// one, so its events stay in order); 0: one on SQLite (it has one writer), four on
    /// PostgreSQL, where one writer waits on every statement's round trip.
    pub ingest_writers: usize,
    /// The master secret that derives cabinet code keys; default
    /// `{data_dir}/secrets/master.key`, created on first start. Back it up.
    pub master_secret_file: Option<PathBuf>,
    /// Public release keys agent releases must be signed with, one hex key per line (the
    /// `release-key.pub` of `fleet-certs release key`); without it, releases are refused.
    pub release_keys: Option<PathBuf>,
    /// Bytes a second the server spends sending agent releases to devices, all devices
    /// together, so a rollout never starves events and commands.
    pub release_bytes_per_sec: u64,
    /// Digits of a one-time code (6 to 8).
    pub code_digits: usize,
    /// Default validity of a drop-off code when the request gives no window.
    pub dropoff_valid_hours: u64,
    /// Default validity of a pick-up code (from reservation) when the request gives none.
    pub pickup_valid_days: u64,
    /// Dropped documents not collected by staff after this long are listed as overdue.
    pub collect_overdue_hours: u64,
    /// A pick-up reminder SMS goes this long before its code expires.
    pub reminder_before_hours: u64,
    /// How long after a window ends (and after the cabinet reconnects) before the server
    /// calls the item expired or overdue: codes used offline arrive within it.
    pub timeup_grace_secs: u64,
    /// The service's local time zone as minutes east of UTC (the same-day deposit rule
    /// ends the day at local midnight), e.g. 480 for UTC+8.
    pub utc_offset_minutes: i32,
    /// The language of texts sent to people (SMS) where a site sets none: `en` or `zh-CN`.
    pub lang: l10n::Lang,
    /// SMS gateway: JSON POST `{id, to, text}` to this URL. Unset: SMS are written to the log
    /// (with the number masked and any code redacted).
    pub sms_gateway_url: Option<String>,
    /// Service platform webhook: signed JSON POSTs of item events. Unset: none are queued.
    pub webhook_url: Option<String>,
    /// HMAC-SHA256 key of `X-LockerFleet-Signature`; required with `webhook_url`.
    pub webhook_secret: Option<String>,
    /// Attempts before a notification is given up (counted in metrics, kept in the table).
    pub notify_max_attempts: u32,
    /// The retry backoff doubles up to this.
    pub notify_max_backoff_secs: u64,
    /// A device offline this long raises `device_offline`; a reconnect within it raises
    /// nothing.
    pub offline_grace_secs: u64,
    /// A cabinet whose own clock is further than this from the server's (its heartbeat says)
    /// raises `clock_skew` (0: never). The agent judges on the server's time anyway; the
    /// alarm is for a technician to fix the clock (or its NTP) on the next visit.
    pub clock_skew_alarm_secs: u64,
    /// Heartbeats that change nothing but uptime and backlog are written together this often
    /// (seconds) instead of one by one; news (lock bus, power, a new interval ...) is written
    /// at once. 0: every heartbeat when heard. Capacity model step 1 (ARCHITECTURE.md).
    pub heartbeat_flush_secs: u64,
    /// An active alarm nobody acknowledged escalates after this long.
    pub alarm_escalate_after_secs: u64,
    /// Most alarms per site told to on-duty staff by SMS in any hour; more are recorded on
    /// the alarm as `rate_limited` (an alarm storm must not become an SMS storm).
    pub alarm_notify_per_site_hour: u32,
    /// A day counts towards saturation when a site's occupancy reached this (0..1; the
    /// document: above 80% means the cluster is full).
    pub saturation_rate: f64,
    /// A site is saturated when that happened on this many days ...
    pub saturation_days: u32,
    /// ... of the last this many whole days.
    pub saturation_window_days: u32,
    /// InfluxDB v2 write API base URL (e.g. `http://127.0.0.1:8086`); unset: no export.
    pub influx_url: Option<String>,
    pub influx_org: Option<String>,
    pub influx_bucket: Option<String>,
    /// API token (`Authorization: Token ...`).
    pub influx_token: Option<String>,
    /// Points kept while InfluxDB is unreachable; beyond it the oldest are dropped and
    /// counted (`lockerfleet_influx_points_dropped_total`).
    pub influx_spool_points: usize,
    /// Most points in one write request.
    pub influx_batch_points: usize,
    /// How often usage rollups are exported (the current and the previous hour).
    pub influx_usage_secs: u64,
    /// What leaves the database and when (`[retention]` in the file).
    pub retention: RetentionConfig,
    /// Which gateway carries SMS (`[sms]` in the file).
    pub sms: SmsConfig,
}

/// Which SMS gateway: the log (the demo), the generic webhook (`sms_gateway_url`), or a
/// provider's template API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// The webhook when `sms_gateway_url` is set, else the log.
    #[default]
    Auto,
    Log,
    Webhook,
    /// Alibaba Cloud SMS (dysmsapi SendSms, signature V1).
    Alibaba,
    /// Tencent Cloud SMS (SendSms 2021-01-11, TC3-HMAC-SHA256).
    Tencent,
}

pub use crate::sms_text::TemplateRef;

/// `[sms]`: the provider and its credentials, signature name and templates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    pub provider: SmsProvider,
    /// The API's base URL; default the provider's public endpoint.
    pub endpoint: Option<String>,
    /// Alibaba AccessKeyId / Tencent SecretId.
    pub access_key_id: Option<String>,
    /// Alibaba AccessKeySecret / Tencent SecretKey (better: `access_key_secret_file`, or
    /// `LOCKERFLEET_SMS_ACCESS_KEY_SECRET`).
    pub access_key_secret: Option<String>,
    /// A file whose first line is the secret (kept out of the config file).
    pub access_key_secret_file: Option<PathBuf>,
    /// The approved signature name (签名), e.g. the service centre's name.
    pub sign_name: Option<String>,
    /// Alibaba `RegionId` (default cn-hangzhou) / Tencent `X-TC-Region` (default
    /// ap-guangzhou).
    pub region: Option<String>,
    /// Tencent `SmsSdkAppId`.
    pub sdk_app_id: Option<String>,
    /// Templates by message kind (`dropoff`) or kind and language (`dropoff.zh-CN`).
    pub templates: std::collections::BTreeMap<String, TemplateRef>,
}

impl SmsConfig {
    /// The secret, from the config, else the file.
    pub fn secret(&self) -> Result<Option<String>, ConfigError> {
        if let Some(s) = &self.access_key_secret {
            return Ok(Some(s.clone()));
        }
        let Some(path) = &self.access_key_secret_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
            key: "sms.access_key_secret_file".into(),
            why: format!("cannot be read ({}): {e}", path.display()),
        })?;
        Ok(text.lines().next().map(|l| l.trim().to_owned()))
    }

    /// Checks a provider's settings: credentials, signature, and a template for every
    /// message kind naming only values that kind carries.
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| {
            Err(ConfigError::Invalid {
                key: format!("sms.{key}"),
                why,
            })
        };
        let provider = match self.provider {
            SmsProvider::Alibaba => "alibaba",
            SmsProvider::Tencent => "tencent",
            _ => return Ok(()),
        };
        for (key, value) in [
            ("access_key_id", &self.access_key_id),
            ("sign_name", &self.sign_name),
        ] {
            if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                return bad(key, format!("must be set for provider {provider}"));
            }
        }
        if self.secret()?.is_none_or(|s| s.is_empty()) {
            return bad(
                "access_key_secret",
                format!(
                    "must be set for provider {provider} (access_key_secret_file, or LOCKERFLEET_SMS_ACCESS_KEY_SECRET)"
                ),
            );
        }
        if self.provider == SmsProvider::Tencent
            && self.sdk_app_id.as_deref().is_none_or(str::is_empty)
        {
            return bad(
                "sdk_app_id",
                "must be set for provider tencent (SmsSdkAppId)".into(),
            );
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("https://") || e.starts_with("http://"))
        {
            return bad("endpoint", "must be an https:// URL".into());
        }
        for (key, t) in &self.templates {
            let kind = key.split('.').next().unwrap_or(key);
            let Some((_, names)) = crate::sms_text::MESSAGES.iter().find(|(m, _)| *m == kind)
            else {
                return bad(
                    &format!("templates.{key}"),
                    format!(
                        "names no message kind; use one of {}",
                        crate::sms_text::MESSAGES
                            .iter()
                            .map(|(m, _)| *m)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            };
            if let Some(lang) = key.split_once('.').map(|(_, l)| l)
                && lang.parse::<l10n::Lang>().is_err()
            {
                return bad(
                    &format!("templates.{key}"),
                    format!("names an unknown language {lang:?} (en or zh-CN)"),
                );
            }
            if t.id.trim().is_empty() {
                return bad(&format!("templates.{key}.id"), "must be set".into());
            }
            if let Some(p) = t.params.iter().find(|p| !names.contains(&p.as_str())) {
                return bad(
                    &format!("templates.{key}.params"),
                    format!(
                        "names {p:?}, which a {kind} SMS does not carry; it carries {}",
                        names.join(", ")
                    ),
                );
            }
        }
        let missing: Vec<&str> = crate::sms_text::MESSAGES
            .iter()
            .map(|(m, _)| *m)
            .filter(|m| {
                !self
                    .templates
                    .keys()
                    .any(|k| k.split('.').next() == Some(*m))
            })
            .collect();
        if !missing.is_empty() {
            return bad(
                "templates",
                format!(
                    "has no template for {}: every SMS the server sends needs one with provider {provider}",
                    missing.join(", ")
                ),
            );
        }
        Ok(())
    }
}

/// `[retention]`: days each class of rows is kept (0 keeps it whole), and how passes run.
/// See `store::retention` and `docs/adr/0026-retention.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Off: nothing is ever removed.
    pub enabled: bool,
    /// Device events (only receipted ones are removed).
    pub events_days: u32,
    /// Presence changes (sessions, heartbeats).
    pub presence_days: u32,
    /// Finished remote commands.
    pub commands_days: u32,
    /// Sent and given-up SMS and webhooks.
    pub notifications_days: u32,
    /// Cleared alarms and their history.
    pub alarms_days: u32,
    /// Finished items and their history; 0 (the default) keeps them: they are the record of
    /// who deposited and collected what.
    pub items_days: u32,
    /// Hourly box rollups older than this are folded into one row per local day.
    pub box_hours_days: u32,
    /// Seconds between passes.
    pub every_secs: u64,
    /// Rows at most per step (one short transaction).
    pub batch_rows: u32,
    /// Rest between steps, milliseconds.
    pub pause_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            events_days: 90,
            presence_days: 90,
            commands_days: 90,
            notifications_days: 30,
            alarms_days: 365,
            items_days: 0,
            box_hours_days: 90,
            every_secs: 3_600,
            batch_rows: 500,
            pause_ms: 20,
        }
    }
}

impl RetentionConfig {
    /// The policy a pass applies; `None` when retention is off.
    pub fn policy(
        &self,
        utc_offset_minutes: i32,
    ) -> Option<crate::store::retention::RetentionPolicy> {
        let keep = |d: u32| (d > 0).then_some(d);
        self.enabled
            .then(|| crate::store::retention::RetentionPolicy {
                events: keep(self.events_days),
                presence: keep(self.presence_days),
                commands: keep(self.commands_days),
                notifications: keep(self.notifications_days),
                alarms: keep(self.alarms_days),
                items: keep(self.items_days),
                box_hours: keep(self.box_hours_days),
                utc_offset_minutes,
                batch_rows: self.batch_rows,
                pause: Duration::from_millis(self.pause_ms),
            })
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("lockerfleet-data"),
            certs: None,
            mqtt_listen: SocketAddr::from(([127, 0, 0, 1], 8883)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            external_broker: None,
            broker_group: "lockerfleet".into(),
            broker_partitions: 8,
            database_url: None,
            admin_token: None,
            command_ttl_secs: 30,
            max_connections: 20_000,
            max_packet_size: 256 * 1024,
            handshake_timeout_ms: 5_000,
            max_handshakes: 64,
            max_handshakes_per_ip: 16,
            device_publish_per_sec: 50,
            device_publish_burst: 500,
            api_requests_per_sec: 50,
            api_burst: 200,
            audit_anchor_secs: 3_600,
            ingest_batch: 2_000,
            ingest_writers: 0,
            master_secret_file: None,
            release_keys: None,
            release_bytes_per_sec: 2_000_000,
            code_digits: 8,
            dropoff_valid_hours: 48,
            pickup_valid_days: 7,
            collect_overdue_hours: 24,
            reminder_before_hours: 24,
            timeup_grace_secs: 60,
            utc_offset_minutes: 0,
            lang: l10n::Lang::En,
            sms_gateway_url: None,
            webhook_url: None,
            webhook_secret: None,
            notify_max_attempts: 12,
            notify_max_backoff_secs: 300,
            offline_grace_secs: 60,
            clock_skew_alarm_secs: 60,
            heartbeat_flush_secs: 10,
            alarm_escalate_after_secs: 900,
            alarm_notify_per_site_hour: 10,
            saturation_rate: 0.8,
            saturation_days: 5,
            saturation_window_days: 7,
            influx_url: None,
            influx_org: None,
            influx_bucket: None,
            influx_token: None,
            influx_spool_points: 100_000,
            influx_batch_points: 5_000,
            influx_usage_secs: 60,
            retention: RetentionConfig::default(),
            sms: SmsConfig::default(),
        }
    }
}

impl ServerConfig {
    /// The ingest lanes this server runs: `ingest_writers`, or for 0 one on SQLite and four
    /// on PostgreSQL.
    pub fn ingest_lanes(&self) -> usize {
        match (self.ingest_writers, DbKind::of_url(&self.database_url())) {
            (0, DbKind::Sqlite) => 1,
            (0, DbKind::Postgres) => 4,
            (n, _) => n,
        }
    }

    /// The InfluxDB export settings, when `influx_url` is set.
    pub fn influx(&self) -> Option<crate::runtime::export::InfluxConfig> {
        let url = self.influx_url.clone()?;
        Some(crate::runtime::export::InfluxConfig {
            url,
            org: self.influx_org.clone().unwrap_or_default(),
            bucket: self.influx_bucket.clone().unwrap_or_default(),
            token: self.influx_token.clone(),
            spool_points: self.influx_spool_points,
            batch_points: self.influx_batch_points,
            usage_every: Duration::from_secs(self.influx_usage_secs),
        })
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.certs
            .clone()
            .unwrap_or_else(|| self.data_dir.join("certs"))
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("fleet.db").display()
            )
        })
    }

    pub fn master_secret_file(&self) -> PathBuf {
        self.master_secret_file
            .clone()
            .unwrap_or_else(|| crate::secrets::Secrets::default_path(&self.data_dir))
    }

    pub fn command_ttl(&self) -> Duration {
        Duration::from_secs(self.command_ttl_secs)
    }

    /// Reads a TOML file; the error names the file and the offending line.
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        Ok(cli::load_toml(path)?)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                why: why.into(),
            })
        };
        if self.command_ttl_secs == 0 || self.command_ttl_secs > 3600 {
            return bad("command_ttl_secs", "must be between 1 and 3600 seconds");
        }
        if self.release_bytes_per_sec < 10_000 {
            return bad(
                "release_bytes_per_sec",
                "must be at least 10000 (a 12 MB release would take over 20 minutes per cabinet)",
            );
        }
        if let Some(url) = &self.external_broker
            && let Err(why) = crate::runtime::bus::External::parse(url)
        {
            return bad("external_broker", &why);
        }
        if self.broker_group.is_empty()
            || self
                .broker_group
                .contains(|c: char| matches!(c, '/' | '+' | '#') || c.is_whitespace())
        {
            return bad(
                "broker_group",
                "must be a non-empty name without '/', '+', '#' or spaces",
            );
        }
        if !(1..=256).contains(&self.broker_partitions) {
            return bad("broker_partitions", "must be 1 to 256");
        }
        if self.max_handshakes == 0 {
            return bad("max_handshakes", "must be at least 1");
        }
        if self.max_handshakes_per_ip == 0 {
            return bad("max_handshakes_per_ip", "must be at least 1");
        }
        if self.device_publish_per_sec > 0 && self.device_publish_burst == 0 {
            return bad(
                "device_publish_burst",
                "must be at least 1 when device_publish_per_sec is set",
            );
        }
        if self.api_requests_per_sec > 0 && self.api_burst == 0 {
            return bad(
                "api_burst",
                "must be at least 1 when api_requests_per_sec is set",
            );
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_packet_size < 1024 {
            return bad("max_packet_size", "must be at least 1024 bytes");
        }
        if self.ingest_batch == 0 || self.ingest_batch > 100_000 {
            return bad("ingest_batch", "must be between 1 and 100000");
        }
        if self.ingest_writers > 64 {
            return bad(
                "ingest_writers",
                "must be at most 64 (0 picks one for SQLite, four for PostgreSQL)",
            );
        }
        if self.ingest_writers > 1 && DbKind::of_url(&self.database_url()) == DbKind::Sqlite {
            return bad(
                "ingest_writers",
                "more than 1 needs PostgreSQL: SQLite has one writer, where more lanes only queue (leave it 0)",
            );
        }
        if !(protocol::code::MIN_DIGITS..=protocol::code::MAX_DIGITS).contains(&self.code_digits) {
            return bad("code_digits", "must be 6, 7 or 8");
        }
        if self.dropoff_valid_hours == 0 || self.pickup_valid_days == 0 {
            return bad(
                "dropoff_valid_hours / pickup_valid_days",
                "must be at least 1",
            );
        }
        if !(-14 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return bad("utc_offset_minutes", "must be between -840 and 840");
        }
        for (key, url) in [
            ("sms_gateway_url", &self.sms_gateway_url),
            ("webhook_url", &self.webhook_url),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return bad(key, "must be an http:// or https:// URL");
            }
        }
        if self.webhook_url.is_some() && self.webhook_secret.as_ref().is_none_or(|s| s.len() < 16) {
            return bad(
                "webhook_secret",
                "must be set (16 characters or more) when webhook_url is set: the platform checks the signature with it",
            );
        }
        if self.alarm_escalate_after_secs == 0 {
            return bad("alarm_escalate_after_secs", "must be at least 1");
        }
        if self.alarm_notify_per_site_hour == 0 {
            return bad(
                "alarm_notify_per_site_hour",
                "must be at least 1 (on-duty staff must hear of alarms)",
            );
        }
        if !(self.saturation_rate > 0.0 && self.saturation_rate <= 1.0) {
            return bad(
                "saturation_rate",
                "must be above 0 and at most 1 (0.8 means 80%)",
            );
        }
        if self.saturation_days == 0
            || self.saturation_window_days > 366
            || self.saturation_days > self.saturation_window_days
        {
            return bad(
                "saturation_days / saturation_window_days",
                "need 1 <= saturation_days <= saturation_window_days <= 366",
            );
        }
        if let Some(u) = &self.influx_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return bad("influx_url", "must be an http:// or https:// URL");
            }
            if self.influx_bucket.as_deref().is_none_or(str::is_empty) {
                return bad(
                    "influx_bucket",
                    "must be set with influx_url (the bucket points are written to)",
                );
            }
        }
        if self.influx_spool_points == 0
            || self.influx_batch_points == 0
            || self.influx_usage_secs == 0
        {
            return bad(
                "influx_spool_points / influx_batch_points / influx_usage_secs",
                "must be at least 1",
            );
        }
        self.sms.validate()?;
        if self.sms.provider == SmsProvider::Webhook && self.sms_gateway_url.is_none() {
            return bad("sms.provider", "is webhook but sms_gateway_url is not set");
        }
        let r = &self.retention;
        if r.every_secs == 0 || r.batch_rows == 0 || r.batch_rows > 10_000 {
            return bad(
                "retention.every_secs / retention.batch_rows",
                "need every_secs >= 1 and batch_rows between 1 and 10000",
            );
        }
        if r.box_hours_days == 1 {
            return bad(
                "retention.box_hours_days",
                "must be 0 (keep hourly) or at least 2: today's and yesterday's hours are still being written",
            );
        }
        if r.pause_ms > 10_000 {
            return bad("retention.pause_ms", "must be at most 10000 (10 s)");
        }
        if self.notify_max_attempts == 0 {
            return bad("notify_max_attempts", "must be at least 1");
        }
        if let Some(t) = &self.admin_token
            && t.len() < 16
        {
            return bad("admin_token", "must be at least 16 characters");
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
        {
            return bad("database_url", "must start with sqlite: or postgres://");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] cli::FileError),
    #[error("config value `{key}` {why}")]
    Invalid { key: String, why: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ServerConfig::default().validate().expect("defaults valid");
    }

    #[test]
    fn unknown_keys_and_bad_lines_name_the_problem() {
        let err = toml::from_str::<ServerConfig>("data_dirr = 'x'").expect_err("unknown key");
        assert!(err.to_string().contains("data_dirr"), "{err}");
        let err = toml::from_str::<ServerConfig>("mqtt_listen = 'nowhere'").expect_err("bad addr");
        assert!(err.to_string().contains("mqtt_listen"), "{err}");
    }

    fn sms(extra: &str) -> Result<(), String> {
        let text = format!(
            r#"[sms]
provider = "alibaba"
access_key_id = "id"
access_key_secret = "secret"
sign_name = "市民服务中心"
{extra}"#
        );
        let cfg: ServerConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.to_string())
    }

    const ALL_TEMPLATES: &str = r#"
[sms.templates]
dropoff = { id = "SMS_1", params = ["code", "box"] }
supplement = { id = "SMS_2", params = ["code"] }
pickup = { id = "SMS_3", params = ["code", "until"] }
reminder = { id = "SMS_4", params = ["box"] }
alarm = { id = "SMS_5", params = ["kind", "device"] }
"#;

    #[test]
    fn sms_provider_settings_are_checked() {
        sms(ALL_TEMPLATES).expect("complete");
        let missing = sms("[sms.templates]\ndropoff = { id = \"SMS_1\" }\n").expect_err("missing");
        assert!(
            missing.contains("supplement, pickup, reminder, alarm"),
            "{missing}"
        );
        let wrong_value = sms(&ALL_TEMPLATES.replace("[\"box\"]", "[\"code\"]"))
            .expect_err("a reminder carries no code");
        assert!(
            wrong_value.contains("sms.templates.reminder.params") && wrong_value.contains("code"),
            "{wrong_value}"
        );
        let wrong_kind =
            sms(&format!("{ALL_TEMPLATES}parcel = {{ id = \"SMS_9\" }}\n")).expect_err("kind");
        assert!(wrong_kind.contains("names no message kind"), "{wrong_kind}");
        let wrong_lang = sms(&format!(
            "{ALL_TEMPLATES}\"dropoff.fr\" = {{ id = \"SMS_9\" }}\n"
        ))
        .expect_err("lang");
        assert!(wrong_lang.contains("unknown language"), "{wrong_lang}");
        let no_secret = sms(ALL_TEMPLATES)
            .and_then(|_| {
                let cfg: ServerConfig = toml::from_str(&format!(
                    "[sms]\nprovider = \"tencent\"\naccess_key_id = \"id\"\naccess_key_secret = \"s\"\nsign_name = \"x\"\n{ALL_TEMPLATES}"
                ))
                .map_err(|e| e.to_string())?;
                cfg.validate().map_err(|e| e.to_string())
            })
            .expect_err("tencent needs its app id");
        assert!(no_secret.contains("sdk_app_id"), "{no_secret}");
    }

    #[test]
    fn flow_settings_are_checked() {
        let ok = ServerConfig::default();
        let webhook_without_secret = ServerConfig {
            webhook_url: Some("https://platform.example/hooks".into()),
            ..ok.clone()
        };
        let err = webhook_without_secret
            .validate()
            .expect_err("needs a secret");
        assert!(err.to_string().contains("webhook_secret"), "{err}");
        let bad_url = ServerConfig {
            sms_gateway_url: Some("ftp://sms".into()),
            ..ok.clone()
        };
        assert!(
            bad_url
                .validate()
                .expect_err("scheme")
                .to_string()
                .contains("sms_gateway_url")
        );
        for digits in [5, 9] {
            let c = ServerConfig {
                code_digits: digits,
                ..ok.clone()
            };
            assert!(c.validate().is_err(), "{digits} digits accepted");
        }
        let cfg: ServerConfig = toml::from_str(
            "webhook_url = 'https://p/h'\nwebhook_secret = '0123456789abcdef'\nutc_offset_minutes = 480",
        )
        .expect("parses");
        cfg.validate().expect("valid");
    }

    #[test]
    fn ingest_writers_are_bounded() {
        let cfg: ServerConfig = toml::from_str("ingest_writers = 65").expect("parses");
        let err = cfg.validate().expect_err("too many");
        assert!(err.to_string().contains("ingest_writers"), "{err}");
        let on_sqlite: ServerConfig = toml::from_str("ingest_writers = 2").expect("parses");
        let err = on_sqlite.validate().expect_err("SQLite has one writer");
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
        assert_eq!(ServerConfig::default().ingest_lanes(), 1);
        let pg: ServerConfig =
            toml::from_str("database_url = 'postgres://fleet@db/fleet'").expect("parses");
        assert_eq!(pg.ingest_lanes(), 4);
        let cfg: ServerConfig =
            toml::from_str("database_url = 'postgres://fleet@db/fleet'\ningest_writers = 8")
                .expect("parses");
        cfg.validate().expect("valid");
        assert_eq!(cfg.ingest_lanes(), 8);
    }

    #[test]
    fn a_rate_needs_a_burst_and_zero_turns_a_limit_off() {
        let ok = ServerConfig::default();
        for (cfg, key) in [
            (
                ServerConfig {
                    device_publish_burst: 0,
                    ..ok.clone()
                },
                "device_publish_burst",
            ),
            (
                ServerConfig {
                    api_burst: 0,
                    ..ok.clone()
                },
                "api_burst",
            ),
        ] {
            let err = cfg.validate().expect_err("a rate without a burst");
            assert!(err.to_string().contains(key), "{err}");
        }
        let off: ServerConfig =
            toml::from_str("device_publish_per_sec = 0\ndevice_publish_burst = 0\napi_requests_per_sec = 0\napi_burst = 0")
                .expect("parses");
        off.validate().expect("limits off need no burst");
    }

    #[test]
    fn file_values_parse() {
        let cfg: ServerConfig = toml::from_str(
            "data_dir = '/var/lib/lf'\nhttp_listen = '0.0.0.0:9000'\ncommand_ttl_secs = 10",
        )
        .expect("parses");
        assert_eq!(cfg.http_listen.port(), 9000);
        assert_eq!(cfg.certs_dir(), PathBuf::from("/var/lib/lf/certs"));
        let bad = ServerConfig {
            command_ttl_secs: 0,
            ..cfg
        };
        assert!(bad.validate().is_err());
    }
}
