//! Change notices across server replicas: each replica's changes go out as PostgreSQL
//! `NOTIFY lockerfleet_changes` and every other replica tells its own live views, so a console
//! following one replica sees what another one ingested or did (external broker mode).
//!
//! Notices are hints (the console refetches what it shows, and every 15 s anyway): a lost
//! one costs a refetch. They are batched for [`GATHER`] and de-duplicated, so a busy replica
//! sends a few notifications a second, not one per event batch.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::changes::{Change, Changes};

const CHANNEL: &str = "lockerfleet_changes";
/// Changes are gathered this long before one notification carries them.
const GATHER: Duration = Duration::from_millis(50);
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7_000;

#[derive(Serialize, Deserialize)]
struct Notice {
    /// The sending replica, so it skips its own.
    origin: u64,
    changes: Vec<Change>,
}

/// Starts both halves: sending this replica's changes, receiving the others'.
pub(crate) fn start(
    url: &str,
    rx: mpsc::Receiver<Change>,
    changes: Changes,
    tracker: &tokio_util::task::TaskTracker,
    cancel: CancellationToken,
) {
    let origin = rand::random::<u64>();
    tracker.spawn(send(url.to_owned(), origin, rx, cancel.clone()));
    tracker.spawn(receive(url.to_owned(), origin, changes, cancel));
}

async fn send(url: String, origin: u64, mut rx: mpsc::Receiver<Change>, cancel: CancellationToken) {
    let pool = match PgPoolOptions::new().max_connections(1).connect_lazy(&url) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "change notices to other replicas disabled: bad database URL");
            return;
        }
    };
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            c = rx.recv() => match c {
                Some(c) => c,
                None => return,
            },
        };
        tokio::time::sleep(GATHER).await;
        let mut batch = vec![first];
        while let Ok(c) = rx.try_recv() {
            if !batch.contains(&c) {
                batch.push(c);
            }
        }
        for payload in payloads(origin, batch) {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "change notice not sent to other replicas");
            }
        }
    }
}

/// The batch as notifications under PostgreSQL's payload limit.
fn payloads(origin: u64, changes: Vec<Change>) -> Vec<String> {
    let mut out = Vec::new();
    let mut chunk: Vec<Change> = Vec::new();
    let encode = |changes: &[Change]| {
        serde_json::to_string(&Notice {
            origin,
            changes: changes.to_vec(),
        })
        .unwrap_or_default()
    };
    for c in changes {
        chunk.push(c);
        if encode(&chunk).len() > MAX_PAYLOAD {
            let last = chunk.pop();
            if !chunk.is_empty() {
                out.push(encode(&chunk));
            }
            chunk = last.into_iter().collect();
        }
    }
    if !chunk.is_empty() {
        out.push(encode(&chunk));
    }
    out
}

async fn receive(url: String, origin: u64, changes: Changes, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let listener = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = tokio::select! {
            _ = cancel.cancelled() => return,
            l = listener => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(200);
        loop {
            let n = tokio::select! {
                _ = cancel.cancelled() => return,
                n = listener.recv() => n,
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the other replicas' changes; listening again");
                    break;
                }
            };
            match serde_json::from_str::<Notice>(n.payload()) {
                Ok(notice) if notice.origin != origin => {
                    for c in notice.changes {
                        changes.send_local(c);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "unreadable change notice ignored"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_stay_under_the_payload_limit_and_keep_every_change() {
        let many: Vec<Change> = (0..500)
            .map(|i| Change::Device {
                device_id: format!("hall-a-cab-{i:04}"),
            })
            .collect();
        let out = payloads(7, many.clone());
        assert!(out.len() > 1);
        let mut back = Vec::new();
        for p in &out {
            assert!(p.len() <= MAX_PAYLOAD, "{}", p.len());
            let n: Notice = serde_json::from_str(p).expect("json");
            assert_eq!(n.origin, 7);
            back.extend(n.changes);
        }
        assert_eq!(back, many);
    }
}
