//! The uplink: sends outbox batches, applies receipts, renews the certificate, and hands
//! commands and code sets to their executors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::{CertReply, Channel, CodeSync, Command, DeviceTopic, EventBatch, Receipt};
use rumqttc::{ClientError, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Ctx, LockDriver, renew};

use crate::{
    commands::{apply_codes, execute},
    net::{Net, presence},
    watch::heartbeat,
};

/// The uplink state machine. `acked`: highest seq the server receipted; `sent`: highest seq
/// published on this connection. On (re)connect `sent = acked`, so everything unreceipted is
/// sent again in order; without receipt progress for a while it rewinds the same way.
/// The renewal state and the way to hand a renewed identity to the connection.
pub(crate) struct Renew {
    pub(crate) state: renew::Renewal,
    pub(crate) tls: mpsc::Sender<Arc<rustls::ClientConfig>>,
}

impl Renew {
    /// Publishes a signing request when renewal is due.
    fn check<D>(&mut self, ctx: &Ctx<D>) {
        if let Some(req) = self.state.due(ctx.clock.now_ms()) {
            let topic = protocol::topic::device_topic(&ctx.id, Channel::Csr);
            if let Err(e) =
                ctx.client
                    .try_publish(topic, QoS::AtLeastOnce, false, protocol::encode(&req))
            {
                tracing::warn!(device = %ctx.id, error = %e, "signing request not sent");
            }
        }
    }

    fn on_reply(&mut self, reply: CertReply, now_ms: i64) {
        if let Some(tls) = self.state.on_reply(reply, now_ms) {
            let _ = self.tls.try_send(tls);
        }
    }
}

pub(crate) async fn uplink<D: LockDriver>(
    ctx: Arc<Ctx<D>>,
    mut net: mpsc::Receiver<Net>,
    mut renew: Renew,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let mut acked = match ctx.outbox.oldest().await {
        Ok(Some(oldest)) => oldest - 1,
        Ok(None) => ctx.outbox.last_seq(),
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "outbox unreadable; uplink stops");
            return;
        }
    };
    let mut sent = acked;
    // Receipted rows are deleted in bulk (every tick, or every 1000 events): a delete per
    // receipt cost more than the send. Rows receipted but not yet deleted are only sent
    // again after a crash, and the server ignores duplicates.
    let mut deleted = acked;
    let mut connected = false;
    let mut last_progress = Instant::now();
    // While a batch is in flight, new events wait up to HOLD to travel together.
    let mut hold_until: Option<tokio::time::Instant> = None;
    // The last seq of each batch sent and not yet receipted (`in_flight`).
    let mut batch_ends: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let retransmit = Duration::from_millis(ctx.cfg.retransmit_after_ms);
    let events_topic = protocol::topic::device_topic(&ctx.id, Channel::Events);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut beat = tokio::time::interval(Duration::from_secs(ctx.cfg.heartbeat_secs));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sleep_until_opt(hold_until) => {}
            _ = beat.tick() => if connected { heartbeat(&ctx, acked) },
            n = net.recv() => match n {
                None => break,
                Some(Net::Connected) => {
                    connected = true;
                    ctx.stats.connected.store(true, Ordering::Relaxed);
                    ctx.stats.connects.fetch_add(1, Ordering::Relaxed);
                    sent = acked;
                    last_progress = Instant::now();
                    for c in Channel::DEVICE_DOWNLINK {
                        let topic = protocol::topic::device_topic(&ctx.id, c);
                        if let Err(e) = ctx.client.try_subscribe(topic, QoS::AtLeastOnce) {
                            tracing::error!(device = %ctx.id, error = %e, "subscribe failed");
                        }
                    }
                    let topic = protocol::topic::device_topic(&ctx.id, Channel::Presence);
                    if let Err(e) = ctx.client.try_publish(topic, QoS::AtLeastOnce, true, protocol::encode(&presence(true, "connected", ctx.clock.now_ms()))) {
                        tracing::warn!(device = %ctx.id, error = %e, "presence not sent");
                    }
                    // The snapshot tells the server we are subscribed: it then sends any
                    // command that waited for us.
                    let snapshot = ctx.recorder.snapshot().await;
                    let topic = protocol::topic::device_topic(&ctx.id, Channel::State);
                    if let Err(e) = ctx.client.try_publish(topic, QoS::AtLeastOnce, true, protocol::encode(&snapshot)) {
                        tracing::warn!(device = %ctx.id, error = %e, "state snapshot not sent");
                    }
                    heartbeat(&ctx, acked);
                    beat.reset();
                    renew.check(&ctx);
                }
                Some(Net::Disconnected) => {
                    connected = false;
                    hold_until = None;
                    ctx.stats.connected.store(false, Ordering::Relaxed);
                }
                Some(Net::Message(topic, payload)) => {
                    match DeviceTopic::parse(&topic).map(|t| t.channel) {
                        Ok(Channel::Receipts) => match protocol::decode::<Receipt>(&payload) {
                            Ok(r) => {
                                if let Some(offset) = r.at.and_then(|at| ctx.clock.learn(at)) {
                                    tracing::warn!(device = %ctx.id, offset_ms = offset,
                                        "this cabinet's clock differs from the server's; judging times on the server's");
                                    if let Err(e) = ctx.outbox.set_clock_offset(offset).await {
                                        tracing::error!(device = %ctx.id, error = %e, "clock offset not kept");
                                    }
                                    // The server shows the offset (and alarms on a large one)
                                    // from the heartbeat: tell it now, not in heartbeat_secs.
                                    heartbeat(&ctx, acked);
                                }
                                if on_receipt(&ctx, r.up_to, &mut acked, &mut sent).await == Some(true) {
                                    last_progress = Instant::now();
                                }
                            }
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad receipt ignored"),
                        },
                        Ok(Channel::Commands) => match protocol::decode::<Command>(&payload) {
                            Ok(cmd) => {
                                let c = ctx.clone();
                                tracker.spawn(async move { execute(c, cmd).await });
                            }
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad command ignored"),
                        },
                        Ok(Channel::Cert) => match protocol::decode::<CertReply>(&payload) {
                            Ok(reply) => renew.on_reply(reply, ctx.clock.now_ms()),
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad certificate reply ignored"),
                        },
                        Ok(Channel::Codes) => match protocol::decode::<CodeSync>(&payload) {
                            Ok(sync) => {
                                let c = ctx.clone();
                                tracker.spawn(async move { apply_codes(&c, sync).await });
                            }
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad code grants ignored"),
                        },
                        _ => tracing::debug!(device = %ctx.id, %topic, "message on an unexpected topic"),
                    }
                }
            },
            _ = ctx.notify.notified() => {}
            _ = tick.tick() => {
                if connected && sent > acked && last_progress.elapsed() >= retransmit {
                    tracing::info!(device = %ctx.id, from = acked + 1, to = sent, "no receipt; resending");
                    sent = acked;
                    last_progress = Instant::now();
                }
                delete_receipted(&ctx, acked, &mut deleted).await;
                if connected {
                    renew.check(&ctx);
                }
            }
        }
        if acked >= deleted + 1000 {
            delete_receipted(&ctx, acked, &mut deleted).await;
        }
        // Pump: send what the window allows. A receipt or a resend from `acked` ends the
        // batches at or below it.
        batch_ends.retain(|&end| end > acked && end <= sent);
        while connected
            && sent < ctx.outbox.last_seq()
            && sent - acked < ctx.cfg.window
            && batch_ends.len() < ctx.cfg.in_flight
        {
            let waiting = ctx.outbox.last_seq() - sent;
            if sent > acked && waiting < ctx.cfg.batch as u64 {
                let now = tokio::time::Instant::now();
                match hold_until {
                    None => {
                        hold_until = Some(now + HOLD);
                        break;
                    }
                    Some(t) if now < t => break,
                    Some(_) => {}
                }
            }
            hold_until = None;
            let events = match ctx.outbox.read_after(sent, ctx.cfg.batch as i64).await {
                Ok(e) if !e.is_empty() => e,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(device = %ctx.id, error = %e, "outbox read failed");
                    break;
                }
            };
            let last = events.last().map(|e| e.seq).unwrap_or(sent);
            let batch = EventBatch {
                v: 1,
                base: acked + 1,
                events,
            };
            match ctx.client.try_publish(
                events_topic.clone(),
                QoS::AtLeastOnce,
                false,
                protocol::encode(&batch),
            ) {
                Ok(()) => {
                    sent = last;
                    batch_ends.push_back(last);
                }
                // The client queue is full (slow link): try again on the next tick.
                Err(ClientError::TryRequest(_)) => break,
                Err(e) => {
                    tracing::warn!(device = %ctx.id, error = %e, "publish failed");
                    break;
                }
            }
        }
    }
    delete_receipted(&ctx, acked, &mut deleted).await;
    let _ = ctx.client.try_disconnect();
}

/// How long new events wait for company while a batch is in flight.
pub(crate) const HOLD: Duration = Duration::from_millis(2);

pub(crate) async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn delete_receipted<D>(ctx: &Ctx<D>, acked: u64, deleted: &mut u64) {
    if acked <= *deleted {
        return;
    }
    match ctx.outbox.receipt(acked).await {
        Ok(_) => *deleted = acked,
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "deleting receipted events failed; will retry")
        }
    }
}

/// Applies a receipt to the in-memory mark (rows are deleted later, in bulk). Returns
/// `Some(true)` when it advanced the mark.
pub(crate) async fn on_receipt<D>(
    ctx: &Ctx<D>,
    up_to: u64,
    acked: &mut u64,
    sent: &mut u64,
) -> Option<bool> {
    if up_to > ctx.outbox.last_seq() {
        // The server has seen seqs this outbox never handed out: the outbox was replaced.
        tracing::warn!(device = %ctx.id, server_mark = up_to, local_last = ctx.outbox.last_seq(),
            "server knows newer sequence numbers than this outbox; renumbering pending events after them");
        match ctx.outbox.renumber_after(up_to).await {
            Ok(_) => {
                *acked = up_to;
                *sent = up_to;
                ctx.stats.receipted.store(up_to, Ordering::Relaxed);
                ctx.stats
                    .last_seq
                    .store(ctx.outbox.last_seq(), Ordering::Relaxed);
                return Some(true);
            }
            Err(e) => {
                tracing::error!(device = %ctx.id, error = %e, "renumbering failed");
                return None;
            }
        }
    }
    if up_to <= *acked {
        return Some(false);
    }
    *acked = up_to;
    if *sent < up_to {
        *sent = up_to;
    }
    ctx.stats.receipted.store(up_to, Ordering::Relaxed);
    Some(true)
}
