//! `fleet-server`: parses configuration (file, `LOCKERFLEET_*` env, flags) and runs the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleet_server::ServerConfig;

#[derive(Parser, Debug)]
#[command(
    name = "fleet-server",
    version,
    about = "LockerFleet fleet server with embedded MQTT broker"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file; flags and LOCKERFLEET_* variables override its values.
    #[arg(long, env = "LOCKERFLEET_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory (SQLite database, admin token, listen.json).
    #[arg(long, env = "LOCKERFLEET_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Certificates directory (ca.crt, server.crt, server.key); default DATA_DIR/certs.
    #[arg(long, env = "LOCKERFLEET_CERTS")]
    certs: Option<PathBuf>,
    /// TLS listen address for devices (port 0: any free port).
    #[arg(long, env = "LOCKERFLEET_MQTT_LISTEN")]
    mqtt_listen: Option<SocketAddr>,
    /// Use an existing MQTT broker (mqtts://HOST:PORT) or a RabbitMQ cluster
    /// (amqps://HOST:PORT,HOST:PORT,...) instead of the embedded broker; several replicas on
    /// one PostgreSQL share the fleet (see `fleet-certs mosquitto`, deploy/cluster).
    #[arg(long, env = "LOCKERFLEET_EXTERNAL_BROKER")]
    external_broker: Option<String>,
    /// The replicas' shared-subscription group on the external broker.
    #[arg(long, env = "LOCKERFLEET_BROKER_GROUP")]
    broker_group: Option<String>,
    /// Partitions of device traffic on a RabbitMQ cluster (the same on every replica).
    #[arg(long, env = "LOCKERFLEET_BROKER_PARTITIONS")]
    broker_partitions: Option<u16>,
    /// HTTP API listen address.
    #[arg(long, env = "LOCKERFLEET_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// sqlite://PATH or postgres://USER:PASS@HOST/DB (default: SQLite in the data dir).
    #[arg(long, env = "LOCKERFLEET_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Admin bearer token (default: generated into DATA_DIR/admin-token).
    #[arg(long, env = "LOCKERFLEET_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Time to live of remote commands, seconds.
    #[arg(long, env = "LOCKERFLEET_COMMAND_TTL_SECS")]
    command_ttl_secs: Option<u64>,
    /// Most simultaneous device connections.
    #[arg(long, env = "LOCKERFLEET_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// TLS handshakes in progress from one address at once; more from that address (cabinets
    /// behind one NAT) wait for a turn until their handshake deadline.
    #[arg(long, env = "LOCKERFLEET_MAX_HANDSHAKES_PER_IP")]
    max_handshakes_per_ip: Option<usize>,
    /// Ingest writers (0: one on SQLite, four on PostgreSQL; more than one needs PostgreSQL).
    #[arg(long, env = "LOCKERFLEET_INGEST_WRITERS")]
    ingest_writers: Option<usize>,
    /// MQTT publishes per second one device may sustain (0: no limit).
    #[arg(long, env = "LOCKERFLEET_DEVICE_PUBLISH_PER_SEC")]
    device_publish_per_sec: Option<u32>,
    /// Publishes one device may send at once above its rate.
    #[arg(long, env = "LOCKERFLEET_DEVICE_PUBLISH_BURST")]
    device_publish_burst: Option<u32>,
    /// API requests per second one token may sustain (0: no limit).
    #[arg(long, env = "LOCKERFLEET_API_REQUESTS_PER_SEC")]
    api_requests_per_sec: Option<u32>,
    /// API requests one token may make at once above its rate.
    #[arg(long, env = "LOCKERFLEET_API_BURST")]
    api_burst: Option<u32>,
    /// Digits of one-time codes (6 to 8).
    #[arg(long, env = "LOCKERFLEET_CODE_DIGITS")]
    code_digits: Option<usize>,
    /// Seconds after a window ends before an item is expired or overdue.
    #[arg(long, env = "LOCKERFLEET_TIMEUP_GRACE_SECS")]
    timeup_grace_secs: Option<u64>,
    /// Local time zone, minutes east of UTC (the same-day deposit rule).
    #[arg(
        long,
        env = "LOCKERFLEET_UTC_OFFSET_MINUTES",
        allow_hyphen_values = true
    )]
    utc_offset_minutes: Option<i32>,
    /// The language of SMS where a site sets none: en or zh-CN (sites set theirs with
    /// `lang`, administrators write templates: /api/v1/sms-templates).
    #[arg(long, env = "LOCKERFLEET_LANG")]
    lang: Option<l10n::Lang>,
    /// SMS gateway URL (JSON POST); without it SMS go to the log.
    #[arg(long, env = "LOCKERFLEET_SMS_GATEWAY_URL")]
    sms_gateway_url: Option<String>,
    /// SMS provider: auto (the gateway URL if set, else the log), log, webhook, alibaba,
    /// tencent; the providers take `[sms]` settings from the config file.
    #[arg(long, env = "LOCKERFLEET_SMS_PROVIDER", value_parser = sms_provider)]
    sms_provider: Option<fleet_server::config::SmsProvider>,
    /// The SMS provider's secret (AccessKeySecret / SecretKey), kept out of the file.
    #[arg(
        long,
        env = "LOCKERFLEET_SMS_ACCESS_KEY_SECRET",
        hide_env_values = true
    )]
    sms_access_key_secret: Option<String>,
    /// Public release keys (one hex key per line, e.g. release-key.pub) agent releases must
    /// be signed with; without it, releases are refused.
    #[arg(long, env = "LOCKERFLEET_RELEASE_KEYS")]
    release_keys: Option<std::path::PathBuf>,
    /// Bytes per second all release downloads together may take (default 2000000), so a
    /// rollout never starves events and commands.
    #[arg(long, env = "LOCKERFLEET_RELEASE_BYTES_PER_SEC")]
    release_bytes_per_sec: Option<u64>,
    /// Service platform webhook URL for item events (needs --webhook-secret).
    #[arg(long, env = "LOCKERFLEET_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Seconds a device may be offline before `device_offline` is raised.
    #[arg(long, env = "LOCKERFLEET_OFFLINE_GRACE_SECS")]
    offline_grace_secs: Option<u64>,
    /// Seconds before an unacknowledged alarm escalates.
    #[arg(long, env = "LOCKERFLEET_ALARM_ESCALATE_AFTER_SECS")]
    alarm_escalate_after_secs: Option<u64>,
    /// Most alarms per site sent to on-duty staff by SMS in an hour.
    #[arg(long, env = "LOCKERFLEET_ALARM_NOTIFY_PER_SITE_HOUR")]
    alarm_notify_per_site_hour: Option<u32>,
    /// InfluxDB v2 base URL for time series export (door events, box state, device health,
    /// usage); without it the export is off.
    #[arg(long, env = "LOCKERFLEET_INFLUX_URL")]
    influx_url: Option<String>,
    /// InfluxDB organisation.
    #[arg(long, env = "LOCKERFLEET_INFLUX_ORG")]
    influx_org: Option<String>,
    /// InfluxDB bucket (required with --influx-url).
    #[arg(long, env = "LOCKERFLEET_INFLUX_BUCKET")]
    influx_bucket: Option<String>,
    /// InfluxDB API token.
    #[arg(long, env = "LOCKERFLEET_INFLUX_TOKEN", hide_env_values = true)]
    influx_token: Option<String>,
    /// HMAC key the webhook signatures are made with.
    #[arg(long, env = "LOCKERFLEET_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Recommend sites for new locker clusters from demand points and candidate sites
    /// (CSV or GeoJSON files) and the fleet's measured usage in the database.
    Plan(PlanCmd),
    /// The audit log: `verify` recomputes its hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Agent releases on a running server: `publish` registers a signed release and
    /// uploads its binary through the API.
    Release {
        #[command(subcommand)]
        command: ReleaseCmd,
    },
    /// Writes a consistent copy of the database (while the server runs), the master secret,
    /// the certificates and the admin token into one file (mode 0600: it is as secret as the
    /// server).
    Backup {
        /// The file to write (a tar with a manifest of SHA-256 sums).
        #[arg(long)]
        to: PathBuf,
    },
    /// Puts a backup back into the data dir (and database); the server must be stopped. What
    /// it replaces is renamed aside, never deleted; the restore is recorded, so events the
    /// cabinets deleted after the backup was taken are reported as lost when they return.
    Restore {
        /// A file written by `fleet-server backup`.
        #[arg(long)]
        from: PathBuf,
    },
    /// Answers a RabbitMQ broker node's HTTP auth backend (ADR 0024): devices only as
    /// themselves and only on their own topics. Run one beside each broker node.
    BrokerAuth {
        /// Where the node's `auth_http.*_path` URLs point (port 0: any free port).
        #[arg(
            long,
            env = "LOCKERFLEET_BROKER_AUTH_LISTEN",
            default_value = "127.0.0.1:8781"
        )]
        listen: SocketAddr,
    },
}

#[derive(Subcommand, Debug)]
enum ReleaseCmd {
    /// Registers `release.json` (from `fleet-certs release sign`) and uploads the binary it
    /// describes; the binary is checked against the signed size and SHA-256 first. Publishing
    /// the same release again changes nothing.
    Publish {
        /// The signed release (`release.json`).
        release: PathBuf,
        /// The agent binary it describes.
        binary: PathBuf,
        /// The server's HTTP API.
        #[arg(
            long,
            env = "LOCKERFLEET_SERVER_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        server: String,
        /// An admin token.
        #[arg(long, env = "LOCKERFLEET_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A file holding an admin token (e.g. DATA_DIR/admin-token).
        #[arg(long, env = "LOCKERFLEET_TOKEN_FILE")]
        token_file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Recompute every row's hash from the first; exits 1 at the first row that does not hold.
    /// Prints the chain head: record it elsewhere to detect later removal of the newest rows.
    Verify {
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// Archives written by `audit archive`, oldest first: checked from the first row,
        /// and the database's chain must continue exactly where they end.
        #[arg(long)]
        archive: Vec<PathBuf>,
    },
    /// Moves the rows older than some days into a new file of JSON lines (mode 0600) that
    /// `audit verify --archive` still checks; the database keeps the newest rows and where
    /// its chain continues. The server may run meanwhile.
    Archive {
        /// Rows written more than this many days ago.
        #[arg(long)]
        older_than_days: u32,
        /// The archive file to create (never overwritten).
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct PlanCmd {
    /// Demand points: CSV `id,lat,lon,enterprises[,monthly_cases][,name][,cluster]` or GeoJSON
    /// (monthly cases size the boxes; coverage by enterprises needs none).
    #[arg(long)]
    demand: PathBuf,
    /// Candidate sites: CSV `id,lat,lon[,name][,max_boxes]` or GeoJSON.
    #[arg(long)]
    candidates: PathBuf,
    #[command(flatten)]
    options: fleet_server::PlanOptions,
    /// Print the plan as JSON (the API's answer) instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the plan as GeoJSON to this file (demand points, sites in service,
    /// recommended sites with their walking radius, clusters): it opens in QGIS as it is.
    #[arg(long)]
    geojson: Option<PathBuf>,
    /// Language of the report and its progress: en or zh-CN (default: LOCKERFLEET_LANG,
    /// else the locale: LC_ALL, LC_MESSAGES or LANG).
    #[arg(long)]
    lang: Option<String>,
}

impl Args {
    fn into_config(self) -> anyhow::Result<ServerConfig> {
        let mut cfg = match &self.config {
            Some(path) => ServerConfig::from_file(path)?,
            None => ServerConfig::default(),
        };
        macro_rules! overlay {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { cfg.$field = v; } )*};
        }
        overlay!(
            data_dir,
            mqtt_listen,
            http_listen,
            command_ttl_secs,
            max_connections,
            max_handshakes_per_ip,
            ingest_writers,
            device_publish_per_sec,
            device_publish_burst,
            api_requests_per_sec,
            api_burst,
            code_digits,
            timeup_grace_secs,
            utc_offset_minutes,
            lang,
            offline_grace_secs,
            alarm_escalate_after_secs,
            alarm_notify_per_site_hour,
            broker_group,
            broker_partitions
        );
        for (field, value) in [
            (&mut cfg.external_broker, self.external_broker),
            (&mut cfg.sms_gateway_url, self.sms_gateway_url),
            (&mut cfg.webhook_url, self.webhook_url),
            (&mut cfg.webhook_secret, self.webhook_secret),
            (&mut cfg.influx_url, self.influx_url),
            (&mut cfg.influx_org, self.influx_org),
            (&mut cfg.influx_bucket, self.influx_bucket),
            (&mut cfg.influx_token, self.influx_token),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        if let Some(p) = self.sms_provider {
            cfg.sms.provider = p;
        }
        if self.sms_access_key_secret.is_some() {
            cfg.sms.access_key_secret = self.sms_access_key_secret;
        }
        if self.certs.is_some() {
            cfg.certs = self.certs;
        }
        if self.database_url.is_some() {
            cfg.database_url = self.database_url;
        }
        if let Some(v) = self.release_bytes_per_sec {
            cfg.release_bytes_per_sec = v;
        }
        if self.release_keys.is_some() {
            cfg.release_keys = self.release_keys;
        }
        if self.admin_token.is_some() {
            cfg.admin_token = self.admin_token;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn sms_provider(s: &str) -> Result<fleet_server::config::SmsProvider, String> {
    use fleet_server::config::SmsProvider as P;
    Ok(match s {
        "auto" => P::Auto,
        "log" => P::Log,
        "webhook" => P::Webhook,
        "alibaba" => P::Alibaba,
        "tencent" => P::Tencent,
        _ => {
            return Err(format!(
                "{s:?}: expected auto, log, webhook, alibaba or tencent"
            ));
        }
    })
}

fn main() -> std::process::ExitCode {
    cli::run_main(run)
}

async fn run() -> anyhow::Result<()> {
    cli::init_tracing("info,rumqttd=off,sqlx=warn");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = Args::parse();
    let command = args.command.take();
    if let Some(Command::BrokerAuth { listen }) = command {
        // Stateless: no configuration, database or certificates are read.
        let cancel = tokio_util::sync::CancellationToken::new();
        let serving = tokio::spawn(fleet_server::broker_auth::serve(listen, cancel.clone()));
        tokio::select! {
            done = serving => return done.context("broker-auth task")?,
            _ = cli::shutdown_signal() => {}
        }
        cancel.cancel();
        return Ok(());
    }
    let cfg = args.into_config()?;
    match command {
        Some(Command::Plan(p)) => return plan(cfg, p).await,
        Some(Command::Audit {
            command: AuditCmd::Verify { json, archive },
        }) => return verify_audit(cfg, json, &archive).await,
        Some(Command::Audit {
            command:
                AuditCmd::Archive {
                    older_than_days,
                    to,
                },
        }) => {
            let store = open_store(&cfg).await?;
            let before = fleet_server::now_ms() - i64::from(older_than_days) * 86_400_000;
            let done = fleet_server::audit_archive::archive(&store, before, &to).await;
            store.close().await;
            let a = done?;
            println!(
                "archived {} audit rows (seq {} to {}) into {}; the database's chain continues after seq {} hash {}",
                a.rows,
                a.first_seq,
                a.last_seq,
                to.display(),
                a.last_seq,
                a.last_hash
            );
            return Ok(());
        }
        Some(Command::BrokerAuth { .. }) => unreachable!("handled above"),
        Some(Command::Backup { to }) => {
            let m = fleet_server::backup::backup(&cfg, &to).await?;
            let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
            println!(
                "backup written to {}: {} database as of {} (schema {}), {} files, {:.1} MB; keep it as secret as the server (it holds the master secret and the CA key)",
                to.display(),
                m.database,
                fleet_server::backup::utc(m.taken_at),
                m.schema_version,
                m.files.len(),
                bytes as f64 / 1e6
            );
            return Ok(());
        }
        Some(Command::Restore { from }) => {
            let r = fleet_server::backup::restore(&cfg, &from).await?;
            println!(
                "restored {} ({} database as of {}, written by fleet-server {})",
                from.display(),
                r.manifest.database,
                fleet_server::backup::utc(r.manifest.taken_at),
                r.manifest.server_version
            );
            for p in &r.kept_aside {
                println!("  kept aside: {}", p.display());
            }
            println!(
                "start the server: cabinets that deleted events after {} will report them, and the server records which were lost",
                fleet_server::backup::utc(r.manifest.taken_at)
            );
            return Ok(());
        }
        Some(Command::Release {
            command:
                ReleaseCmd::Publish {
                    release,
                    binary,
                    server,
                    token,
                    token_file,
                },
        }) => {
            let token = cli::api_token(token, token_file.as_deref())?.ok_or_else(|| {
                anyhow::anyhow!(
                    "an admin token is needed: --token, --token-file or LOCKERFLEET_TOKEN"
                )
            })?;
            return publish_release(&server, &token, &release, &binary).await;
        }
        None => {}
    }
    let server = fleet_server::start(cfg)
        .await
        .context("server failed to start")?;
    println!(
        "LOCKERFLEET_READY mqtt={} http={}",
        server.mqtt_addr, server.http_addr
    );
    cli::shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// `fleet-server release publish`: the release checked here, registered, its binary uploaded.
async fn publish_release(
    server: &str,
    token: &str,
    release: &std::path::Path,
    binary: &std::path::Path,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(release)
        .with_context(|| format!("reading {}", release.display()))?;
    let signed: protocol::release::SignedRelease =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a signed release (make one with `fleet-certs release sign`)",
                release.display()
            )
        })?;
    let manifest: protocol::release::Manifest = serde_json::from_str(&signed.manifest)
        .with_context(|| format!("the manifest in {} is unreadable", release.display()))?;
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    manifest.check_binary(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not the binary {} describes: {e}",
            binary.display(),
            release.display()
        )
    })?;
    let base = server.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .context("building the HTTP client")?;
    let answer = |what: String| {
        move |res: reqwest::Response| async move {
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            if status.is_success() {
                Ok(body)
            } else {
                let why = body["error"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_owned();
                Err(anyhow::anyhow!("{what}: {status}: {why}"))
            }
        }
    };
    let res = http
        .post(format!("{base}/api/v1/releases"))
        .bearer_auth(token)
        .json(&signed)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {base}"))?;
    answer("registering the release".into())(res).await?;
    let (target, version) = (&manifest.target, manifest.version);
    let res = http
        .put(format!("{base}/api/v1/releases/{target}/{version}/binary"))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {base}"))?;
    let row = answer("uploading the binary".into())(res).await?;
    println!(
        "release {version} for {target} is {} ({} bytes)",
        row["state"].as_str().unwrap_or("stored"),
        manifest.size
    );
    Ok(())
}

/// Opens the configured database for a one-shot command (the server may be running).
async fn open_store(cfg: &ServerConfig) -> anyhow::Result<fleet_server::store::Store> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
    let url = cfg.database_url();
    fleet_server::store::Store::connect(&url)
        .await
        .with_context(|| format!("opening database {}", fleet_server::redact(&url)))
}

/// `fleet-server audit verify`: exit 0 when the chain holds, 1 with the first break.
async fn verify_audit(cfg: ServerConfig, json: bool, archives: &[PathBuf]) -> anyhow::Result<()> {
    let store = open_store(&cfg).await?;
    let anchor = store.audit_anchor().await?;
    let verdict = if archives.is_empty() {
        if let Some((seq, _)) = &anchor
            && !json
        {
            println!(
                "rows up to seq {seq} are archived (not checked here: pass every archive with --archive)"
            );
        }
        store.verify_audit().await
    } else {
        let (seq, hash, rows) = fleet_server::audit_archive::verify_archives(archives)?;
        let (anchor_seq, anchor_hash) = anchor.unwrap_or((0, fleet_server::store::audit::GENESIS.to_owned()));
        if (seq, hash.as_str()) != (anchor_seq, anchor_hash.as_str()) {
            anyhow::bail!(
                "the archives end at seq {seq}, but the database's chain continues after seq {anchor_seq}: give every archive, oldest first"
            );
        }
        if !json {
            println!("archives: {rows} rows, seq 1 to {seq}, chain holds");
        }
        store.verify_audit_from(seq, &hash).await
    }
    .context("reading the audit log")?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        println!(
            "audit log: {} rows in the chain; head seq {} hash {}",
            verdict.rows, verdict.head_seq, verdict.head_hash
        );
    }
    match verdict.broken {
        None => {
            if !json {
                println!("chain holds");
            }
            Ok(())
        }
        Some(b) => anyhow::bail!(
            "audit chain broken at seq {}{}: {}. Rows up to seq {} are intact; restore the \
             database from a backup taken before the change, or keep it as evidence",
            b.seq,
            b.audit_id
                .map(|id| format!(" (row {id})"))
                .unwrap_or_default(),
            b.why,
            verdict.head_seq
        ),
    }
}

/// What a plan is doing, on stderr (a city takes seconds; the answer goes to stdout).
fn plan_progress(lang: l10n::Lang, p: domain::planner::Progress) {
    use domain::planner::Progress;
    use l10n::t;
    match p {
        Progress::Reach { points, candidates } => eprintln!(
            "{}",
            t!(
                lang,
                "planner-progress-reach",
                points = points.to_string(),
                candidates = candidates.to_string()
            )
        ),
        Progress::Greedy { covered } => eprintln!(
            "{}",
            t!(
                lang,
                "planner-progress-greedy",
                covered = format!("{covered:.0}")
            )
        ),
        Progress::Search { done, of, best } if done > 0 && done % (of / 4).max(1) == 0 => {
            eprintln!(
                "  {}",
                t!(
                    lang,
                    "planner-progress-search",
                    percent = (done * 100 / of.max(1)).to_string(),
                    covered = format!("{best:.0}")
                )
            )
        }
        Progress::Search { .. } => {}
    }
}

/// `fleet-server plan`: reads the inputs, measures the fleet from the database, prints.
async fn plan(cfg: ServerConfig, p: PlanCmd) -> anyhow::Result<()> {
    // The flag, else LOCKERFLEET_LANG, else the locale (README.zh-CN's order).
    let explicit = p
        .lang
        .clone()
        .or_else(|| std::env::var("LOCKERFLEET_LANG").ok());
    let lang = l10n::Lang::choose(explicit.as_deref()).context("--lang")?;
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let demand = domain::planner_input::demand(&read(&p.demand)?)
        .with_context(|| format!("demand points in {}", p.demand.display()))?;
    let candidates = domain::planner_input::candidates(&read(&p.candidates)?)
        .with_context(|| format!("candidate sites in {}", p.candidates.display()))?;
    // The fleet's sites in service come from its database; without one (no --data-dir or
    // --database-url of a fleet), plan as if none were in service rather than create an
    // empty database wherever the command was run.
    let db_file = cfg.data_dir.join("fleet.db");
    let store = if cfg.database_url.is_some() || db_file.exists() {
        Some(open_store(&cfg).await?)
    } else {
        eprintln!(
            "{}",
            l10n::t!(
                lang,
                "planner-no-database",
                path = db_file.display().to_string()
            )
        );
        None
    };
    let offset = i64::from(cfg.utc_offset_minutes) * 60_000;
    let started = std::time::Instant::now();
    let answer = fleet_server::plan_with(
        store.as_ref(),
        &p.options,
        &demand,
        &candidates,
        fleet_server::now_ms(),
        offset,
        Box::new(move |p| plan_progress(lang, p)),
    )
    .await?
    .map_err(|why| {
        anyhow::anyhow!(
            "plan parameters: {}",
            fleet_server::PlanOptions::as_flags(&why)
        )
    })?;
    eprintln!(
        "{}",
        l10n::t!(
            lang,
            "planner-done",
            seconds = format!("{:.1}", started.elapsed().as_secs_f64())
        )
    );
    if let Some(store) = store {
        store.close().await;
    }
    if let Some(path) = &p.geojson {
        let geo = domain::planner::geojson(&answer.plan, &demand, &answer.existing_sites);
        std::fs::write(path, serde_json::to_vec_pretty(&geo)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if p.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", fleet_server::plan_report::render(&answer.plan, lang));
    }
    Ok(())
}
