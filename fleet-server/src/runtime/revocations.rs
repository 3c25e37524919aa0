//! Certificate revocation while running: `crl.pem` in the certificates directory is re-read
//! when it changes; new connections are verified against it, and the live sessions of newly
//! revoked devices are closed (`fleet-certs revoke`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use broker::{Downlink, TlsHandle};
use tokio_util::sync::CancellationToken;

/// How often the file's modification time is looked at.
pub(crate) const POLL: Duration = Duration::from_secs(2);

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Serial numbers revoked so far, as `revoked.txt` lists them.
fn serials(dir: &std::path::Path) -> HashSet<String> {
    certs::revocations(dir)
        .map(|list| list.into_iter().map(|r| r.serial_hex).collect())
        .unwrap_or_default()
}

pub(crate) async fn watch(
    dir: PathBuf,
    tls: TlsHandle,
    downlink: Downlink,
    cancel: CancellationToken,
) {
    let crl = dir.join(certs::CRL);
    let mut seen = modified(&crl);
    let mut known = serials(&dir);
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = modified(&crl);
        if now == seen {
            continue;
        }
        seen = now;
        let d = dir.clone();
        let built = tokio::task::spawn_blocking(move || {
            broker::server_tls(&d).map(|cfg| (cfg, certs::revocations(&d)))
        })
        .await;
        match built {
            Ok(Ok((config, list))) => {
                tls.set(config);
                let list = list.unwrap_or_default();
                let mut closed = Vec::new();
                for r in &list {
                    // Only certificates revoked since the last reading: a device that got a
                    // new certificate after an earlier revocation keeps its session.
                    if !known.contains(&r.serial_hex) && downlink.evict(&r.device) {
                        closed.push(r.device.to_string());
                    }
                }
                known = list.into_iter().map(|r| r.serial_hex).collect();
                tracing::warn!(
                    revoked = known.len(),
                    ?closed,
                    "certificate revocation list reloaded; new connections are checked against it"
                );
            }
            Ok(Err(e)) => tracing::error!(file = %crl.display(), error = %e,
                "revocation list not applied; the previous one stays in force until the file is fixed"),
            Err(e) => tracing::error!(error = %e, "revocation list reload failed"),
        }
    }
}
