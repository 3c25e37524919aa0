//! `fleet-console`: parses configuration (file, `LOCKERFLEET_*` env, flags) and runs the
//! operator console.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tui::app::keymap::Keymap;
use tui::theme::Theme;

#[derive(Parser, Debug)]
#[command(
    name = "fleet-console",
    version,
    about = "LockerFleet operator console: occupancy, cabinets, alarms, remote open, work lists"
)]
struct Args {
    /// TOML config file: `server`, `token` or `token_file`, `lang`, `theme`, `mouse`, `[keys]`.
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
    /// Colours: dark, light or mono (default: the config file's, else mono when NO_COLOR is
    /// set, else dark).
    #[arg(long, env = "LOCKERFLEET_THEME")]
    theme: Option<Theme>,
    /// Print every command with its keys (the config file's `[keys]` applied) and exit.
    #[arg(long)]
    print_keys: bool,
}

/// A command's keys in `[keys]`: one (`open = "O"`) or several (`down = ["down", "j"]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Keys {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConsoleConfig {
    server: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    lang: Option<l10n::Lang>,
    theme: Option<Theme>,
    /// The mouse: the wheel scrolls lists, a click on the navigation line changes screen.
    mouse: bool,
    /// IANA time zone clock times are shown in (default: TZ, else Asia/Shanghai for zh-CN,
    /// else UTC).
    time_zone: Option<String>,
    /// Command name → its keys, replacing the defaults (`fleet-console --print-keys`).
    keys: BTreeMap<String, Keys>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            server: "http://127.0.0.1:8080".into(),
            token: None,
            token_file: None,
            lang: None,
            theme: None,
            mouse: false,
            time_zone: None,
            keys: BTreeMap::new(),
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
    let lang = args.lang.or(cfg.lang).unwrap_or_else(l10n::Lang::from_env);
    let overrides: BTreeMap<String, Vec<String>> = std::mem::take(&mut cfg.keys)
        .into_iter()
        .map(|(cmd, k)| match k {
            Keys::One(k) => (cmd, vec![k]),
            Keys::Many(k) => (cmd, k),
        })
        .collect();
    let keymap = Keymap::with(&overrides).map_err(|e| {
        anyhow::anyhow!(
            "{e} (in {})",
            args.config
                .as_deref()
                .map_or_else(|| "the console config".into(), |p| p.display().to_string())
        )
    })?;
    if args.print_keys {
        print!("{}", keymap.print(lang));
        return Ok(());
    }
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
    let settings = tui::Settings {
        lang,
        keymap,
        theme: Theme::choose(
            args.theme.or(cfg.theme),
            std::env::var("NO_COLOR").ok().as_deref(),
        ),
        mouse: cfg.mouse,
        time_zone: match &cfg.time_zone {
            Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
                anyhow::anyhow!(
                    "time_zone {name:?} is not a known time zone: use an IANA name such as Asia/Shanghai"
                )
            })?,
            None => tui::default_time_zone(lang, std::env::var("TZ").ok().as_deref()),
        },
    };
    // Logs would scribble over the screen: the console reports in its status line instead.
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        cli::shutdown_signal().await;
        stop.cancel();
    });
    tui::run(&cfg.server, &token, settings, cancel).await
}
