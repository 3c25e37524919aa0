//! The agent's side of an install: when a staged release may go in (inside its window, the
//! cabinet idle and connected), handing over to the supervisor, proving itself on trial, and
//! reporting how the last trial ended.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::{EventBody, ReleaseProgress};
use tokio_util::sync::CancellationToken;

use super::layout::{Layout, OUTCOME, Outcome, TRIAL_NOTE, VERDICT, Verdict};
use crate::{AGENT_VERSION, Ctx, LockDriver};

/// Between self-checks of a version on trial that has not passed yet.
const RECHECK: Duration = Duration::from_secs(3);

/// Why the cabinet is not idle now, if it is not: a door open, a code being typed, a command
/// under way, or no connection (the new version must reach the server to confirm).
pub(crate) async fn busy<D: LockDriver>(ctx: &Ctx<D>) -> Option<String> {
    if !ctx.stats.connected.load(Ordering::Relaxed) {
        return Some("not connected to the server".into());
    }
    let open: Vec<String> = ctx
        .recorder
        .known
        .lock()
        .await
        .iter()
        .filter(|b| b.door_open)
        .map(|b| b.box_no.get().to_string())
        .collect();
    if !open.is_empty() {
        return Some(format!("door {} open", open.join(", ")));
    }
    let commands = ctx.commands_in_flight.load(Ordering::Relaxed);
    if commands > 0 {
        return Some(format!("{commands} command(s) under way"));
    }
    if ctx.keypad_active_within(Duration::from_secs(ctx.cfg.keypad_quiet_secs)) {
        return Some("someone is using the keypad".into());
    }
    None
}

/// Each tick while a release waits: install it when due. Returns the steps to carry out.
pub(crate) async fn due<D: LockDriver>(ctx: &Ctx<D>) -> Vec<super::Step> {
    if !ctx.staging.lock().await.has_pending() {
        return Vec::new();
    }
    let busy = busy(ctx).await;
    ctx.staging
        .lock()
        .await
        .install_step(ctx.clock.now_ms(), busy, ctx.cfg.supervised)
        .await
}

/// Writes the request for the supervisor; the caller then stops the agent.
pub(crate) async fn hand_over(
    data_dir: &std::path::Path,
    req: super::layout::InstallRequest,
) -> std::io::Result<()> {
    let layout = Layout::new(data_dir);
    tokio::task::spawn_blocking(move || layout.write(super::layout::INSTALL, &req))
        .await
        .map_err(std::io::Error::other)?
}

/// What the supervisor left about the last trial, to report as a `release` event (recorded
/// durably before the note is removed, so it is reported at least once).
pub(crate) async fn take_outcome(data_dir: &std::path::Path) -> Option<(EventBody, Layout)> {
    let layout = Layout::new(data_dir);
    let read = layout.clone();
    let o = tokio::task::spawn_blocking(move || read.read::<Outcome>(OUTCOME))
        .await
        .ok()??;
    Some((
        EventBody::Release {
            version: o.version.chars().take(32).collect(),
            state: o.state,
            reason: o.reason.map(|r| r.chars().take(500).collect()),
        },
        layout,
    ))
}

/// Runs on a version on trial: proves it is the version it was installed as, then waits to
/// be connected and for every `doctor` check to pass, and confirms; until then it notes the
/// last failure for the supervisor, whose deadline ends the trial.
pub(crate) async fn confirm<D: LockDriver>(
    ctx: Arc<Ctx<D>>,
    version: String,
    cancel: CancellationToken,
) {
    let layout = Layout::new(&ctx.cfg.data_dir);
    let write = |name: &'static str, verdict: Verdict| {
        let layout = layout.clone();
        async move {
            tokio::task::spawn_blocking(move || layout.write(name, &verdict))
                .await
                .map_err(std::io::Error::other)?
        }
    };
    if version != AGENT_VERSION {
        let reason = format!(
            "the binary installed as {version} runs version {AGENT_VERSION}: the release is mislabelled"
        );
        tracing::error!(%reason, "trial failed");
        let verdict = Verdict {
            version,
            ok: false,
            reason: Some(reason),
        };
        if let Err(e) = write(VERDICT, verdict).await {
            tracing::error!(error = %e, "cannot write the trial verdict");
        }
        return;
    }
    tracing::info!(%version, "on trial: confirming once connected and self-checked");
    crate::entry::record(&ctx, release(&version, ReleaseProgress::Confirming, None)).await;
    ctx.notify.notify_one();
    loop {
        let failed = if ctx.stats.connected.load(Ordering::Relaxed) {
            crate::doctor::run(&ctx.cfg, &*ctx.driver, ctx.cfg.lang())
                .await
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect::<Vec<_>>()
        } else {
            vec!["not connected to the server yet".to_owned()]
        };
        if !failed.is_empty() {
            note(&layout, &failed.join("; ")).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(RECHECK) => {}
            }
            continue;
        }
        // The event first: once the verdict is on disk the supervisor may stop nothing, but
        // a power loss right after must not lose the report.
        crate::entry::record(&ctx, release(&version, ReleaseProgress::Succeeded, None)).await;
        ctx.notify.notify_one();
        let verdict = Verdict {
            version: version.clone(),
            ok: true,
            reason: None,
        };
        match write(VERDICT, verdict).await {
            Ok(()) => tracing::info!(%version, "confirmed: this version stays"),
            Err(e) => tracing::error!(error = %e, "cannot write the trial verdict"),
        }
        return;
    }
}

async fn note(layout: &Layout, text: &str) {
    let (layout, text) = (layout.clone(), text.chars().take(400).collect::<String>());
    let _ =
        tokio::task::spawn_blocking(move || layout.write_bytes(TRIAL_NOTE, text.as_bytes())).await;
}

fn release(version: &str, state: ReleaseProgress, reason: Option<String>) -> EventBody {
    EventBody::Release {
        version: version.into(),
        state,
        reason,
    }
}
