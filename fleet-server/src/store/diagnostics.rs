//! Remote diagnostics in storage: each request an operator made of a cabinet (audited with
//! it), when it was last sent, and the cabinet's answer. The newest [`KEEP`] per device stay.

use protocol::{DiagnosticsAsk, DiagnosticsBody};
use sqlx::Row;

use super::audit;
use super::{Store, StoreError};

/// Requests kept per device (older ones go when a new one is made).
pub(crate) const KEEP: i64 = 20;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticState {
    /// Waiting for the cabinet (sent again until answered or expired).
    Pending,
    Answered,
    /// The deadline passed without an answer.
    Expired,
}

impl DiagnosticState {
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticState::Pending => "pending",
            DiagnosticState::Answered => "answered",
            DiagnosticState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Result<DiagnosticState, StoreError> {
        Ok(match s {
            "pending" => DiagnosticState::Pending,
            "answered" => DiagnosticState::Answered,
            "expired" => DiagnosticState::Expired,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "diagnostics has an unknown state {other:?}"
                )));
            }
        })
    }
}

/// One stored request.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagnosticRow {
    pub id: String,
    pub device: String,
    pub ask: DiagnosticsAsk,
    pub state: DiagnosticState,
    pub requested_by: String,
    pub requested_at: i64,
    pub expires_at: i64,
    pub sent_at: Option<i64>,
    pub answered_at: Option<i64>,
    /// The cabinet's answer (with the cabinet time it was made).
    pub report: Option<(i64, DiagnosticsBody)>,
}

/// The columns [`row`] reads, for `concat!` (queries are static strings).
macro_rules! columns {
    () => {
        "id, device_id, kind, lines, state, requested_by, requested_at, expires_at, sent_at,
         answered_at, report"
    };
}

fn ask_of(kind: &str, lines: Option<i64>) -> Result<DiagnosticsAsk, StoreError> {
    match kind {
        "doctor" => Ok(DiagnosticsAsk::Doctor),
        "logs" => Ok(DiagnosticsAsk::Logs {
            lines: lines.and_then(|l| u16::try_from(l).ok()).unwrap_or(1),
        }),
        other => Err(StoreError::Corrupt(format!(
            "diagnostics has an unknown kind {other:?}"
        ))),
    }
}

fn kind_of(ask: DiagnosticsAsk) -> (&'static str, Option<i64>) {
    match ask {
        DiagnosticsAsk::Logs { lines } => ("logs", Some(i64::from(lines))),
        DiagnosticsAsk::Doctor => ("doctor", None),
    }
}

/// The stored answer: the cabinet's time and its body, as one JSON object.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    at: i64,
    #[serde(flatten)]
    body: DiagnosticsBody,
}

fn row(r: sqlx::any::AnyRow) -> Result<DiagnosticRow, StoreError> {
    let kind: String = r.try_get("kind")?;
    let state: String = r.try_get("state")?;
    let report: Option<String> = r.try_get("report")?;
    let report = match report {
        Some(json) => {
            let s: Stored = serde_json::from_str(&json).map_err(|e| {
                StoreError::Corrupt(format!("a stored diagnostics report is not JSON: {e}"))
            })?;
            Some((s.at, s.body))
        }
        None => None,
    };
    Ok(DiagnosticRow {
        id: r.try_get("id")?,
        device: r.try_get("device_id")?,
        ask: ask_of(&kind, r.try_get("lines")?)?,
        state: DiagnosticState::parse(&state)?,
        requested_by: r.try_get("requested_by")?,
        requested_at: r.try_get("requested_at")?,
        expires_at: r.try_get("expires_at")?,
        sent_at: r.try_get("sent_at")?,
        answered_at: r.try_get("answered_at")?,
        report,
    })
}

impl Store {
    /// Records a request and its audit row; a pending request of the same kind for the
    /// device is returned instead of a second one (`false`: not new). Older requests of
    /// the device beyond [`KEEP`] are removed.
    pub async fn request_diagnostics(
        &self,
        device: &str,
        ask: DiagnosticsAsk,
        by: &str,
        at: i64,
        expires_at: i64,
    ) -> Result<(DiagnosticRow, bool), StoreError> {
        let (kind, lines) = kind_of(ask);
        let mut tx = self.writer.begin().await?;
        let pending = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM diagnostics WHERE device_id = $1 AND kind = $2
               AND state = 'pending' AND expires_at > $3
             ORDER BY requested_at DESC LIMIT 1"
        ))
        .bind(device)
        .bind(kind)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = pending {
            let r = row(r)?;
            if r.ask == ask {
                tx.commit().await?;
                return Ok((r, false));
            }
        }
        let id = format!("diag-{}", uuid::Uuid::new_v4().simple());
        sqlx::query(
            "INSERT INTO diagnostics (id, device_id, kind, lines, state, requested_by,
               requested_at, expires_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7)",
        )
        .bind(&id)
        .bind(device)
        .bind(kind)
        .bind(lines)
        .bind(by)
        .bind(at)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let what = match ask {
            DiagnosticsAsk::Logs { lines } => format!("{id}: the newest {lines} log lines"),
            DiagnosticsAsk::Doctor => format!("{id}: a doctor report"),
        };
        audit::note(
            &mut tx,
            at,
            by,
            "diagnostics_requested",
            Some(device),
            &what,
        )
        .await?;
        sqlx::query(
            "DELETE FROM diagnostics WHERE device_id = $1 AND id NOT IN
               (SELECT id FROM diagnostics WHERE device_id = $2
                ORDER BY requested_at DESC, id DESC LIMIT $3)",
        )
        .bind(device)
        .bind(device)
        .bind(KEEP)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            DiagnosticRow {
                id,
                device: device.to_owned(),
                ask,
                state: DiagnosticState::Pending,
                requested_by: by.to_owned(),
                requested_at: at,
                expires_at,
                sent_at: None,
                answered_at: None,
                report: None,
            },
            true,
        ))
    }

    /// Pending requests not yet sent, or last sent before `resend_before`, and not expired
    /// at `now`.
    pub async fn diagnostics_due(
        &self,
        now: i64,
        resend_before: i64,
    ) -> Result<Vec<DiagnosticRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM diagnostics WHERE state = 'pending' AND expires_at > $1
               AND (sent_at IS NULL OR sent_at < $2)
             ORDER BY requested_at"
        ))
        .bind(now)
        .bind(resend_before)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(row).collect()
    }

    pub async fn mark_diagnostics_sent(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE diagnostics SET sent_at = $1 WHERE id = $2 AND state = 'pending'")
            .bind(at)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Pending requests past their deadline become expired; how many.
    pub async fn expire_diagnostics(&self, now: i64) -> Result<u64, StoreError> {
        // Read first, on a reader: the every-two-seconds pass takes the writer only when a
        // request is actually due to expire.
        let due: Option<i64> =
            sqlx::query_scalar("SELECT MIN(expires_at) FROM diagnostics WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        if due.is_none_or(|at| at > now) {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE diagnostics SET state = 'expired' WHERE state = 'pending' AND expires_at <= $1",
        )
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    /// Stores a cabinet's answer to its own request. The first answer counts (a re-sent
    /// request may be answered twice); one that comes after the deadline is still kept. False
    /// when the device has no such request or it was answered already.
    pub async fn answer_diagnostics(
        &self,
        device: &str,
        id: &str,
        report_at: i64,
        body: &DiagnosticsBody,
        at: i64,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(&Stored {
            at: report_at,
            body: body.clone(),
        })
        .unwrap_or_default();
        let done = sqlx::query(
            "UPDATE diagnostics SET state = 'answered', answered_at = $1, report = $2
             WHERE id = $3 AND device_id = $4 AND state <> 'answered'",
        )
        .bind(at)
        .bind(json)
        .bind(id)
        .bind(device)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The device's requests, newest first.
    pub async fn diagnostics_of(&self, device: &str) -> Result<Vec<DiagnosticRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM diagnostics WHERE device_id = $1
             ORDER BY requested_at DESC, id DESC"
        ))
        .bind(device)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(row).collect()
    }

    /// One request of the device.
    pub async fn diagnostic(
        &self,
        device: &str,
        id: &str,
    ) -> Result<Option<DiagnosticRow>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM diagnostics WHERE device_id = $1 AND id = $2"
        ))
        .bind(device)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(row)
        .transpose()
    }
}
