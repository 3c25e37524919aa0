//! Plumbing shared by the LockerFleet binaries: one-line errors, logging, TOML config files and
//! shutdown signals, so every `main.rs` stays a thin wiring of its library.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::de::DeserializeOwned;

/// Runs an async `main` on a multi-threaded runtime. A failure prints one line,
/// `error: <what went wrong>: <why>`, and exits 1 — also where RUST_BACKTRACE is set, which
/// would otherwise bury the message under a backtrace.
pub fn run_main<F: Future<Output = anyhow::Result<()>>>(main: impl FnOnce() -> F) -> ExitCode {
    run_main_code(|| async { main().await.map(|()| ExitCode::SUCCESS) })
}

/// [`run_main`] for a `main` that chooses its exit status.
pub fn run_main_code<F: Future<Output = anyhow::Result<ExitCode>>>(
    main: impl FnOnce() -> F,
) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `LOCKERFLEET_LOG` (tracing filter syntax) overrides `default_filter`.
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKERFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logs to a file (appending) instead of stderr: for a process whose terminal shows a UI.
pub fn init_tracing_to_file(default_filter: &str, path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKERFLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Reads a TOML config file; errors name the file, and the line and key that are wrong.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text, path)
}

/// Parses config text read from `path` (named in the error).
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, FileError> {
    toml::from_str(text).map_err(|e| FileError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The API token a client binary runs with: `token` as given, else the first line of
/// `token_file` (trimmed); `None` when neither is set (the caller says which flags to pass).
pub fn api_token(
    token: Option<String>,
    token_file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    match (token, token_file) {
        (Some(t), _) => Ok(Some(t)),
        (None, Some(f)) => Ok(Some(
            std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("reading the token file {}: {e}", f.display()))?
                .trim()
                .to_owned(),
        )),
        (None, None) => Ok(None),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        port: u16,
    }

    #[test]
    fn a_token_comes_from_the_flag_else_the_trimmed_file() {
        let dir = std::env::temp_dir().join(format!("cli-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        assert_eq!(
            api_token(Some("flag".into()), Some(&file)).expect("flag"),
            Some("flag".into())
        );
        assert_eq!(
            api_token(None, Some(&file)).expect("file"),
            Some("from-file".into())
        );
        assert_eq!(api_token(None, None).expect("none"), None);
        let e = api_token(None, Some(&dir.join("missing"))).expect_err("missing");
        assert!(e.to_string().contains("reading the token file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let dir = std::env::temp_dir().join(format!("cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.toml");
        std::fs::write(&path, "port = 'eighty'\n").expect("write");
        let err = load_toml::<Cfg>(&path).expect_err("bad value").to_string();
        assert!(err.contains("x.toml") && err.contains("port"), "{err}");
        let err = load_toml::<Cfg>(&dir.join("missing.toml"))
            .expect_err("missing")
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
