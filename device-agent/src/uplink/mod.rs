//! The uplink task: the I/O around `state::Uplink` (outbox reads, publishes, receipts), the
//! certificate renewal, and the hand-off of commands and code sets to their executors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::{CertReply, Channel, CodeSync, ConfigSync, EventBatch, Receipt, Update, UpdateBody};
use rumqttc::{ClientError, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::update::Step;
use crate::{Ctx, LockDriver, renew};

use crate::{
    commands::apply_codes,
    net::{Net, presence},
    watch::heartbeat,
};

mod state;

use state::{Limits, Pump, ReceiptEffect, Uplink};

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
    let acked = match ctx.outbox.oldest().await {
        Ok(Some(oldest)) => oldest - 1,
        Ok(None) => ctx.outbox.last_seq(),
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "outbox unreadable; uplink stops");
            return;
        }
    };
    let limits = Limits {
        window: ctx.cfg.window,
        in_flight: ctx.cfg.in_flight,
        batch: ctx.cfg.batch,
        retransmit: Duration::from_millis(ctx.cfg.retransmit_after_ms),
    };
    let mut up = Uplink::new(acked, limits, Instant::now());
    let events_topic = protocol::topic::device_topic(&ctx.id, Channel::Events);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut beat = tokio::time::interval(Duration::from_secs(ctx.cfg.heartbeat_secs));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sleep_until_opt(up.hold_until()) => {}
            _ = beat.tick() => if up.is_connected() { heartbeat(&ctx, up.acked()) },
            n = net.recv() => match n {
                None => break,
                Some(Net::Connected) => {
                    up.connected(Instant::now());
                    on_connected(&ctx, up.acked()).await;
                    let resume = ctx.staging.lock().await.resume();
                    carry_out(&ctx, resume.into_iter().collect()).await;
                    beat.reset();
                    renew.check(&ctx);
                }
                Some(Net::Disconnected) => {
                    up.disconnected();
                    ctx.stats.connected.store(false, Ordering::Relaxed);
                }
                Some(Net::Message(channel, topic, payload)) => {
                    on_message(&ctx, &mut renew, &tracker, channel, &topic, &payload).await;
                }
                Some(Net::Receipt { receipt, learned }) => {
                    on_receipt(&ctx, &mut up, receipt, learned).await;
                }
            },
            _ = ctx.notify.notified() => {}
            _ = tick.tick() => {
                if let Some((from, to)) = up.tick(Instant::now()) {
                    tracing::info!(device = %ctx.id, from, to, "no receipt; resending");
                }
                delete_receipted(&ctx, &mut up, true).await;
                if up.is_connected() {
                    renew.check(&ctx);
                    let again = ctx.staging.lock().await.tick(Instant::now());
                    carry_out(&ctx, again.into_iter().collect()).await;
                }
                let install = crate::update::install::due(&ctx).await;
                carry_out(&ctx, install).await;
            }
        }
        delete_receipted(&ctx, &mut up, false).await;
        send_batches(&ctx, &mut up, &events_topic).await;
    }
    delete_receipted(&ctx, &mut up, true).await;
    let _ = ctx.client.try_disconnect();
}

/// A new connection: subscribe, say we are here, and send the state snapshot and a heartbeat.
async fn on_connected<D>(ctx: &Ctx<D>, acked: u64) {
    ctx.stats.connected.store(true, Ordering::Relaxed);
    ctx.stats.connects.fetch_add(1, Ordering::Relaxed);
    for c in Channel::DEVICE_DOWNLINK {
        let topic = protocol::topic::device_topic(&ctx.id, c);
        if let Err(e) = ctx.client.try_subscribe(topic, QoS::AtLeastOnce) {
            tracing::error!(device = %ctx.id, error = %e, "subscribe failed");
        }
    }
    let online = presence(true, "connected", ctx.clock.now_ms());
    publish_retained(
        ctx,
        Channel::Presence,
        protocol::encode(&online),
        "presence",
    );
    // The snapshot tells the server we are subscribed: it then sends any command that
    // waited for us.
    let snapshot = ctx.recorder.snapshot().await;
    publish_retained(
        ctx,
        Channel::State,
        protocol::encode(&snapshot),
        "state snapshot",
    );
    heartbeat(ctx, acked);
}

fn publish_retained<D>(ctx: &Ctx<D>, channel: Channel, payload: Vec<u8>, what: &str) {
    let topic = protocol::topic::device_topic(&ctx.id, channel);
    if let Err(e) = ctx
        .client
        .try_publish(topic, QoS::AtLeastOnce, true, payload)
    {
        tracing::warn!(device = %ctx.id, error = %e, "{what} not sent");
    }
}

/// A message from the server (receipts and commands are taken apart where they are heard,
/// `net::drive`): code sets, certificates, releases and diagnostics go to their executors.
async fn on_message<D: LockDriver>(
    ctx: &Arc<Ctx<D>>,
    renew: &mut Renew,
    tracker: &TaskTracker,
    channel: Option<Channel>,
    topic: &str,
    payload: &[u8],
) {
    match channel {
        Some(Channel::Cert) => match protocol::decode::<CertReply>(payload) {
            Ok(reply) => renew.on_reply(reply, ctx.clock.now_ms()),
            Err(e) => {
                tracing::warn!(device = %ctx.id, error = %e, "bad certificate reply ignored")
            }
        },
        Some(Channel::Update) => match protocol::decode::<Update>(payload) {
            Ok(update) => {
                let c = ctx.clone();
                tracker.spawn(async move { on_update(&c, update).await });
            }
            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad release update ignored"),
        },
        Some(Channel::Config) => match protocol::decode::<ConfigSync>(payload) {
            Ok(sync) => {
                if let Err(e) = ctx.config_tx.try_send(sync) {
                    // The server sends it again until the cabinet reports it.
                    tracing::warn!(device = %ctx.id, error = %e, "configuration set dropped");
                }
            }
            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad configuration ignored"),
        },
        Some(Channel::Diagnose) => {
            match protocol::decode::<protocol::DiagnosticsRequest>(payload) {
                Ok(req) => {
                    let c = ctx.clone();
                    tracker.spawn(async move { crate::diagnose::answer(&c, req).await });
                }
                Err(e) => {
                    tracing::warn!(device = %ctx.id, error = %e, "bad diagnostics request ignored")
                }
            }
        }
        Some(Channel::Codes) => match protocol::decode::<CodeSync>(payload) {
            Ok(sync) => {
                let c = ctx.clone();
                tracker.spawn(async move { apply_codes(&c, sync).await });
            }
            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad code grants ignored"),
        },
        _ => tracing::debug!(device = %ctx.id, %topic, "message on an unexpected topic"),
    }
}

/// A receipt: keep and report the server clock's offset it taught the agent (`learned`, in
/// use since it was heard), then move the receipted mark, renumbering the outbox first if
/// the server knows seqs this outbox never handed out.
async fn on_receipt<D>(ctx: &Ctx<D>, up: &mut Uplink, r: Receipt, learned: Option<i64>) {
    if let Some(offset) = learned {
        tracing::warn!(device = %ctx.id, offset_ms = offset,
            "this cabinet's clock differs from the server's; judging times on the server's");
        if let Err(e) = ctx.outbox.set_clock_offset(offset).await {
            tracing::error!(device = %ctx.id, error = %e, "clock offset not kept");
        }
        // The server shows the offset (and alarms on a large one) from the heartbeat: tell it
        // now, not in heartbeat_secs.
        heartbeat(ctx, up.acked());
    }
    match up.receipt(r.up_to, ctx.outbox.last_seq(), Instant::now()) {
        ReceiptEffect::Renumber { up_to } => {
            // The outbox was replaced.
            tracing::warn!(device = %ctx.id, server_mark = up_to, local_last = ctx.outbox.last_seq(),
                "server knows newer sequence numbers than this outbox; renumbering pending events after them");
            match ctx.outbox.renumber_after(up_to).await {
                Ok(_) => {
                    up.renumbered(up_to, Instant::now());
                    ctx.stats.receipted.store(up_to, Ordering::Relaxed);
                    ctx.stats
                        .last_seq
                        .store(ctx.outbox.last_seq(), Ordering::Relaxed);
                }
                Err(e) => tracing::error!(device = %ctx.id, error = %e, "renumbering failed"),
            }
        }
        ReceiptEffect::Advanced => ctx.stats.receipted.store(up.acked(), Ordering::Relaxed),
        ReceiptEffect::Stale => {}
    }
}

/// Sends what the window allows, batch by batch.
async fn send_batches<D>(ctx: &Ctx<D>, up: &mut Uplink, topic: &str) {
    while let Pump::Send { after, base, limit } = up.next(Instant::now(), ctx.outbox.last_seq()) {
        let events = match ctx.outbox.read_after(after, limit as i64).await {
            Ok(e) if !e.is_empty() => e,
            Ok(_) => break,
            Err(e) => {
                tracing::error!(device = %ctx.id, error = %e, "outbox read failed");
                break;
            }
        };
        let last = events.last().map(|e| e.seq).unwrap_or(after);
        let batch = EventBatch { v: 1, base, events };
        match ctx
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, protocol::encode(&batch))
        {
            Ok(()) => up.published(last),
            // The client queue is full (slow link): try again on the next tick.
            Err(ClientError::TryRequest(_)) => break,
            Err(e) => {
                tracing::warn!(device = %ctx.id, error = %e, "publish failed");
                break;
            }
        }
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Deletes receipted rows when the state machine says it is time.
async fn delete_receipted<D>(ctx: &Ctx<D>, up: &mut Uplink, now_anyway: bool) {
    let Some(mark) = up.to_delete(now_anyway) else {
        return;
    };
    match ctx.outbox.receipt(mark).await {
        Ok(_) => up.deleted(mark),
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "deleting receipted events failed; will retry")
        }
    }
}

/// A release update from the server: an offer, a chunk, or "unavailable".
async fn on_update<D>(ctx: &Ctx<D>, update: Update) {
    let steps = {
        let mut staging = ctx.staging.lock().await;
        match update.body {
            UpdateBody::Offer {
                release,
                rollback,
                install,
                window,
            } => staging.offer(release, rollback, install, window).await,
            UpdateBody::Chunk {
                target,
                version,
                offset,
                data,
                ..
            } => match Update::chunk_bytes(&data) {
                Ok(bytes) => staging.chunk(&target, &version, offset, &bytes).await,
                Err(e) => {
                    tracing::warn!(device = %ctx.id, error = %e, "bad release chunk ignored");
                    Vec::new()
                }
            },
            UpdateBody::Unavailable {
                target,
                version,
                reason,
            } => staging.unavailable(&target, &version, &reason).await,
        }
    };
    carry_out(ctx, steps).await;
}

/// Carries out what staging asks: a chunk request to the server, a `release` event.
async fn carry_out<D>(ctx: &Ctx<D>, steps: Vec<Step>) {
    for step in steps {
        match step {
            Step::Fetch(req) => {
                let topic = protocol::topic::device_topic(&ctx.id, Channel::Fetch);
                if let Err(e) =
                    ctx.client
                        .try_publish(topic, QoS::AtLeastOnce, false, protocol::encode(&req))
                {
                    // The tick asks again.
                    tracing::warn!(device = %ctx.id, error = %e, "release fetch not sent");
                }
            }
            Step::Report(body) => {
                crate::entry::record(ctx, body).await;
                ctx.notify.notify_one();
            }
            Step::Install(req) => {
                let version = req.version.clone();
                match crate::update::install::hand_over(&ctx.cfg.data_dir, req).await {
                    // The agent stops in order and exits for the supervisor to switch.
                    Ok(()) => ctx.install.cancel(),
                    Err(e) => {
                        tracing::error!(device = %ctx.id, error = %e, "cannot hand the install over");
                        let failed = protocol::EventBody::Release {
                            version,
                            state: protocol::ReleaseProgress::Failed,
                            reason: Some(format!("storage: {e}")),
                        };
                        crate::entry::record(ctx, failed).await;
                        ctx.notify.notify_one();
                    }
                }
            }
        }
    }
}
