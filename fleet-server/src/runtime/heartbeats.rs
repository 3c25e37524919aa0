//! Heartbeats out of the write path (capacity model step 1): every cabinet sends one every
//! `interval_s` (30 s), which at fleet scale made them most of the database's writes. The
//! writer keeps each device's latest heartbeat here and writes them together, one multi-row
//! statement per few hundred devices, every `flush_every`; a heartbeat that says something new
//! (first heard, profile, interval, lock bus, power, station, a clock offset that moved by a
//! second or more) is written at once, so alarms and views never wait for a flush.
//!
//! Freshness stays exact enough: a device is "late" after two intervals without a heartbeat
//! in the database, and a deferred one is written within `flush_every`, so deferring is only
//! done for devices whose interval is at least `flush_every`.

use std::collections::HashMap;
use std::time::Duration;

use protocol::{DeviceId, Heartbeat};

/// A clock offset that moved by less than this is the same as far as readers care.
const OFFSET_SLACK_MS: i64 = 1_000;

/// A heartbeat and when the server received it (what `last_seen` and `heartbeat_at` record).
pub(crate) type Heard = (DeviceId, Heartbeat, i64);

/// What the database holds of each device's heartbeat, and what was heard since.
pub(crate) struct HeartbeatBook {
    flush_every_ms: i64,
    written: HashMap<DeviceId, Heartbeat>,
    deferred: HashMap<DeviceId, (Heartbeat, i64)>,
    last_flush: i64,
}

impl HeartbeatBook {
    /// `flush_every` zero: every heartbeat is written when heard (the behaviour before).
    pub(crate) fn new(flush_every: Duration, now: i64) -> HeartbeatBook {
        HeartbeatBook {
            flush_every_ms: i64::try_from(flush_every.as_millis()).unwrap_or(i64::MAX),
            written: HashMap::new(),
            deferred: HashMap::new(),
            last_flush: now,
        }
    }

    /// A heartbeat heard at `at`: `Some` to write now, `None` when it waits for the flush.
    pub(crate) fn hear(&mut self, device: DeviceId, hb: Heartbeat, at: i64) -> Option<Heard> {
        let interval_ms = i64::from(hb.interval_s) * 1000;
        let urgent = self.flush_every_ms == 0
            || interval_ms < self.flush_every_ms
            || self.written.get(&device).is_none_or(|w| news(w, &hb));
        if urgent {
            self.deferred.remove(&device);
            self.written.insert(device.clone(), hb.clone());
            return Some((device, hb, at));
        }
        self.deferred.insert(device, (hb, at));
        None
    }

    /// The deferred heartbeats when a flush is due at `now` (none otherwise).
    pub(crate) fn due(&mut self, now: i64) -> Vec<Heard> {
        if now - self.last_flush < self.flush_every_ms {
            return Vec::new();
        }
        self.last_flush = now;
        self.drain()
    }

    /// Every deferred heartbeat (at shutdown, or a due flush).
    pub(crate) fn drain(&mut self) -> Vec<Heard> {
        let out: Vec<Heard> = self
            .deferred
            .drain()
            .map(|(device, (hb, at))| (device, hb, at))
            .collect();
        for (device, hb, _) in &out {
            self.written.insert(device.clone(), hb.clone());
        }
        out
    }

    pub(crate) fn is_waiting(&self) -> bool {
        !self.deferred.is_empty()
    }
}

/// Whether `hb` tells a reader something `written` did not: beyond its uptime, backlog and
/// timestamp, which every heartbeat changes and a flush brings in time.
fn news(written: &Heartbeat, hb: &Heartbeat) -> bool {
    let offset_moved = match (written.clock_offset_ms, hb.clock_offset_ms) {
        (Some(a), Some(b)) => (a - b).abs() >= OFFSET_SLACK_MS,
        (a, b) => a.is_some() != b.is_some(),
    };
    written.profile != hb.profile
        || written.interval_s != hb.interval_s
        || written.lock_bus != hb.lock_bus
        || written.power != hb.power
        || written.station != hb.station
        || offset_moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{BusHealth, Power, Profile};

    fn hb(uptime_s: u64) -> Heartbeat {
        Heartbeat {
            v: 1,
            ts: 0,
            interval_s: 30,
            profile: Profile::Locker,
            uptime_s,
            lock_bus: BusHealth::Ok,
            power: Power::Mains,
            outbox_pending: 0,
            station: None,
            clock_offset_ms: Some(5),
        }
    }

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("id")
    }

    #[test]
    fn routine_heartbeats_wait_for_the_flush_and_news_does_not() {
        let mut book = HeartbeatBook::new(Duration::from_secs(10), 0);
        // First heard: written at once.
        assert!(book.hear(id("a"), hb(1), 1_000).is_some());
        // Only uptime and backlog moved: deferred.
        let mut later = hb(31);
        later.outbox_pending = 7;
        later.clock_offset_ms = Some(300);
        assert!(book.hear(id("a"), later, 31_000).is_none());
        assert!(book.is_waiting());
        assert!(book.due(5_000).is_empty(), "not due before flush_every");
        let flushed = book.due(10_000);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].1.uptime_s, 31);
        assert_eq!(flushed[0].2, 31_000, "written with the time it was heard");
        assert!(!book.is_waiting());
        // The lock bus failing is news: written at once, replacing what waited.
        assert!(book.hear(id("a"), hb(61), 61_000).is_none());
        let mut failing = hb(62);
        failing.lock_bus = BusHealth::Unreachable {
            detail: "board 1".into(),
        };
        assert!(book.hear(id("a"), failing, 62_000).is_some());
        assert!(
            book.drain().is_empty(),
            "the older one is not written after it"
        );
        // And so is it coming back, the power, the interval, a clock that moved.
        for change in [
            |h: &mut Heartbeat| h.power = Power::Battery,
            |h: &mut Heartbeat| h.interval_s = 60,
            |h: &mut Heartbeat| h.clock_offset_ms = Some(5_000),
            |h: &mut Heartbeat| h.profile = Profile::Kiosk,
        ] {
            let mut book = HeartbeatBook::new(Duration::from_secs(10), 0);
            assert!(book.hear(id("b"), hb(1), 0).is_some());
            let mut h = hb(2);
            change(&mut h);
            assert!(book.hear(id("b"), h, 1).is_some());
        }
    }

    #[test]
    fn short_intervals_and_no_flush_write_every_heartbeat() {
        let mut book = HeartbeatBook::new(Duration::from_secs(10), 0);
        let mut quick = hb(1);
        quick.interval_s = 5;
        assert!(book.hear(id("a"), quick.clone(), 0).is_some());
        quick.uptime_s = 6;
        assert!(
            book.hear(id("a"), quick, 5_000).is_some(),
            "a 5 s interval would look late behind a 10 s flush"
        );
        let mut off = HeartbeatBook::new(Duration::ZERO, 0);
        assert!(off.hear(id("a"), hb(1), 0).is_some());
        assert!(off.hear(id("a"), hb(2), 1).is_some());
    }
}
