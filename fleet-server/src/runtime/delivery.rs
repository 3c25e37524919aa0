//! Release delivery over the device port: answers a device's `fetch` request with one chunk of
//! an available release, and `unavailable` for a release that is withdrawn, unknown or has no
//! binary. The bytes served are bounded per second for the whole server, so a rollout never
//! starves events and commands of the device port.
//!
//! A binary being rolled out is read from the database once and its chunks served from
//! memory ([`Binaries`]): reading each 64 KiB chunk with `substr` made SQLite load the whole
//! blob every time (a 12 MiB release, 192 times over), which held one core at 100% and the
//! rollout at half its budget (BENCHMARKS.md, Rollouts).

use std::sync::Arc;
use std::time::Duration;

use protocol::release::Version;
use protocol::{Channel, DeviceId, FetchRequest, Update, UpdateBody};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::devices::Publisher;
use crate::metrics::Metrics;
use crate::store::{ReleaseRow, ReleaseState, Store};

/// Binaries kept in memory at most (the rollouts under way); a larger one is read per chunk.
const CACHE_BYTES: usize = 128 * 1024 * 1024;
/// A cached release's row is read again after this, so a withdrawal stops its delivery
/// within this time.
const RECHECK: Duration = Duration::from_secs(2);

/// One release as the delivery task knows it.
struct Cached {
    target: String,
    version: Version,
    row: ReleaseRow,
    checked: Instant,
    used: Instant,
    /// The whole binary, when it fits the cache.
    bytes: Option<Arc<Vec<u8>>>,
}

/// The releases being served, newest use last.
#[derive(Default)]
struct Binaries {
    cached: Vec<Cached>,
}

impl Binaries {
    fn held(&self) -> usize {
        self.cached
            .iter()
            .filter_map(|c| c.bytes.as_ref().map(|b| b.len()))
            .sum()
    }

    /// The release's row (read again after [`RECHECK`]) and its cached binary if any.
    async fn get(
        &mut self,
        store: &Store,
        target: &str,
        version: Version,
    ) -> Result<(ReleaseRow, Option<Arc<Vec<u8>>>), String> {
        let now = Instant::now();
        let at = self
            .cached
            .iter()
            .position(|c| c.target == target && c.version == version);
        if let Some(i) = at
            && now.duration_since(self.cached[i].checked) < RECHECK
        {
            let c = &mut self.cached[i];
            c.used = now;
            return Ok((c.row.clone(), c.bytes.clone()));
        }
        let row = match store.release(target, version).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                self.cached
                    .retain(|c| !(c.target == target && c.version == version));
                return Err("no such release on this server".into());
            }
            Err(e) => {
                tracing::error!(error = %e, "reading a release failed");
                return Err("the server cannot read its releases now; retry later".into());
            }
        };
        if row.state() != ReleaseState::Available {
            self.cached
                .retain(|c| !(c.target == target && c.version == version));
            return Ok((row, None));
        }
        if let Some(i) = at {
            let c = &mut self.cached[i];
            c.row = row.clone();
            c.checked = now;
            c.used = now;
            return Ok((row, c.bytes.clone()));
        }
        let size = usize::try_from(row.manifest.size).unwrap_or(usize::MAX);
        let bytes = if size <= CACHE_BYTES {
            // Room first: the least recently used go.
            while self.held() + size > CACHE_BYTES && !self.cached.is_empty() {
                if let Some((i, _)) = self.cached.iter().enumerate().min_by_key(|(_, c)| c.used) {
                    self.cached.remove(i);
                }
            }
            match store.release_binary(target, version).await {
                Ok(Some(b)) => Some(Arc::new(b)),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %e, "reading a release binary failed");
                    return Err("the server cannot read its releases now; retry later".into());
                }
            }
        } else {
            None
        };
        self.cached.push(Cached {
            target: target.to_owned(),
            version,
            row: row.clone(),
            checked: now,
            used: now,
            bytes: bytes.clone(),
        });
        Ok((row, bytes))
    }
}

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
    let mut binaries = Binaries::default();
    while let Some((device, req)) = rx.recv().await {
        let answer = match serve(&store, &mut binaries, &req).await {
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
async fn serve(
    store: &Store,
    binaries: &mut Binaries,
    req: &FetchRequest,
) -> Result<(u64, Vec<u8>), String> {
    let version = Version::parse(&req.version)?;
    let (row, cached) = binaries.get(store, &req.target, version).await?;
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
    if let Some(bytes) = cached {
        let from = usize::try_from(req.offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let to = from.saturating_add(req.len as usize).min(bytes.len());
        return match bytes.get(from..to) {
            Some(chunk) if !chunk.is_empty() => Ok((size, chunk.to_vec())),
            _ => Err("its binary is missing".into()),
        };
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
    use super::*;
    use protocol::release::{Manifest, SignedRelease};

    #[tokio::test]
    async fn chunks_come_from_one_read_and_a_withdrawal_stops_them_at_the_next_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.expect("store");
        let binary: Vec<u8> = (0..=255u8).cycle().take(150_000).collect();
        let seed = [7u8; 32];
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
        let m = Manifest {
            v: 1,
            version: Version::parse("0.3.0").expect("version"),
            target: "x86_64-unknown-linux-gnu".into(),
            size: binary.len() as u64,
            sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &binary)),
            min_server_version: Version::parse("0.1.0").expect("version"),
            notes: String::new(),
        };
        store
            .register_release(&m, &SignedRelease::sign(&m, &key), "admin", 1)
            .await
            .expect("register");
        store
            .store_release_binary(&m.target, m.version, &binary, "admin", 2)
            .await
            .expect("binary");
        let ask = |offset: u64| FetchRequest {
            v: 1,
            target: m.target.clone(),
            version: "0.3.0".into(),
            offset,
            len: 65_536,
        };
        let mut bins = Binaries::default();
        let mut back = Vec::new();
        while (back.len() as u64) < m.size {
            let (size, chunk) = serve(&store, &mut bins, &ask(back.len() as u64))
                .await
                .expect("chunk");
            assert_eq!(size, m.size);
            back.extend(chunk);
        }
        assert_eq!(
            back, binary,
            "the last chunk is short, the bytes are the stored ones"
        );
        assert_eq!(bins.held(), binary.len(), "read once, kept whole");
        let past = serve(&store, &mut bins, &ask(m.size)).await;
        assert!(past.is_err_and(|e| e.contains("past the end")));

        store
            .withdraw_release(&m.target, m.version, "admin", "crashes", 3)
            .await
            .expect("withdraw");
        // Until the next check the cached row still serves; then the withdrawal is seen.
        assert!(serve(&store, &mut bins, &ask(0)).await.is_ok());
        bins.cached[0].checked -= RECHECK;
        let refused = serve(&store, &mut bins, &ask(0)).await;
        assert!(refused.is_err_and(|e| e.starts_with("withdrawn: crashes")));
        assert_eq!(bins.held(), 0, "a withdrawn release leaves the cache");
        store.close().await;
    }

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
