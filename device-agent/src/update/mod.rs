//! Agent releases on the cabinet: an offer from the server is checked (signature by a release
//! key this cabinet trusts, target, newer than what runs unless a rollback), then fetched one
//! chunk at a time into `{data_dir}/releases/{version}/`, resuming from the bytes already
//! there after a disconnect or a restart, and verified against the signed manifest before it
//! counts as staged. An offer to install then waits for its maintenance window and an idle
//! cabinet (`install.rs`) and hands over to the supervisor (`layout.rs`,
//! `crate::supervisor`), which runs the new version on trial. Each step is reported as a
//! durable `release` event.

pub(crate) mod install;
pub(crate) mod layout;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protocol::release::{
    MaintenanceWindow, Manifest, Refusal, SignedRelease, TrustedKeys, Version,
};
use protocol::{EventBody, FetchRequest, ReleaseProgress};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use layout::{BINARY, InstallRequest};

/// The target triple this agent was built for.
pub(crate) const TARGET: &str = env!("LOCKERFLEET_TARGET");
/// A chunk not answered within this time is asked for again (server messages may be lost).
const ASK_AGAIN: Duration = Duration::from_secs(5);
/// The offer being fetched or waiting to be installed, kept so a restart carries on.
pub(crate) const OFFER: &str = "offer.json";

/// What the caller does next.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Fetch(FetchRequest),
    Report(EventBody),
    /// Hand over to the supervisor: write the request, stop, exit for the switch.
    Install(InstallRequest),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Offer {
    release: SignedRelease,
    rollback: bool,
    #[serde(default)]
    install: bool,
    #[serde(default)]
    window: Option<MaintenanceWindow>,
}

/// A staged release to install once the window is open and the cabinet idle.
#[derive(Debug)]
struct Pending {
    manifest: Manifest,
    window: Option<MaintenanceWindow>,
    /// What the last `waiting` report said (window or busy), so it is said once per change.
    said: Option<Wait>,
}

/// Why an install waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Window,
    Busy,
}

#[derive(Debug)]
struct Fetching {
    manifest: Manifest,
    have: u64,
    asked_at: Option<Instant>,
}

pub(crate) struct Staging {
    dir: PathBuf,
    keys: Option<TrustedKeys>,
    running: Version,
    current: Option<Fetching>,
    pending: Option<Pending>,
}

fn report(version: &str, state: ReleaseProgress, reason: Option<String>) -> Step {
    Step::Report(EventBody::Release {
        version: version.chars().take(32).collect(),
        state,
        reason: reason.map(|r| r.chars().take(500).collect()),
    })
}

fn refused(version: &str, why: &Refusal) -> Step {
    report(
        version,
        ReleaseProgress::Refused,
        Some(format!("{}: {why}", why.reason())),
    )
}

impl Staging {
    /// Staging under `{data_dir}/releases`, carrying on with a fetch or an install a previous
    /// run left unfinished.
    pub(crate) async fn load(
        data_dir: &Path,
        keys: Option<TrustedKeys>,
        running: Version,
    ) -> Staging {
        let mut s = Staging {
            dir: data_dir.join("releases"),
            keys,
            running,
            current: None,
            pending: None,
        };
        let Ok(text) = tokio::fs::read(s.dir.join(OFFER)).await else {
            return s;
        };
        let offer = match serde_json::from_slice::<Offer>(&text) {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable unfinished release offer dropped");
                let _ = tokio::fs::remove_file(s.dir.join(OFFER)).await;
                return s;
            }
        };
        let Ok(manifest) = s.check(&offer) else {
            // Spent (this is the version it offered) or no longer acceptable.
            let _ = tokio::fs::remove_file(s.dir.join(OFFER)).await;
            return s;
        };
        if s.is_staged(&manifest).await {
            if offer.install {
                s.pending = Some(Pending {
                    manifest,
                    window: offer.window,
                    said: None,
                });
            }
        } else {
            let have = s.part_len(&manifest).await;
            tracing::info!(version = %manifest.version, from = have, "resuming a release fetch");
            s.current = Some(Fetching {
                manifest,
                have,
                asked_at: None,
            });
        }
        s
    }

    /// The binary is in place with the signed size (its hash was checked when it was
    /// staged, and the supervisor checks it again before the switch).
    async fn is_staged(&self, m: &Manifest) -> bool {
        tokio::fs::metadata(self.version_dir(m).join(BINARY))
            .await
            .is_ok_and(|md| md.len() == m.size)
    }

    fn version_dir(&self, m: &Manifest) -> PathBuf {
        self.dir.join(m.version.to_string())
    }

    fn part(&self, m: &Manifest) -> PathBuf {
        self.version_dir(m).join(format!("{BINARY}.part"))
    }

    async fn part_len(&self, m: &Manifest) -> u64 {
        tokio::fs::metadata(self.part(m))
            .await
            .map(|md| md.len())
            .unwrap_or(0)
    }

    fn check(&self, offer: &Offer) -> Result<Manifest, Refusal> {
        let keys = self.keys.as_ref().ok_or_else(|| {
            Refusal::UnknownKey(format!(
                "{} (this cabinet trusts no release key: set release_keys)",
                offer.release.key_id.chars().take(32).collect::<String>()
            ))
        })?;
        let manifest = offer.release.verify(keys)?;
        manifest.check_install(TARGET, self.running, offer.rollback)?;
        Ok(manifest)
    }

    fn ask(&mut self) -> Option<Step> {
        let f = self.current.as_mut()?;
        let left = f.manifest.size.saturating_sub(f.have);
        if left == 0 {
            return None;
        }
        f.asked_at = Some(Instant::now());
        Some(Step::Fetch(FetchRequest {
            v: protocol::PROTOCOL_VERSION,
            target: f.manifest.target.clone(),
            version: f.manifest.version.to_string(),
            offset: f.have,
            len: left.min(u64::from(protocol::message::MAX_CHUNK)) as u32,
        }))
    }

    /// The server offers a release.
    pub(crate) async fn offer(
        &mut self,
        release: SignedRelease,
        rollback: bool,
        install: bool,
        window: Option<MaintenanceWindow>,
    ) -> Vec<Step> {
        let offer = Offer {
            release,
            rollback,
            install,
            window,
        };
        let label = serde_json::from_str::<serde_json::Value>(&offer.release.manifest)
            .ok()
            .and_then(|m| m["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        let manifest = match self.check(&offer) {
            Ok(m) => m,
            Err(why) => {
                tracing::warn!(version = %label, reason = why.reason(), error = %why, "release refused");
                return vec![refused(&label, &why)];
            }
        };
        let version = manifest.version.to_string();
        if self
            .current
            .as_ref()
            .is_some_and(|f| f.manifest == manifest)
        {
            // The same offer again (the server retried): carry on where we are.
            return self.ask().into_iter().collect();
        }
        if let Err(e) = self.start(&offer, &manifest).await {
            tracing::error!(error = %e, %version, "cannot stage the release");
            return vec![report(
                &version,
                ReleaseProgress::Refused,
                Some(format!("storage: {e}")),
            )];
        }
        let staged = self.version_dir(&manifest).join(BINARY);
        if let Ok(bytes) = tokio::fs::read(&staged).await
            && manifest.check_binary(&bytes).is_ok()
        {
            self.current = None;
            return self.staged(manifest, &offer).await;
        }
        let have = self.part_len(&manifest).await;
        self.pending = None;
        self.current = Some(Fetching {
            manifest,
            have,
            asked_at: None,
        });
        tracing::info!(%version, from = have, "fetching a release");
        let mut steps = vec![report(&version, ReleaseProgress::Downloading, None)];
        steps.extend(self.ask());
        steps
    }

    /// The release is staged: done, or on to the install.
    async fn staged(&mut self, manifest: Manifest, offer: &Offer) -> Vec<Step> {
        let version = manifest.version.to_string();
        if offer.install {
            self.pending = Some(Pending {
                manifest,
                window: offer.window.clone(),
                said: None,
            });
        } else {
            let _ = tokio::fs::remove_file(self.dir.join(OFFER)).await;
        }
        vec![report(&version, ReleaseProgress::Downloaded, None)]
    }

    async fn start(&self, offer: &Offer, manifest: &Manifest) -> std::io::Result<()> {
        tokio::fs::create_dir_all(self.version_dir(manifest)).await?;
        let text = serde_json::to_vec(offer).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!("{OFFER}.tmp"));
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, self.dir.join(OFFER)).await
    }

    /// Bytes the server sent.
    pub(crate) async fn chunk(
        &mut self,
        target: &str,
        version: &str,
        offset: u64,
        data: &[u8],
    ) -> Vec<Step> {
        let Some(f) = &self.current else {
            return Vec::new();
        };
        if f.manifest.target != target || f.manifest.version.to_string() != version {
            return Vec::new();
        }
        if offset != f.have {
            // A duplicate or late answer to an earlier ask: the bytes we need come next.
            return Vec::new();
        }
        let manifest = f.manifest.clone();
        if offset + data.len() as u64 > manifest.size || data.is_empty() {
            return self
                .abandon(&Refusal::Tampered(format!(
                    "a chunk at {offset} of {} bytes runs past the signed size {}",
                    data.len(),
                    manifest.size
                )))
                .await;
        }
        if let Err(e) = self.append(&manifest, data).await {
            tracing::error!(error = %e, "cannot write the release; asking again");
            return self.ask().into_iter().collect();
        }
        let have = offset + data.len() as u64;
        if let Some(f) = self.current.as_mut() {
            f.have = have;
        }
        if have < manifest.size {
            return self.ask().into_iter().collect();
        }
        self.finish(&manifest).await
    }

    async fn append(&self, m: &Manifest, data: &[u8]) -> std::io::Result<()> {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.part(m))
            .await?;
        file.write_all(data).await?;
        file.flush().await
    }

    /// Every byte is here: verify, then keep it as `releases/{version}/device-agent`.
    async fn finish(&mut self, m: &Manifest) -> Vec<Step> {
        let version = m.version.to_string();
        let bytes = match tokio::fs::read(self.part(m)).await {
            Ok(b) => b,
            Err(e) => {
                return vec![report(
                    &version,
                    ReleaseProgress::Refused,
                    Some(format!("storage: {e}")),
                )];
            }
        };
        if let Err(why) = m.check_binary(&bytes) {
            return self.abandon(&why).await;
        }
        let staged = self.version_dir(m).join(BINARY);
        let done = async {
            tokio::fs::rename(self.part(m), &staged).await?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                tokio::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).await?;
            }
            let offer = tokio::fs::read(self.dir.join(OFFER)).await?;
            serde_json::from_slice::<Offer>(&offer).map_err(std::io::Error::other)
        };
        let offer = match done.await {
            Ok(o) => o,
            Err(e) => {
                return vec![report(
                    &version,
                    ReleaseProgress::Refused,
                    Some(format!("storage: {e}")),
                )];
            }
        };
        self.current = None;
        tracing::info!(%version, path = %staged.display(), "release staged");
        self.staged(m.clone(), &offer).await
    }

    /// Gives up the current fetch: its bytes are dropped and the refusal reported.
    async fn abandon(&mut self, why: &Refusal) -> Vec<Step> {
        let Some(f) = self.current.take() else {
            return Vec::new();
        };
        let _ = tokio::fs::remove_file(self.part(&f.manifest)).await;
        let _ = tokio::fs::remove_file(self.dir.join(OFFER)).await;
        tracing::warn!(version = %f.manifest.version, reason = why.reason(), error = %why, "release refused");
        vec![refused(&f.manifest.version.to_string(), why)]
    }

    /// The server will not serve the release being fetched.
    pub(crate) async fn unavailable(
        &mut self,
        target: &str,
        version: &str,
        reason: &str,
    ) -> Vec<Step> {
        let Some(f) = &self.current else {
            return Vec::new();
        };
        if f.manifest.target != target || f.manifest.version.to_string() != version {
            return Vec::new();
        }
        let f = self.current.take();
        let _ = tokio::fs::remove_file(self.dir.join(OFFER)).await;
        if let Some(f) = f {
            let _ = tokio::fs::remove_file(self.part(&f.manifest)).await;
        }
        vec![report(
            version,
            ReleaseProgress::Refused,
            Some(format!("unavailable: {reason}")),
        )]
    }

    /// Whether a staged release waits to be installed.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A staged release may be installed when the window is open (at `now_ms`, the agent's
    /// clock) and nothing keeps the cabinet `busy`; an agent without a supervisor cannot.
    pub(crate) async fn install_step(
        &mut self,
        now_ms: i64,
        busy: Option<String>,
        supervised: bool,
    ) -> Vec<Step> {
        let Some(p) = self.pending.as_mut() else {
            return Vec::new();
        };
        let version = p.manifest.version.to_string();
        if !supervised {
            self.pending = None;
            let _ = tokio::fs::remove_file(self.dir.join(OFFER)).await;
            return vec![report(
                &version,
                ReleaseProgress::Failed,
                Some(
                    "this agent does not run under `device-agent supervise` (the shipped \
                     systemd unit does), so it cannot switch versions; the release stays staged"
                        .into(),
                ),
            )];
        }
        let (wait, why) = match (&p.window, busy) {
            (Some(w), _) if !w.contains(now_ms) => {
                (Wait::Window, format!("outside the maintenance window {w}"))
            }
            (_, Some(busy)) => (Wait::Busy, format!("cabinet busy: {busy}")),
            _ => {
                let Some(p) = self.pending.take() else {
                    return Vec::new();
                };
                tracing::info!(%version, "idle inside the window: installing");
                return vec![
                    report(&version, ReleaseProgress::Installing, None),
                    Step::Install(InstallRequest {
                        version,
                        sha256: p.manifest.sha256,
                    }),
                ];
            }
        };
        if p.said == Some(wait) {
            return Vec::new();
        }
        p.said = Some(wait);
        tracing::info!(%version, reason = %why, "install waits");
        vec![report(&version, ReleaseProgress::Waiting, Some(why))]
    }

    /// After a (re)connect: ask again for what a fetch in progress needs next.
    pub(crate) fn resume(&mut self) -> Option<Step> {
        self.ask()
    }

    /// Periodically: a chunk not answered in time is asked for again.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Step> {
        let due = self
            .current
            .as_ref()
            .and_then(|f| f.asked_at)
            .is_some_and(|t| now.duration_since(t) >= ASK_AGAIN);
        if due { self.ask() } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn key() -> Ed25519KeyPair {
        let seed = [3u8; 32];
        let public = Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
        let pk = public.public_key().as_ref().to_vec();
        Ed25519KeyPair::from_seed_and_public_key(&seed, &pk).expect("pair")
    }

    fn signed(version: &str, target: &str, binary: &[u8]) -> SignedRelease {
        let m = Manifest {
            v: 1,
            version: Version::parse(version).expect("version"),
            target: target.into(),
            size: binary.len() as u64,
            sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, binary)),
            min_server_version: Version::parse("0.1.0").expect("version"),
            notes: String::new(),
        };
        SignedRelease::sign(&m, &key())
    }

    async fn staging(dir: &Path) -> Staging {
        let keys = TrustedKeys::new([protocol::release::PublicKey::of(&key())]);
        Staging::load(dir, Some(keys), Version::parse("0.1.0").expect("v")).await
    }

    fn state(steps: &[Step]) -> Vec<(ReleaseProgress, Option<String>)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Report(EventBody::Release { state, reason, .. }) => Some((
                    *state,
                    reason
                        .as_ref()
                        .map(|r| r.split(':').next().unwrap_or("").to_owned()),
                )),
                _ => None,
            })
            .collect()
    }

    fn fetch(steps: &[Step]) -> Option<(u64, u32)> {
        steps.iter().find_map(|s| match s {
            Step::Fetch(f) => Some((f.offset, f.len)),
            _ => None,
        })
    }

    #[tokio::test]
    async fn a_release_is_fetched_in_chunks_resumed_after_a_restart_and_verified() {
        let dir = tempfile::tempdir().expect("dir");
        let binary: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
        let mut s = staging(dir.path()).await;
        let steps = s
            .offer(signed("0.2.0", TARGET, &binary), false, false, None)
            .await;
        assert_eq!(state(&steps), [(ReleaseProgress::Downloading, None)]);
        assert_eq!(fetch(&steps), Some((0, 65_536)));
        let steps = s.chunk(TARGET, "0.2.0", 0, &binary[..65_536]).await;
        assert_eq!(fetch(&steps), Some((65_536, 65_536)));
        // A duplicate of the first chunk changes nothing.
        assert!(
            s.chunk(TARGET, "0.2.0", 0, &binary[..65_536])
                .await
                .is_empty()
        );

        // The agent restarts: it resumes from the bytes it has.
        let mut s = staging(dir.path()).await;
        let steps: Vec<Step> = s.resume().into_iter().collect();
        assert_eq!(fetch(&steps), Some((65_536, 65_536)));
        let steps = s
            .chunk(TARGET, "0.2.0", 65_536, &binary[65_536..131_072])
            .await;
        assert_eq!(fetch(&steps), Some((131_072, 150_000 - 131_072)));
        let steps = s.chunk(TARGET, "0.2.0", 131_072, &binary[131_072..]).await;
        assert_eq!(state(&steps), [(ReleaseProgress::Downloaded, None)]);
        let staged = dir.path().join("releases/0.2.0/device-agent");
        assert_eq!(std::fs::read(&staged).expect("staged"), binary);
        // Offered again once staged: reported staged at once, nothing fetched.
        let steps = s
            .offer(signed("0.2.0", TARGET, &binary), false, false, None)
            .await;
        assert_eq!(state(&steps), [(ReleaseProgress::Downloaded, None)]);
        assert_eq!(fetch(&steps), None);
    }

    #[tokio::test]
    async fn bad_releases_and_bad_bytes_are_refused_with_their_reason() {
        let dir = tempfile::tempdir().expect("dir");
        let binary = vec![7u8; 1_000];
        let mut s = staging(dir.path()).await;
        let other = if TARGET == "aarch64-unknown-linux-gnu" {
            "x86_64-unknown-linux-gnu"
        } else {
            "aarch64-unknown-linux-gnu"
        };
        for (release, reason) in [
            (signed("0.2.0", other, &binary), "wrong_target"),
            (signed("0.1.0", TARGET, &binary), "downgrade"),
            (
                SignedRelease {
                    signature: String::new(),
                    ..signed("0.2.0", TARGET, &binary)
                },
                "unsigned",
            ),
        ] {
            let steps = s.offer(release, false, false, None).await;
            assert_eq!(
                state(&steps),
                [(ReleaseProgress::Refused, Some(reason.to_owned()))]
            );
        }
        let mut untrusting =
            Staging::load(dir.path(), None, Version::parse("0.1.0").expect("v")).await;
        let steps = untrusting
            .offer(signed("0.2.0", TARGET, &binary), false, false, None)
            .await;
        assert_eq!(
            state(&steps),
            [(ReleaseProgress::Refused, Some("unknown_key".to_owned()))]
        );

        // Bytes that are not the signed ones: refused when complete, and dropped.
        s.offer(signed("0.2.0", TARGET, &binary), false, false, None)
            .await;
        let steps = s.chunk(TARGET, "0.2.0", 0, &[8u8; 1_000]).await;
        assert_eq!(
            state(&steps),
            [(ReleaseProgress::Refused, Some("tampered".to_owned()))]
        );
        assert!(!dir.path().join("releases/0.2.0/device-agent.part").exists());
        // The server withdraws what is being fetched.
        s.offer(signed("0.2.0", TARGET, &binary), false, false, None)
            .await;
        let steps = s.unavailable(TARGET, "0.2.0", "withdrawn").await;
        assert_eq!(
            state(&steps),
            [(ReleaseProgress::Refused, Some("unavailable".to_owned()))]
        );
    }

    #[tokio::test]
    async fn an_install_waits_for_its_window_and_an_idle_cabinet_and_needs_a_supervisor() {
        let dir = tempfile::tempdir().expect("dir");
        let binary = vec![9u8; 2_000];
        let mut s = staging(dir.path()).await;
        let night = MaintenanceWindow {
            from: "02:00".into(),
            to: "05:00".into(),
            utc_offset_minutes: 0,
        };
        let at = |h: i64| h * 3_600_000;
        let steps = s
            .offer(signed("0.2.0", TARGET, &binary), false, true, Some(night))
            .await;
        assert_eq!(fetch(&steps), Some((0, 2_000)));
        let steps = s.chunk(TARGET, "0.2.0", 0, &binary).await;
        assert_eq!(state(&steps), [(ReleaseProgress::Downloaded, None)]);
        assert!(s.has_pending());

        // Outside the window: said once, however often asked.
        let steps = s.install_step(at(12), None, true).await;
        assert_eq!(
            state(&steps),
            [(
                ReleaseProgress::Waiting,
                Some("outside the maintenance window 02".into())
            )]
        );
        assert!(s.install_step(at(13), None, true).await.is_empty());
        // Inside it but busy.
        let steps = s
            .install_step(at(3), Some("door 2 open".into()), true)
            .await;
        assert_eq!(
            state(&steps),
            [(ReleaseProgress::Waiting, Some("cabinet busy".into()))]
        );
        // A restart keeps the staged release waiting.
        let mut s = staging(dir.path()).await;
        assert!(s.has_pending());
        let steps = s.install_step(at(3), None, true).await;
        assert_eq!(state(&steps), [(ReleaseProgress::Installing, None)]);
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &binary));
        assert!(steps.contains(&Step::Install(InstallRequest {
            version: "0.2.0".into(),
            sha256: sha,
        })));
        assert!(!s.has_pending());

        // Without a supervisor the install fails with the reason, and is not retried.
        let mut s = staging(dir.path()).await;
        let steps = s.install_step(at(3), None, false).await;
        assert_eq!(
            state(&steps),
            [(ReleaseProgress::Failed, Some("this agent does not run under `device-agent supervise` (the shipped systemd unit does), so it cannot switch versions; the release stays staged".into()))]
        );
        assert!(!staging(dir.path()).await.has_pending());
    }
}
