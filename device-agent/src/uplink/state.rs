//! The uplink's bookkeeping without I/O: which events are sent, receipted and deletable, when
//! to resend, and when to send the next batch. The task in `uplink/mod.rs` feeds it what
//! happened (connected, a receipt, a tick) and carries out what it answers (read the outbox,
//! publish, delete), the way rumqttc keeps `MqttState` apart from its event loop.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long new events wait for company while a batch is in flight.
pub(crate) const HOLD: Duration = Duration::from_millis(2);

/// Receipted rows are deleted at least this often (in events) besides every tick: a delete
/// per receipt cost more than the send.
pub(crate) const DELETE_EVERY: u64 = 1_000;

/// The sending limits, from the agent's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Events sent and not yet receipted, at most.
    pub(crate) window: u64,
    /// Batches sent and not yet receipted, at most.
    pub(crate) in_flight: usize,
    /// Events per batch, at most.
    pub(crate) batch: usize,
    /// Without receipt progress for this long, everything unreceipted is sent again.
    pub(crate) retransmit: Duration,
}

/// What a receipt did to the marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiptEffect {
    /// The server has seen seqs this outbox never handed out (the outbox was replaced): the
    /// caller renumbers pending events after `up_to`, then calls [`Uplink::renumbered`].
    Renumber { up_to: u64 },
    /// The receipted mark moved forward.
    Advanced,
    /// A duplicate or an older receipt: nothing changed.
    Stale,
}

/// What to do next with the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pump {
    /// Read up to `limit` events after seq `after` and publish them as one batch whose
    /// `base` is `base`; then report with [`Uplink::published`].
    Send { after: u64, base: u64, limit: usize },
    /// Nothing to send now (disconnected, window full, nothing new, or holding a small batch
    /// for company until [`Uplink::hold_until`]).
    Wait,
}

/// The marks. `acked`: highest seq the server receipted; `sent`: highest seq published on this
/// connection; `deleted`: highest seq removed from the outbox. On (re)connect `sent = acked`,
/// so everything unreceipted is sent again in order; without receipt progress for a while it
/// rewinds the same way. Rows receipted but not yet deleted are only sent again after a crash,
/// and the server ignores duplicates.
#[derive(Debug)]
pub(crate) struct Uplink {
    limits: Limits,
    acked: u64,
    sent: u64,
    deleted: u64,
    connected: bool,
    last_progress: Instant,
    hold_until: Option<Instant>,
    /// The last seq of each batch sent and not yet receipted.
    batch_ends: VecDeque<u64>,
}

impl Uplink {
    /// Starts with everything up to `acked` already receipted and deleted.
    pub(crate) fn new(acked: u64, limits: Limits, now: Instant) -> Self {
        Uplink {
            limits,
            acked,
            sent: acked,
            deleted: acked,
            connected: false,
            last_progress: now,
            hold_until: None,
            batch_ends: VecDeque::new(),
        }
    }

    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Until when a small batch is held back, if it is.
    pub(crate) fn hold_until(&self) -> Option<Instant> {
        self.hold_until
    }

    /// A new connection: everything unreceipted goes again.
    pub(crate) fn connected(&mut self, now: Instant) {
        self.connected = true;
        self.sent = self.acked;
        self.last_progress = now;
    }

    pub(crate) fn disconnected(&mut self) {
        self.connected = false;
        self.hold_until = None;
    }

    /// A receipt for everything up to `up_to`; `last_seq` is the outbox's newest seq.
    pub(crate) fn receipt(&mut self, up_to: u64, last_seq: u64, now: Instant) -> ReceiptEffect {
        if up_to > last_seq {
            return ReceiptEffect::Renumber { up_to };
        }
        if up_to <= self.acked {
            return ReceiptEffect::Stale;
        }
        self.acked = up_to;
        self.sent = self.sent.max(up_to);
        self.last_progress = now;
        ReceiptEffect::Advanced
    }

    /// The outbox now numbers its pending events after `up_to`, which the server has.
    pub(crate) fn renumbered(&mut self, up_to: u64, now: Instant) {
        self.acked = up_to;
        self.sent = up_to;
        self.last_progress = now;
    }

    /// The periodic check: without receipt progress for `retransmit`, rewinds to the receipted
    /// mark and returns the range that will be sent again.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<(u64, u64)> {
        if self.connected
            && self.sent > self.acked
            && now.duration_since(self.last_progress) >= self.limits.retransmit
        {
            let range = (self.acked + 1, self.sent);
            self.sent = self.acked;
            self.last_progress = now;
            return Some(range);
        }
        None
    }

    /// The mark up to which receipted rows should be deleted now: always when `now_anyway`
    /// (a tick, shutting down), else only once `DELETE_EVERY` have piled up.
    pub(crate) fn to_delete(&self, now_anyway: bool) -> Option<u64> {
        let due = if now_anyway {
            self.acked > self.deleted
        } else {
            self.acked >= self.deleted + DELETE_EVERY
        };
        due.then_some(self.acked)
    }

    /// Rows up to `mark` are gone from the outbox.
    pub(crate) fn deleted(&mut self, mark: u64) {
        self.deleted = self.deleted.max(mark);
    }

    /// The next step of the pump, given the outbox's newest seq. A receipt or a resend from
    /// `acked` ends the batches at or below it.
    pub(crate) fn next(&mut self, now: Instant, last_seq: u64) -> Pump {
        let (acked, sent) = (self.acked, self.sent);
        self.batch_ends.retain(|&end| end > acked && end <= sent);
        if !self.connected
            || sent >= last_seq
            || sent - acked >= self.limits.window
            || self.batch_ends.len() >= self.limits.in_flight
        {
            return Pump::Wait;
        }
        let waiting = last_seq - sent;
        if sent > acked && waiting < self.limits.batch as u64 {
            match self.hold_until {
                None => {
                    self.hold_until = Some(now + HOLD);
                    return Pump::Wait;
                }
                Some(t) if now < t => return Pump::Wait,
                Some(_) => {}
            }
        }
        self.hold_until = None;
        Pump::Send {
            after: sent,
            base: acked + 1,
            limit: self.limits.batch,
        }
    }

    /// A batch ending at seq `last` was handed to the connection.
    pub(crate) fn published(&mut self, last: u64) {
        self.sent = last;
        self.batch_ends.push_back(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            window: 10,
            in_flight: 2,
            batch: 3,
            retransmit: Duration::from_secs(3),
        }
    }

    /// Runs the pump as the task does, pretending every read returns `limit` events (or up to
    /// `last_seq`) and every publish succeeds; returns the batches sent as (base, first, last).
    fn pump(u: &mut Uplink, now: Instant, last_seq: u64) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        while let Pump::Send { after, base, limit } = u.next(now, last_seq) {
            let last = (after + limit as u64).min(last_seq);
            out.push((base, after + 1, last));
            u.published(last);
        }
        out
    }

    #[test]
    fn nothing_goes_out_while_disconnected() {
        let t = Instant::now();
        let mut u = Uplink::new(0, limits(), t);
        assert_eq!(u.next(t, 5), Pump::Wait);
        u.connected(t);
        assert_eq!(pump(&mut u, t, 5), vec![(1, 1, 3)]);
    }

    #[test]
    fn in_flight_and_window_bound_what_is_unreceipted() {
        let t = Instant::now();
        let mut u = Uplink::new(0, limits(), t);
        u.connected(t);
        // Two batches in flight at most.
        assert_eq!(pump(&mut u, t, 100), vec![(1, 1, 3), (1, 4, 6)]);
        assert_eq!(u.receipt(6, 100, t), ReceiptEffect::Advanced);
        assert_eq!(pump(&mut u, t, 100), vec![(7, 7, 9), (7, 10, 12)]);
        // A window of 10 unreceipted events stops the third batch even with room in flight.
        let mut u = Uplink::new(
            0,
            Limits {
                in_flight: 10,
                ..limits()
            },
            t,
        );
        u.connected(t);
        let sent = pump(&mut u, t, 100);
        assert_eq!(sent.last(), Some(&(1, 10, 12)));
        assert_eq!(u.next(t, 100), Pump::Wait);
    }

    #[test]
    fn a_small_batch_waits_for_company_only_while_another_is_in_flight() {
        let t = Instant::now();
        let mut u = Uplink::new(0, limits(), t);
        u.connected(t);
        // Nothing in flight: a single event goes at once.
        assert_eq!(pump(&mut u, t, 1), vec![(1, 1, 1)]);
        // One in flight and fewer than a batch waiting: held.
        assert_eq!(u.next(t, 2), Pump::Wait);
        assert_eq!(u.hold_until(), Some(t + HOLD));
        assert_eq!(u.next(t + HOLD / 2, 2), Pump::Wait);
        assert_eq!(pump(&mut u, t + HOLD, 3), vec![(1, 2, 3)]);
        assert_eq!(u.hold_until(), None);
        // A full batch waiting is never held.
        assert_eq!(u.receipt(3, 6, t), ReceiptEffect::Advanced);
        assert_eq!(pump(&mut u, t, 4), vec![(4, 4, 4)]);
        assert_eq!(pump(&mut u, t, 7), vec![(4, 5, 7)]);
    }

    #[test]
    fn reconnect_and_silence_rewind_to_the_receipted_mark() {
        let t = Instant::now();
        let mut u = Uplink::new(0, limits(), t);
        u.connected(t);
        pump(&mut u, t, 6);
        assert_eq!(u.receipt(3, 6, t), ReceiptEffect::Advanced);
        assert_eq!(u.tick(t + Duration::from_secs(1)), None);
        assert_eq!(u.tick(t + Duration::from_secs(3)), Some((4, 6)));
        assert_eq!(
            u.tick(t + Duration::from_secs(4)),
            None,
            "nothing sent since"
        );
        assert_eq!(pump(&mut u, t, 6), vec![(4, 4, 6)]);
        u.disconnected();
        assert_eq!(
            u.tick(t + Duration::from_secs(60)),
            None,
            "no resend while down"
        );
        assert_eq!(u.next(t, 6), Pump::Wait);
        u.connected(t);
        assert_eq!(pump(&mut u, t, 6), vec![(4, 4, 6)]);
    }

    #[test]
    fn receipts_are_monotonic_and_an_unknown_mark_asks_for_renumbering() {
        let t = Instant::now();
        let mut u = Uplink::new(5, limits(), t);
        assert_eq!(u.receipt(4, 9, t), ReceiptEffect::Stale);
        assert_eq!(u.receipt(5, 9, t), ReceiptEffect::Stale);
        assert_eq!(u.receipt(7, 9, t), ReceiptEffect::Advanced);
        assert_eq!(u.acked(), 7);
        assert_eq!(u.receipt(50, 9, t), ReceiptEffect::Renumber { up_to: 50 });
        assert_eq!(u.acked(), 7, "nothing moves until the outbox is renumbered");
        u.renumbered(50, t);
        u.connected(t);
        assert_eq!(pump(&mut u, t, 52), vec![(51, 51, 52)]);
    }

    #[test]
    fn deletes_are_batched_until_a_tick_or_a_thousand() {
        let t = Instant::now();
        let mut u = Uplink::new(0, limits(), t);
        assert_eq!(u.to_delete(true), None);
        u.receipt(10, 2_000, t);
        assert_eq!(u.to_delete(false), None);
        assert_eq!(u.to_delete(true), Some(10));
        u.deleted(10);
        u.receipt(1_010, 2_000, t);
        assert_eq!(u.to_delete(false), Some(1_010));
        u.deleted(1_010);
        assert_eq!(u.to_delete(true), None);
    }
}
