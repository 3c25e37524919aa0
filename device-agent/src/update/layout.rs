//! The cabinet's A/B layout of agent versions under `{data_dir}/releases/`, the one place the
//! agent and its supervisor share: staged versions in `{version}/device-agent`, the `current`
//! symlink naming the version that runs (absent: the installed, factory binary), and the small
//! records through which they hand an install over.
//!
//! | file | written by | means |
//! |---|---|---|
//! | `install.json` | agent | idle inside the window: switch to this staged version |
//! | `trial.json` | supervisor | intent log of a switch; the version on trial, the one before |
//! | `verdict.json` | agent on trial | it confirmed itself, or why it cannot |
//! | `outcome.json` | supervisor | how a trial ended, for the agent that runs next to report |
//!
//! Every record is written to a temporary file, synced, renamed over the old one and the
//! folder synced, so a power loss leaves either the old record or the new one, never half.

use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::ReleaseProgress;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The binary's name inside `{version}/`.
pub(crate) const BINARY: &str = "device-agent";
const CURRENT: &str = "current";
pub(crate) const INSTALL: &str = "install.json";
pub(crate) const TRIAL: &str = "trial.json";
pub(crate) const VERDICT: &str = "verdict.json";
pub(crate) const OUTCOME: &str = "outcome.json";
/// The agent on trial's last self-check failure, for the supervisor's rollback reason.
pub(crate) const TRIAL_NOTE: &str = "trial-note.txt";

/// The agent asks its supervisor to switch to a staged version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InstallRequest {
    pub(crate) version: String,
    /// The signed manifest's hash: the supervisor checks the staged binary once more.
    pub(crate) sha256: String,
}

/// A switch in progress. Written before `current` moves, so a restart at any point finds
/// what was meant and finishes it (or undoes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Trial {
    pub(crate) version: String,
    /// What `current` named before (`None`: the factory binary).
    pub(crate) previous: Option<String>,
    /// Launches of the new version so far; a trial cut short by a power loss is retried once.
    pub(crate) attempts: u32,
    pub(crate) deadline_secs: u64,
    /// Set once the trial failed: the rollback under way, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rolling_back: Option<String>,
}

/// The agent on trial's word on itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Verdict {
    pub(crate) version: String,
    pub(crate) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// How a trial ended, reported by the next agent to start as a `release` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub(crate) version: String,
    pub(crate) state: ReleaseProgress,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(data_dir: &Path) -> Layout {
        Layout {
            dir: data_dir.join("releases"),
        }
    }

    pub(crate) fn version_dir(&self, version: &str) -> PathBuf {
        self.dir.join(version)
    }

    pub(crate) fn binary(&self, version: &str) -> PathBuf {
        self.version_dir(version).join(BINARY)
    }

    /// The version `current` names, if any.
    pub(crate) fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.dir.join(CURRENT)).ok()?;
        target
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
    }

    /// Points `current` at `version` (`None`: back to the factory binary) in one rename.
    pub(crate) fn point_current(&self, version: Option<&str>) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let link = self.dir.join(CURRENT);
        match version {
            Some(v) => {
                let tmp = self.dir.join("current.new");
                let _ = std::fs::remove_file(&tmp);
                // Relative, so the data directory can move.
                std::os::unix::fs::symlink(v, &tmp)?;
                std::fs::rename(&tmp, &link)?;
            }
            None => match std::fs::remove_file(&link) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                r => r?,
            },
        }
        sync_dir(&self.dir)
    }

    pub(crate) fn read<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let bytes = std::fs::read(self.dir.join(name)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(file = name, error = %e, "unreadable release record ignored");
                None
            }
        }
    }

    pub(crate) fn write<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        self.write_bytes(name, &bytes)
    }

    pub(crate) fn write_bytes(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.dir, name, bytes)
    }

    /// Whether the record `name` exists.
    #[cfg(test)]
    pub(crate) fn dir_has(&self, name: &str) -> bool {
        self.dir.join(name).exists()
    }

    pub(crate) fn read_text(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    pub(crate) fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes staged versions other than `keep` (A/B: the running one and the one before).
    pub(crate) fn prune(&self, keep: &[&str]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_version = protocol::release::Version::parse(name).is_ok();
            if is_version && !keep.contains(&name) && e.path().is_dir() {
                match std::fs::remove_dir_all(e.path()) {
                    Ok(()) => tracing::info!(version = name, "old agent version removed"),
                    Err(e) => {
                        tracing::warn!(version = name, error = %e, "cannot remove an old version")
                    }
                }
            }
        }
    }
}

/// The SHA-256 of a file, hex, read in pieces (a release may be tens of MB).
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish()))
}

/// Makes a rename or a new file in `dir` survive a power loss.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `dir/name` so that a power loss leaves the old file or the new one, never a torn
/// one: a temporary file, synced, renamed over, and the directory synced.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_moves_in_one_step_and_records_round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let l = Layout::new(dir.path());
        // Nothing there yet (a fresh cabinet): removing is not an error.
        l.remove(INSTALL).expect("nothing to remove");
        l.point_current(None).expect("no current yet");
        assert_eq!(l.current(), None);
        std::fs::create_dir_all(l.version_dir("0.2.0")).expect("dir");
        l.point_current(Some("0.2.0")).expect("point");
        assert_eq!(l.current().as_deref(), Some("0.2.0"));
        l.point_current(Some("0.3.0")).expect("point");
        assert_eq!(l.current().as_deref(), Some("0.3.0"));
        l.point_current(None).expect("factory");
        assert_eq!(l.current(), None);
        l.point_current(None).expect("twice is fine");

        let t = Trial {
            version: "0.3.0".into(),
            previous: Some("0.2.0".into()),
            attempts: 1,
            deadline_secs: 120,
            rolling_back: None,
        };
        l.write(TRIAL, &t).expect("write");
        assert_eq!(l.read::<Trial>(TRIAL), Some(t));
        l.write_bytes(TRIAL, b"{not json").expect("write");
        assert_eq!(l.read::<Trial>(TRIAL), None);
        l.remove(TRIAL).expect("remove");
        l.remove(TRIAL).expect("removing nothing is fine");

        std::fs::create_dir_all(l.version_dir("0.1.0")).expect("dir");
        std::fs::create_dir_all(l.version_dir("0.4.0")).expect("dir");
        l.prune(&["0.2.0", "0.4.0"]);
        assert!(!l.version_dir("0.1.0").exists());
        assert!(l.version_dir("0.2.0").exists() && l.version_dir("0.4.0").exists());
    }
}
