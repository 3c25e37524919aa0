//! `fleet-server audit archive` and the archive side of `audit verify`: the audit log's
//! oldest rows moved to a file of JSON lines that the chain still covers.
//!
//! The first line says where the archive starts in the chain (`after_seq`, `after_hash`: the
//! previous archive's last row, or 0 and the genesis hash); every other line is one row with
//! its sequence number and hash. The rows are checked before they are written, the file is
//! synced, and only then are they removed from the database, which keeps the last archived
//! row as the anchor its own chain continues from. Verifying with the archives walks them in
//! order from the genesis, requires them to end exactly at the database's anchor, and goes on
//! through the database to its head.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::store::audit::{ArchivedRow, GENESIS};

/// The first line of an archive file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    lockerfleet_audit_archive: u32,
    after_seq: i64,
    after_hash: String,
    rows: u64,
    created_at: i64,
}

/// What an archive run moved.
#[derive(Debug, Clone)]
pub struct Archived {
    pub rows: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub last_hash: String,
}

/// Moves the rows written before `before` (epoch ms) into `to` (a new file).
pub async fn archive(store: &Store, before: i64, to: &Path) -> anyhow::Result<Archived> {
    let (after_seq, after_hash) = store
        .audit_anchor()
        .await?
        .unwrap_or((0, GENESIS.to_owned()));
    let rows = store.audit_to_archive(before).await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        bail!(
            "no audit rows were written before {}: nothing to archive",
            crate::backup::utc(before)
        );
    };
    // Never archive a broken chain: the break would leave the database with the evidence.
    let mut prev = after_hash.clone();
    for (i, r) in rows.iter().enumerate() {
        if r.seq != after_seq + 1 + i as i64 || r.recompute(&prev) != r.hash {
            bail!(
                "the audit chain does not hold at seq {}: run `fleet-server audit verify`; nothing archived",
                after_seq + 1 + i as i64
            );
        }
        prev = r.hash.clone();
    }
    let header = Header {
        lockerfleet_audit_archive: 1,
        after_seq,
        after_hash,
        rows: rows.len() as u64,
        created_at: crate::clock::now_ms(),
    };
    {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .with_context(|| {
                format!(
                    "creating {} (an archive is never overwritten)",
                    to.display()
                )
            })?;
        let mut w = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut w, &header)?;
        w.write_all(b"\n")?;
        for r in &rows {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
            .with_context(|| format!("syncing {}", to.display()))?;
    }
    let removed = store
        .drop_archived_audit(
            last.seq,
            &last.hash,
            &to.display().to_string(),
            crate::clock::now_ms(),
        )
        .await?;
    Ok(Archived {
        rows: removed,
        first_seq: first.seq,
        last_seq: last.seq,
        last_hash: last.hash.clone(),
    })
}

/// Checks `files` in order from the genesis; returns the last row's (seq, hash) and the rows.
pub fn verify_archives(files: &[PathBuf]) -> anyhow::Result<(i64, String, u64)> {
    let (mut seq, mut hash, mut total) = (0i64, GENESIS.to_owned(), 0u64);
    for path in files {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut lines = std::io::BufReader::new(file).lines();
        let first = lines
            .next()
            .transpose()?
            .with_context(|| format!("{} is empty", path.display()))?;
        let header: Header = serde_json::from_str(&first)
            .with_context(|| format!("{} is not an audit archive", path.display()))?;
        if header.after_seq != seq || header.after_hash != hash {
            bail!(
                "{} continues after seq {}, but the archives before it end at seq {seq}: give every archive, oldest first",
                path.display(),
                header.after_seq
            );
        }
        let mut rows = 0u64;
        for (n, line) in lines.enumerate() {
            let line = line?;
            let r: ArchivedRow = serde_json::from_str(&line).with_context(|| {
                format!("{} line {} is not an audit row", path.display(), n + 2)
            })?;
            if r.seq != seq + 1 {
                bail!(
                    "{} line {}: sequence jumps from {seq} to {}: rows are missing",
                    path.display(),
                    n + 2,
                    r.seq
                );
            }
            if r.recompute(&hash) != r.hash {
                bail!(
                    "{} line {} (seq {}): the hash does not match the row and the one before it: the archive was changed",
                    path.display(),
                    n + 2,
                    r.seq
                );
            }
            seq = r.seq;
            hash = r.hash;
            rows += 1;
        }
        if rows != header.rows {
            bail!(
                "{} holds {rows} rows but says {}: it was cut short",
                path.display(),
                header.rows
            );
        }
        total += rows;
    }
    Ok((seq, hash, total))
}
