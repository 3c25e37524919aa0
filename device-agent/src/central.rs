//! Central configuration on the cabinet: the settings the server wants (`config` channel),
//! checked, stored before anything else (the next start runs with them), applied live where
//! the running agent can (keypad lockout, door-left-open time, log level) and otherwise by a clean
//! restart once the cabinet is idle, under the same rule as an install. Every outcome goes
//! to the server as a `config` event: applied (with the settings in effect), waiting for a
//! restart, or refused with the reason.
//!
//! A field the server leaves unset keeps the agent's own configuration file's value, so an
//! empty set from the server returns the cabinet to its file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protocol::settings::{FIELDS, Settings};
use protocol::{ConfigProgress, ConfigSync, EventBody};
use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;
use crate::{Ctx, LockDriver};

/// The server's set as last received, in the data directory.
pub(crate) const FILE: &str = "central-config.json";
/// Between looks at whether the cabinet is idle enough to restart.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub version: String,
    pub settings: Settings,
}

/// What this run knows of central configuration.
#[derive(Debug)]
pub(crate) struct Central {
    /// The configuration file's values of every managed setting: what an unset field means.
    base: Settings,
    /// The server's set this run started with, or last stored.
    stored: Option<Stored>,
    /// Every managed setting as the running agent uses it now.
    in_effect: Settings,
    /// A restart is asked for or under way.
    restarting: bool,
    /// Why the stored set could not be used at start, to report once.
    refused_at_start: Option<(String, String)>,
}

/// The file's values of the managed settings.
fn base_of(cfg: &AgentConfig) -> Settings {
    Settings {
        heartbeat_secs: Some(cfg.heartbeat_secs),
        poll_interval_ms: Some(cfg.poll_interval_ms),
        jam_timeout_ms: Some(cfg.jam_timeout_ms),
        door_open_alarm_secs: Some(cfg.door_open_alarm_secs),
        keypad_max_failures: Some(u64::from(cfg.keypad_max_failures)),
        keypad_window_secs: Some(cfg.keypad_window_secs),
        keypad_lockout_secs: Some(cfg.keypad_lockout_secs),
        log_level: cfg.log_level,
        unknown: Default::default(),
    }
}

/// Puts every field `s` sets into the agent's configuration.
fn put(cfg: &mut AgentConfig, s: &Settings) {
    let x = base_of(cfg).overlay(s);
    let take = |name: &str| x.get(name).unwrap_or_default();
    cfg.heartbeat_secs = take("heartbeat_secs");
    cfg.poll_interval_ms = take("poll_interval_ms");
    cfg.jam_timeout_ms = take("jam_timeout_ms");
    cfg.door_open_alarm_secs = take("door_open_alarm_secs");
    cfg.keypad_max_failures = u32::try_from(take("keypad_max_failures")).unwrap_or(u32::MAX);
    cfg.keypad_window_secs = take("keypad_window_secs");
    cfg.keypad_lockout_secs = take("keypad_lockout_secs");
    cfg.log_level = x.get("log_level");
}

async fn read(data_dir: &Path) -> Result<Option<Stored>, String> {
    match tokio::fs::read(data_dir.join(FILE)).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{FILE} is unreadable ({e})")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{FILE} cannot be read ({e})")),
    }
}

impl Central {
    /// Reads the stored set and lays it over `cfg` (already valid as the file says). A
    /// stored set that cannot be used is dropped for the file's values and reported, so a
    /// bad set can never keep a cabinet from starting.
    pub(crate) async fn load(cfg: &mut AgentConfig) -> Central {
        let base = base_of(cfg);
        let mut central = Central {
            in_effect: base.clone(),
            base,
            stored: None,
            restarting: false,
            refused_at_start: None,
        };
        let stored = match read(&cfg.data_dir).await {
            Ok(s) => s,
            Err(why) => {
                tracing::error!(%why, "stored central configuration ignored; using the configuration file");
                central.refused_at_start = Some((String::new(), why));
                None
            }
        };
        let Some(stored) = stored else {
            return central;
        };
        let mut with = cfg.clone();
        put(&mut with, &stored.settings);
        match stored
            .settings
            .check()
            .map_err(|e| e.to_string())
            .and_then(|()| with.validate().map_err(|e| e.to_string()))
        {
            Ok(()) => {
                *cfg = with;
                central.in_effect = central.base.overlay(&stored.settings);
                central.stored = Some(stored);
            }
            Err(why) => {
                tracing::error!(%why, version = %stored.version,
                    "stored central configuration refused; using the configuration file");
                central.refused_at_start = Some((stored.version, why));
            }
        }
        central
    }

    /// What to report at start: the set in effect, or why the stored one was not used.
    pub(crate) fn at_start(&mut self) -> Option<EventBody> {
        if let Some((version, why)) = self.refused_at_start.take() {
            return Some(EventBody::Config {
                version,
                state: ConfigProgress::Refused,
                settings: None,
                reason: Some(why),
            });
        }
        self.stored.as_ref().map(|s| EventBody::Config {
            version: s.version.clone(),
            state: ConfigProgress::Applied,
            settings: Some(s.settings.clone()),
            reason: None,
        })
    }
}

/// Applies the server's sets one at a time, in the order they arrived (MQTT keeps the
/// order on the connection; two tasks racing could leave an older set in effect).
pub(crate) async fn run<D: LockDriver>(
    ctx: Arc<Ctx<D>>,
    mut rx: tokio::sync::mpsc::Receiver<ConfigSync>,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let sync = tokio::select! {
            _ = cancel.cancelled() => return,
            s = rx.recv() => match s {
                Some(s) => s,
                None => return,
            },
        };
        on_sync(&ctx, sync).await;
    }
}

/// A set from the server: check, store, apply live or restart when idle, report.
pub(crate) async fn on_sync<D: LockDriver>(ctx: &Arc<Ctx<D>>, sync: ConfigSync) {
    let report = {
        let mut c = ctx.central.lock().await;
        decide(ctx, &mut c, sync).await
    };
    let (event, restart) = report;
    if let Err(e) = ctx.outbox.append(ctx.clock.now_ms(), vec![event]).await {
        tracing::error!(device = %ctx.id, error = %e, "configuration report not recorded");
    }
    ctx.notify.notify_one();
    if restart {
        let c = ctx.clone();
        tokio::spawn(async move { restart_when_idle(&c).await });
    }
}

async fn decide<D: LockDriver>(
    ctx: &Ctx<D>,
    c: &mut Central,
    sync: ConfigSync,
) -> (EventBody, bool) {
    let refused = |why: String| {
        tracing::warn!(device = %ctx.id, version = %sync.version, %why, "configuration refused");
        (
            EventBody::Config {
                version: sync.version.clone(),
                state: ConfigProgress::Refused,
                settings: None,
                reason: Some(why),
            },
            false,
        )
    };
    if let Err(e) = sync.settings.check() {
        return refused(e.to_string());
    }
    let mut with = ctx.cfg.clone();
    put(&mut with, &sync.settings);
    if let Err(e) = with.validate() {
        return refused(e.to_string());
    }
    let wanted = c.base.overlay(&sync.settings);
    let changed = c.in_effect.changed(&wanted);
    let stored = Stored {
        version: sync.version.clone(),
        settings: sync.settings.clone(),
    };
    if c.stored.as_ref() != Some(&stored) {
        let bytes = serde_json::to_vec(&stored).unwrap_or_default();
        let dir = ctx.cfg.data_dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            crate::update::layout::write_atomic(&dir, FILE, &bytes)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        if let Err(e) = written {
            return refused(format!("cannot store it in the data directory: {e}"));
        }
        c.stored = Some(stored);
    }
    // The live ones at once.
    let now = |name: &str| wanted.get(name).unwrap_or_default();
    ctx.codes.set_lockout(crate::codes::Lockout {
        max_failures: u32::try_from(now("keypad_max_failures")).unwrap_or(u32::MAX),
        window_ms: i64::try_from(now("keypad_window_secs")).unwrap_or(i64::MAX / 2_000) * 1000,
        lock_ms: i64::try_from(now("keypad_lockout_secs")).unwrap_or(i64::MAX / 2_000) * 1000,
    });
    ctx.recorder
        .faults
        .set_door_open_alarm(Duration::from_secs(now("door_open_alarm_secs")));
    crate::logs::set_level(wanted.get("log_level"));
    let restart: Vec<&str> = changed.iter().filter(|f| !f.live).map(|f| f.name).collect();
    for f in FIELDS.iter().filter(|f| f.live) {
        c.in_effect.set(f.name, wanted.get(f.name));
    }
    if restart.is_empty() {
        tracing::info!(device = %ctx.id, version = %sync.version, "configuration applied");
        return (
            EventBody::Config {
                version: sync.version,
                state: ConfigProgress::Applied,
                settings: Some(sync.settings),
                reason: None,
            },
            false,
        );
    }
    let can_restart = ctx.cfg.supervised || std::env::var_os("INVOCATION_ID").is_some();
    let why = format!(
        "{} take effect after a restart: {}",
        restart.join(", "),
        if can_restart {
            "restarting when the cabinet is idle"
        } else {
            "at the next start (no supervisor or service manager here to restart the agent)"
        }
    );
    tracing::info!(device = %ctx.id, version = %sync.version, %why, "configuration stored");
    let spawn = can_restart && !c.restarting;
    c.restarting |= can_restart;
    (
        EventBody::Config {
            version: sync.version,
            state: ConfigProgress::WaitingRestart,
            settings: None,
            reason: Some(why),
        },
        spawn,
    )
}

/// Asks for a restart once nothing is going on at the cabinet (no door open, no keypad
/// activity, no command): the supervisor or the service manager starts the agent again with
/// the stored set.
async fn restart_when_idle<D: LockDriver>(ctx: &Ctx<D>) {
    loop {
        if ctx.restart.is_cancelled() {
            return;
        }
        match crate::update::install::busy(ctx).await {
            None => {
                tracing::info!(device = %ctx.id, "restarting for the new configuration");
                ctx.restart.cancel();
                return;
            }
            Some(why) => tracing::debug!(device = %ctx.id, %why, "configuration restart waits"),
        }
        tokio::time::sleep(IDLE_CHECK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stored_set_is_laid_over_the_file_and_a_bad_one_never_stops_a_start() {
        let dir = tempfile::tempdir().expect("dir");
        let mut cfg = AgentConfig {
            id: "cab-t".into(),
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        cfg.validate().expect("a valid file");
        let file = cfg.clone();
        let mut c = Central::load(&mut cfg).await;
        assert!(c.at_start().is_none(), "nothing stored, nothing to say");
        assert_eq!(cfg.heartbeat_secs, file.heartbeat_secs);

        let stored = Stored {
            version: "v1".into(),
            settings: Settings {
                heartbeat_secs: Some(17),
                keypad_lockout_secs: Some(900),
                ..Default::default()
            },
        };
        std::fs::write(
            dir.path().join(FILE),
            serde_json::to_vec(&stored).expect("json"),
        )
        .expect("write");
        let mut cfg = file.clone();
        let mut c = Central::load(&mut cfg).await;
        assert_eq!(cfg.heartbeat_secs, 17);
        assert_eq!(cfg.keypad_lockout_secs, 900);
        assert_eq!(
            cfg.poll_interval_ms, file.poll_interval_ms,
            "unset keeps the file's"
        );
        assert!(matches!(
            c.at_start(),
            Some(EventBody::Config { state: ConfigProgress::Applied, ref version, .. }) if version == "v1"
        ));

        // Out of range (an older server's limits, a hand edit): the file's values, reported.
        let bad = Stored {
            version: "v2".into(),
            settings: Settings {
                heartbeat_secs: Some(1),
                ..Default::default()
            },
        };
        std::fs::write(
            dir.path().join(FILE),
            serde_json::to_vec(&bad).expect("json"),
        )
        .expect("write");
        let mut cfg = file.clone();
        let mut c = Central::load(&mut cfg).await;
        assert_eq!(cfg.heartbeat_secs, file.heartbeat_secs);
        match c.at_start() {
            Some(EventBody::Config {
                state: ConfigProgress::Refused,
                version,
                reason: Some(why),
                ..
            }) => {
                assert_eq!(version, "v2");
                assert!(why.contains("heartbeat_secs"), "{why}");
            }
            other => panic!("refusal expected, got {other:?}"),
        }

        std::fs::write(dir.path().join(FILE), b"{torn").expect("write");
        let mut cfg = file.clone();
        let mut c = Central::load(&mut cfg).await;
        assert_eq!(cfg.heartbeat_secs, file.heartbeat_secs);
        assert!(matches!(
            c.at_start(),
            Some(EventBody::Config {
                state: ConfigProgress::Refused,
                ..
            })
        ));
    }
}
