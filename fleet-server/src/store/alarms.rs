//! Storage of alarms: one open alarm per (device, box, kind), raised and cleared by fault
//! events inside the ingest transaction, acknowledged and cleared by operators, with history.
//!
//! The policy (kinds, severities, who is paged, reopening within
//! [`REOPEN_WINDOW_MS`]) is `domain::alarms`; this module carries it out.

use domain::alarms::{AlarmKind, AlarmState, REOPEN_WINDOW_MS, Severity};
use protocol::{BoxNo, DeviceId, FaultKind};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{History, Store, StoreError, bind_sites, parse_col, sites_sql, write_history};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRow {
    pub id: String,
    pub device_id: DeviceId,
    /// The box, or none for the device itself.
    pub box_no: Option<BoxNo>,
    pub kind: AlarmKind,
    pub severity: Severity,
    pub state: AlarmState,
    pub site_id: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// How often the condition was raised while this alarm was open (or reopened).
    pub count: i64,
    pub evidence: Option<String>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
    pub ack_note: Option<String>,
    pub cleared_at: Option<i64>,
    /// `device` when the condition ended by itself, else the operator.
    pub cleared_by: Option<String>,
    pub clear_note: Option<String>,
    /// When it escalated for want of an acknowledgement.
    pub escalated_at: Option<i64>,
    /// When on-duty staff were last told of it (or found unreachable).
    pub notified_at: Option<i64>,
    /// `notified`, `rate_limited` or `nobody_on_duty`.
    pub notify_outcome: Option<String>,
    /// A box alarm of a device that is offline: shown, but not the thing to act on (the
    /// device's `device_offline` alarm is).
    pub suppressed: bool,
}

/// Every alarm column, plus `suppressed` (an open `device_offline` alarm of the same device).
const ALARM_SELECT: &str = "SELECT a.alarm_id, a.device_id, a.box_no, a.kind, a.severity, a.state,
    a.site_id, a.first_seen, a.last_seen, a.count, a.evidence, a.acked_by, a.acked_at, a.ack_note,
    a.cleared_at, a.cleared_by, a.clear_note, a.escalated_at, a.notified_at, a.notify_outcome,
    CASE WHEN a.box_no > 0 AND EXISTS (SELECT 1 FROM alarms o WHERE o.device_id = a.device_id
         AND o.kind = 'device_offline' AND o.state <> 'cleared') THEN 1 ELSE 0 END AS suppressed
    FROM alarms a";

/// A device's last sign of life: its last heartbeat or the start of its session, whichever is
/// later (a fresh session has not had time to beat yet).
const LAST_SIGN: &str =
    "CASE WHEN d.presence_changed_at IS NOT NULL AND d.presence_changed_at > d.heartbeat_at
     THEN d.presence_changed_at ELSE d.heartbeat_at END";

impl AlarmRow {
    fn from_row(r: &AnyRow) -> Result<AlarmRow, StoreError> {
        let b: i64 = r.try_get("box_no")?;
        let box_no = match b {
            0 => None,
            b => Some(parse_col("alarm box", b.to_string(), |s| {
                s.parse::<u16>().ok().and_then(|n| BoxNo::new(n).ok())
            })?),
        };
        Ok(AlarmRow {
            id: r.try_get("alarm_id")?,
            device_id: parse_col("alarm device", r.try_get("device_id")?, |s| {
                DeviceId::parse(s).ok()
            })?,
            box_no,
            kind: parse_col("alarm kind", r.try_get("kind")?, AlarmKind::parse)?,
            severity: parse_col("alarm severity", r.try_get("severity")?, Severity::parse)?,
            state: parse_col("alarm state", r.try_get("state")?, AlarmState::parse)?,
            site_id: r.try_get("site_id")?,
            first_seen: r.try_get("first_seen")?,
            last_seen: r.try_get("last_seen")?,
            count: r.try_get("count")?,
            evidence: r.try_get("evidence")?,
            acked_by: r.try_get("acked_by")?,
            acked_at: r.try_get("acked_at")?,
            ack_note: r.try_get("ack_note")?,
            cleared_at: r.try_get("cleared_at")?,
            cleared_by: r.try_get("cleared_by")?,
            clear_note: r.try_get("clear_note")?,
            escalated_at: r.try_get("escalated_at")?,
            notified_at: r.try_get("notified_at")?,
            notify_outcome: r.try_get("notify_outcome")?,
            suppressed: r.try_get::<i64, _>("suppressed")? != 0,
        })
    }
}

/// Filters of the alarm list; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct AlarmFilter {
    /// `open` (active or acknowledged), `active`, `acknowledged`, `cleared`, or any.
    pub state: Option<String>,
    /// Only these sites; `None`: every site.
    pub sites: Option<Vec<String>>,
    pub device: Option<String>,
    pub kind: Option<AlarmKind>,
    pub severity: Option<Severity>,
    pub limit: i64,
}

/// What an operator action found.
pub enum AlarmAction {
    Done(Box<AlarmRow>),
    NotFound,
    /// The alarm is not in a state the action applies to (its state now).
    WrongState(AlarmState),
}

impl Store {
    /// Applies one new fault event of `device` inside the ingest transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_fault(
        tx: &mut Tx<'_>,
        device: &DeviceId,
        box_no: Option<BoxNo>,
        kind: FaultKind,
        active: bool,
        evidence: &str,
        ts: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let b = box_no.map_or(0, |b| i64::from(b.get()));
        let alarm = Condition {
            device: device.as_str(),
            box_no: b,
            kind: AlarmKind::Fault(kind),
        };
        upsert_alarm(tx, &alarm, active, evidence, ts, now).await
    }

    /// Raises or clears an alarm the server itself detects (`device_offline`,
    /// `clock_skew`).
    pub async fn server_alarm(
        &self,
        device: &str,
        kind: AlarmKind,
        active: bool,
        evidence: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let alarm = Condition {
            device,
            box_no: 0,
            kind,
        };
        upsert_alarm(&mut tx, &alarm, active, evidence, now, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn alarms(&self, f: &AlarmFilter) -> Result<Vec<AlarmRow>, StoreError> {
        let state_sql = match f.state.as_deref() {
            Some("open") => "a.state <> 'cleared'",
            Some("active") => "a.state = 'active'",
            Some("acknowledged") => "a.state = 'acknowledged'",
            Some("cleared") => "a.state = 'cleared'",
            _ => "1 = 1",
        };
        let sites = f.sites.as_deref();
        let rows = bind_sites(
            sqlx::query(AssertSqlSafe(format!(
                "{ALARM_SELECT} WHERE {state_sql} AND {}
                   AND ($1 IS NULL OR a.device_id = $1)
                   AND ($2 IS NULL OR a.kind = $2) AND ($3 IS NULL OR a.severity = $3)
                 ORDER BY a.last_seen DESC, a.alarm_id LIMIT $4",
                sites_sql("a.site_id", 5, sites)
            )))
            .bind(f.device.as_deref())
            .bind(f.kind.map(AlarmKind::as_str))
            .bind(f.severity.map(Severity::as_str))
            .bind(f.limit),
            sites,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AlarmRow::from_row).collect()
    }

    pub async fn alarm(&self, id: &str) -> Result<Option<AlarmRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{ALARM_SELECT} WHERE a.alarm_id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(AlarmRow::from_row).transpose()
    }

    pub async fn alarm_history(&self, id: &str) -> Result<Vec<super::HistoryRow>, StoreError> {
        self.read_history(History::Alarm, id).await
    }

    /// Devices offline longer than `grace_ms` without an open `device_offline` alarm, with
    /// the reason their session ended.
    pub async fn offline_past_grace(
        &self,
        now: i64,
        grace_ms: i64,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.device_id, d.presence_reason FROM devices d
             WHERE d.online = 0 AND d.presence_changed_at IS NOT NULL
               AND d.presence_changed_at + $1 <= $2
               AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.device_id = d.device_id
                               AND a.kind = 'device_offline' AND a.state <> 'cleared')
             ORDER BY d.device_id LIMIT 10000",
        )
        .bind(grace_ms)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("device_id")?, r.try_get("presence_reason")?)))
            .collect()
    }

    /// Open alarms per kind, every kind listed (zeros included).
    pub async fn open_alarm_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM alarms WHERE state <> 'cleared' GROUP BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<(String, i64)> = FaultKind::ALL
            .into_iter()
            .map(AlarmKind::Fault)
            .chain([AlarmKind::DeviceOffline])
            .map(|k| (k.as_str().to_owned(), 0))
            .collect();
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let n: i64 = r.try_get("n")?;
            match out.iter_mut().find(|(k, _)| *k == kind) {
                Some(slot) => slot.1 = n,
                None => out.push((kind, n)),
            }
        }
        Ok(out)
    }

    /// Devices whose session is up but whose heartbeats stopped more than `grace_ms` ago
    /// (a hung agent behind a live TCP session), without an open `device_offline` alarm,
    /// with the time of their last sign of life.
    pub async fn heartbeat_lost(
        &self,
        now: i64,
        grace_ms: i64,
        hearing_since: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        // Silence counts from the last sign or from when this replica began to hear,
        // whichever is later.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT d.device_id, {LAST_SIGN} AS last_sign FROM devices d
             WHERE d.online = 1 AND d.heartbeat_at IS NOT NULL
               AND (CASE WHEN {LAST_SIGN} > $4 THEN {LAST_SIGN} ELSE $4 END)
                   + $3 * d.heartbeat_secs * 1000 + $1 <= $2
               AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.device_id = d.device_id
                               AND a.kind = 'device_offline' AND a.state <> 'cleared')
             ORDER BY d.device_id LIMIT 10000"
        )))
        .bind(grace_ms)
        .bind(now)
        .bind(super::HEARTBEAT_MISSES)
        .bind(hearing_since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("device_id")?, r.try_get("last_sign")?)))
            .collect()
    }

    /// Devices back online (session up, heartbeats fresh or never sent by this agent) whose
    /// `device_offline` alarm is still open.
    pub async fn back_online(&self, now: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT a.device_id FROM alarms a JOIN devices d ON d.device_id = a.device_id
             WHERE a.kind = 'device_offline' AND a.state <> 'cleared' AND d.online = 1
               AND (d.heartbeat_at IS NULL
                    OR {LAST_SIGN} + $2 * d.heartbeat_secs * 1000 > $1)
             ORDER BY a.device_id LIMIT 10000"
        )))
        .bind(now)
        .bind(super::HEARTBEAT_MISSES)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A presence transition judged by the server from a layer other than the session.
    pub async fn log_presence(
        &self,
        device: &str,
        layer: &str,
        online: bool,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO presence_log (device_id, ts, session, online, reason, layer)
             VALUES ($1, $2, 0, $3, $4, $5)",
        )
        .bind(device)
        .bind(at)
        .bind(i64::from(online))
        .bind(reason)
        .bind(layer)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Marks alarms active and unacknowledged since before `now - after_ms` as escalated,
    /// with a history row each; returns them.
    pub async fn escalate_alarms(
        &self,
        now: i64,
        after_ms: i64,
    ) -> Result<Vec<AlarmRow>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT alarm_id FROM alarms WHERE state = 'active' AND escalated_at IS NULL
               AND first_seen + $1 <= $2 ORDER BY first_seen LIMIT 1000",
        )
        .bind(after_ms)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            sqlx::query("UPDATE alarms SET escalated_at = $1 WHERE alarm_id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let detail = format!("unacknowledged for {} min", after_ms / 60_000);
            alarm_history(&mut tx, id, now, "escalated", "server", Some(&detail)).await?;
        }
        tx.commit().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = self.alarm(&id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Critical and major alarms of the last hour nobody was told of yet, oldest first: also
    /// those that cleared before the sweep came by (a tamper switch opened for a moment is
    /// still news), but not those an operator already acknowledged. Suppressed ones wait:
    /// their device's `device_offline` alarm is the news, and they are told if they outlive
    /// it.
    pub async fn alarms_to_notify(&self, now: i64) -> Result<Vec<AlarmRow>, StoreError> {
        let paging = Severity::ALL
            .iter()
            .filter(|s| s.pages())
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "{ALARM_SELECT} WHERE a.notified_at IS NULL AND a.state <> 'acknowledged'
               AND a.severity IN ({paging}) AND a.first_seen >= $1
             ORDER BY a.first_seen LIMIT 500"
        )))
        .bind(now - 3_600_000)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let a = AlarmRow::from_row(r)?;
            if !a.suppressed {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Tells the on-duty staff of the alarm's site by SMS (through the notification outbox;
    /// `body` is the row's JSON for one phone), unless the site already had `per_hour`
    /// alarms told in the last hour. Records the outcome on the alarm and in its history, all
    /// in one transaction; returns it.
    pub async fn notify_alarm(
        &self,
        a: &AlarmRow,
        body: &(dyn Fn(&str) -> String + Sync),
        per_hour: i64,
        now: i64,
    ) -> Result<&'static str, StoreError> {
        let mut tx = self.writer.begin().await?;
        let phones: Vec<String> = sqlx::query_scalar(
            "SELECT phone FROM staff WHERE active = 1 AND on_duty = 1 AND phone IS NOT NULL
               AND (site_id IS NULL OR site_id = $1) ORDER BY staff_id",
        )
        .bind(a.site_id.as_deref())
        .fetch_all(&mut *tx)
        .await?;
        let site = a.site_id.as_deref().unwrap_or("(no site)");
        let told: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT alarm_id) FROM notifications
             WHERE event = 'alarm' AND COALESCE(site_id, '') = COALESCE($1, '')
               AND created_at > $2",
        )
        .bind(a.site_id.as_deref())
        .bind(now - 3_600_000)
        .fetch_one(&mut *tx)
        .await?;
        let (outcome, detail) = if phones.is_empty() {
            (
                "nobody_on_duty",
                format!("not sent: nobody with a phone is on duty for {site}"),
            )
        } else if told >= per_hour {
            (
                "rate_limited",
                format!(
                    "not sent: {site} reached its limit of {per_hour} alarm notifications per hour"
                ),
            )
        } else {
            for phone in &phones {
                let body = body(phone);
                sqlx::query(
                    "INSERT INTO notifications (notification_id, channel, item_id, event, body,
                                                state, created_at, next_attempt_at, site_id, alarm_id)
                     VALUES ($1, 'sms', NULL, 'alarm', $2, 'pending', $3, $3, $4, $5)",
                )
                .bind(uuid::Uuid::new_v4().simple().to_string())
                .bind(body)
                .bind(now)
                .bind(a.site_id.as_deref())
                .bind(&a.id)
                .execute(&mut *tx)
                .await?;
            }
            ("notified", format!("SMS to {} on-duty staff", phones.len()))
        };
        sqlx::query("UPDATE alarms SET notified_at = $1, notify_outcome = $2 WHERE alarm_id = $3")
            .bind(now)
            .bind(outcome)
            .bind(&a.id)
            .execute(&mut *tx)
            .await?;
        alarm_history(&mut tx, &a.id, now, "notified", "server", Some(&detail)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// An operator acknowledges an active alarm (it stays open until its condition ends).
    pub async fn ack_alarm(
        &self,
        id: &str,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<AlarmAction, StoreError> {
        self.operator_action(
            id,
            "UPDATE alarms SET state = 'acknowledged', acked_by = $1, acked_at = $2, ack_note = $3
             WHERE alarm_id = $4 AND state = 'active'",
            "acknowledged",
            actor,
            note,
            now,
        )
        .await
    }

    /// An operator clears an open alarm whose condition cannot clear itself (or was fixed).
    pub async fn clear_alarm(
        &self,
        id: &str,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<AlarmAction, StoreError> {
        self.operator_action(
            id,
            "UPDATE alarms SET state = 'cleared', cleared_by = $1, cleared_at = $2, clear_note = $3
             WHERE alarm_id = $4 AND state <> 'cleared'",
            "cleared",
            actor,
            note,
            now,
        )
        .await
    }

    async fn operator_action(
        &self,
        id: &str,
        update: &'static str,
        to: &str,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<AlarmAction, StoreError> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(update)
            .bind(actor)
            .bind(now)
            .bind(note)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            alarm_history(&mut tx, id, now, to, actor, Some(note)).await?;
        }
        tx.commit().await?;
        match self.alarm(id).await? {
            None => Ok(AlarmAction::NotFound),
            Some(a) if n == 1 => Ok(AlarmAction::Done(Box::new(a))),
            Some(a) => Ok(AlarmAction::WrongState(a.state)),
        }
    }
}

/// What an alarm is about.
pub(super) struct Condition<'a> {
    pub device: &'a str,
    /// 0: the device itself.
    pub box_no: i64,
    pub kind: AlarmKind,
}

/// Raises (bump, reopen within the window, or insert) or clears the open alarm of `c`.
pub(super) async fn upsert_alarm(
    tx: &mut Tx<'_>,
    c: &Condition<'_>,
    active: bool,
    evidence: &str,
    ts: i64,
    now: i64,
) -> Result<(), StoreError> {
    let open = sqlx::query(
        "SELECT alarm_id FROM alarms
         WHERE device_id = $1 AND box_no = $2 AND kind = $3 AND state <> 'cleared'",
    )
    .bind(c.device)
    .bind(c.box_no)
    .bind(c.kind.as_str())
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get::<String, _>("alarm_id"))
    .transpose()?;
    let evidence = (!evidence.is_empty()).then_some(evidence);
    if !active {
        if let Some(id) = open {
            sqlx::query(
                "UPDATE alarms SET state = 'cleared', cleared_at = $1, cleared_by = $4,
                   last_seen = $2 WHERE alarm_id = $3",
            )
            .bind(now)
            .bind(ts)
            .bind(&id)
            .bind(c.kind.source())
            .execute(&mut **tx)
            .await?;
            alarm_history(tx, &id, now, "cleared", c.kind.source(), evidence).await?;
        }
        return Ok(());
    }
    if let Some(id) = open {
        sqlx::query(
            "UPDATE alarms SET count = count + 1, last_seen = $1,
               evidence = COALESCE($2, evidence) WHERE alarm_id = $3",
        )
        .bind(ts)
        .bind(evidence)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        return Ok(());
    }
    // Cleared by its own source a moment ago: the same condition flapping.
    let recent = sqlx::query(
        "SELECT alarm_id FROM alarms
         WHERE device_id = $1 AND box_no = $2 AND kind = $3 AND state = 'cleared'
           AND cleared_by = $5 AND cleared_at >= $4
         ORDER BY cleared_at DESC LIMIT 1",
    )
    .bind(c.device)
    .bind(c.box_no)
    .bind(c.kind.as_str())
    .bind(now - REOPEN_WINDOW_MS)
    .bind(c.kind.source())
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get::<String, _>("alarm_id"))
    .transpose()?;
    if let Some(id) = recent {
        sqlx::query(
            "UPDATE alarms SET state = 'active', count = count + 1, last_seen = $1,
               evidence = COALESCE($2, evidence), cleared_at = NULL, cleared_by = NULL
             WHERE alarm_id = $3",
        )
        .bind(ts)
        .bind(evidence)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        alarm_history(
            tx,
            &id,
            now,
            "active",
            c.kind.source(),
            Some("raised again (flapping)"),
        )
        .await?;
        return Ok(());
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query(
        "INSERT INTO alarms (alarm_id, device_id, box_no, kind, severity, state, site_id,
                             first_seen, last_seen, count, evidence)
         VALUES ($1, $2, $3, $4, $5, 'active',
                 (SELECT site_id FROM cabinets WHERE device_id = $2), $6, $6, 1, $7)",
    )
    .bind(&id)
    .bind(c.device)
    .bind(c.box_no)
    .bind(c.kind.as_str())
    .bind(c.kind.severity().as_str())
    .bind(ts)
    .bind(evidence)
    .execute(&mut **tx)
    .await?;
    alarm_history(tx, &id, now, "active", c.kind.source(), evidence).await?;
    tracing::info!(
        device = c.device,
        r#box = c.box_no,
        kind = %c.kind,
        severity = %c.kind.severity(),
        "alarm raised"
    );
    Ok(())
}

async fn alarm_history(
    tx: &mut Tx<'_>,
    id: &str,
    at: i64,
    state: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    write_history(tx, History::Alarm, id, at, state, actor, detail).await
}
