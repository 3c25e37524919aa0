//! The fleet server: embedded broker, ingest, state, commands, audit and the HTTP API.
//!
//! [`start`] wires the parts and returns once every listener is bound; [`RunningServer::shutdown`]
//! stops them in order: stop intake (broker front, HTTP), drain (link reader, ingest writer),
//! flush (receipts, database), exit. `main.rs` only parses configuration and calls these.

pub(crate) mod api;
pub mod audit_archive;
pub mod backfill;
pub mod backup;
pub mod broker_auth;
pub(crate) mod central_config;
pub(crate) mod changes;
pub(crate) mod clock;
pub(crate) mod commands;
pub mod config;
pub(crate) mod deployments;
pub(crate) mod devices;
pub(crate) mod diagnostics;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod health;
pub(crate) mod metrics;
pub mod plan_report;
pub mod runtime;
pub mod secrets;
pub mod service;
pub mod sms_text;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use broker::{Broker, BrokerConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::planning::{PlanOptions, plan_with};
pub use clock::now_ms;
pub use config::ServerConfig;
pub use store::db_url::redact;

use crate::devices::Online;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::runtime::{
    alarms, amqp, bus, change_bridge, export, ingest, leader, link, notify, presence, renewal,
    revocations,
};
use crate::store::Store;

/// Writes the audit chain's head to the log at start and every `every`: with the log shipped
/// elsewhere, removing the newest rows (which leaves a shorter chain that still verifies)
/// shows as a head that went back.
async fn anchor_audit(store: Store, every: std::time::Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.audit_head().await {
            Ok((seq, hash)) => tracing::info!(seq, %hash, "audit chain head"),
            Err(e) => tracing::warn!(error = %e, "audit chain head not readable"),
        }
    }
}

/// 32 random bytes from the OS, hex, prefixed so a leaked token is recognisable.
pub fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // The OS RNG does not fail on Linux; if it ever did, fall back to a v4 uuid pair
        // (also OS-seeded) rather than a weak token.
        return format!(
            "lf_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("lf_{hex}")
}

/// A server with every listener bound.
pub struct RunningServer {
    pub mqtt_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub admin_token: String,
    pub store: Store,
    pub metrics: Metrics,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// Held while the server runs: no second server, and no restore, on this data dir.
    _lock: backup::DataDirLock,
}

impl RunningServer {
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Ordered shutdown; returns when every task has finished and the database is closed.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.store.close().await;
        tracing::info!("server stopped");
    }
}

/// The database and master secret of `cfg`, opened (and made on first use) as the server
/// opens them: shared by [`start`] and a history load ([`backfill`]).
async fn open_storage(cfg: &ServerConfig) -> anyhow::Result<(Store, secrets::Secrets)> {
    let url = cfg.database_url();
    let store = Store::connect_for_writers(&url, cfg.ingest_lanes())
        .await
        .with_context(|| format!("opening database {}", redact(&url)))?
        .with_webhooks(cfg.webhook_url.is_some());
    let secret_path = cfg.master_secret_file();
    // Codes are counted only when the file is missing: whether a new one may be made.
    let secrets = match secrets::Secrets::load(&secret_path)? {
        Some(s) => s,
        None => secrets::Secrets::create(&secret_path, store.codes_issued().await?)?,
    };
    Ok((store, secrets))
}

fn service_settings(cfg: &ServerConfig) -> service::Settings {
    service::Settings {
        code_digits: cfg.code_digits,
        dropoff_valid: hours(cfg.dropoff_valid_hours),
        pickup_valid: hours(cfg.pickup_valid_days * 24),
        collect_overdue: hours(cfg.collect_overdue_hours),
        reminder_before: hours(cfg.reminder_before_hours),
        timeup_grace: std::time::Duration::from_secs(cfg.timeup_grace_secs),
        utc_offset_minutes: cfg.utc_offset_minutes,
        lang: cfg.lang,
    }
}

/// Starts the server. Needs `ca.crt`, `server.crt` and `server.key` in the certs dir.
pub async fn start(cfg: ServerConfig) -> anyhow::Result<RunningServer> {
    cfg.validate()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    let lock = backup::DataDirLock::take(&cfg.data_dir)?;
    let certs_dir = cfg.certs_dir();
    let external = match &cfg.external_broker {
        Some(url) => Some(external_broker(url, &certs_dir, cfg.broker_partitions).await?),
        None => None,
    };
    let tls = match external {
        Some(_) => None,
        None => Some(broker::server_tls(&certs_dir).with_context(|| {
            format!(
                "loading TLS material from {} (create it with `fleet-certs init --dir {}`)",
                certs_dir.display(),
                certs_dir.display()
            )
        })?),
    };
    let url = cfg.database_url();
    let (store, secrets) = open_storage(&cfg).await?;
    // With an external broker the sessions outlive this process (and other replicas serve
    // them): presence comes from the devices' retained words instead.
    let reset = match external {
        Some(_) => 0,
        None => store.mark_all_offline(now_ms()).await?,
    };
    if reset > 0 {
        tracing::info!(
            devices = reset,
            "marked devices offline until they reconnect"
        );
    }
    let admin_token = admin_token(&cfg)?;

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (presence_tx, presence_rx) = mpsc::channel(1024);
    let mut broker = match tls {
        Some(tls) => Some(
            Broker::start(
                BrokerConfig {
                    listen: cfg.mqtt_listen,
                    max_connections: cfg.max_connections,
                    max_packet_size: cfg.max_packet_size,
                    handshake_timeout: std::time::Duration::from_millis(cfg.handshake_timeout_ms),
                    max_handshakes: cfg.max_handshakes,
                    max_handshakes_per_ip: cfg.max_handshakes_per_ip,
                    publish_per_sec: cfg.device_publish_per_sec,
                    publish_burst: cfg.device_publish_burst,
                },
                tls,
                presence_tx,
                cancel.clone(),
                &tracker,
            )
            .await?,
        ),
        None => None,
    };
    let metrics = Metrics::new(broker.as_ref().map(Broker::stats).unwrap_or_default());
    let mut limits = vec![
        ("api_requests_per_sec", i64::from(cfg.api_requests_per_sec)),
        ("api_burst", i64::from(cfg.api_burst)),
    ];
    if broker.is_some() {
        // The embedded front's limits; an external broker enforces its own.
        limits.extend([
            ("max_connections", cfg.max_connections as i64),
            ("max_handshakes", cfg.max_handshakes as i64),
            ("max_handshakes_per_ip", cfg.max_handshakes_per_ip as i64),
            ("max_packet_size", cfg.max_packet_size as i64),
            (
                "device_publish_per_sec",
                i64::from(cfg.device_publish_per_sec),
            ),
            ("device_publish_burst", i64::from(cfg.device_publish_burst)),
        ]);
    }
    for (limit, value) in limits {
        metrics
            .limits
            .get_or_create(&metrics::LimitLabel {
                limit: limit.into(),
            })
            .set(value);
    }
    if store.has_standbys() {
        tracker.spawn(follow_primary(store.clone(), cancel.clone()));
    }
    if cfg.audit_anchor_secs > 0 {
        tracker.spawn(anchor_audit(
            store.clone(),
            std::time::Duration::from_secs(cfg.audit_anchor_secs),
            cancel.clone(),
        ));
    }
    let health = Health::default();
    let online = Online::default();
    // Replicas on one PostgreSQL tell each other's live views what changed.
    let changes = if cfg.external_broker.is_some() && store.kind() == store::DbKind::Postgres {
        let (bridge_tx, bridge_rx) = mpsc::channel(4096);
        let changes = changes::Changes::bridged(bridge_tx);
        change_bridge::start(&url, bridge_rx, changes.clone(), &tracker, cancel.clone());
        changes
    } else {
        changes::Changes::default()
    };
    let lanes = cfg.ingest_lanes();
    // The lanes share what one queue held (64 lanes at most), so a stalled database buffers
    // no more than before.
    let (ingest_tx, ingest_rxs) = ingest::Lanes::new(lanes, (4096 / lanes).max(64));
    let (outcomes_tx, outcomes_rx) = mpsc::channel(4096);
    let (ready_tx, ready_rx) = mpsc::channel(4096);
    let (renewals_tx, renewals_rx) = mpsc::channel(256);
    let (fetches_tx, fetches_rx) = mpsc::channel(1024);
    let (diagnostics_tx, diagnostics_rx) = mpsc::channel(64);
    let dispatch = link::Dispatch {
        ingest: ingest_tx,
        outcomes: outcomes_tx.clone(),
        renewals: renewals_tx,
        fetches: fetches_tx,
        diagnostics: diagnostics_tx,
        metrics: metrics.clone(),
    };
    let (publisher, mqtt_addr) = match (&mut broker, external) {
        (Some(broker), _) => {
            tracker.spawn(revocations::watch(
                certs_dir.clone(),
                broker.tls(),
                broker.downlink(),
                cancel.clone(),
            ));
            tracker.spawn(presence::run(
                presence_rx,
                online.clone(),
                store.clone(),
                metrics.clone(),
                changes.clone(),
            ));
            let link_rx = broker.take_link().context("broker link already taken")?;
            tracker.spawn(link::read(link_rx, dispatch, cancel.clone()));
            (
                crate::devices::Publisher::new(broker.downlink()),
                broker.local_addr(),
            )
        }
        (None, Some(ext)) => {
            // Presence words from the broker, whichever engine carries them.
            let (words_tx, words_rx) = mpsc::channel(4096);
            tracker.spawn(presence::run_external(
                words_rx,
                online.clone(),
                store.clone(),
                metrics.clone(),
                changes.clone(),
            ));
            match ext.engine {
                Engine::Mqtt(url, tls) => {
                    let (client, eventloop) = bus::client(&url, tls, cfg.max_packet_size);
                    tracker.spawn(bus::run(
                        eventloop,
                        client.clone(),
                        cfg.broker_group.clone(),
                        dispatch,
                        words_tx,
                        health.broker_link(),
                        cancel.clone(),
                    ));
                    (crate::devices::Publisher::external(client), ext.addr)
                }
                Engine::Rabbit(cluster) => {
                    // No retained words to learn from: start from who the database says is
                    // online, until the devices' own words say otherwise.
                    for device in store.online_devices().await? {
                        online.apply(&device, 0, true);
                    }
                    let (out_tx, out_rx) = mpsc::channel(4096);
                    tracker.spawn(amqp::run(
                        cluster,
                        amqp::Links {
                            dispatch,
                            presence: words_tx,
                            online: online.clone(),
                            connected: health.broker_link(),
                        },
                        out_rx,
                        cancel.clone(),
                    ));
                    (crate::devices::Publisher::rabbit(out_tx), ext.addr)
                }
            }
        }
        (None, None) => anyhow::bail!("neither the embedded nor an external broker is set up"),
    };
    tracker.spawn(crate::runtime::delivery::run(
        fetches_rx,
        publisher.clone(),
        store.clone(),
        metrics.clone(),
        cfg.release_bytes_per_sec,
    ));
    tracker.spawn(renewal::run(
        renewals_rx,
        certs_dir.clone(),
        publisher.clone(),
        store.clone(),
        metrics.clone(),
    ));
    let commands = commands::Commands {
        store: store.clone(),
        publisher: publisher.clone(),
        online: online.clone(),
        metrics: metrics.clone(),
        changes: changes.clone(),
        book: Default::default(),
    };
    let deployments = deployments::Deployments {
        store: store.clone(),
        publisher: publisher.clone(),
        online: online.clone(),
        metrics: metrics.clone(),
    };
    let (codes_tx, codes_rx) = mpsc::channel(4096);
    let wake_notifier = std::sync::Arc::new(tokio::sync::Notify::new());
    let service = service::Service {
        store: store.clone(),
        secrets: secrets.clone(),
        settings: service_settings(&cfg),
        codes: codes_tx,
        notify: wake_notifier.clone(),
        metrics: metrics.clone(),
        changes: changes.clone(),
    };
    tracker.spawn(service::sync_codes(
        service.clone(),
        codes_rx,
        publisher.clone(),
        online.clone(),
        cancel.clone(),
    ));
    let alarm_settings = alarms::AlarmSettings {
        offline_grace: std::time::Duration::from_secs(cfg.offline_grace_secs),
        escalate_after: std::time::Duration::from_secs(cfg.alarm_escalate_after_secs),
        notify_per_site_hour: i64::from(cfg.alarm_notify_per_site_hour),
        lang: cfg.lang,
        utc_offset_minutes: cfg.utc_offset_minutes,
    };
    // Checked now, so a bad notifier setting stops the start instead of the first lead.
    notifier_client()?;
    let config = central_config::CentralConfig {
        store: store.clone(),
        publisher: publisher.clone(),
        online: online.clone(),
        metrics: metrics.clone(),
        changed: std::sync::Arc::new(tokio::sync::Notify::new()),
    };
    let diagnostics = diagnostics::Diagnostics {
        store: store.clone(),
        publisher: publisher.clone(),
        online: online.clone(),
        wake: std::sync::Arc::new(tokio::sync::Notify::new()),
    };
    tracker.spawn(diagnostics::ingest(
        diagnostics_rx,
        store.clone(),
        cancel.clone(),
    ));
    let leading = {
        let diagnostics = diagnostics.clone();
        let metrics = metrics.clone();
        let health = health.clone();
        let (cfg, service, store, changes, commands, deployments, config, tracker2) = (
            cfg.clone(),
            service.clone(),
            store.clone(),
            changes.clone(),
            commands.clone(),
            deployments.clone(),
            config.clone(),
            tracker.clone(),
        );
        move |work: CancellationToken| {
            tracker2.spawn(service.clone().sweep(work.clone()));
            tracker2.spawn(alarms::sweep(
                store.clone(),
                alarm_settings,
                changes.clone(),
                health.clone(),
                work.clone(),
            ));
            tracker2.spawn(commands.clone().maintain(work.clone()));
            tracker2.spawn(deployments.clone().run(work.clone()));
            tracker2.spawn(config.clone().run(work.clone()));
            tracker2.spawn(diagnostics.clone().run(work.clone()));
            if let Some(policy) = cfg.retention.policy(cfg.utc_offset_minutes) {
                tracker2.spawn(crate::runtime::retention::run(
                    store.clone(),
                    policy,
                    std::time::Duration::from_secs(cfg.retention.every_secs),
                    metrics.clone(),
                    work.clone(),
                ));
            }
            if let Err(e) = spawn_notifier(&cfg, &service, &tracker2, work) {
                tracing::error!(error = %e, "notifications cannot start");
            }
        }
    };
    tracker.spawn(leader::lead(
        store.clone(),
        metrics.clone(),
        leading,
        cancel.clone(),
    ));
    let export = export::start(
        cfg.influx(),
        store.clone(),
        metrics.clone(),
        &tracker,
        cancel.clone(),
    )?;
    for (lane, ingest_rx) in ingest_rxs.into_iter().enumerate() {
        let writer = ingest::Writer {
            lane,
            store: store.clone(),
            publisher: publisher.clone(),
            outcomes: outcomes_tx.clone(),
            ready: ready_tx.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            batch_cost: cfg.ingest_batch,
            service: service.clone(),
            export: export.clone(),
            clock: ingest::ClockWatch::new(cfg.clock_skew_alarm_secs),
            heartbeat_flush: std::time::Duration::from_secs(cfg.heartbeat_flush_secs),
        };
        tracker.spawn(writer.run(ingest_rx, cancel.clone()));
    }
    drop((outcomes_tx, ready_tx));
    // Bounded: a writer that cannot keep up holds the inbox, which holds the link's
    // outcomes channel, which holds the link (as before the book, one step further on).
    let (command_writes_tx, command_writes_rx) = mpsc::channel(4096);
    tracker.spawn(
        commands
            .clone()
            .run_inbox(outcomes_rx, ready_rx, command_writes_tx),
    );
    tracker.spawn(commands.clone().run_writes(command_writes_rx));
    tracker.spawn(checkpoints(store.clone(), cancel.clone()));

    let state = api::AppState {
        store: store.clone(),
        commands,
        deployments,
        config,
        diagnostics,
        metrics: metrics.clone(),
        health,
        service,
        admin_token_hash: api::token_hash(&admin_token),
        default_ttl: cfg.command_ttl(),
        retention: cfg.retention.policy(cfg.utc_offset_minutes),
        saturation: api::SaturationSettings {
            rate: cfg.saturation_rate,
            days: cfg.saturation_days,
            window_days: cfg.saturation_window_days,
        },
        limiter: api::token_limiter(cfg.api_requests_per_sec, cfg.api_burst),
        release_keys: match &cfg.release_keys {
            None => None,
            Some(path) => Some(std::sync::Arc::new(
                certs::load_trusted_keys(path)
                    .with_context(|| format!("release_keys {}", path.display()))?,
            )),
        },
    };
    let http = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", cfg.http_listen))?;
    let http_addr = http.local_addr()?;
    let http_cancel = cancel.clone();
    tracker.spawn(async move {
        let app = api::router(state);
        if let Err(e) = axum::serve(http, app)
            .tcp_nodelay(true)
            .with_graceful_shutdown(http_cancel.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    write_listen_file(&cfg.data_dir, mqtt_addr, http_addr)?;
    tracing::info!(%mqtt_addr, %http_addr, database = %redact(&url), "fleet server ready");
    Ok(RunningServer {
        mqtt_addr,
        http_addr,
        admin_token,
        store,
        metrics,
        cancel,
        tracker,
        _lock: lock,
    })
}

/// An external broker's address and the replica's TLS client settings, checked at start so a
/// wrong URL or a missing certificate stops the server with a clear message.
struct External {
    engine: Engine,
    /// The (first) broker's address, reported as the server's MQTT address.
    addr: SocketAddr,
}

/// Each engine with the replica's TLS settings in the form its client takes.
enum Engine {
    Mqtt(bus::BrokerUrl, std::sync::Arc<rustls::ClientConfig>),
    Rabbit(amqp::Cluster),
}

async fn external_broker(url: &str, certs_dir: &Path, partitions: u16) -> anyhow::Result<External> {
    let parsed =
        bus::External::parse(url).map_err(|why| anyhow::anyhow!("external_broker: {why}"))?;
    let first = match &parsed {
        bus::External::Mqtt(url) => url.clone(),
        bus::External::Rabbit(nodes) => nodes[0].clone(),
    };
    let addr = tokio::net::lookup_host((first.host.as_str(), first.port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("cannot resolve the external broker's host {:?}", first.host))?;
    let engine = match parsed {
        bus::External::Mqtt(url) => Engine::Mqtt(url, bus::client_tls(certs_dir)?),
        bus::External::Rabbit(nodes) => {
            Engine::Rabbit(amqp::Cluster::new(nodes, certs_dir, partitions)?)
        }
    };
    Ok(External { engine, addr })
}

/// With PostgreSQL named by several hosts, checks every second that writes go to the
/// primary and follows a promoted standby (`store::primary`). Meanwhile failed writes are
/// retried by their callers and the agents keep what is not receipted.
async fn follow_primary(store: Store, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
        if let Some(url) = store.follow_primary().await {
            tracing::warn!(primary = %url, "the database primary moved; writing there now");
        }
    }
}

fn hours(h: u64) -> std::time::Duration {
    std::time::Duration::from_secs(h * 3600)
}

fn notifier_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .context("building the HTTP client for notifications")
}

/// The notification worker with the configured SMS adapter and webhook.
fn spawn_notifier(
    cfg: &ServerConfig,
    service: &service::Service,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let client = notifier_client()?;
    let webhook = cfg.webhook_url.clone().map(|url| notify::Webhook {
        client: client.clone(),
        url,
        secret: cfg.webhook_secret.clone().unwrap_or_default(),
    });
    macro_rules! worker {
        ($sms:expr) => {
            notify::Worker {
                store: service.store.clone(),
                secrets: service.secrets.clone(),
                sms: $sms,
                webhook,
                metrics: service.metrics.clone(),
                wake: service.notify.clone(),
                max_attempts: cfg.notify_max_attempts,
                max_backoff: std::time::Duration::from_secs(cfg.notify_max_backoff_secs),
            }
        };
    }
    use crate::config::SmsProvider;
    let sms = &cfg.sms;
    let secret = || -> anyhow::Result<String> {
        sms.secret()?
            .context("sms.access_key_secret is not set (checked at start)")
    };
    let required = |v: &Option<String>, key: &str| -> anyhow::Result<String> {
        v.clone()
            .with_context(|| format!("sms.{key} is not set (checked at start)"))
    };
    match (sms.provider, &cfg.sms_gateway_url) {
        (SmsProvider::Alibaba, _) => tracker.spawn(
            worker!(crate::runtime::sms_gateways::Alibaba {
                client,
                endpoint: sms
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "https://dysmsapi.aliyuncs.com".into()),
                access_key_id: required(&sms.access_key_id, "access_key_id")?,
                access_key_secret: secret()?,
                sign_name: required(&sms.sign_name, "sign_name")?,
                region: sms.region.clone().unwrap_or_else(|| "cn-hangzhou".into()),
                templates: sms.templates.clone(),
            })
            .run(cancel),
        ),
        (SmsProvider::Tencent, _) => tracker.spawn(
            worker!(crate::runtime::sms_gateways::Tencent {
                client,
                endpoint: sms
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "https://sms.tencentcloudapi.com".into()),
                secret_id: required(&sms.access_key_id, "access_key_id")?,
                secret_key: secret()?,
                sdk_app_id: required(&sms.sdk_app_id, "sdk_app_id")?,
                sign_name: required(&sms.sign_name, "sign_name")?,
                region: sms.region.clone().unwrap_or_else(|| "ap-guangzhou".into()),
                templates: sms.templates.clone(),
            })
            .run(cancel),
        ),
        (SmsProvider::Auto | SmsProvider::Webhook, Some(url)) => tracker.spawn(
            worker!(notify::HttpGateway {
                client,
                url: url.clone(),
            })
            .run(cancel),
        ),
        (SmsProvider::Auto | SmsProvider::Webhook | SmsProvider::Log, _) => {
            tracker.spawn(worker!(notify::LogNotifier).run(cancel))
        }
    };
    Ok(())
}

/// Runs SQLite checkpoints every second, away from the writer (see `Store::checkpoint`).
async fn checkpoints(store: Store, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "database checkpoint failed; retrying in a second");
        }
    }
}

/// The configured admin token, else the one generated into the data dir on first start.
fn admin_token(cfg: &ServerConfig) -> anyhow::Result<String> {
    if let Some(t) = &cfg.admin_token {
        return Ok(t.clone());
    }
    let path = cfg.data_dir.join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_owned();
        if t.len() >= 16 {
            return Ok(t);
        }
    }
    let token = random_token();
    write_private(&path, token.as_bytes())
        .with_context(|| format!("writing admin token to {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated an admin token");
    Ok(token)
}

/// Writes a file only its owner may read (tokens, secrets, backups' secrets), synced.
pub(crate) fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content)?;
    f.sync_all()
}

/// `listen.json` in the data dir tells tools and tests the bound ports (port 0 picks one).
fn write_listen_file(dir: &Path, mqtt: SocketAddr, http: SocketAddr) -> anyhow::Result<()> {
    let body = serde_json::json!({ "mqtt": mqtt.to_string(), "http": http.to_string() });
    let tmp = dir.join("listen.json.tmp");
    std::fs::write(&tmp, body.to_string())?;
    std::fs::rename(&tmp, dir.join("listen.json"))?;
    Ok(())
}
