//! Remote commands: creation from the API, delivery to the device, acks, expiry, retransmit.
//!
//! Lifecycle: `queued → sent → delivered → opened | already_open | jammed | failed`, or
//! `expired` when not delivered within its time to live. Storage enforces that a status only
//! moves forward, so the fast ack, its durable copy from the outbox, and retransmissions can
//! arrive in any order and any number of times.
//!
//! An outcome is noted in this replica's [`book::Book`] and told to waiting requests when it
//! arrives; its write follows on a task of its own, so neither the API nor the next outcome
//! waits for the writer behind an ingest transaction (ADR 0030).

mod book;

use std::sync::Arc;
use std::time::Duration;

use protocol::{
    BoxNo, Channel, Command, CommandAck, CommandAction, CommandId, CommandStatus, DeviceId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::devices::Online;
use crate::devices::Publisher;
use crate::metrics::Metrics;
use crate::store::{CommandReport, CommandRow, CreateOutcome, NewCommand, Store, StoreError};

/// A delivered command without an outcome after this long is failed: its agent died
/// mid-command and did not come back to report (it reports `failed` itself when it does).
const DELIVERED_TIMEOUT_MS: i64 = 120_000;

/// A waiting request re-reads its command at least this often.
const REREAD: Duration = Duration::from_secs(1);

/// How often kept commands past the sweeps' horizon are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// How often undelivered commands are re-sent to online devices.
const RETRANSMIT_EVERY: Duration = Duration::from_millis(1000);

#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("unknown device {0}: it has never connected")]
    UnknownDevice(DeviceId),
    #[error("device {device} has {boxes} boxes; box {box_no} does not exist")]
    UnknownBox {
        device: DeviceId,
        box_no: BoxNo,
        boxes: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) struct OpenRequest {
    pub device: DeviceId,
    pub box_no: BoxNo,
    pub actor: String,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub ttl: Duration,
}

/// What a device reported a command came to, from its fast ack (`devices/{id}/acks`) or the
/// durable `command_result` event: both become this, noted by `Commands::note_outcome` and written by `Commands::store_outcome`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub device: DeviceId,
    pub command_id: CommandId,
    pub status: CommandStatus,
    pub detail: Option<String>,
    /// What the durable copy did to the command, applied by ingest in the transaction that
    /// stored its event (moved, or storage's row where it did not).
    pub applied: Option<Box<CommandReport>>,
}

impl Outcome {
    /// A device's ack (the fast path).
    pub fn from_ack(device: DeviceId, ack: CommandAck) -> Outcome {
        Outcome {
            device,
            command_id: ack.command_id,
            status: CommandStatus::from(ack.status),
            detail: ack.detail,
            applied: None,
        }
    }

    /// A `command_result` ingest applied.
    pub fn applied(report: CommandReport) -> Outcome {
        Outcome {
            device: report.row.device_id.clone(),
            command_id: report.row.command_id.clone(),
            status: report.row.status,
            detail: report.row.detail.clone(),
            applied: Some(Box::new(report)),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Commands {
    pub store: Store,
    pub publisher: Publisher,
    pub online: Online,
    pub metrics: Metrics,
    pub changes: crate::changes::Changes,
    /// Outcomes this replica heard ahead of their writes.
    pub book: Arc<book::Book>,
}

/// Work for the command writer, in arrival order.
pub(crate) enum Write {
    /// Store an outcome; `noted` says whether the book holds the command, `was` the status
    /// the book moved it from (announced then, counted once storage moves).
    Outcome {
        outcome: Outcome,
        at: i64,
        noted: bool,
        was: Option<CommandStatus>,
    },
    /// A cabinet announced itself: send what waits for it.
    Ready(DeviceId),
}

impl Commands {
    /// Queues an open command, sends it at once if the device is online, and returns it.
    /// With a reused idempotency key, returns the first command instead (`false`).
    pub(crate) async fn open(&self, req: OpenRequest) -> Result<(CommandRow, bool), CommandError> {
        let boxes = self
            .store
            .device_exists(&req.device)
            .await?
            .ok_or_else(|| CommandError::UnknownDevice(req.device.clone()))?;
        if boxes > 0 && i64::from(req.box_no.get()) > boxes {
            return Err(CommandError::UnknownBox {
                device: req.device,
                box_no: req.box_no,
                boxes,
            });
        }
        let created_at = crate::clock::now_ms();
        // Online: stored as `sent` in the creating write and published right after it.
        let online = self.online.is_online(&req.device);
        let new = NewCommand {
            id: new_command_id(),
            device: req.device.clone(),
            box_no: req.box_no,
            actor: req.actor,
            reason: req.reason,
            idempotency_key: req.idempotency_key,
            created_at,
            expires_at: created_at + req.ttl.as_millis() as i64,
            sent_at: online.then_some(created_at),
        };
        if let CreateOutcome::Existing(row) = self.store.create_command(&new).await? {
            return Ok((*row, false));
        }
        self.book.keep(new.row());
        self.moved(&new.id, &new.device, CommandStatus::Queued);
        tracing::info!(command = %new.id, device = %new.device, box_no = %new.box_no, "remote open queued");
        if online {
            self.moved(&new.id, &new.device, CommandStatus::Sent);
            self.publish(
                &new.id,
                &new.device,
                new.box_no,
                new.created_at,
                new.expires_at,
            );
        }
        // The row as stored: an ack that already moved it on is the next read's news.
        Ok((new.row(), true))
    }

    fn publish(
        &self,
        id: &CommandId,
        device: &DeviceId,
        box_no: BoxNo,
        issued_at: i64,
        expires_at: i64,
    ) {
        let cmd = Command {
            v: 1,
            command_id: id.clone(),
            issued_at,
            expires_at,
            action: CommandAction::Open { box_no },
        };
        self.publisher
            .publish(device, Channel::Commands, protocol::encode(&cmd));
    }

    async fn send_row(&self, row: &CommandRow) -> Result<(), StoreError> {
        // Record `sent` before publishing: an ack can come back faster than this task resumes.
        if self
            .store
            .advance_command(
                &row.command_id,
                CommandStatus::Sent,
                crate::clock::now_ms(),
                None,
            )
            .await?
            .inspect(|stored| {
                self.book.stored(stored);
            })
            .is_some()
        {
            self.moved(&row.command_id, &row.device_id, CommandStatus::Sent);
        }
        self.publish(
            &row.command_id,
            &row.device_id,
            row.box_no,
            row.created_at,
            row.expires_at,
        );
        Ok(())
    }

    /// The command as this replica knows it: the stored row, or the outcome a cabinet
    /// reported whose write is still on its way, whichever is further.
    pub(crate) async fn current(&self, id: &str) -> Result<Option<CommandRow>, StoreError> {
        let kept = self.book.get(id);
        let stored = self.store.command(id).await?;
        Ok(self.book.newest(kept, stored))
    }

    /// Audit rows of remote opens with the outcome this replica has shown ahead of its write,
    /// so that the audit never says less than the command did a moment before.
    pub(crate) fn overlay_audit(&self, rows: &mut [crate::store::AuditRow]) {
        for row in rows {
            let Some(kept) = row.command_id.as_deref().and_then(|id| self.book.get(id)) else {
                continue;
            };
            let stored = row.result.as_deref().and_then(CommandStatus::parse);
            if stored.is_none_or(|s| crate::store::moves(s, kept.status)) {
                row.result = Some(kept.status.as_str().to_owned());
                row.latency_ms = kept.latency_ms;
            }
        }
    }

    /// Notes the outcome a device reported, from its fast ack or from the durable
    /// `command_result` event ingest stored (and applied): the one path every outcome takes.
    /// A command this replica keeps moves at once and waiting requests hear of it; a fast
    /// ack's write follows ([`Commands::store_outcome`]).
    pub(crate) fn note_outcome(&self, o: Outcome) -> Option<Write> {
        if let Some(report) = o.applied {
            // Stored already: the book settles on storage's row, and storage's state is
            // announced (counted only where storage moved).
            let CommandReport { row, was, moved } = *report;
            self.book.stored(&row);
            if moved {
                self.finished(&row, row.status, was);
            } else {
                self.announce(&row);
            }
            return None;
        }
        let at = crate::clock::now_ms();
        let mut was = None;
        let noted = match self.book.note(
            &o.device,
            o.command_id.as_str(),
            o.status,
            at,
            o.detail.as_deref(),
        ) {
            book::Noted::OtherDevice(owner) => {
                tracing::warn!(device = %o.device, command = %o.command_id, %owner,
                    "outcome of another device's command ignored");
                return None;
            }
            // Shown and announced now; counted once storage moves.
            book::Noted::Moved { row, was: before } => {
                self.announce(&row);
                was = Some(before);
                true
            }
            // A repeat is written all the same: the first write may have failed.
            book::Noted::Unchanged => true,
            book::Noted::Unknown => false,
        };
        Some(Write::Outcome {
            outcome: o,
            at,
            noted,
            was,
        })
    }

    /// Writes an outcome. Idempotent: a status only moves forward (`status_rank`), so the
    /// second report of one outcome changes nothing. An outcome the book did not know (a
    /// command another replica created, or one from before a restart) is checked against
    /// storage and announced once written.
    pub(crate) async fn store_outcome(
        &self,
        o: Outcome,
        at: i64,
        noted: bool,
        noted_was: Option<CommandStatus>,
    ) -> Result<(), StoreError> {
        let Outcome {
            device,
            command_id,
            status,
            detail,
            ..
        } = o;
        let mut was = noted_was;
        if !noted {
            let Some(row) = self.store.command(command_id.as_str()).await? else {
                tracing::warn!(%device, command = %command_id, "outcome of an unknown command ignored");
                return Ok(());
            };
            if row.device_id != device {
                tracing::warn!(%device, command = %command_id, owner = %row.device_id,
                    "outcome of another device's command ignored");
                return Ok(());
            }
            was = Some(row.status);
        }
        let updated = self
            .store
            .advance_command(&command_id, status, at, detail.as_deref())
            .await?;
        match updated {
            // Counted, logged and announced (again, for other replicas, which answer from
            // storage) once storage moved.
            Some(updated) => {
                self.book.stored(&updated);
                self.finished(&updated, status, was.unwrap_or(status));
            }
            // Storage refused what the book noted (the command was failed or expired
            // meanwhile, or holds that state already): the book takes storage's row, and a
            // request the book answered is woken to read it.
            None if noted && self.book.get(command_id.as_str()).is_some() => {
                if let Some(row) = self.store.command(command_id.as_str()).await? {
                    if self
                        .book
                        .stored(&row)
                        .is_some_and(|kept| kept != row.status)
                    {
                        tracing::warn!(%device, command = %command_id, reported = status.as_str(),
                            stored = row.status.as_str(), "a reported outcome storage refused; showing storage's");
                    }
                    self.announce(&row);
                }
            }
            None => {}
        }
        Ok(())
    }

    /// A command moved to `status` on a device's report: counted, announced, and logged
    /// with its latency when final.
    fn finished(&self, row: &CommandRow, status: CommandStatus, was: CommandStatus) {
        self.moved(&row.command_id, &row.device_id, status);
        if !status.is_terminal() {
            return;
        }
        if was == CommandStatus::Expired {
            tracing::warn!(device = %row.device_id, command = %row.command_id, outcome = status.as_str(),
                "device executed a command the server had expired (clock skew?); recording the door's outcome");
        }
        if let Some(ms) = row.latency_ms {
            self.metrics.command_latency.observe(ms as f64 / 1000.0);
        }
        tracing::info!(device = %row.device_id, command = %row.command_id, outcome = status.as_str(),
            latency_ms = row.latency_ms, "remote open finished");
    }

    /// A device announced itself (state snapshot after connect): send what waits for it.
    pub(crate) async fn on_device_ready(&self, device: &DeviceId) -> Result<(), StoreError> {
        for row in self
            .store
            .pending_commands(Some(device), crate::clock::now_ms())
            .await?
        {
            self.send_row(&row).await?;
        }
        Ok(())
    }

    /// Expires overdue commands and re-sends undelivered ones, until cancelled.
    pub(crate) async fn maintain(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_retransmit = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = crate::clock::now_ms();
            let expired = self.store.expire_commands(now).await;
            self.swept(
                expired,
                CommandStatus::Expired,
                "remote open expired undelivered",
            );
            let stale = self
                .store
                .fail_stale_delivered(now, DELIVERED_TIMEOUT_MS)
                .await;
            self.swept(
                stale,
                CommandStatus::Failed,
                "remote open delivered but no outcome reported; marked failed",
            );
            if last_retransmit.elapsed() < RETRANSMIT_EVERY {
                continue;
            }
            last_retransmit = tokio::time::Instant::now();
            match self.store.pending_commands(None, now).await {
                Ok(rows) => {
                    for row in rows {
                        let online = self.online.is_online(&row.device_id);
                        let stale = row
                            .sent_at
                            .is_none_or(|s| now - s >= RETRANSMIT_EVERY.as_millis() as i64);
                        if online
                            && stale
                            && let Err(e) = self.send_row(&row).await
                        {
                            tracing::error!(error = %e, "re-sending a command failed");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "reading pending commands failed"),
            }
        }
    }

    /// The command once it reaches a final status, or as it is when `wait` runs out (`None`
    /// if there is no such command). Listens for its changes instead of polling storage, so
    /// a waiting client costs nothing until its command moves.
    pub(crate) async fn wait_final(
        &self,
        id: &str,
        wait: Duration,
    ) -> Result<Option<CommandRow>, StoreError> {
        use tokio::sync::broadcast::error::RecvError;
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before reading, so a change between the read and the wait is not missed.
        let mut changes = self.changes.subscribe();
        loop {
            let row = match self.book.settled(id) {
                Some(done) => Some(done),
                None => self.current(id).await?,
            };
            match &row {
                Some(r) if !r.status.is_terminal() => {}
                _ => return Ok(row),
            }
            // Wait for a notice about this command; a lagged receiver re-reads, and so does
            // every second: with replicas on an external broker the outcome may be stored by
            // another replica, whose notices this one may never hear. The second counts from
            // the read, not from the last notice about other things (which come all the time).
            let until = deadline.min(tokio::time::Instant::now() + REREAD);
            loop {
                match tokio::time::timeout_at(until, changes.recv()).await {
                    Err(_) if until == deadline => return Ok(row),
                    Err(_) => break,
                    Ok(Ok(crate::changes::Change::Command { command_id, .. }))
                        if command_id == id =>
                    {
                        break;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => return Ok(row),
                }
            }
        }
    }

    /// A command moved to `status`: counted, and told to live views.
    fn moved(&self, command_id: &CommandId, device_id: &DeviceId, status: CommandStatus) {
        self.metrics.command_status(status.as_str());
        self.tell(command_id, device_id, status);
    }

    /// Tells live views and waiting requests a command's state again, without counting a move.
    fn announce(&self, row: &CommandRow) {
        self.tell(&row.command_id, &row.device_id, row.status);
    }

    fn tell(&self, command_id: &CommandId, device_id: &DeviceId, status: CommandStatus) {
        self.changes.send(crate::changes::Change::Command {
            command_id: command_id.to_string(),
            device_id: device_id.to_string(),
            status,
        });
    }

    /// Counts and logs what a sweep moved to `status`.
    fn swept(
        &self,
        result: Result<Vec<CommandRow>, StoreError>,
        status: CommandStatus,
        what: &str,
    ) {
        match result {
            Ok(rows) => {
                for row in rows {
                    self.book.stored(&row);
                    self.moved(&row.command_id, &row.device_id, status);
                    if status == CommandStatus::Failed {
                        tracing::warn!(command = %row.command_id, device = %row.device_id, "{what}");
                    } else {
                        tracing::info!(command = %row.command_id, device = %row.device_id, "{what}");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, status = status.as_str(), "command sweep failed"),
        }
    }

    /// Notes outcomes as they arrive and hands their writes, and device-ready notices, to
    /// [`Commands::run_writes`]; ends when the outcomes channel closes.
    pub(crate) async fn run_inbox(
        self,
        mut outcomes: mpsc::Receiver<Outcome>,
        mut ready: mpsc::Receiver<DeviceId>,
        writes: mpsc::Sender<Write>,
    ) {
        let mut ready_open = true;
        loop {
            let write = tokio::select! {
                o = outcomes.recv() => match o {
                    Some(o) => self.note_outcome(o),
                    None => break,
                },
                d = ready.recv(), if ready_open => {
                    ready_open = d.is_some();
                    d.map(Write::Ready)
                }
            };
            if let Some(w) = write
                && writes.send(w).await.is_err()
            {
                break;
            }
        }
    }

    /// Writes outcomes and sends what waits for devices that announced themselves, one after
    /// another, until the inbox ends.
    /// Also forgets, every few seconds, kept commands past the sweeps' horizon: on every
    /// replica, since only the leader sweeps.
    pub(crate) async fn run_writes(self, mut writes: mpsc::Receiver<Write>) {
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let w = tokio::select! {
                w = writes.recv() => match w {
                    Some(w) => w,
                    None => break,
                },
                _ = prune.tick() => {
                    self.book.prune(crate::clock::now_ms(), DELIVERED_TIMEOUT_MS);
                    continue;
                }
            };
            match w {
                Write::Outcome {
                    outcome,
                    at,
                    noted,
                    was,
                } => {
                    let device = outcome.device.clone();
                    if let Err(e) = self.store_outcome(outcome, at, noted, was).await {
                        tracing::error!(%device, error = %e, "storing a command outcome failed; its durable copy, or the delivered timeout, settles it");
                    }
                }
                Write::Ready(device) => {
                    if let Err(e) = self.on_device_ready(&device).await {
                        tracing::error!(%device, error = %e, "sending pending commands failed");
                    }
                }
            }
        }
    }
}

fn new_command_id() -> CommandId {
    CommandId::parse(&uuid::Uuid::new_v4().simple().to_string())
        .expect("uuid's simple form (32 hex digits) is a valid command id")
}
