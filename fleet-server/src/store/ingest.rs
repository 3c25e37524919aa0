//! Ingest: device batches stored in one transaction each, deduplicated on `(device, seq)`,
//! with the receipt marks and box sensors they move; what a batch costs the writer.

use std::collections::HashMap;

use protocol::{BoxNo, DeviceId, Event, EventBody, StateSnapshot};
use sqlx::AssertSqlSafe;

use super::{DbKind, Effects, ROWS_PER_INSERT, Store, StoreError, effects, multi_row};

impl Store {
    /// Stores a batch of events and snapshots in one transaction: events deduplicated on
    /// `(device_id, seq)`, box state advanced only by newer sequence numbers, devices' receipt
    /// marks raised. Returns how many events were new.
    pub async fn ingest(&self, batch: &IngestBatch) -> Result<u64, StoreError> {
        Ok(self.ingest_with_effects(batch).await?.0)
    }

    /// [`Store::ingest`], also returning what the events with effects in it changed.
    pub async fn ingest_with_effects(
        &self,
        batch: &IngestBatch,
    ) -> Result<(u64, Effects), StoreError> {
        let mut stored = Stored::new();
        self.ingest_replicated(batch, &mut stored).await?;
        Ok((stored.inserted, stored.effects))
    }

    /// [`Store::ingest_with_effects`], adding what it stored to `into`, and saying there
    /// whether the commit reached a synchronous standby (ADR 0025): with PostgreSQL named by
    /// several hosts, only when synchronous replication was on both before and after the
    /// commit — pg_auto_failover turns it off while the standby is unhealthy, and a commit
    /// then exists on the primary alone. Always true for one database that has no standby.
    ///
    /// On SQLite, where every write waits for the one writer, a batch is stored in turns of
    /// at most [`TURN_COST`], a device never split over two (its mark says what is stored with
    /// it), and the writer is handed back between turns: a remote open or a reservation waits
    /// for one turn, not the whole batch (ADR 0030). When a later turn fails, what earlier
    /// turns stored is in `into` already: the caller retries the batch with the same `into`,
    /// and the stored events, being no longer new, are not counted or acted on twice.
    pub async fn ingest_replicated(
        &self,
        batch: &IngestBatch,
        into: &mut Stored,
    ) -> Result<(), StoreError> {
        let turns = match self.kind {
            DbKind::Sqlite => batch.turns(TURN_COST),
            DbKind::Postgres => None,
        };
        match &turns {
            Some(turns) => {
                for turn in turns {
                    self.ingest_turn(turn, into).await?;
                }
            }
            None => self.ingest_turn(batch, into).await?,
        }
        // Heartbeats in a transaction of their own, after the events: they need no atomicity
        // with them, and their rows locked in id order on their own can never deadlock with
        // another replica's batch. Failing, they are only logged: the next heartbeat of each
        // device replaces them, and the events above are committed and must be receipted.
        if !batch.heartbeats.is_empty() {
            let written = match self.writer.acquire().await {
                Ok(mut conn) => self.write_heartbeats(&mut conn, &batch.heartbeats).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, heartbeats = batch.heartbeats.len(), "writing heartbeats failed; the next ones replace them");
            }
        }
        // A receipt lets the device delete its copy, so this commit must survive a power
        // cut. SQLite (WAL, synchronous = NORMAL) wrote it to the log without syncing; sync
        // the log here, after handing the writer back, so command writes do not queue behind
        // the disk (ADR 0010). Syncing the file also makes every earlier commit durable.
        if let Some(wal) = &self.wal {
            let log = wal.clone();
            let synced = tokio::task::spawn_blocking(move || log.file.sync_data())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(source) = synced {
                return Err(StoreError::File {
                    path: wal.path.clone(),
                    source,
                });
            }
        }
        Ok(())
    }

    /// One transaction of [`Store::ingest_replicated`], the writer held for it alone.
    async fn ingest_turn(&self, batch: &IngestBatch, into: &mut Stored) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        let sync_before = self.synchronous(&mut conn).await?;
        let (inserted, effects) = if self.kind == DbKind::Postgres && batch.is_plain() {
            let inserted = self.ingest_plain_postgres(&mut conn, batch).await?;
            (inserted, Effects::default())
        } else {
            self.ingest_tx(&mut conn, batch).await?
        };
        let replicated = sync_before && self.synchronous(&mut conn).await?;
        into.inserted += inserted;
        into.effects.merge(effects);
        into.replicated &= replicated;
        Ok(())
    }

    /// Whether commits on this connection wait for a synchronous standby now (always true
    /// when the database was given as one host: nothing to wait for, nothing to hold).
    async fn synchronous(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    ) -> Result<bool, StoreError> {
        if !self.has_standbys() {
            return Ok(true);
        }
        let names: String =
            sqlx::query_scalar("SELECT current_setting('synchronous_standby_names')")
                .fetch_one(&mut **conn)
                .await?;
        Ok(!names.trim().is_empty())
    }

    async fn ingest_tx(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        batch: &IngestBatch,
    ) -> Result<(u64, Effects), StoreError> {
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        let now = batch.received_at;
        let mut inserted = 0;
        let mut effects = Effects::default();

        // Devices first, so every later row has its device; every device of the batch, in
        // id order, so that two writers (server replicas on one PostgreSQL) take the device
        // row locks in the same order and never deadlock on them. Marks only rise.
        let mut devices: Vec<&DeviceId> = batch
            .marks
            .keys()
            .chain(batch.snapshots.iter().map(|(d, _)| d))
            .collect();
        devices.sort();
        devices.dedup();
        // One statement per [`ROWS_PER_INSERT`] devices: on PostgreSQL every statement is a
        // round trip, and a batch of single-event messages names as many devices as events.
        for chunk in devices.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                "INSERT INTO devices (device_id, created_at, last_seen, acked_seq) VALUES ",
                4,
                chunk.len(),
                " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,
                   acked_seq = CASE WHEN excluded.acked_seq > devices.acked_seq
                                    THEN excluded.acked_seq ELSE devices.acked_seq END",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for device in chunk {
                let mark = batch.marks.get(*device).copied().unwrap_or(0);
                q = q
                    .bind(device.as_str())
                    .bind(now)
                    .bind(now)
                    .bind(mark as i64);
            }
            q.execute(&mut *tx).await?;
        }

        // What a batch changes beyond its own devices' rows — the fleet-wide `events_lost`
        // alarm (one open at a time, checked then inserted), the sites' usage rollups,
        // cabinets' code versions, the audit chain — it changes holding the audit chain's
        // lock, taken here, after the device rows and before anything else, as every other
        // transaction on shared rows takes it first (`Store::begin_shared`): ingest lanes,
        // replicas and the API then queue for shared rows instead of deadlocking, and the
        // alarm is raised once. Batches of plain events and command outcomes (rows of their
        // own device) do not take it and run side by side.
        // Events with effects change items, alarms or the device's row: each is inserted on
        // its own and acted on only when it is new, so a retransmitted staff open never moves
        // the next item in that box.
        let (with_effects, plain): (Vec<_>, Vec<_>) = batch
            .events
            .iter()
            .partition(|(_, e)| effects::has_effects(&e.body));
        if !batch.gaps.is_empty() || !with_effects.is_empty() {
            super::audit::lock_chain(&mut tx).await?;
        }
        super::gaps::write_gaps(&mut tx, &batch.gaps, now).await?;

        for (device, event) in with_effects {
            let new = sqlx::query(
                "INSERT INTO events (device_id, seq, ts, received_at, kind, box_no, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, seq) DO NOTHING",
            )
            .bind(device.as_str())
            .bind(event.seq as i64)
            .bind(event.ts)
            .bind(now)
            .bind(event.body.kind())
            .bind(event.body.box_no().map(|b| i64::from(b.get())))
            .bind(serde_json::to_string(&event.body).unwrap_or_default())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if new == 1 {
                inserted += 1;
                Store::apply_event_effects(
                    &mut tx,
                    device,
                    event.ts,
                    &event.body,
                    now,
                    self.webhooks,
                    &mut effects,
                )
                .await?;
            }
        }
        for chunk in plain.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                "INSERT INTO events (device_id, seq, ts, received_at, kind, box_no, body) VALUES ",
                7,
                chunk.len(),
                " ON CONFLICT (device_id, seq) DO NOTHING",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (device, event) in chunk {
                q = q
                    .bind(device.as_str())
                    .bind(event.seq as i64)
                    .bind(event.ts)
                    .bind(now)
                    .bind(event.body.kind())
                    .bind(event.body.box_no().map(|b| i64::from(b.get())))
                    .bind(serde_json::to_string(&event.body).unwrap_or_default());
            }
            inserted += q.execute(&mut *tx).await?.rows_affected();
        }

        // A cabinet's durable copy of a command outcome moves the command in the transaction
        // that stores it: once receipted, nothing would bring it again (the fast ack is only
        // ever applied after its write). Repeats change nothing (status only moves forward).
        for (device, event) in &batch.events {
            if let EventBody::CommandResult {
                command_id,
                status,
                detail,
                ..
            } = &event.body
                && *status != protocol::AckStatus::Delivered
            {
                let Some(before) =
                    super::commands::command_on(&mut tx, command_id.as_str()).await?
                else {
                    tracing::warn!(%device, command = %command_id, "outcome of an unknown command ignored");
                    continue;
                };
                if &before.device_id != device {
                    tracing::warn!(%device, command = %command_id, owner = %before.device_id,
                        "outcome of another device's command ignored");
                    continue;
                }
                let moved = super::commands::advance_on(
                    &mut tx,
                    command_id,
                    Some(device),
                    protocol::CommandStatus::from(*status),
                    now,
                    detail.as_deref(),
                )
                .await?;
                // Moved or not, the command book settles on what storage holds.
                effects.commands.push(super::CommandReport {
                    was: before.status,
                    moved: moved.is_some(),
                    row: moved.unwrap_or(before),
                });
            }
        }

        for (device, event) in &batch.events {
            if let EventBody::Started {
                boxes,
                agent_version,
            } = &event.body
            {
                self.started(&mut tx, device, *boxes, agent_version).await?;
            }
        }
        let (doors, occupancy) = latest_box_fields(&batch.events);
        self.upsert_box_field(&mut tx, BoxField::Door, &doors)
            .await?;
        self.upsert_box_field(&mut tx, BoxField::Occupied, &occupancy)
            .await?;

        for (device, snapshot) in &batch.snapshots {
            self.apply_snapshot(&mut tx, device, snapshot, now).await?;
        }
        tx.commit().await?;
        Ok((inserted, effects))
    }

    async fn started(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        device: &DeviceId,
        boxes: u16,
        agent_version: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE devices SET boxes = $1, agent_version = $2 WHERE device_id = $3")
            .bind(i64::from(boxes))
            .bind(agent_version)
            .bind(device.as_str())
            .execute(&mut **tx)
            .await?;
        let numbers: Vec<i64> = (1..=i64::from(boxes)).collect();
        for chunk in numbers.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                "INSERT INTO boxes (device_id, box_no) VALUES ",
                2,
                chunk.len(),
                " ON CONFLICT (device_id, box_no) DO NOTHING",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for n in chunk {
                q = q.bind(device.as_str()).bind(*n);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn upsert_box_field(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        field: BoxField,
        latest: &Latest<'_>,
    ) -> Result<(), StoreError> {
        let (value, seq, at) = field.columns();
        let rows: Vec<_> = latest.iter().collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                &format!("INSERT INTO boxes (device_id, box_no, {value}, {seq}, {at}) VALUES "),
                5,
                chunk.len(),
                &format!(
                    " ON CONFLICT (device_id, box_no) DO UPDATE SET {value} = excluded.{value},
                      {seq} = excluded.{seq}, {at} = excluded.{at}
                      WHERE boxes.{seq} < excluded.{seq}"
                ),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((device, box_no), (v, s, t)) in chunk {
                q = q
                    .bind(device.as_str())
                    .bind(i64::from(box_no.get()))
                    .bind(i64::from(*v))
                    .bind(*s as i64)
                    .bind(*t);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A snapshot sets every box it names, unless an event newer than the snapshot already did.
    async fn apply_snapshot(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        device: &DeviceId,
        snapshot: &StateSnapshot,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut doors = HashMap::new();
        let mut occupancy = HashMap::new();
        for b in &snapshot.boxes {
            doors.insert((device, b.box_no), (b.door_open, snapshot.seq, snapshot.ts));
            if let Some(o) = b.occupied {
                occupancy.insert((device, b.box_no), (o, snapshot.seq, snapshot.ts));
            }
        }
        sqlx::query(
            "INSERT INTO devices (device_id, created_at, last_seen, boxes) VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,
               boxes = CASE WHEN excluded.boxes > devices.boxes THEN excluded.boxes ELSE devices.boxes END",
        )
        .bind(device.as_str())
        .bind(now)
        .bind(now)
        .bind(snapshot.boxes.len() as i64)
        .execute(&mut **tx)
        .await?;
        // `<=`: a snapshot taken at the same seq as the last event is at least as fresh.
        self.upsert_box_field(tx, BoxField::Door, &doors).await?;
        self.upsert_box_field(tx, BoxField::Occupied, &occupancy)
            .await?;
        Ok(())
    }

    /// The receipt mark stored for a device (0 if unknown).
    pub async fn acked_seq(&self, device: &DeviceId) -> Result<u64, StoreError> {
        let mark: Option<i64> =
            sqlx::query_scalar("SELECT acked_seq FROM devices WHERE device_id = $1")
                .bind(device.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(mark.unwrap_or(0).max(0) as u64)
    }

    /// Highest stored seq above `after` such that every seq in between is stored: used to
    /// re-derive a receipt mark when events arrived out of order.
    pub async fn stored_seqs_after(
        &self,
        device: &DeviceId,
        after: u64,
        limit: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(device.as_str())
        .bind(after as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|s| s as u64).collect())
    }
}

/// A box's newest value of a sensor in a batch: the value, its event's seq and time.
pub(super) type Latest<'a> = HashMap<(&'a DeviceId, BoxNo), (bool, u64, i64)>;

/// The newest door and occupancy per box in `events`; older ones would lose anyway.
pub(super) fn latest_box_fields(events: &[(DeviceId, Event)]) -> (Latest<'_>, Latest<'_>) {
    let mut doors: Latest = HashMap::new();
    let mut occupancy: Latest = HashMap::new();
    for (device, event) in events {
        let (map, box_no, value) = match &event.body {
            EventBody::Door { box_no, open } => (&mut doors, *box_no, *open),
            EventBody::Occupancy { box_no, occupied } => (&mut occupancy, *box_no, *occupied),
            _ => continue,
        };
        let entry = map
            .entry((device, box_no))
            .or_insert((value, event.seq, event.ts));
        if event.seq >= entry.1 {
            *entry = (value, event.seq, event.ts);
        }
    }
    (doors, occupancy)
}

#[derive(Clone, Copy)]
enum BoxField {
    Door,
    Occupied,
}

impl BoxField {
    fn columns(self) -> (&'static str, &'static str, &'static str) {
        match self {
            BoxField::Door => ("door_open", "door_seq", "door_changed_at"),
            BoxField::Occupied => ("occupied", "occupied_seq", "occupied_changed_at"),
        }
    }
}

/// What storing an event costs the one writer, in plain events (one row of a multi-row
/// insert, ≈ 15 µs). An event with effects (keypad, fault, release …) runs its own statements (audit, item, history, usage,
/// notifications: about ten, ≈ 0.8 ms in the city scenario's bursts), so the ingest sizes
/// its transactions by cost, not count: a burst of staff rounds then holds the writer for
/// tens of milliseconds at a time instead of a second, and a remote open or a reservation
/// waits for one such slice.
pub fn event_cost(body: &EventBody) -> usize {
    if effects::has_effects(body) {
        EFFECTS_EVENT_COST
    } else {
        1
    }
}

/// See [`event_cost`].
pub const EFFECTS_EVENT_COST: usize = 50;
/// A state snapshot writes every box of its cabinet (see [`event_cost`]).
pub const SNAPSHOT_COST: usize = 50;
/// A heartbeat updates its device's health, a row of a multi-row statement (see
/// [`event_cost`]).
pub const HEARTBEAT_COST: usize = 1;

/// Most work in one SQLite ingest transaction, in plain events ([`event_cost`]): four keypad
/// events of four cabinets (each cabinet's row counts 1), which hold the writer for a few ms
/// on a busy 2-core machine (measured in the city scenario: p99 3.6 ms, where a transaction of
/// forty took 10-250 ms).
pub const TURN_COST: usize = 250;

/// What an ingest batch stored, added up over its transactions (and over retries of it).
#[derive(Debug)]
pub struct Stored {
    /// Events new to the database.
    pub inserted: u64,
    pub effects: Effects,
    /// Whether every commit is on a synchronous standby too (see
    /// [`Store::ingest_replicated`]).
    pub replicated: bool,
}

impl Stored {
    /// Nothing stored yet: no commit that missed the standby either.
    pub fn new() -> Stored {
        Stored {
            inserted: 0,
            effects: Effects::default(),
            replicated: true,
        }
    }
}

impl Default for Stored {
    fn default() -> Stored {
        Stored::new()
    }
}

/// What one ingest transaction writes.
#[derive(Debug, Default)]
pub struct IngestBatch {
    pub received_at: i64,
    pub events: Vec<(DeviceId, Event)>,
    pub snapshots: Vec<(DeviceId, StateSnapshot)>,
    /// Heartbeats to write, each with the time it was received (its `last_seen`).
    pub heartbeats: Vec<(DeviceId, protocol::Heartbeat, i64)>,
    /// New receipt mark per device that sent something in this batch.
    pub marks: HashMap<DeviceId, u64>,
    /// Receipted events the database does not hold (a device's `base` passed its mark).
    pub gaps: Vec<super::gaps::Gap>,
}

impl IngestBatch {
    /// The batch's events, snapshots and marks as transactions of at most `max_cost` each
    /// (a device alone may exceed it), each device's whole share in one; `None` when it fits
    /// in one. Heartbeats are not in them: they have a transaction of their own.
    pub fn turns(&self, max_cost: usize) -> Option<Vec<IngestBatch>> {
        let mut cost: std::collections::BTreeMap<&DeviceId, usize> = Default::default();
        for device in self.marks.keys() {
            cost.entry(device).or_insert(1);
        }
        for (device, event) in &self.events {
            *cost.entry(device).or_insert(1) += event_cost(&event.body);
        }
        for (device, _) in &self.snapshots {
            *cost.entry(device).or_insert(1) += SNAPSHOT_COST;
        }
        for gap in &self.gaps {
            cost.entry(&gap.device).or_insert(1);
        }
        if cost.values().sum::<usize>() <= max_cost {
            return None;
        }
        // Which turn each device goes in, in id order, filling each turn up to the cost.
        let mut turn_of: HashMap<&DeviceId, usize> = HashMap::new();
        let (mut turn, mut filled) = (0, 0);
        for (device, c) in cost {
            if filled > 0 && filled + c > max_cost {
                turn += 1;
                filled = 0;
            }
            filled += c;
            turn_of.insert(device, turn);
        }
        if turn == 0 {
            // One device over the cost: it cannot be split.
            return None;
        }
        let mut turns: Vec<IngestBatch> = (0..=turn)
            .map(|_| IngestBatch {
                received_at: self.received_at,
                ..IngestBatch::default()
            })
            .collect();
        for (device, event) in &self.events {
            turns[turn_of[device]]
                .events
                .push((device.clone(), event.clone()));
        }
        for (device, snapshot) in &self.snapshots {
            turns[turn_of[device]]
                .snapshots
                .push((device.clone(), snapshot.clone()));
        }
        for (device, mark) in &self.marks {
            turns[turn_of[device]].marks.insert(device.clone(), *mark);
        }
        for gap in &self.gaps {
            turns[turn_of[&gap.device]].gaps.push(gap.clone());
        }
        Some(turns)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event(seq: u64, effects: bool) -> Event {
        let body = if effects {
            EventBody::KeypadLocked {
                until: 0,
                failures: 5,
            }
        } else {
            EventBody::Door {
                box_no: BoxNo::new(1).expect("box"),
                open: seq.is_multiple_of(2),
            }
        };
        Event { seq, ts: 0, body }
    }

    /// A batch of up to 12 devices; each device's events in seq order, devices interleaved;
    /// some devices with a mark alone, a snapshot or a gap.
    fn batch() -> impl Strategy<Value = IngestBatch> {
        let picks = prop::collection::vec((0u8..12, any::<bool>()), 0..120);
        let others = prop::collection::vec((0u8..12, 0u8..3), 0..12);
        (picks, others).prop_map(|(picks, others)| {
            let dev = |d: u8| DeviceId::parse(&format!("cab-{d}")).expect("device");
            let mut seqs: HashMap<DeviceId, u64> = HashMap::new();
            let mut b = IngestBatch::default();
            for (d, effects) in picks {
                let device = dev(d);
                let seq = seqs.entry(device.clone()).or_insert(0);
                *seq += 1;
                b.events.push((device.clone(), event(*seq, effects)));
                b.marks.insert(device, *seq);
            }
            for (d, what) in others {
                let device = dev(d);
                match what {
                    0 => {
                        b.marks.entry(device).or_insert(7);
                    }
                    1 => b.snapshots.push((
                        device,
                        StateSnapshot {
                            v: 1,
                            seq: 9,
                            ts: 0,
                            boxes: Vec::new(),
                        },
                    )),
                    _ => b.gaps.push(super::super::gaps::Gap {
                        device,
                        first_seq: 1,
                        last_seq: 5,
                    }),
                }
            }
            b
        })
    }

    /// The devices a batch names, and what they cost (as `turns` counts them).
    fn devices(b: &IngestBatch) -> std::collections::BTreeSet<&DeviceId> {
        b.events
            .iter()
            .map(|(d, _)| d)
            .chain(b.marks.keys())
            .chain(b.snapshots.iter().map(|(d, _)| d))
            .chain(b.gaps.iter().map(|g| &g.device))
            .collect()
    }

    fn cost(b: &IngestBatch) -> usize {
        devices(b).len()
            + b.events
                .iter()
                .map(|(_, e)| event_cost(&e.body))
                .sum::<usize>()
            + b.snapshots.len() * SNAPSHOT_COST
    }

    proptest! {
        #[test]
        fn turns_hold_every_event_once_and_each_device_whole(b in batch(), max in 1usize..400) {
            let Some(turns) = b.turns(max) else {
                // Within the cost, or one device alone over it.
                prop_assert!(cost(&b) <= max || devices(&b).len() == 1);
                return Ok(());
            };
            prop_assert!(turns.len() > 1);
            let mut seen: Vec<&DeviceId> = Vec::new();
            for t in &turns {
                let named = devices(t);
                // A turn over its cost holds one device, which cannot be split.
                prop_assert!(cost(t) <= max || named.len() == 1, "turn of {} over {max}", cost(t));
                for d in named {
                    prop_assert!(!seen.contains(&d), "{d} in two turns");
                    seen.push(d);
                    prop_assert_eq!(t.marks.get(d), b.marks.get(d));
                    let snaps = |x: &IngestBatch| x.snapshots.iter().filter(|(s, _)| s == d).count();
                    prop_assert_eq!(snaps(t), snaps(&b));
                    let gaps = |x: &IngestBatch| x.gaps.iter().filter(|g| &g.device == d).count();
                    prop_assert_eq!(gaps(t), gaps(&b));
                }
            }
            prop_assert_eq!(seen.len(), devices(&b).len());
            // Each device's events, in their order, are the batch's.
            for device in devices(&b) {
                let want: Vec<u64> = b.events.iter().filter(|(d, _)| d == device).map(|(_, e)| e.seq).collect();
                let got: Vec<u64> = turns.iter().flat_map(|t| &t.events).filter(|(d, _)| d == device).map(|(_, e)| e.seq).collect();
                prop_assert_eq!(want, got);
            }
            prop_assert_eq!(turns.iter().map(|t| t.events.len()).sum::<usize>(), b.events.len());
        }
    }
}
