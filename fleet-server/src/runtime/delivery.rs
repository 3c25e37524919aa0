//! Release delivery over the device port: answers a device's `fetch` request with one chunk of
//! an available release, read from the database, and `unavailable` for a release that is
//! withdrawn, unknown or has no binary. The bytes served are bounded per second for the whole
//! server, so a rollout never starves events and commands of the device port.

use std::time::Duration;

use protocol::release::Version;
use protocol::{Channel, DeviceId, FetchRequest, Update, UpdateBody};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::devices::Publisher;
use crate::metrics::Metrics;
use crate::store::{ReleaseState, Store};

/// A token bucket of bytes: at most `per_sec` bytes a second, in bursts of one second's worth.
struct Bandwidth {
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl Bandwidth {
    fn new(per_sec: u64) -> Bandwidth {
        let per_sec = per_sec.max(1) as f64;
        Bandwidth {
            per_sec,
            tokens: per_sec,
            at: Instant::now(),
        }
    }

    /// Waits until `n` bytes may go.
    async fn take(&mut self, n: usize) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_sec)
            .min(self.per_sec);
        self.at = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / self.per_sec)).await;
        }
    }
}

pub(crate) async fn run(
    mut rx: mpsc::Receiver<(DeviceId, FetchRequest)>,
    publisher: Publisher,
    store: Store,
    metrics: Metrics,
    bytes_per_sec: u64,
) {
    let mut bandwidth = Bandwidth::new(bytes_per_sec);
    while let Some((device, req)) = rx.recv().await {
        let answer = match serve(&store, &req).await {
            Ok((size, bytes)) => {
                bandwidth.take(bytes.len()).await;
                metrics.release_bytes_served.inc_by(bytes.len() as u64);
                Update::chunk(&req.target, &req.version, req.offset, size, &bytes)
            }
            Err(reason) => {
                tracing::warn!(%device, target = %req.target, version = %req.version, %reason,
                    "release fetch refused");
                Update {
                    v: protocol::PROTOCOL_VERSION,
                    body: UpdateBody::Unavailable {
                        target: req.target.clone(),
                        version: req.version.clone(),
                        reason,
                    },
                }
            }
        };
        publisher.publish(&device, Channel::Update, protocol::encode(&answer));
    }
}

/// The release's size and the bytes asked for, or why not.
async fn serve(store: &Store, req: &FetchRequest) -> Result<(u64, Vec<u8>), String> {
    let version = Version::parse(&req.version)?;
    let row = match store.release(&req.target, version).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err("no such release on this server".into()),
        Err(e) => {
            tracing::error!(error = %e, "reading a release failed");
            return Err("the server cannot read its releases now; retry later".into());
        }
    };
    match row.state() {
        ReleaseState::Available => {}
        ReleaseState::Withdrawn => {
            return Err(format!(
                "withdrawn: {}",
                row.withdraw_note.unwrap_or_default()
            ));
        }
        ReleaseState::AwaitingBinary => return Err("its binary is not uploaded".into()),
    }
    let size = row.manifest.size;
    if req.offset >= size {
        return Err(format!(
            "offset {} is past the end ({size} bytes)",
            req.offset
        ));
    }
    match store
        .release_chunk(&req.target, version, req.offset, req.len)
        .await
    {
        Ok(Some(bytes)) if !bytes.is_empty() => Ok((size, bytes)),
        Ok(_) => Err("its binary is missing".into()),
        Err(e) => {
            tracing::error!(error = %e, "reading a release chunk failed");
            Err("the server cannot read its releases now; retry later".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bandwidth;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn bandwidth_is_bounded_after_the_first_seconds_burst() {
        let mut b = Bandwidth::new(1_000);
        let start = tokio::time::Instant::now();
        b.take(1_000).await;
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "a second's worth at once"
        );
        for _ in 0..4 {
            b.take(500).await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1_990) && took <= Duration::from_millis(2_100),
            "{took:?}"
        );
    }
}
