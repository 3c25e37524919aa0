//! The ingest writer: batches device events into storage transactions and, after each commit,
//! sends every device a receipt for what is now durably stored.
//!
//! Receipt marks are contiguous: "stored up to N" means every seq ≤ N is stored, so an agent
//! may delete them. Events are stored in sequence order only: a batch that arrives past a gap
//! waits (parked, up to [`PARK_LIMIT`]) for the stored mark to reach it — with replicas on an
//! external broker the gap is usually the previous batch, handed to another replica — and
//! is then refused, counted, and sent again by the agent, which retransmits from its oldest
//! unreceipted event when receipts stop advancing (a stale batch from before a reconnect
//! overtaking the resend). So a device's stored events are always the prefix 1..=N.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use protocol::{Channel, DeviceId, Receipt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::devices::Publisher;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::runtime::heartbeats::HeartbeatBook;
use crate::runtime::link::Inbound;
use crate::service::Service;
use crate::store::{self, Effects, IngestBatch, Store, StoreError};

/// Most out-of-order seqs remembered per device while waiting for a gap to fill.
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Default, Clone)]
struct Mark {
    acked: u64,
    pending: BTreeSet<u64>,
}

impl Mark {
    /// Records stored seqs and advances the contiguous mark.
    fn advance(&mut self, base: u64, seqs: impl IntoIterator<Item = u64>) {
        self.acked = self.acked.max(base.saturating_sub(1));
        for s in seqs {
            if s > self.acked && self.pending.len() < MAX_PENDING {
                self.pending.insert(s);
            }
        }
        while let Some(&first) = self.pending.first() {
            if first <= self.acked {
                self.pending.pop_first();
            } else if first == self.acked + 1 {
                self.acked = first;
                self.pending.pop_first();
            } else {
                break;
            }
        }
    }
}

/// The ingest writers' inboxes, one per lane: a device's messages always go to the same lane,
/// so its events are stored in order by one writer, while the lanes' transactions run side
/// by side (on PostgreSQL; SQLite has one lane).
#[derive(Clone)]
pub(crate) struct Lanes(Vec<mpsc::Sender<Inbound>>);

impl Lanes {
    /// `n` lanes (at least one) of `depth` messages each, and their receiving ends.
    pub(crate) fn new(n: usize, depth: usize) -> (Lanes, Vec<mpsc::Receiver<Inbound>>) {
        let (tx, rx) = (0..n.max(1)).map(|_| mpsc::channel(depth)).unzip();
        (Lanes(tx), rx)
    }

    /// The lane of `device`: the same for as long as the process runs.
    pub(crate) fn of(&self, device: &DeviceId) -> &mpsc::Sender<Inbound> {
        // FNV-1a, then a final mix (murmur3's): FNV's low bits depend only on the bytes' low
        // bits, so ids differing in one letter fell into one of four lanes.
        let mut h = device
            .as_str()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        &self.0[(h % self.0.len() as u64) as usize]
    }
}

pub struct Writer {
    /// Which lane this writer stores ([`Lanes`]), for health.
    pub lane: usize,
    pub store: Store,
    pub publisher: Publisher,
    pub outcomes: mpsc::Sender<crate::commands::Outcome>,
    pub ready: mpsc::Sender<DeviceId>,
    pub metrics: Metrics,
    pub health: Health,
    /// Most work in one transaction, in plain events ([`crate::store::event_cost`]).
    pub batch_cost: usize,
    /// Acts on what keypad events changed (code sets, notifications).
    pub service: Service,
    /// Door, box state and health points for InfluxDB (a no-op when export is off).
    pub export: crate::runtime::export::Exporter,
    /// Raises and clears `clock_skew` from heartbeats.
    pub clock: ClockWatch,
    /// How often routine heartbeats are written together ([`HeartbeatBook`]).
    pub heartbeat_flush: Duration,
}

/// Which devices' clocks are off by more than the limit, as their heartbeats last said: the
/// alarm is written only when that changes (heartbeats come every 30 s from every cabinet;
/// an alarm statement each would double their cost). Forgotten at restart: the next heartbeat
/// of a device raises (or clears) again, which the alarm table counts as a repeat.
pub struct ClockWatch {
    limit_ms: i64,
    skewed: std::sync::Mutex<HashMap<DeviceId, bool>>,
}

impl ClockWatch {
    /// `limit_secs` 0: never alarm.
    pub fn new(limit_secs: u64) -> ClockWatch {
        ClockWatch {
            limit_ms: i64::try_from(limit_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            skewed: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The devices whose state changed with these heartbeats: (device, skewed now, offset).
    fn changes(
        &self,
        heartbeats: &[(DeviceId, protocol::Heartbeat)],
    ) -> Vec<(DeviceId, bool, i64)> {
        if self.limit_ms == 0 {
            return Vec::new();
        }
        let mut skewed = self.skewed.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (device, hb) in heartbeats {
            let Some(offset) = hb.clock_offset_ms else {
                continue;
            };
            let now = offset.unsigned_abs() > self.limit_ms.unsigned_abs();
            if skewed.insert(device.clone(), now) != Some(now) {
                out.push((device.clone(), now, offset));
            }
        }
        out
    }
}

impl Writer {
    /// Runs until the inbound channel closes (the link reader stopped), then drains it, so a
    /// shutdown stores and receipts everything already received.
    pub async fn run(self, mut rx: mpsc::Receiver<Inbound>, cancel: CancellationToken) {
        let mut marks: HashMap<DeviceId, Mark> = HashMap::new();
        let mut parked = Parked::default();
        let mut book = HeartbeatBook::new(self.heartbeat_flush, crate::clock::now_ms());
        // One timer across iterations: a steady stream of messages must not keep resetting it.
        let mut retry = tokio::time::interval(PARK_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(self.heartbeat_flush.max(Duration::from_secs(1)));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                _ = retry.tick(), if !parked.is_empty() => {
                    let ready = self.unpark(&mut marks, &mut parked).await;
                    if !ready.is_empty() {
                        self.write(&mut marks, &mut parked, &mut book, ready, &cancel).await;
                    }
                    continue;
                }
                // A quiet fleet still gets its heartbeats written.
                _ = flush.tick(), if book.is_waiting() => {
                    self.write(&mut marks, &mut parked, &mut book, Vec::new(), &cancel).await;
                    continue;
                }
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            let batch = top_up(first, &mut rx, self.batch_cost);
            self.write(&mut marks, &mut parked, &mut book, batch, &cancel)
                .await;
        }
        // What waited for a flush is written before the process ends.
        if book.is_waiting() {
            let mut ingest = IngestBatch {
                heartbeats: book.drain(),
                received_at: crate::clock::now_ms(),
                ..IngestBatch::default()
            };
            ingest.heartbeats.sort_by(|a, b| a.0.cmp(&b.0));
            if let Err(e) = self.store.ingest(&ingest).await {
                tracing::warn!(error = %e, "writing the last heartbeats failed");
            }
        }
    }

    /// The parked batches whose gap another replica has filled by now (the stored mark
    /// reached them), in seq order; drops those parked too long (counted as past a gap: the
    /// agent resends them).
    async fn unpark(
        &self,
        marks: &mut HashMap<DeviceId, Mark>,
        parked: &mut Parked,
    ) -> Vec<Inbound> {
        let mut ready = Vec::new();
        let devices: Vec<DeviceId> = parked.0.keys().cloned().collect();
        for device in devices {
            let Ok(stored) = self.store.acked_seq(&device).await else {
                continue;
            };
            let mark = marks.entry(device.clone()).or_default();
            mark.advance(stored + 1, []);
            let Some(waiting) = parked.0.remove(&device) else {
                continue;
            };
            let mut keep = Vec::new();
            for (since, b) in waiting {
                if first_seq(&b) <= mark.acked + 1 {
                    ready.push(Inbound::Events(device.clone(), b));
                } else if since.elapsed() > PARK_LIMIT {
                    tracing::debug!(%device, first = first_seq(&b), base = b.base, mark = mark.acked,
                        "parked batch expired; refused");
                    self.metrics.events_past_gap.inc_by(b.events.len() as u64);
                } else {
                    keep.push((since, b));
                }
            }
            if !keep.is_empty() {
                parked.0.insert(device, keep);
            }
        }
        ready
    }

    async fn write(
        &self,
        marks: &mut HashMap<DeviceId, Mark>,
        parked: &mut Parked,
        book: &mut HeartbeatBook,
        batch: Vec<Inbound>,
        cancel: &CancellationToken,
    ) {
        let mut ingest = IngestBatch::default();
        // Every heartbeat heard, for the export and the clock watch; only some are written.
        let mut heard: Vec<(DeviceId, protocol::Heartbeat)> = Vec::new();
        let now = crate::clock::now_ms();
        let mut next_marks: HashMap<DeviceId, Mark> = HashMap::new();
        let mut ready = Vec::new();
        for item in batch {
            match item {
                Inbound::Events(device, b) => {
                    if !next_marks.contains_key(&device) {
                        let mark = match marks.get(&device) {
                            Some(m) => m.clone(),
                            None => Mark {
                                acked: self.load_mark(&device, cancel).await,
                                pending: BTreeSet::new(),
                            },
                        };
                        next_marks.insert(device.clone(), mark);
                    }
                    let Some(m) = next_marks.get_mut(&device) else {
                        continue;
                    };
                    if first_seq(&b) > m.acked.max(b.base.saturating_sub(1)) + 1 {
                        // Past a gap. With several replicas the gap may be another replica's
                        // batch just stored (or about to be): read the stored mark, and if the
                        // gap is still open, park the batch briefly instead of refusing it.
                        if let Ok(stored) = self.store.acked_seq(&device).await {
                            m.advance(stored + 1, []);
                        }
                        if first_seq(&b) > m.acked.max(b.base.saturating_sub(1)) + 1 {
                            tracing::debug!(%device, first = first_seq(&b), base = b.base, mark = m.acked, "batch parked");
                            if let Err(b) = parked.park(device, b) {
                                self.metrics.events_past_gap.inc_by(b.events.len() as u64);
                            }
                            continue;
                        }
                    }
                    // The cabinet deleted everything below `base` after receipts: what of it
                    // the database does not hold (checked against the stored mark, which
                    // another replica may have moved) is lost, and recorded as such.
                    let claimed = b.base.saturating_sub(1);
                    if claimed > m.acked {
                        let stored = self.store.acked_seq(&device).await.unwrap_or(m.acked);
                        let held = m.acked.max(stored);
                        if claimed > held {
                            ingest.gaps.push(store::gaps::Gap {
                                device: device.clone(),
                                first_seq: held + 1,
                                last_seq: claimed,
                            });
                        }
                    }
                    let (first, base, before) = (first_seq(&b), b.base, m.acked);
                    let (kept, past_gap) = in_order(m, b);
                    if past_gap > 0 {
                        tracing::debug!(%device, first, base, mark = before, past_gap, "events past a gap refused");
                    }
                    self.metrics.events_past_gap.inc_by(past_gap);
                    ingest
                        .events
                        .extend(kept.into_iter().map(|e| (device.clone(), e)));
                }
                Inbound::Snapshot(device, s) => {
                    ready.push(device.clone());
                    ingest.snapshots.push((device, s));
                }
                Inbound::Heartbeat(device, h) => {
                    self.metrics.heartbeats_received.inc();
                    heard.push((device.clone(), h.clone()));
                    ingest.heartbeats.extend(book.hear(device, h, now));
                }
            }
        }
        ingest.heartbeats.extend(book.due(now));
        self.metrics
            .heartbeats_written
            .inc_by(ingest.heartbeats.len() as u64);
        ingest.marks = next_marks
            .iter()
            .map(|(d, m)| (d.clone(), m.acked))
            .collect();

        let nothing_to_write = ingest.events.is_empty()
            && ingest.snapshots.is_empty()
            && ingest.heartbeats.is_empty()
            && ingest.marks.is_empty();
        if nothing_to_write {
            // Routine heartbeats only, all waiting for the flush: no transaction, no sync.
            self.export_points(&ingest, &heard, now);
            self.clock_alarms(&heard).await;
            return;
        }
        let mut backoff = Duration::from_millis(100);
        // Across retries: a batch stored in turns may fail after some of them committed.
        let mut stored = store::Stored::new();
        let (inserted, effects, replicated): (u64, Effects, bool) = loop {
            ingest.received_at = crate::clock::now_ms();
            let started = Instant::now();
            match self.store.ingest_replicated(&ingest, &mut stored).await {
                Ok(()) => {
                    self.metrics
                        .ingest_batch_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.health.database_ok(self.lane);
                    break (stored.inserted, stored.effects, stored.replicated);
                }
                Err(e) => {
                    self.metrics.db_errors.inc();
                    self.health.database_failed(self.lane, &e);
                    tracing::error!(error = %e, events = ingest.events.len(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "storing events failed; holding the batch and retrying (devices keep theirs until receipted)");
                    // Nothing is receipted, so agents still hold every event of this batch;
                    // dropping it at shutdown loses nothing.
                    tokio::select! {
                        _ = cancel.cancelled() => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            if cancel.is_cancelled() && matches!(e, StoreError::Db(_)) {
                                tracing::warn!("shutting down with an unstored batch; devices will resend it");
                                // Turns that did commit changed items: their code sets and
                                // notifications still go (the resent events are not new).
                                self.service.after(stored.effects).await;
                                return;
                            }
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        let received = ingest.events.len() as u64;
        self.metrics.ingest_batches.inc();
        self.metrics.events_stored.inc_by(inserted);
        self.metrics
            .ingest_rate
            .record(self.metrics.events_stored.get());
        // Only once stored: the time series never shows what the database does not hold.
        self.export_points(&ingest, &heard, now);
        self.metrics
            .events_duplicate
            .inc_by(received.saturating_sub(inserted));

        if !replicated && !next_marks.is_empty() {
            // Committed on the primary alone (its standby is down or catching up): a failover
            // now could lose these events, so the cabinets keep their copies and send them
            // again; a later commit that reaches the standby receipts them (ADR 0025).
            self.metrics.receipts_held.inc_by(next_marks.len() as u64);
            tracing::warn!(
                devices = next_marks.len(),
                "receipts held: the database's synchronous standby is not replicating; cabinets keep their events"
            );
        }
        for (device, mark) in next_marks {
            let up_to = mark.acked;
            marks.insert(device.clone(), mark);
            if !replicated {
                continue;
            }
            let receipt = Receipt {
                v: 1,
                up_to,
                at: Some(crate::clock::now_ms()),
            };
            let delivery =
                self.publisher
                    .publish(&device, Channel::Receipts, protocol::encode(&receipt));
            if delivery == broker::Delivery::Queued {
                self.metrics.receipts_sent.inc();
            }
        }
        // The durable copies of command outcomes, applied in the commit, reach the command
        // book and the live views like the fast acks do.
        let mut effects = effects;
        for report in std::mem::take(&mut effects.commands) {
            let _ = self
                .outcomes
                .send(crate::commands::Outcome::applied(report))
                .await;
        }
        // Live views refetch what these devices show (heartbeats alone change nothing shown
        // but their age, which views compute themselves).
        let touched: std::collections::BTreeSet<&str> = ingest
            .snapshots
            .iter()
            .map(|(d, _)| d.as_str())
            .chain(ingest.marks.keys().map(|d| d.as_str()))
            .collect();
        for device in touched {
            self.service.changes.device(device);
        }
        self.service.after(effects).await;
        self.clock_alarms(&heard).await;
        for device in ready {
            // A connected cabinet gets its code grants as well as its waiting commands.
            let _ = self.service.codes.send(device.clone()).await;
            let _ = self.ready.send(device).await;
        }
    }

    /// Door, box state and every heard heartbeat as InfluxDB points (when the export is on).
    fn export_points(
        &self,
        ingest: &IngestBatch,
        heard: &[(DeviceId, protocol::Heartbeat)],
        now: i64,
    ) {
        if !self.export.is_on() {
            return;
        }
        let mut points: Vec<crate::runtime::export::Point> = ingest
            .events
            .iter()
            .filter_map(|(d, e)| crate::runtime::export::event_point(d.as_str(), e))
            .collect();
        points.extend(
            heard
                .iter()
                .map(|(d, h)| crate::runtime::export::health_point(d.as_str(), h, now)),
        );
        self.export.push(&points);
    }

    /// Raises or clears `clock_skew` for the devices whose heartbeats changed their state.
    async fn clock_alarms(&self, heard: &[(DeviceId, protocol::Heartbeat)]) {
        for (device, skewed, offset) in self.clock.changes(heard) {
            use protocol::evidence::{Code, say};
            let evidence = if skewed {
                let direction = if offset > 0 { "behind" } else { "ahead of" };
                say(
                    Code::ClockOff,
                    &[&roughly(offset.unsigned_abs()), direction],
                )
            } else {
                say(Code::ClockAgrees, &[])
            };
            let now = crate::clock::now_ms();
            match self
                .store
                .server_alarm(
                    device.as_str(),
                    domain::alarms::AlarmKind::ClockSkew,
                    skewed,
                    &evidence,
                    now,
                )
                .await
            {
                Ok(()) => {
                    self.service.changes.send(crate::changes::Change::Alarms);
                    self.service.changes.device(device.as_str());
                }
                Err(e) => {
                    tracing::warn!(%device, error = %e, "clock alarm not written; the next heartbeat tries again")
                }
            }
        }
    }

    async fn load_mark(&self, device: &DeviceId, cancel: &CancellationToken) -> u64 {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.store.acked_seq(device).await {
                Ok(m) => return m,
                Err(e) => {
                    self.health.database_failed(self.lane, &e);
                    tracing::error!(%device, error = %e, "reading receipt mark failed; retrying");
                    if cancel.is_cancelled() {
                        return 0;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// A clock difference as a person reads it, to the minute (to the second below one).
fn roughly(ms: u64) -> String {
    let secs = (ms + 500) / 1000;
    if secs < 60 {
        return format!("{secs} s");
    }
    let mins = (secs + 30) / 60;
    match (mins / 60, mins % 60) {
        (0, m) => format!("{m} min"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// How often parked batches look again at the stored marks.
const PARK_RETRY: Duration = Duration::from_millis(20);
/// How long a batch waits for its gap; then it is refused as before and the agent resends.
const PARK_LIMIT: Duration = Duration::from_secs(2);
/// Most batches parked per device (a device whose gap never fills must not pin memory).
const PARK_MAX: usize = 64;

/// Batches that arrived past a gap, per device, with when they arrived. On one server a gap
/// means a lost or overtaken batch; with replicas sharing the broker's subscriptions it
/// usually means the previous batch went to another replica, which stores it within
/// milliseconds — so the batch waits for that instead of costing the agent a retransmit.
#[derive(Default)]
struct Parked(HashMap<DeviceId, Vec<(Instant, protocol::EventBatch)>>);

impl Parked {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parks `b`, or hands it back when the device has too many parked already.
    fn park(
        &mut self,
        device: DeviceId,
        b: protocol::EventBatch,
    ) -> Result<(), protocol::EventBatch> {
        let list = self.0.entry(device).or_default();
        if list.len() >= PARK_MAX {
            return Err(b);
        }
        list.push((Instant::now(), b));
        list.sort_by_key(|(_, b)| first_seq(b));
        Ok(())
    }
}

fn first_seq(b: &protocol::EventBatch) -> u64 {
    b.events.first().map_or(0, |e| e.seq)
}

/// The events of `b` that continue the device's stored prefix (duplicates included: storage
/// ignores them), advancing `mark`; and how many were past a gap.
fn in_order(mark: &mut Mark, b: protocol::EventBatch) -> (Vec<protocol::Event>, u64) {
    mark.advance(b.base, []);
    let mut next = mark.acked + 1;
    let mut kept = Vec::with_capacity(b.events.len());
    let mut past_gap = 0;
    for e in b.events {
        if e.seq > next {
            past_gap += 1;
            continue;
        }
        if e.seq == next {
            next += 1;
        }
        kept.push(e);
    }
    mark.advance(b.base, kept.iter().map(|e| e.seq));
    (kept, past_gap)
}

/// `first` and the messages already waiting behind it, up to `budget`
/// ([`inbound_cost`]): they share one transaction, and the budget bounds how long it holds
/// the writer.
fn top_up(first: Inbound, rx: &mut mpsc::Receiver<Inbound>, budget: usize) -> Vec<Inbound> {
    let mut cost = inbound_cost(&first);
    let mut batch = vec![first];
    while cost < budget {
        match rx.try_recv() {
            Ok(m) => {
                cost += inbound_cost(&m);
                batch.push(m);
            }
            Err(_) => break,
        }
    }
    batch
}

/// What a message costs the writer, in plain events ([`crate::store::event_cost`]).
fn inbound_cost(m: &Inbound) -> usize {
    match m {
        Inbound::Events(_, b) => b.events.iter().map(|e| store::event_cost(&e.body)).sum(),
        Inbound::Snapshot(..) => store::SNAPSHOT_COST,
        Inbound::Heartbeat(..) => store::HEARTBEAT_COST,
    }
}

#[cfg(test)]
mod tests {
    use super::{Inbound, Lanes, Mark, PARK_MAX, Parked, first_seq, top_up};
    use protocol::{AckStatus, BoxNo, DeviceId, Event, EventBatch, EventBody, ItemId};

    #[test]
    fn a_device_keeps_its_lane_and_devices_spread_over_the_lanes() {
        let (lanes, _rx) = Lanes::new(4, 1);
        let lane = |d: &DeviceId| {
            let tx = lanes.of(d);
            lanes
                .0
                .iter()
                .position(|l| l.same_channel(tx))
                .expect("a lane")
        };
        let mut counts = [0usize; 4];
        for n in 0..1000 {
            let id = DeviceId::parse(&format!("hall-3-cab-{n:04}")).expect("id");
            let first = lane(&id);
            assert_eq!(first, lane(&id.clone()), "{id} changed lanes");
            counts[first] += 1;
        }
        // A fair spread is 250 each; ids that differ only in their last digits must not pile up.
        assert!(counts.iter().all(|c| *c > 180), "{counts:?}");
        // Nor ids that differ in one letter whose low bits agree (plain FNV put all seven in
        // one lane).
        let mut letters = [0usize; 4];
        for c in ['a', 'e', 'i', 'm', 'q', 'u', 'y'] {
            letters[lane(&DeviceId::parse(&format!("cab-{c}")).expect("id"))] += 1;
        }
        assert!(letters.iter().all(|c| *c < 5), "{letters:?}");
        let (one, _rx) = Lanes::new(0, 1);
        assert_eq!(one.0.len(), 1, "no lanes asked for still gives one");
    }

    fn message(body: EventBody, n: usize) -> Inbound {
        let events = (1..=n as u64)
            .map(|seq| Event {
                seq,
                ts: 0,
                body: body.clone(),
            })
            .collect();
        Inbound::Events(
            DeviceId::parse("cab-1").expect("id"),
            EventBatch {
                v: 1,
                base: 1,
                events,
            },
        )
    }

    #[test]
    fn a_clock_alarm_is_written_only_when_a_cabinet_crosses_the_limit() {
        use protocol::{BusHealth, Heartbeat, Power, Profile};
        let d = DeviceId::parse("cab-1").expect("id");
        let beat = |offset: Option<i64>| {
            vec![(
                d.clone(),
                Heartbeat {
                    v: 1,
                    ts: 0,
                    interval_s: 30,
                    profile: Profile::Locker,
                    uptime_s: 1,
                    lock_bus: BusHealth::Ok,
                    power: Power::Mains,
                    outbox_pending: 0,
                    station: None,
                    clock_offset_ms: offset,
                },
            )]
        };
        let watch = super::ClockWatch::new(60);
        // First word from a device: its state is news either way.
        assert_eq!(
            watch.changes(&beat(Some(1_000))),
            [(d.clone(), false, 1_000)]
        );
        assert!(watch.changes(&beat(Some(-59_000))).is_empty());
        assert!(
            watch.changes(&beat(None)).is_empty(),
            "an older agent says nothing"
        );
        assert_eq!(
            watch.changes(&beat(Some(-7_200_000))),
            [(d.clone(), true, -7_200_000)]
        );
        assert!(watch.changes(&beat(Some(-7_200_100))).is_empty());
        assert_eq!(watch.changes(&beat(Some(0))), [(d.clone(), false, 0)]);
        assert!(
            super::ClockWatch::new(0)
                .changes(&beat(Some(-7_200_000)))
                .is_empty()
        );
        assert_eq!(super::roughly(7_199_700), "2 h 0 min");
        assert_eq!(super::roughly(90_000), "2 min");
        assert_eq!(super::roughly(59_400), "59 s");
    }

    #[test]
    fn parked_batches_wait_in_seq_order_and_a_device_cannot_park_without_end() {
        let d = DeviceId::parse("cab-1").expect("id");
        let batch = |first: u64| EventBatch {
            v: 1,
            base: 1,
            events: vec![Event {
                seq: first,
                ts: 0,
                body: EventBody::Door {
                    box_no: BoxNo::new(1).expect("box"),
                    open: true,
                },
            }],
        };
        let mut parked = Parked::default();
        assert!(parked.is_empty());
        for first in [30, 10, 20] {
            assert!(parked.park(d.clone(), batch(first)).is_ok());
        }
        let order: Vec<u64> = parked.0[&d].iter().map(|(_, b)| first_seq(b)).collect();
        assert_eq!(order, [10, 20, 30]);
        for first in 0..(PARK_MAX as u64 - 3) {
            assert!(parked.park(d.clone(), batch(100 + first)).is_ok());
        }
        let refused = parked
            .park(d.clone(), batch(9_999))
            .expect_err("over the limit");
        assert_eq!(first_seq(&refused), 9_999);
    }

    #[tokio::test]
    async fn a_transaction_takes_waiting_messages_up_to_its_cost_budget() {
        let box_no = BoxNo::new(1).expect("box");
        let door = EventBody::Door { box_no, open: true };
        let code = EventBody::CodeUsed {
            item: ItemId::parse("item-1").expect("item"),
            box_no,
            status: AckStatus::Opened,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
        for _ in 0..100 {
            tx.send(message(code.clone(), 1)).await.expect("queued");
        }
        // 2,000 in plain events: 40 keypad events, not the 100 waiting.
        assert_eq!(top_up(message(code.clone(), 1), &mut rx, 2000).len(), 40);
        assert_eq!(top_up(message(door.clone(), 10), &mut rx, 2000).len(), 41);
        // Plain events are cheap: 200 messages of 10 fill the same budget.
        while rx.try_recv().is_ok() {}
        for _ in 0..300 {
            tx.send(message(door.clone(), 10)).await.expect("queued");
        }
        assert_eq!(top_up(message(door.clone(), 10), &mut rx, 2000).len(), 200);
        // One message over the budget still goes, alone.
        assert_eq!(top_up(message(code, 100), &mut rx, 2000).len(), 1);
    }

    #[test]
    fn marks_are_contiguous() {
        let mut m = Mark::default();
        m.advance(1, [1, 2, 3]);
        assert_eq!(m.acked, 3);
        m.advance(4, [5, 6]);
        assert_eq!(m.acked, 3, "4 missing: no receipt past the gap");
        m.advance(4, [4, 5, 6]);
        assert_eq!(m.acked, 6);
        assert!(m.pending.is_empty());
    }

    #[test]
    fn events_past_a_gap_are_refused_until_it_fills() {
        use protocol::{BoxNo, Event, EventBatch, EventBody};
        let batch = |seqs: &[u64]| EventBatch {
            v: 1,
            base: 1,
            events: seqs
                .iter()
                .map(|&seq| Event {
                    seq,
                    ts: 0,
                    body: EventBody::Door {
                        box_no: BoxNo::new(1).expect("box"),
                        open: true,
                    },
                })
                .collect(),
        };
        let seqs = |v: &[protocol::Event]| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        let mut m = Mark::default();
        let (kept, gap) = super::in_order(&mut m, batch(&[1, 2, 3]));
        assert_eq!((seqs(&kept), gap, m.acked), (vec![1, 2, 3], 0, 3));
        // A stale batch from before a reconnect overtakes the resend of 4..: refused.
        let (kept, gap) = super::in_order(&mut m, batch(&[6, 7]));
        assert_eq!((seqs(&kept), gap, m.acked), (vec![], 2, 3));
        // The resend: duplicates pass (storage drops them), the rest continues the prefix.
        let (kept, gap) = super::in_order(&mut m, batch(&[2, 3, 4, 5, 6, 7]));
        assert_eq!((seqs(&kept), gap, m.acked), (vec![2, 3, 4, 5, 6, 7], 0, 7));
        // Out of order inside one batch: what follows the gap waits for the resend.
        let (kept, gap) = super::in_order(&mut m, batch(&[8, 10, 9]));
        assert_eq!((seqs(&kept), gap, m.acked), (vec![8, 9], 1, 9));
    }

    #[test]
    fn base_skips_what_the_agent_no_longer_has() {
        let mut m = Mark::default();
        m.advance(100, [100, 101]);
        assert_eq!(m.acked, 101);
        m.advance(50, [50]);
        assert_eq!(m.acked, 101, "duplicates never lower the mark");
    }
}
