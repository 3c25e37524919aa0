//! `fleet-server backup` and `fleet-server restore`: one file holding a consistent copy of
//! the database (SQLite's `VACUUM INTO` while the server runs; PostgreSQL's `pg_dump` custom
//! format), the master secret the database's codes and sealed SMS depend on, the
//! certificates directory and the admin token, with a manifest of SHA-256 sums.
//!
//! The file is a plain tar (inspect it with `tar tvf`) written with mode 0600: it holds the
//! master secret and the CA key, so it is as secret as the server itself. A restore never
//! deletes what it replaces (old files are renamed `*.before-restore-TIME`) and records itself
//! in the database, so the server can say which events the cabinets had already deleted when
//! they come back (`docs/adr/0028-backup-and-restore.md`).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::config::ServerConfig;
use crate::store::{DbKind, SCHEMA_VERSION, Store};

/// The manifest's format; a newer one is refused by an older server.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const SQLITE_FILE: &str = "fleet.db";
const PG_FILE: &str = "fleet.pgdump";

/// What a backup holds and when it was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// When the database copy was taken (epoch ms): what it holds is the fleet as of then.
    pub taken_at: i64,
    pub server_version: String,
    pub schema_version: i64,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub files: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Path inside the file: `fleet.db` / `fleet.pgdump`, `secrets/master.key`,
    /// `certs/...`, `admin-token`.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The data-dir lock every server takes at start; a restore takes it too, so neither runs
/// beside the other.
pub struct DataDirLock(#[allow(dead_code)] File);

impl DataDirLock {
    pub fn take(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        let path = data_dir.join("lockerfleet.lock");
        let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock(file)),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another fleet-server runs on the data dir {} (it holds {}); stop it first",
                data_dir.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

fn sha256_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(ctx.finish().as_ref())))
}

/// Every regular file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for entry in
            std::fs::read_dir(&here).with_context(|| format!("reading {}", here.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            let name = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(name);
            } else if kind.is_file() {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A PostgreSQL tool (`pg_dump`, `pg_restore`) run on `url` with `args`; the password goes
/// in `PGPASSWORD`, not on the command line where `ps` would show it. The error says what
/// to install.
async fn pg_tool(tool: &str, url: &str, args: &[&str]) -> anyhow::Result<()> {
    let (url, password) = crate::store::db_url::split_password(url)
        .map_err(|why| anyhow::anyhow!("database URL {}: {why}", crate::redact(url)))?;
    let name = tool.to_owned();
    let mut argv: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    argv.extend(["--dbname".to_owned(), url]);
    // A CLI command, not the server: the blocking wait runs on the blocking pool.
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(name);
        cmd.args(argv);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        cmd.output()
    })
    .await?
    .with_context(|| {
        format!("running {tool}: install PostgreSQL's client tools (Debian: postgresql-client), of the server's major version or newer")
    })?;
    if !out.status.success() {
        bail!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The database at `url` in pg_dump's custom format, into `file`.
async fn pg_dump(url: &str, file: &Path) -> anyhow::Result<()> {
    let file = file.display().to_string();
    pg_tool(
        "pg_dump",
        url,
        &["--format=custom", "--no-owner", "--file", &file],
    )
    .await
}

/// Makes a backup of the running (or stopped) server's data into `to`.
pub async fn backup(cfg: &ServerConfig, to: &Path) -> anyhow::Result<Manifest> {
    let url = cfg.database_url();
    if url.starts_with("sqlite:") {
        let db = sqlite_path(&url)?;
        if !db.exists() {
            bail!(
                "there is no database at {}: point --data-dir (or database_url) at the server's",
                db.display()
            );
        }
    }
    // As it is: a backup of an older database is of that version (a restore migrates it).
    let (store, schema_version) = Store::connect_as_is(&url)
        .await
        .with_context(|| format!("opening the database {}", crate::redact(&url)))?;
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stage = parent.join(format!(
        ".{}.partial",
        to.file_name()
            .and_then(|n| n.to_str())
            .context("--to must name a file")?
    ));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)
        .with_context(|| format!("cannot write beside {}", to.display()))?;
    let result = stage_backup(cfg, &store, schema_version, &stage).await;
    store.close().await;
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(e);
        }
    };
    let written = write_tar(&stage, &manifest, to);
    let _ = std::fs::remove_dir_all(&stage);
    written?;
    Ok(manifest)
}

async fn stage_backup(
    cfg: &ServerConfig,
    store: &Store,
    schema_version: i64,
    stage: &Path,
) -> anyhow::Result<Manifest> {
    let taken_at = crate::clock::now_ms();
    let db_file = match store.kind() {
        DbKind::Sqlite => {
            let path = stage.join(SQLITE_FILE);
            store
                .copy_sqlite_into(&path)
                .await
                .context("copying the SQLite database (VACUUM INTO)")?;
            SQLITE_FILE
        }
        DbKind::Postgres => {
            let path = stage.join(PG_FILE);
            let primary = store.primary_url();
            pg_dump(&primary, &path).await?;
            PG_FILE
        }
    };
    let mut files = vec![PathBuf::from(db_file)];
    let secret = cfg.master_secret_file();
    if secret.exists() {
        std::fs::create_dir_all(stage.join("secrets"))?;
        std::fs::copy(&secret, stage.join("secrets/master.key"))
            .with_context(|| format!("copying {}", secret.display()))?;
        files.push("secrets/master.key".into());
    }
    let certs = cfg.certs_dir();
    if certs.is_dir() {
        for rel in files_under(&certs)? {
            let to = stage.join("certs").join(&rel);
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::copy(certs.join(&rel), &to)
                .with_context(|| format!("copying {}", certs.join(&rel).display()))?;
            files.push(Path::new("certs").join(rel));
        }
    }
    let token = cfg.data_dir.join("admin-token");
    if token.exists() {
        std::fs::copy(&token, stage.join("admin-token"))?;
        files.push("admin-token".into());
    }
    let mut entries = Vec::new();
    for f in files {
        let (bytes, sha256) = sha256_file(&stage.join(&f))?;
        entries.push(Entry {
            path: f.display().to_string(),
            bytes,
            sha256,
        });
    }
    Ok(Manifest {
        format: FORMAT,
        taken_at,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_version,
        database: match store.kind() {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
        .to_owned(),
        files: entries,
    })
}

fn write_tar(stage: &Path, manifest: &Manifest, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let partial = to.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut tar = tar::Builder::new(file);
    let json = serde_json::to_vec_pretty(manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o600);
    header.set_mtime((manifest.taken_at / 1000).max(0) as u64);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, json.as_slice())?;
    for e in &manifest.files {
        let mut f = File::open(stage.join(&e.path))?;
        tar.append_file(&e.path, &mut f)
            .with_context(|| format!("adding {} to the backup", e.path))?;
    }
    let mut file = tar.into_inner()?;
    file.flush()?;
    file.sync_all()?;
    std::fs::rename(&partial, to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(())
}

/// Reads and checks a backup file into `dir`: the manifest, and every file's size and sum.
fn unpack(from: &Path, dir: &Path) -> anyhow::Result<Manifest> {
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut archive = tar::Archive::new(file);
    archive
        .unpack(dir)
        .with_context(|| format!("{} is not a readable backup (tar)", from.display()))?;
    let text = std::fs::read(dir.join(MANIFEST)).with_context(|| {
        format!(
            "{} has no {MANIFEST}: not a fleet-server backup",
            from.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{MANIFEST} of {} is unreadable", from.display()))?;
    if manifest.format > FORMAT {
        bail!(
            "{} was written by a newer fleet-server ({}, format {}); restore it with that version or newer",
            from.display(),
            manifest.server_version,
            manifest.format
        );
    }
    if manifest.schema_version > SCHEMA_VERSION {
        bail!(
            "{} holds database schema {}, newer than this server's {SCHEMA_VERSION}; upgrade the server first",
            from.display(),
            manifest.schema_version
        );
    }
    for e in &manifest.files {
        let path = dir.join(&e.path);
        let (bytes, sum) = sha256_file(&path).with_context(|| {
            format!(
                "{} lacks {}: the backup is incomplete",
                from.display(),
                e.path
            )
        })?;
        if bytes != e.bytes || sum != e.sha256 {
            bail!(
                "{} in {} does not match its manifest (damaged or altered): {bytes} bytes, sha256 {sum}; expected {} bytes, {}",
                e.path,
                from.display(),
                e.bytes,
                e.sha256
            );
        }
    }
    Ok(manifest)
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: Manifest,
    /// Files renamed aside instead of overwritten.
    pub kept_aside: Vec<PathBuf>,
}

/// Puts a backup back. The server must be stopped (every replica, on PostgreSQL).
pub async fn restore(cfg: &ServerConfig, from: &Path) -> anyhow::Result<Restored> {
    let _lock = DataDirLock::take(&cfg.data_dir)?;
    let stage = cfg.data_dir.join(".restore.partial");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    let result = restore_staged(cfg, from, &stage).await;
    let _ = std::fs::remove_dir_all(&stage);
    result
}

async fn restore_staged(cfg: &ServerConfig, from: &Path, stage: &Path) -> anyhow::Result<Restored> {
    let manifest = unpack(from, stage)?;
    let url = cfg.database_url();
    let wanted = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    if manifest.database != wanted {
        bail!(
            "{} holds a {} database but this server is configured for {wanted} ({}); restore it where it came from",
            from.display(),
            manifest.database,
            crate::redact(&url)
        );
    }
    let stamp = crate::clock::now_ms();
    let mut kept_aside = Vec::new();
    let mut dumped_before = None;
    let mut set_aside = |path: &Path| -> anyhow::Result<()> {
        if path.exists() {
            let aside = PathBuf::from(format!("{}.before-restore-{stamp}", path.display()));
            std::fs::rename(path, &aside)
                .with_context(|| format!("renaming {} aside", path.display()))?;
            kept_aside.push(aside);
        }
        Ok(())
    };

    // The database.
    if wanted == "sqlite" {
        let db = sqlite_path(&url)?;
        for suffix in ["", "-wal", "-shm"] {
            set_aside(Path::new(&format!("{}{suffix}", db.display())))?;
        }
        if let Some(p) = db.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(stage.join(SQLITE_FILE), &db)
            .with_context(|| format!("writing {}", db.display()))?;
    } else {
        let store = Store::connect(&url)
            .await
            .with_context(|| format!("opening the database {}", crate::redact(&url)))?;
        let Some(lead) = store.try_lead().await? else {
            bail!(
                "a server replica is running on {} (it holds the lead); stop every replica first",
                crate::redact(&url)
            );
        };
        let primary = store.primary_url();
        // What is replaced is kept: a dump of the database as it is, beside the data.
        let before = cfg
            .data_dir
            .join(format!("fleet.pgdump.before-restore-{stamp}"));
        pg_dump(&primary, &before)
            .await
            .context("keeping the database as it is before restoring over it")?;
        dumped_before = Some(before);
        store.wipe_for_restore().await?;
        drop(lead);
        store.close().await;
        pg_tool(
            "pg_restore",
            &primary,
            &[
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                &stage.join(PG_FILE).display().to_string(),
            ],
        )
        .await?;
    }

    // The master secret: the restored database's codes and sealed SMS were made with it.
    if manifest
        .files
        .iter()
        .any(|e| e.path == "secrets/master.key")
    {
        let to = cfg.master_secret_file();
        let restored = std::fs::read(stage.join("secrets/master.key"))?;
        if std::fs::read(&to).ok().as_deref() != Some(restored.as_slice()) {
            set_aside(&to)?;
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p)?;
            }
            crate::write_private(&to, &restored)
                .with_context(|| format!("writing {}", to.display()))?;
        }
    }
    // Certificates: the ones here are as new or newer (a revocation list grows; renewals
    // happen after any backup), so only missing files come back.
    let certs = cfg.certs_dir();
    for e in manifest
        .files
        .iter()
        .filter(|e| e.path.starts_with("certs/"))
    {
        let rel = e.path.trim_start_matches("certs/");
        let to = certs.join(rel);
        if !to.exists() {
            if let Some(p) = to.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::copy(stage.join(&e.path), &to)?;
        }
    }
    let token = cfg.data_dir.join("admin-token");
    if !token.exists() && stage.join("admin-token").exists() {
        crate::write_private(&token, &std::fs::read(stage.join("admin-token"))?)
            .with_context(|| format!("writing {}", token.display()))?;
    }

    // The restore itself, in the restored database (migrated first if it is older).
    let store = Store::connect(&url)
        .await
        .context("opening the restored database")?;
    store
        .record_restore(
            manifest.taken_at,
            crate::clock::now_ms(),
            &from.display().to_string(),
        )
        .await?;
    store.close().await;
    kept_aside.extend(dumped_before);
    Ok(Restored {
        manifest,
        kept_aside,
    })
}

/// `ms` as UTC, for what a person reads.
pub fn utc(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

/// The file of a `sqlite://PATH?...` URL.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .context("not a sqlite: URL")?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        bail!("an in-memory SQLite database cannot be restored into");
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_come_from_the_url() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/lockerfleet/fleet.db?mode=rwc").expect("path"),
            PathBuf::from("/var/lib/lockerfleet/fleet.db")
        );
        assert_eq!(
            sqlite_path("sqlite://data/fleet.db").expect("path"),
            PathBuf::from("data/fleet.db")
        );
        assert!(sqlite_path("sqlite::memory:").is_err());
    }
}
