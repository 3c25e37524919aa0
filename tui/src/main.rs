//! `fleet-console`: parses configuration (file, `LOCKERFLEET_*` env, flags) and runs the
//! operator console.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "fleet-console",
    version,
    about = "LockerFleet operator console: occupancy, cabinets, alarms, remote open, work lists"
)]
struct Args {
    /// TOML config file with `server`, `token` or `token_file`.
    #[arg(long, env = "LOCKERFLEET_CONSOLE_CONFIG")]
    config: Option<PathBuf>,
    /// The fleet server's HTTP address.
    #[arg(long, env = "LOCKERFLEET_SERVER_URL")]
    server: Option<String>,
    /// API token (viewer sees everything; operator may also open boxes and acknowledge).
    #[arg(long, env = "LOCKERFLEET_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the token (e.g. the server's DATA_DIR/admin-token).
    #[arg(long, env = "LOCKERFLEET_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The console's language: en or zh-CN (default: the config file's `lang`, else
    /// LC_ALL / LC_MESSAGES / LANG, else English).
    #[arg(long, env = "LOCKERFLEET_LANG")]
    lang: Option<l10n::Lang>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConsoleConfig {
    server: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    lang: Option<l10n::Lang>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            server: "http://127.0.0.1:8080".into(),
            token: None,
            token_file: None,
            lang: None,
        }
    }
}

fn main() -> std::process::ExitCode {
    cli::run_main(run)
}

async fn run() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let mut cfg = match &args.config {
        Some(p) => cli::load_toml::<ConsoleConfig>(p)?,
        None => ConsoleConfig::default(),
    };
    if let Some(s) = args.server {
        cfg.server = s;
    }
    if args.token.is_some() {
        cfg.token = args.token;
    }
    if args.token_file.is_some() {
        cfg.token_file = args.token_file;
    }
    if !cfg.server.starts_with("http://") && !cfg.server.starts_with("https://") {
        cfg.server = format!("http://{}", cfg.server);
    }
    let token = cli::api_token(cfg.token, cfg.token_file.as_deref())?.ok_or_else(|| {
        anyhow::anyhow!(
            "no API token: pass --token TOKEN or --token-file FILE (or LOCKERFLEET_TOKEN)"
        )
    })?;
    // Logs would scribble over the screen: the console reports in its status line instead.
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        cli::shutdown_signal().await;
        stop.cancel();
    });
    let lang = args.lang.or(cfg.lang).unwrap_or_else(l10n::Lang::from_env);
    tui::run(&cfg.server, &token, lang, cancel).await
}
