//! Remote diagnostics on the cabinet: answers the server's `diagnose` requests with the newest
//! lines of the log ring or a fresh `doctor` run, on the agent's own connection. Nothing here
//! touches a lock or waits for the keypad; a request never changes what the cabinet does.

use protocol::message::clip;
use protocol::{
    Channel, DiagnosticsAsk, DiagnosticsBody, DiagnosticsReport, DiagnosticsRequest, DoctorCheck,
};
use rumqttc::QoS;

use crate::{Ctx, LockDriver};

/// What the cabinet answers to `req` now.
pub(crate) async fn body<D: LockDriver>(ctx: &Ctx<D>, req: &DiagnosticsRequest) -> DiagnosticsBody {
    if req.expires_at < ctx.clock.now_ms() {
        return DiagnosticsBody::Refused {
            reason: "the request expired before it could be answered".into(),
        };
    }
    match req.ask {
        DiagnosticsAsk::Logs { lines } => {
            let (lines, dropped) = crate::logs::recent(usize::from(lines));
            let level = crate::logs::current();
            DiagnosticsBody::Logs {
                lines,
                dropped,
                level: if level.is_empty() {
                    "not set up by device-agent".into()
                } else {
                    clip(&level, 64)
                },
            }
        }
        DiagnosticsAsk::Doctor => {
            let checks = crate::doctor::run_live(
                &ctx.cfg,
                &*ctx.driver,
                ctx.clock.offset_ms(),
                ctx.cfg.lang(),
            )
            .await;
            DiagnosticsBody::Doctor {
                checks: checks
                    .into_iter()
                    .take(protocol::message::MAX_CHECKS)
                    .map(|c| DoctorCheck {
                        name: c.name.into(),
                        ok: c.ok,
                        detail: clip(&c.detail, 1024),
                    })
                    .collect(),
            }
        }
    }
}

/// Answers one request (one at a time per cabinet) on `devices/{id}/diagnostics`.
pub(crate) async fn answer<D: LockDriver>(ctx: &Ctx<D>, req: DiagnosticsRequest) {
    tracing::debug!(device = %ctx.id, request = %req.request_id, ask = ?req.ask, "diagnostics request received");
    let _one = ctx.diagnosing.lock().await;
    let body = body(ctx, &req).await;
    let report = DiagnosticsReport {
        v: protocol::PROTOCOL_VERSION,
        request_id: req.request_id.clone(),
        at: ctx.clock.now_ms(),
        body,
    };
    let topic = protocol::topic::device_topic(&ctx.id, Channel::Diagnostics);
    match ctx
        .client
        .publish(topic, QoS::AtLeastOnce, false, protocol::encode(&report))
        .await
    {
        Ok(()) => tracing::info!(device = %ctx.id, request = %req.request_id, "diagnostics sent"),
        // The server asks again until the request expires.
        Err(e) => tracing::warn!(device = %ctx.id, error = %e, "diagnostics not sent"),
    }
}
