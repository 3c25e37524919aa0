//! Remote commands at the cabinet: journaled before the pulse, never past their expiry,
//! never twice; the outcome acked, then journaled; code sets applied.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::{
    AckStatus, BoxNo, Channel, CodeSync, Command, CommandAck, CommandAction, FaultKind,
};
use rumqttc::QoS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Ctx, LockDriver, outbox};

pub(crate) const INTERRUPTED: &str =
    "the agent restarted while executing this command; the lock is not pulsed again";

/// Starts each command as it arrives (`net::Heard`), beside whatever the uplink loop is
/// doing.
pub(crate) async fn receive<D: LockDriver>(
    ctx: Arc<Ctx<D>>,
    mut heard: mpsc::Receiver<bytes::Bytes>,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    loop {
        let payload = tokio::select! {
            _ = cancel.cancelled() => break,
            p = heard.recv() => match p {
                Some(p) => p,
                None => break,
            },
        };
        match protocol::decode::<Command>(&payload) {
            Ok(cmd) => {
                tracker.spawn(execute(ctx.clone(), cmd));
            }
            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad command ignored"),
        }
    }
}

/// Executes one command at most once. The journal entry is durable before the pulse; a
/// command found `executing` after a restart is reported failed, never pulsed again.
pub(crate) async fn execute<D: LockDriver>(ctx: Arc<Ctx<D>>, cmd: Command) {
    ctx.commands_in_flight.fetch_add(1, Ordering::Relaxed);
    execute_one(&ctx, cmd).await;
    ctx.commands_in_flight.fetch_sub(1, Ordering::Relaxed);
}

async fn execute_one<D: LockDriver>(ctx: &Ctx<D>, cmd: Command) {
    let CommandAction::Open { box_no } = cmd.action;
    let id = cmd.command_id.clone();
    if box_no.get() > ctx.driver.boxes() {
        return finish(
            ctx,
            &cmd,
            box_no,
            AckStatus::Failed,
            Some(format!("box {box_no} does not exist on this cabinet")),
        )
        .await;
    }
    let _box = ctx.box_locks[usize::from(box_no.get()) - 1].lock().await;
    // Journal first (one statement in the common case): the entry is durable before the
    // pulse. Only when it was there already is it read, to tell a redelivery from a command
    // a previous run died executing.
    match ctx
        .outbox
        .begin_command(&id, box_no, ctx.clock.now_ms())
        .await
    {
        Ok(true) => {}
        Ok(false) => match ctx.outbox.journal(&id).await {
            Ok(Some(outbox::Journal::Done(status, detail))) => {
                // A redelivery: repeat the outcome, do nothing else.
                return ack(ctx, &cmd, status, detail);
            }
            Ok(Some(outbox::Journal::Executing)) => {
                return finish(
                    ctx,
                    &cmd,
                    box_no,
                    AckStatus::Failed,
                    Some(INTERRUPTED.into()),
                )
                .await;
            }
            // Recorded a moment ago and gone now: nothing sane to do but not pulse.
            Ok(None) => return,
            Err(e) => return not_executed(ctx, &cmd, "journal unreadable", &e),
        },
        Err(e) => return not_executed(ctx, &cmd, "journal write failed", &e),
    }
    // Journaling waited for the disk and the outbox connection: look at the clock right
    // before the pulse.
    if let Some(late) = expired_by(&cmd, ctx.clock.now_ms()) {
        let detail = format!("arrived or journaled {late} ms after its expiry; not executed");
        return finish(ctx, &cmd, box_no, AckStatus::Expired, Some(detail)).await;
    }
    ctx.stats.commands.fetch_add(1, Ordering::Relaxed);
    ack(ctx, &cmd, AckStatus::Delivered, None);
    let (status, detail) = open_box(ctx, box_no).await;
    // The operator learns the door's outcome now; its records follow (ADR 0009).
    ack(ctx, &cmd, status, detail.clone());
    record_outcome(ctx, box_no, status, &detail).await;
    journal_outcome(ctx, &cmd, box_no, status, detail).await;
}

/// The journal could not vouch for a command: it is not executed, and reported failed.
pub(crate) fn not_executed<D>(ctx: &Ctx<D>, cmd: &Command, what: &str, e: &dyn std::fmt::Display) {
    tracing::error!(device = %ctx.id, command = %cmd.command_id, error = %e, "{what}; command not executed");
    ack(ctx, cmd, AckStatus::Failed, Some(format!("{what}: {e}")));
}

/// How many ms past its `expires_at` the command is by this agent's clock, if it is.
pub(crate) fn expired_by(cmd: &Command, now: i64) -> Option<i64> {
    let late = now - cmd.expires_at;
    (late >= 0).then_some(late)
}

/// Pulses the lock and watches the door sensor for the outcome. Records nothing: the
/// outcome is acked before it is journaled.
pub(crate) async fn open_box<D: LockDriver>(ctx: &Ctx<D>, b: BoxNo) -> (AckStatus, Option<String>) {
    match ctx.driver.door_open(b).await {
        Ok(true) => return (AckStatus::AlreadyOpen, None),
        Ok(false) => {}
        Err(e) => return (AckStatus::Failed, Some(format!("door sensor: {e}"))),
    }
    ctx.recorder.faults.pulsed(b);
    if let Err(e) = ctx.driver.unlock(b).await {
        return (AckStatus::Failed, Some(format!("unlock pulse: {e}")));
    }
    watch_door(ctx, b).await
}

/// A pulse and its records, for a door opened on the spot (keypad): nobody waits for an ack
/// in between, unlike a remote open.
pub(crate) async fn open_and_record<D: LockDriver>(
    ctx: &Ctx<D>,
    b: BoxNo,
) -> (AckStatus, Option<String>) {
    let (status, detail) = open_box(ctx, b).await;
    record_outcome(ctx, b, status, &detail).await;
    (status, detail)
}

/// What an outcome means for the cabinet's own records: the door event (now, not at the next
/// sensor poll) and the lock-jam fault raised or cleared.
pub(crate) async fn record_outcome<D: LockDriver>(
    ctx: &Ctx<D>,
    b: BoxNo,
    status: AckStatus,
    detail: &Option<String>,
) {
    let faults = &ctx.recorder.faults;
    let recorded = match status {
        AckStatus::Jammed => {
            let evidence = detail.clone().unwrap_or_default();
            faults
                .raise(Some(b), FaultKind::LockJam, evidence, ctx.clock.now_ms())
                .await
        }
        AckStatus::Opened => {
            let occupied = ctx.recorder.current(b).await.and_then(|s| s.occupied);
            if let Err(e) = ctx.recorder.observe(b, true, occupied).await {
                tracing::error!(device = %ctx.id, error = %e, "recording door open failed");
            }
            let evidence = protocol::evidence::say(protocol::evidence::Code::PulseOpened, &[]);
            faults
                .clear(Some(b), FaultKind::LockJam, evidence, ctx.clock.now_ms())
                .await
        }
        _ => Ok(false),
    };
    if let Err(e) = recorded {
        tracing::error!(device = %ctx.id, error = %e, "recording a lock fault failed");
    }
}

/// After a pulse: the door sensor tells whether the lock opened.
pub(crate) async fn watch_door<D: LockDriver>(
    ctx: &Ctx<D>,
    b: BoxNo,
) -> (AckStatus, Option<String>) {
    let deadline = Instant::now() + Duration::from_millis(ctx.cfg.jam_timeout_ms);
    loop {
        match ctx.driver.door_open(b).await {
            Ok(true) => return (AckStatus::Opened, None),
            Ok(false) if Instant::now() >= deadline => {
                return (
                    AckStatus::Jammed,
                    Some(protocol::evidence::say(
                        protocol::evidence::Code::JamNoChange,
                        &[&ctx.cfg.jam_timeout_ms.to_string()],
                    )),
                );
            }
            // Not faster than a bus poll: on Modbus every read is a request on the bus.
            Ok(false) => {
                tokio::time::sleep(Duration::from_millis(ctx.cfg.poll_interval_ms.clamp(2, 20)))
                    .await
            }
            Err(e) => return (AckStatus::Failed, Some(format!("door sensor: {e}"))),
        }
    }
}

/// Acks an outcome on the fast path, then journals it with its durable event.
pub(crate) async fn finish<D>(
    ctx: &Ctx<D>,
    cmd: &Command,
    b: BoxNo,
    status: AckStatus,
    detail: Option<String>,
) {
    ack(ctx, cmd, status, detail.clone());
    journal_outcome(ctx, cmd, b, status, detail).await;
}

/// Journals an outcome with its durable `command_result` event (which reaches the server
/// even when the fast ack was lost).
pub(crate) async fn journal_outcome<D>(
    ctx: &Ctx<D>,
    cmd: &Command,
    b: BoxNo,
    status: AckStatus,
    detail: Option<String>,
) {
    if let Err(e) = ctx
        .outbox
        .finish_command(&cmd.command_id, b, status, detail, ctx.clock.now_ms())
        .await
    {
        tracing::error!(device = %ctx.id, command = %cmd.command_id, error = %e, "recording command outcome failed");
    }
    ctx.stats
        .last_seq
        .store(ctx.outbox.last_seq(), Ordering::Relaxed);
    ctx.notify.notify_one();
}

pub(crate) fn ack<D>(ctx: &Ctx<D>, cmd: &Command, status: AckStatus, detail: Option<String>) {
    let msg = CommandAck {
        v: 1,
        command_id: cmd.command_id.clone(),
        status,
        ts: ctx.clock.now_ms(),
        detail,
    };
    let topic = protocol::topic::device_topic(&ctx.id, Channel::Acks);
    // Best effort: when the queue is full or we are offline, the outcome still reaches the
    // server as a `command_result` event through the outbox.
    if let Err(e) = ctx
        .client
        .try_publish(topic, QoS::AtLeastOnce, false, protocol::encode(&msg))
    {
        tracing::debug!(device = %ctx.id, error = %e, "ack not queued; the outbox copy will deliver it");
    }
}

pub(crate) async fn apply_codes<D>(ctx: &Ctx<D>, sync: CodeSync) {
    let version = sync.version;
    let grants = sync.grants.len();
    match ctx.codes.apply(sync, ctx.clock.now_ms()).await {
        Ok(true) => {
            tracing::info!(device = %ctx.id, version, grants, "code grants applied");
            ctx.stats
                .last_seq
                .store(ctx.outbox.last_seq(), Ordering::Relaxed);
            ctx.notify.notify_one();
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "storing code grants failed; the server will send them again")
        }
    }
}
