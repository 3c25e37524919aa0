//! The front's session registry: which device is connected on which session, what it has
//! subscribed, and the queue to its connection that server → device messages go into.
//!
//! Server → device traffic never enters rumqttd: every such topic has exactly one reader (its
//! device), and a filter per device in rumqttd made each new subscription and each new topic
//! scan all the others (quadratic in the fleet, see `docs/adr/0008-front-owns-sessions.md`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::{Channel, DeviceId};
use tokio::sync::Notify;

use crate::FrontStats;

/// Messages waiting for one device's socket. A device reads a few small messages a minute;
/// a full queue means it stopped reading, and the message is dropped and counted.
pub(crate) const DOWNLINK_QUEUE: usize = 64;

/// A server → device message on its way to the connection.
#[derive(Debug)]
pub(crate) struct Down {
    pub channel: Channel,
    pub payload: Bytes,
}

/// One session's queue of server → device messages, bounded at [`DOWNLINK_QUEUE`]. Not a
/// tokio mpsc: that allocates a block of 32 slots and a cache-padded channel up front, 1.8 KB
/// per session (heaptrack, 2,000 sessions) for a queue that is empty nearly always. This one
/// allocates only while messages wait.
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    items: VecDeque<Down>,
    /// The entry was replaced or removed, or the session's end dropped.
    closed: bool,
}

impl QueueState {
    fn pop(&mut self) -> Option<Down> {
        let item = self.items.pop_front();
        // A burst's room is given back once it is read.
        if self.items.is_empty() && self.items.capacity() > 8 {
            self.items = VecDeque::new();
        }
        item
    }
}

/// Why a message was not queued.
enum Refused {
    Full,
    Closed,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Each operation is one push, pop or flag: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, down: Down) -> Result<(), Refused> {
        {
            let mut st = self.lock();
            if st.closed {
                return Err(Refused::Closed);
            }
            if st.items.len() >= DOWNLINK_QUEUE {
                return Err(Refused::Full);
            }
            st.items.push_back(down);
        }
        self.ready.notify_one();
        Ok(())
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }
}

/// The session's end of its queue: what was queued is still read after the queue closes,
/// then `None`.
pub(crate) struct DownRx(Arc<Queue>);

impl DownRx {
    pub(crate) fn try_recv(&mut self) -> Option<Down> {
        self.0.lock().pop()
    }

    /// The next message; `None` once the queue is closed and read. Cancel-safe: a message
    /// stays queued until it is returned.
    pub(crate) async fn recv(&mut self) -> Option<Down> {
        loop {
            {
                // One look under one lock: a message queued just before the close is read.
                let mut st = self.0.lock();
                if let Some(d) = st.pop() {
                    return Some(d);
                }
                if st.closed {
                    return None;
                }
            }
            // One reader: a push after the look above leaves a permit this wait takes.
            self.0.ready.notified().await;
        }
    }
}

impl Drop for DownRx {
    fn drop(&mut self) {
        self.0.close();
    }
}

struct Entry {
    session: u64,
    /// Bit per subscribed channel, see [`bit`].
    subscribed: u8,
    queue: Arc<Queue>,
}

impl Drop for Entry {
    /// Replaced by a newer session, or removed: the connection learns it is over.
    fn drop(&mut self) {
        self.queue.close();
    }
}

fn bit(channel: Channel) -> u8 {
    match channel {
        Channel::Commands => 1,
        Channel::Receipts => 2,
        Channel::Codes => 4,
        Channel::Cert => 8,
        Channel::Update => 16,
        Channel::Config => 32,
        Channel::Diagnose => 64,
        // Devices may subscribe to nothing else (`protocol::topic::check_device_subscribe`).
        _ => 0,
    }
}

#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<DeviceId, Entry>>,
    /// Sessions ended because their device's certificate was revoked, until the session's
    /// own task reads why it ended.
    revoked: Mutex<std::collections::HashSet<(DeviceId, u64)>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Entry>> {
        // A panic while holding this lock leaves a consistent map (each operation is one
        // insert, remove or bit change), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new session of `device`. An older session of the same device loses its
    /// entry: its queue is closed, which ends that connection as taken over.
    pub(crate) fn open(&self, device: &DeviceId, session: u64) -> DownRx {
        let queue = Arc::new(Queue::default());
        let entry = Entry {
            session,
            subscribed: 0,
            queue: queue.clone(),
        };
        self.lock().insert(device.clone(), entry);
        DownRx(queue)
    }

    /// Marks `channel` subscribed or not for this session (no-op once it was taken over).
    pub(crate) fn subscribe(&self, device: &DeviceId, session: u64, channel: Channel, on: bool) {
        if let Some(e) = self.lock().get_mut(device)
            && e.session == session
        {
            if on {
                e.subscribed |= bit(channel);
            } else {
                e.subscribed &= !bit(channel);
            }
        }
    }

    /// Ends the device's live session (its queue is closed) because its
    /// certificate was revoked. `true` when there was one.
    pub(crate) fn evict(&self, device: &DeviceId) -> bool {
        let Some(entry) = self.lock().remove(device) else {
            return false;
        };
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((device.clone(), entry.session));
        true
    }

    /// Whether this session ended by [`Sessions::evict`] (asked once, by the session).
    pub(crate) fn take_revoked(&self, device: &DeviceId, session: u64) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(device.clone(), session))
    }

    /// Removes the session's entry unless a newer session already replaced it.
    pub(crate) fn close(&self, device: &DeviceId, session: u64) {
        let mut map = self.lock();
        if map.get(device).is_some_and(|e| e.session == session) {
            map.remove(device);
        }
    }
}

/// What became of a message given to [`Downlink::deliver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for the device's connection.
    Queued,
    /// No session: the device is offline. The server re-sends what matters when it is back.
    Offline,
    /// Connected, but not subscribed to this channel (yet).
    NotSubscribed,
    /// The device has not read its last messages; this one was dropped.
    QueueFull,
}

/// Hands server → device messages straight to the device's connection in the front.
/// Never waits: a slow or absent device cannot slow the caller (the ingest writer sends
/// receipts through it).
#[derive(Clone)]
pub struct Downlink {
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) stats: Arc<FrontStats>,
}

impl Downlink {
    /// Closes the device's live session because its certificate was revoked; `true` when it
    /// had one. Its reconnects then fail at the handshake against the new revocation list.
    pub fn evict(&self, device: &DeviceId) -> bool {
        self.sessions.evict(device)
    }

    pub fn deliver(
        &self,
        device: &DeviceId,
        channel: Channel,
        payload: impl Into<Bytes>,
    ) -> Delivery {
        let outcome = {
            let map = self.sessions.lock();
            match map.get(device) {
                None => Delivery::Offline,
                // A channel no device may subscribe to has bit 0: never subscribed.
                Some(e) if e.subscribed & bit(channel) == 0 => Delivery::NotSubscribed,
                Some(e) => {
                    let down = Down {
                        channel,
                        payload: payload.into(),
                    };
                    match e.queue.push(down) {
                        Ok(()) => Delivery::Queued,
                        // Closed: the connection is ending; same as offline for the caller.
                        Err(Refused::Closed) => Delivery::Offline,
                        Err(Refused::Full) => Delivery::QueueFull,
                    }
                }
            }
        };
        let counter = match outcome {
            Delivery::Queued => &self.stats.downlink_queued,
            Delivery::Offline | Delivery::NotSubscribed => &self.stats.downlink_undeliverable,
            Delivery::QueueFull => &self.stats.downlink_dropped_full,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("valid id")
    }

    fn downlink() -> Downlink {
        Downlink {
            sessions: Arc::new(Sessions::default()),
            stats: Arc::new(FrontStats::default()),
        }
    }

    #[test]
    fn every_downlink_channel_has_a_bit_of_its_own() {
        let bits: Vec<u8> = Channel::DEVICE_DOWNLINK.iter().map(|c| bit(*c)).collect();
        assert!(bits.iter().all(|b| b.count_ones() == 1), "{bits:?}");
        let all = bits.iter().fold(0u8, |acc, b| acc | b);
        assert_eq!(all.count_ones() as usize, bits.len(), "{bits:?}");
    }

    #[tokio::test]
    async fn delivers_only_to_subscribed_channels_of_the_live_session() {
        let d = downlink();
        let cab = dev("cab-1");
        assert_eq!(d.deliver(&cab, Channel::Receipts, "x"), Delivery::Offline);
        let mut rx = d.sessions.open(&cab, 1);
        assert_eq!(
            d.deliver(&cab, Channel::Receipts, "x"),
            Delivery::NotSubscribed
        );
        d.sessions.subscribe(&cab, 1, Channel::Receipts, true);
        assert_eq!(d.deliver(&cab, Channel::Receipts, "r1"), Delivery::Queued);
        assert_eq!(
            d.deliver(&cab, Channel::Commands, "c"),
            Delivery::NotSubscribed
        );
        // Devices cannot subscribe to their own uplink channels; nothing is delivered there.
        d.sessions.subscribe(&cab, 1, Channel::Events, true);
        assert_eq!(
            d.deliver(&cab, Channel::Events, "e"),
            Delivery::NotSubscribed
        );
        let got = rx.recv().await.expect("queued message");
        assert_eq!(
            (got.channel, &got.payload[..]),
            (Channel::Receipts, &b"r1"[..])
        );

        d.sessions.subscribe(&cab, 1, Channel::Receipts, false);
        assert_eq!(
            d.deliver(&cab, Channel::Receipts, "x"),
            Delivery::NotSubscribed
        );
        // Every downlink channel a device may subscribe to is delivered.
        for c in [
            Channel::Commands,
            Channel::Codes,
            Channel::Cert,
            Channel::Update,
        ] {
            d.sessions.subscribe(&cab, 1, c, true);
            assert_eq!(d.deliver(&cab, c, "x"), Delivery::Queued, "{c:?}");
        }
    }

    #[tokio::test]
    async fn a_new_session_takes_over_and_the_old_one_cannot_remove_it() {
        let d = downlink();
        let cab = dev("cab-1");
        let mut old = d.sessions.open(&cab, 1);
        let mut new = d.sessions.open(&cab, 2);
        // The old connection learns it was replaced: its queue is closed.
        assert!(old.recv().await.is_none());
        // Its late subscribe and close leave the new session alone.
        d.sessions.subscribe(&cab, 1, Channel::Codes, true);
        d.sessions.close(&cab, 1);
        assert_eq!(
            d.deliver(&cab, Channel::Codes, "x"),
            Delivery::NotSubscribed
        );
        d.sessions.subscribe(&cab, 2, Channel::Codes, true);
        assert_eq!(d.deliver(&cab, Channel::Codes, "v2"), Delivery::Queued);
        assert_eq!(&new.recv().await.expect("message").payload[..], b"v2");
        d.sessions.close(&cab, 2);
        assert_eq!(d.deliver(&cab, Channel::Codes, "x"), Delivery::Offline);
    }

    #[tokio::test]
    async fn what_was_queued_is_read_after_the_close_then_none() {
        let d = downlink();
        let cab = dev("cab-1");
        let mut old = d.sessions.open(&cab, 1);
        d.sessions.subscribe(&cab, 1, Channel::Receipts, true);
        for p in ["r1", "r2"] {
            assert_eq!(d.deliver(&cab, Channel::Receipts, p), Delivery::Queued);
        }
        // Taken over: closed, but what it held still goes out first.
        let _new = d.sessions.open(&cab, 2);
        assert_eq!(&old.recv().await.expect("r1").payload[..], b"r1");
        assert_eq!(&old.try_recv().expect("r2").payload[..], b"r2");
        assert!(old.recv().await.is_none());
        // A waiting reader is woken by the close.
        let mut rx = d.sessions.open(&cab, 3);
        let waiting = tokio::spawn(async move { rx.recv().await.is_none() });
        tokio::task::yield_now().await;
        d.sessions.close(&cab, 3);
        assert!(waiting.await.expect("reader"), "closed and empty: None");
    }

    #[test]
    fn a_session_gone_refuses_what_is_sent_to_it() {
        let d = downlink();
        let cab = dev("cab-1");
        let rx = d.sessions.open(&cab, 1);
        d.sessions.subscribe(&cab, 1, Channel::Receipts, true);
        // The connection's task ended before its entry was removed.
        drop(rx);
        assert_eq!(d.deliver(&cab, Channel::Receipts, "x"), Delivery::Offline);
    }

    #[test]
    fn a_device_that_does_not_read_loses_messages_not_memory() {
        let d = downlink();
        let cab = dev("cab-1");
        let _rx = d.sessions.open(&cab, 1);
        d.sessions.subscribe(&cab, 1, Channel::Receipts, true);
        for _ in 0..DOWNLINK_QUEUE {
            assert_eq!(d.deliver(&cab, Channel::Receipts, "r"), Delivery::Queued);
        }
        assert_eq!(d.deliver(&cab, Channel::Receipts, "r"), Delivery::QueueFull);
        assert_eq!(FrontStats::get(&d.stats.downlink_dropped_full), 1);
        assert_eq!(
            FrontStats::get(&d.stats.downlink_queued),
            DOWNLINK_QUEUE as u64
        );
    }
}
