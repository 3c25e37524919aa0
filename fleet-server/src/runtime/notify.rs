//! Notifications out of the durable outbox: SMS to applicants through the [`Notifier`] port
//! (an HTTP gateway adapter, or the log for the demo) and signed webhooks to the service
//! platform.
//!
//! Rows are written in the same transaction as the change they report, so none is lost on a
//! crash; each is marked sent only after the receiver answered 2xx, so a crash in between
//! sends it again with the same `Idempotency-Key` / `X-LockerFleet-Delivery` id, which
//! receivers use to drop the repeat.

use std::sync::Arc;
use std::time::Duration;

use ring::hmac;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::secrets::Secrets;
use crate::store::{NotificationRow, Store};
use domain::flows::mask_phone;

#[derive(Debug, thiserror::Error)]
pub(crate) enum NotifyError {
    /// Worth another attempt (network, 5xx, 429).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (a 4xx: the request itself is wrong).
    #[error("{0}")]
    Permanent(String),
}

/// One SMS. `redacted` is `text` with the code replaced, for logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sms {
    pub to: String,
    pub text: String,
    #[serde(default)]
    pub redacted: Option<String>,
    /// What it says, for gateways that send approved templates (`sms_text::MESSAGES`);
    /// absent in rows queued by servers before 0.25.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
}

/// The SMS port.
pub(crate) trait Notifier: Send + Sync + 'static {
    fn send(
        &self,
        id: &str,
        sms: &Sms,
    ) -> impl std::future::Future<Output = Result<(), NotifyError>> + Send;
}

/// Writes SMS to the log (number masked, code redacted): the demo's default.
pub(crate) struct LogNotifier;

impl Notifier for LogNotifier {
    async fn send(&self, id: &str, sms: &Sms) -> Result<(), NotifyError> {
        tracing::info!(notification = id, to = %mask_phone(&sms.to),
            text = %sms.redacted.as_deref().unwrap_or(&sms.text), "SMS (log notifier)");
        Ok(())
    }
}

/// A generic SMS gateway: `POST url` with JSON `{id, to, text, message, lang, params}` and
/// `Idempotency-Key: id`.
pub(crate) struct HttpGateway {
    pub client: reqwest::Client,
    pub url: String,
}

impl Notifier for HttpGateway {
    async fn send(&self, id: &str, sms: &Sms) -> Result<(), NotifyError> {
        let body = serde_json::json!({ "id": id, "to": sms.to, "text": sms.text,
            "message": sms.message, "lang": sms.lang, "params": sms.params });
        let resp = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", id)
            .json(&body)
            .send()
            .await;
        classify(resp)
    }
}

/// Signed webhooks to the service platform.
pub(crate) struct Webhook {
    pub client: reqwest::Client,
    pub url: String,
    pub secret: String,
}

/// `sha256=` hex HMAC-SHA256 over `"{timestamp}.{body}"`: binding the timestamp lets the
/// receiver refuse replays of old deliveries.
pub(crate) fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(tag.as_ref()))
}

impl Webhook {
    async fn send(&self, id: &str, event: &str, body: &str) -> Result<(), NotifyError> {
        let ts = crate::clock::now_ms();
        let resp = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-LockerFleet-Event", event)
            .header("X-LockerFleet-Delivery", id)
            .header("X-LockerFleet-Timestamp", ts.to_string())
            .header("X-LockerFleet-Signature", signature(&self.secret, ts, body))
            .body(body.to_owned())
            .send()
            .await;
        classify(resp)
    }
}

fn classify(resp: Result<reqwest::Response, reqwest::Error>) -> Result<(), NotifyError> {
    match resp {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let s = r.status();
            let msg = format!("receiver answered {s}");
            if s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408 {
                Err(NotifyError::Transient(msg))
            } else {
                Err(NotifyError::Permanent(msg))
            }
        }
        Err(e) => Err(NotifyError::Transient(format!("request failed: {e}"))),
    }
}

pub(crate) struct Worker<N> {
    pub store: Store,
    pub secrets: Secrets,
    pub sms: N,
    pub webhook: Option<Webhook>,
    pub metrics: Metrics,
    pub wake: Arc<Notify>,
    pub max_attempts: u32,
    pub max_backoff: Duration,
}

impl<N: Notifier> Worker<N> {
    /// Sends what is due until cancelled; one at a time, in order of due time.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        loop {
            let mut busy = false;
            match self
                .store
                .due_notifications(crate::clock::now_ms(), 50)
                .await
            {
                Ok(rows) => {
                    busy = rows.len() == 50;
                    for row in rows {
                        if cancel.is_cancelled() {
                            return;
                        }
                        self.deliver(row).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the notification outbox failed"),
            }
            if busy {
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn deliver(&self, row: NotificationRow) {
        let result = match row.channel.as_str() {
            "sms" => match self.sms_of(&row) {
                Ok(sms) => self.sms.send(&row.id, &sms).await,
                Err(e) => Err(e),
            },
            "webhook" => match (&self.webhook, &row.body) {
                (Some(w), Some(body)) => w.send(&row.id, &row.event, body).await,
                (None, _) => Err(NotifyError::Permanent(
                    "no webhook_url is configured any more".into(),
                )),
                (_, None) => Err(NotifyError::Permanent("the body is missing".into())),
            },
            other => Err(NotifyError::Permanent(format!("unknown channel {other:?}"))),
        };
        let attempts = row.attempts + 1;
        let outcome = match result {
            Ok(()) => self
                .store
                .notification_sent(&row.id, crate::clock::now_ms())
                .await
                .map(|_| "sent"),
            Err(e) => {
                let give_up = matches!(e, NotifyError::Permanent(_))
                    || attempts >= i64::from(self.max_attempts);
                let next = (!give_up).then(|| {
                    let backoff = Duration::from_secs(1u64 << attempts.clamp(0, 16) as u32)
                        .min(self.max_backoff);
                    crate::clock::now_ms() + backoff.as_millis() as i64
                });
                if give_up {
                    tracing::error!(notification = %row.id, channel = %row.channel, event = %row.event,
                        item = row.item_id.as_deref().unwrap_or("-"), attempts, error = %e,
                        "notification given up; it stays in the table as failed");
                } else {
                    tracing::warn!(notification = %row.id, channel = %row.channel, attempts, error = %e,
                        "notification failed; retrying with backoff");
                }
                self.store
                    .notification_failed(&row.id, &e.to_string(), next)
                    .await
                    .map(|_| if give_up { "failed" } else { "retry" })
            }
        };
        match outcome {
            Ok(o) => self.metrics.notification(&row.channel, o),
            // Not marked: it is sent again later, with the same id for the receiver to drop.
            Err(e) => {
                tracing::warn!(notification = %row.id, error = %e, "recording a notification outcome failed")
            }
        }
    }

    fn sms_of(&self, row: &NotificationRow) -> Result<Sms, NotifyError> {
        let body = row
            .body
            .as_deref()
            .ok_or_else(|| NotifyError::Permanent("the body is missing".into()))?;
        let plain = match self.secrets.open(body) {
            Ok(p) => p,
            // Reminders carry no code and may be stored unsealed.
            Err(_) if body.starts_with('{') => body.to_owned(),
            Err(e) => return Err(NotifyError::Permanent(e.to_string())),
        };
        serde_json::from_str(&plain)
            .map_err(|e| NotifyError::Permanent(format!("stored SMS is malformed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_stable() {
        // Pinned: receivers implement the same computation from PROTOCOL.md.
        // The expected value comes from Python's hmac module, an independent implementation.
        assert_eq!(
            super::signature(
                "0123456789abcdef",
                1_764_288_000_000,
                r#"{"event":"picked_up"}"#
            ),
            "sha256=a16e3c92bb66732e279c0562c156ec306ad763482d7500897990be16c6211669"
        );
        assert_ne!(
            super::signature("0123456789abcdef", 1, "{}"),
            super::signature("0123456789abcdef", 2, "{}")
        );
        assert!(super::signature("k", 1, "{}").starts_with("sha256="));
    }
}
