//! `device-agent supervise`: the small process that keeps a cabinet on a good agent version.
//! It runs the version `releases/current` names (or the installed binary, its own), restarts
//! it when it stops, switches to a staged version when the agent asks (`install.json`, exit
//! status [`INSTALL_EXIT`]), and holds the new version on trial: unless it confirms itself
//! (`verdict.json`) before the deadline, it is stopped and `current` goes back to the version
//! before, with the reason written for that version to report (`outcome.json`).
//!
//! The supervisor itself is never replaced by a release (it is the installed binary), so a
//! bad release cannot take away the way back. Every step is written down before it is taken
//! (`trial.json` is the intent log), so a power loss or `kill -9` at any moment leaves a
//! state the next start finishes or undoes: an interrupted switch is completed, a trial cut
//! short is retried once and then rolled back. See ADR 0020.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use protocol::ReleaseProgress;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::update::layout::{
    INSTALL, InstallRequest, Layout, OUTCOME, Outcome, TRIAL, TRIAL_NOTE, Trial, VERDICT, Verdict,
    sha256_file,
};

/// The exit status with which an agent asks its supervisor to install (`install.json`).
pub const INSTALL_EXIT: u8 = 75;
/// The exit status with which an agent asks to be started again at once (a stored
/// configuration takes effect at start).
pub const RESTART_EXIT: u8 = 76;
/// Set for the agent the supervisor runs: it may ask for installs.
pub const SUPERVISED_ENV: &str = "LOCKERFLEET_SUPERVISED";
/// Set for an agent on trial: the version it must prove to be.
pub const TRIAL_ENV: &str = "LOCKERFLEET_TRIAL";
/// Test hook: abort the supervisor (as a power loss would stop it) at a named step of a
/// switch: `after_intent` (trial.json written, current not moved), `after_switch`, or
/// `in_trial` (the new version just started on trial).
pub const CRASH_AT_ENV: &str = "LOCKERFLEET_SUPERVISOR_CRASH_AT";
/// Launches of a version on trial before it counts as failed (a power loss mid-trial is
/// forgiven once).
const MAX_ATTEMPTS: u32 = 2;
/// How often the supervisor looks for the trial's verdict.
const VERDICT_POLL: Duration = Duration::from_millis(250);

/// What to run and how.
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub data_dir: PathBuf,
    /// The installed binary: what runs when no release is current, and the last way back.
    pub factory: PathBuf,
    /// The agent's arguments, passed to every version as they are.
    pub args: Vec<OsString>,
    /// How long a new version has to confirm itself.
    pub trial: Duration,
    /// Pause before restarting an agent that stopped on its own.
    pub restart_delay: Duration,
    /// How long an agent asked to stop may take before it is killed.
    pub stop_timeout: Duration,
}

/// What to launch next.
#[derive(Debug, PartialEq)]
struct Launch {
    binary: PathBuf,
    /// The version `current` names (`None`: the factory binary).
    version: Option<String>,
    /// Set while that version is on trial.
    trial: Option<Trial>,
}

fn crash_at(step: &str) {
    if std::env::var(CRASH_AT_ENV).is_ok_and(|v| v == step) {
        tracing::error!(step, "{CRASH_AT_ENV}: aborting here as a power loss would");
        std::process::abort();
    }
}

impl Supervisor {
    /// Runs agents until `cancel`; the agent running then is stopped in order.
    pub async fn run(&self, cancel: CancellationToken) -> std::io::Result<()> {
        let layout = Layout::new(&self.data_dir);
        loop {
            // Small records on the supervisor's own runtime, whose only task this is.
            let launch = self.prepare(&layout)?;
            if cancel.is_cancelled() {
                return Ok(());
            }
            let label = launch.version.as_deref().unwrap_or("installed").to_owned();
            let mut child = match self.spawn(&launch) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(binary = %launch.binary.display(), error = %e, "cannot start the agent");
                    match launch.trial {
                        Some(t) => self.roll_back(&layout, t, format!("cannot start: {e}"))?,
                        None => self.pause(&cancel).await,
                    }
                    continue;
                }
            };
            // Held until the child is done with (`Child::wait` would close it): the agent
            // takes its end closing as the supervisor's death.
            let _lifeline = child.stdin.take();
            tracing::info!(version = %label, pid = child.id(), trial = launch.trial.is_some(), "agent started");
            if launch.trial.is_some() {
                crash_at("in_trial");
            }
            let deadline = launch
                .trial
                .as_ref()
                .map(|t| Instant::now() + Duration::from_secs(t.deadline_secs));
            let mut trial = launch.trial;
            let status = loop {
                tokio::select! {
                    _ = cancel.cancelled() => {
                        self.stop(&mut child).await;
                        return Ok(());
                    }
                    status = child.wait() => break Some(status?),
                    _ = tokio::time::sleep(VERDICT_POLL), if trial.is_some() => {
                        let Some(t) = trial.take() else { continue };
                        match layout.read::<Verdict>(VERDICT).filter(|v| v.version == t.version) {
                            Some(v) if v.ok => self.confirmed(&layout, &t)?,
                            Some(v) => {
                                self.stop(&mut child).await;
                                let why = v.reason.unwrap_or_else(|| "self-check failed".into());
                                self.roll_back(&layout, t, why)?;
                                break None;
                            }
                            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                                self.stop(&mut child).await;
                                let note = layout
                                    .read_text(TRIAL_NOTE)
                                    .map(|n| format!("; last self-check: {}", n.trim()))
                                    .unwrap_or_default();
                                let why = format!(
                                    "did not confirm within {} s{note}",
                                    t.deadline_secs
                                );
                                self.roll_back(&layout, t, why)?;
                                break None;
                            }
                            None => trial = Some(t),
                        }
                    }
                }
            };
            let Some(status) = status else { continue };
            if let Some(t) = trial {
                // It may have confirmed in the moment before it stopped.
                match layout
                    .read::<Verdict>(VERDICT)
                    .filter(|v| v.version == t.version)
                {
                    Some(v) if v.ok => self.confirmed(&layout, &t)?,
                    _ => {
                        self.roll_back(&layout, t, format!("{} before confirming", said(status)))?;
                        continue;
                    }
                }
            }
            if status.code() == Some(i32::from(INSTALL_EXIT))
                && let Some(req) = layout.read::<InstallRequest>(INSTALL)
            {
                self.switch(&layout, req)?;
                continue;
            }
            if status.code() == Some(i32::from(RESTART_EXIT)) {
                tracing::info!(version = %label, "agent restarts for its new configuration");
                continue;
            }
            tracing::warn!(version = %label, status = %said(status), "agent stopped; starting it again");
            self.pause(&cancel).await;
        }
    }

    /// Reads what the last run left and decides what runs now, finishing any step a power
    /// loss interrupted.
    fn prepare(&self, layout: &Layout) -> std::io::Result<Launch> {
        if let Some(mut t) = layout.read::<Trial>(TRIAL) {
            if let Some(why) = t.rolling_back.clone() {
                self.roll_back(layout, t, why)?;
            } else if layout
                .read::<Verdict>(VERDICT)
                .is_some_and(|v| v.ok && v.version == t.version)
            {
                layout.point_current(Some(&t.version))?;
                self.confirmed(layout, &t)?;
            } else if t.attempts >= MAX_ATTEMPTS {
                let why = format!(
                    "the trial was cut short {} times (power loss or a kill)",
                    t.attempts
                );
                self.roll_back(layout, t, why)?;
            } else {
                // An interrupted switch is finished: the intent is on disk.
                if layout.current().as_deref() != Some(t.version.as_str()) {
                    layout.point_current(Some(&t.version))?;
                }
                t.attempts += 1;
                layout.write(TRIAL, &t)?;
                return Ok(Launch {
                    binary: layout.binary(&t.version),
                    version: Some(t.version.clone()),
                    trial: Some(t),
                });
            }
        }
        // A request the last agent made but no switch followed: it asks again if still due.
        layout.remove(INSTALL)?;
        let version = layout.current();
        let binary = match &version {
            Some(v) if layout.binary(v).is_file() => layout.binary(v),
            Some(v) => {
                tracing::error!(version = %v, "the current version's binary is missing; running the installed one");
                self.factory.clone()
            }
            None => self.factory.clone(),
        };
        Ok(Launch {
            binary,
            version,
            trial: None,
        })
    }

    fn spawn(&self, launch: &Launch) -> std::io::Result<Child> {
        let mut cmd = Command::new(&launch.binary);
        cmd.args(&self.args)
            .env(SUPERVISED_ENV, "true")
            .env_remove(TRIAL_ENV)
            // The agent feeds systemd's watchdog itself (NotifyAccess=all in the unit).
            .env_remove("WATCHDOG_PID")
            // Its end of this pipe closes when the supervisor dies: the agent then stops too.
            .stdin(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = &launch.trial {
            cmd.env(TRIAL_ENV, &t.version);
        }
        cmd.spawn()
    }

    /// The agent asked to switch: check the staged binary once more, write the intent, move
    /// `current`. The next launch is the trial.
    fn switch(&self, layout: &Layout, req: InstallRequest) -> std::io::Result<()> {
        let binary = layout.binary(&req.version);
        match sha256_file(&binary) {
            Ok(h) if h == req.sha256 => {}
            found => {
                let why = match found {
                    Ok(h) => {
                        format!("the staged binary changed on disk (sha256 {h}); fetch it again")
                    }
                    Err(e) => format!("the staged binary is unreadable: {e}"),
                };
                tracing::error!(version = %req.version, %why, "install refused");
                layout.write(
                    OUTCOME,
                    &Outcome {
                        version: req.version,
                        state: ReleaseProgress::Failed,
                        reason: Some(why),
                    },
                )?;
                return layout.remove(INSTALL);
            }
        }
        let trial = Trial {
            version: req.version.clone(),
            previous: layout.current(),
            attempts: 0,
            deadline_secs: self.trial.as_secs(),
            rolling_back: None,
        };
        layout.write(TRIAL, &trial)?;
        layout.remove(VERDICT)?;
        layout.remove(TRIAL_NOTE)?;
        crash_at("after_intent");
        layout.point_current(Some(&req.version))?;
        crash_at("after_switch");
        // The offer is spent: the version that runs next must not take it up again.
        layout.remove(crate::update::OFFER)?;
        layout.remove(INSTALL)?;
        tracing::info!(version = %req.version, previous = ?trial.previous, "switched; the new version is on trial");
        Ok(())
    }

    fn confirmed(&self, layout: &Layout, t: &Trial) -> std::io::Result<()> {
        tracing::info!(version = %t.version, "the new version confirmed itself; it stays");
        layout.remove(TRIAL)?;
        layout.remove(VERDICT)?;
        layout.remove(TRIAL_NOTE)?;
        let mut keep = vec![t.version.as_str()];
        keep.extend(t.previous.as_deref());
        layout.prune(&keep);
        Ok(())
    }

    fn roll_back(&self, layout: &Layout, mut t: Trial, why: String) -> std::io::Result<()> {
        tracing::error!(version = %t.version, previous = ?t.previous, reason = %why, "trial failed; going back");
        if t.rolling_back.is_none() {
            t.rolling_back = Some(why.clone());
            layout.write(TRIAL, &t)?;
        }
        layout.point_current(t.previous.as_deref())?;
        layout.write(
            OUTCOME,
            &Outcome {
                version: t.version.clone(),
                state: ReleaseProgress::RolledBack,
                reason: Some(why),
            },
        )?;
        layout.remove(VERDICT)?;
        layout.remove(TRIAL_NOTE)?;
        layout.remove(crate::update::OFFER)?;
        layout.remove(TRIAL)
    }

    /// Asks the agent to stop (SIGTERM: it flushes its outbox), kills it after the timeout.
    async fn stop(&self, child: &mut Child) {
        if let Some(pid) = child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(self.stop_timeout, child.wait())
            .await
            .is_err()
        {
            tracing::warn!("the agent did not stop in time; killing it");
            let _ = child.kill().await;
        }
    }

    async fn pause(&self, cancel: &CancellationToken) {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(self.restart_delay) => {}
        }
    }
}

/// How a process ended, in words for a rollback reason.
fn said(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "stopped".into(),
    }
}

#[cfg(test)]
mod tests;
