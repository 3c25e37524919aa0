//! Remote diagnostics: an operator asks a cabinet for its newest log lines or a fresh
//! `doctor` report. The request is stored and audited, sent at once when the cabinet is
//! online here, and sent again by the leading replica (to a cabinet that comes back, or
//! that did not answer) until the answer arrives or [`TTL`] passes.

use std::sync::Arc;
use std::time::Duration;

use broker::Delivery;
use protocol::{Channel, DeviceId, DiagnosticsAsk, DiagnosticsReport, DiagnosticsRequest};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::devices::{Online, Publisher};
use crate::store::{DiagnosticRow, DiagnosticState, Store, StoreError};

/// How long a request waits for its cabinet.
pub(crate) const TTL: Duration = Duration::from_secs(600);
/// A request sent but not answered is sent again after this.
const RESEND: Duration = Duration::from_secs(15);
/// Between the leader's passes when nothing woke it.
const PASS: Duration = Duration::from_secs(2);
/// How often a caller waiting for an answer looks (any replica may store it).
const LOOK: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub(crate) struct Diagnostics {
    pub(crate) store: Store,
    pub(crate) publisher: Publisher,
    pub(crate) online: Online,
    /// Woken when a request is made here, so a pending one reaches a cabinet that is
    /// online on the leader's side at once.
    pub(crate) wake: Arc<Notify>,
}

impl Diagnostics {
    /// Stores and audits a request (or returns the pending one of the same kind), and sends
    /// it now if the cabinet is online on this replica.
    pub(crate) async fn request(
        &self,
        device: &DeviceId,
        ask: DiagnosticsAsk,
        by: &str,
        now: i64,
    ) -> Result<(DiagnosticRow, bool), StoreError> {
        let expires_at = now + i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX / 2);
        let (row, new) = self
            .store
            .request_diagnostics(device.as_str(), ask, by, now, expires_at)
            .await?;
        if new {
            if self.online.is_online(device) {
                self.send(device, &row, now).await;
            }
            self.wake.notify_one();
        }
        Ok((row, new))
    }

    async fn send(&self, device: &DeviceId, row: &DiagnosticRow, now: i64) {
        let msg = DiagnosticsRequest {
            v: protocol::PROTOCOL_VERSION,
            request_id: row.id.clone(),
            expires_at: row.expires_at,
            ask: row.ask,
        };
        let delivery = self
            .publisher
            .publish(device, Channel::Diagnose, protocol::encode(&msg));
        if delivery == Delivery::Queued
            && let Err(e) = self.store.mark_diagnostics_sent(&row.id, now).await
        {
            tracing::warn!(%device, error = %e, "diagnostics request sent but not marked");
        }
    }

    /// On the leading replica: expires requests past their deadline and sends the due ones
    /// to cabinets online here.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        loop {
            let now = crate::clock::now_ms();
            if let Err(e) = self.pass(now).await {
                tracing::warn!(error = %e, "diagnostics pass failed; retrying");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(PASS) => {}
            }
        }
    }

    async fn pass(&self, now: i64) -> Result<(), StoreError> {
        let expired = self.store.expire_diagnostics(now).await?;
        if expired > 0 {
            tracing::info!(expired, "diagnostics requests expired unanswered");
        }
        let resend_before = now - i64::try_from(RESEND.as_millis()).unwrap_or(0);
        for row in self.store.diagnostics_due(now, resend_before).await? {
            let Ok(device) = DeviceId::parse(&row.device) else {
                continue;
            };
            if self.online.is_online(&device) {
                self.send(&device, &row, now).await;
            }
        }
        Ok(())
    }

    /// Waits up to `wait` for the request to be answered (or expire); the row as it is then.
    pub(crate) async fn wait(
        &self,
        device: &DeviceId,
        id: &str,
        wait: Duration,
    ) -> Result<Option<DiagnosticRow>, StoreError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let row = self.store.diagnostic(device.as_str(), id).await?;
            let settled = row
                .as_ref()
                .is_none_or(|r| r.state != DiagnosticState::Pending);
            if settled || tokio::time::Instant::now() + LOOK > until {
                return Ok(row);
            }
            tokio::time::sleep(LOOK).await;
        }
    }
}

/// Stores the cabinets' answers as they arrive (on every replica: any may receive one).
pub(crate) async fn ingest(
    mut rx: mpsc::Receiver<(DeviceId, DiagnosticsReport)>,
    store: Store,
    cancel: CancellationToken,
) {
    loop {
        let (device, report) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = rx.recv() => match next {
                Some(r) => r,
                None => return,
            },
        };
        let now = crate::clock::now_ms();
        match store
            .answer_diagnostics(
                device.as_str(),
                &report.request_id,
                report.at,
                &report.body,
                now,
            )
            .await
        {
            Ok(true) => {
                tracing::info!(%device, request = %report.request_id, "diagnostics answered")
            }
            Ok(false) => tracing::debug!(%device, request = %report.request_id,
                "diagnostics answer for no open request of this device ignored"),
            // The cabinet answers again when the request is re-sent.
            Err(e) => tracing::warn!(%device, error = %e, "diagnostics answer not stored"),
        }
    }
}
