//! Prometheus metrics of the server (`GET /metrics`, OpenMetrics text).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use broker::FrontStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric the server updates; cheap to clone (all handles are `Arc`s inside).
#[derive(Clone)]
pub struct Metrics {
    pub events_received: Counter,
    pub events_stored: Counter,
    pub events_duplicate: Counter,
    pub heartbeats_received: Counter,
    pub receipts_held: Counter,
    pub heartbeats_written: Counter,
    pub events_past_gap: Counter,
    pub events_unreadable: Counter,
    pub malformed: Family<ChannelLabel, Counter>,
    pub receipts_sent: Counter,
    pub ingest_batches: Counter,
    pub db_errors: Counter,
    pub devices_online: Gauge,
    /// 1 while this replica leads (runs sweeps and notifications), else 0.
    pub leader: Gauge,
    /// Rows removed (or box hours folded) by retention, by class.
    pub retention_rows: Family<KindLabel, Counter>,
    /// Retention passes that finished, and those that failed.
    pub retention_passes: Family<StatusLabel, Counter>,
    pub certificates_renewed: Counter,
    pub certificates_refused: Counter,
    /// Bytes of agent releases sent to devices.
    pub release_bytes_served: Counter,
    pub commands: Family<StatusLabel, Counter>,
    pub command_latency: Histogram,
    pub ingest_batch_seconds: Histogram,
    pub reservations: Counter,
    pub reservations_refused: Counter,
    pub items_overdue: Counter,
    pub code_syncs: Counter,
    pub notifications: Family<NotificationLabel, Counter>,
    /// Fleet gauges, refreshed from the database at each scrape.
    pub boxes: Family<StateLabel, Gauge>,
    pub alarms_open: Family<KindLabel, Gauge>,
    /// Deployments by state, and devices of unfinished ones by rollout state (the leader
    /// sets them each second).
    pub deployments: Family<StateLabel, Gauge>,
    pub deployment_devices: Family<StateLabel, Gauge>,
    /// Central configuration: sets sent, and devices whose reported configuration is not
    /// the desired one (the leader sets it each pass).
    pub config_syncs: Counter,
    pub config_drift: Gauge,
    /// Time series export (InfluxDB).
    pub influx_written: Counter,
    pub influx_dropped: Family<ReasonLabel, Counter>,
    pub influx_errors: Counter,
    pub influx_spool: Gauge,
    /// Stored events over time, for the ingest-rate gauge.
    pub ingest_rate: Arc<IngestRate>,
    /// API requests refused with 429 for their token's rate.
    pub api_throttled: Counter,
    /// The audit chain's newest sequence number, read at each scrape.
    pub audit_head_seq: Gauge,
    /// The configured limits, so dashboards can draw them beside what they bound.
    pub limits: Family<LimitLabel, Gauge>,
    registry: Arc<Registry>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// Events stored per second over the last [`IngestRate::WINDOW`], from samples of the
/// stored-events total the ingest writer records after each commit.
#[derive(Debug, Default)]
pub struct IngestRate {
    samples: std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, u64)>>,
}

impl IngestRate {
    pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

    /// Records the running total of stored events, now.
    pub fn record(&self, total: u64) {
        self.record_at(std::time::Instant::now(), total);
    }

    fn record_at(&self, at: std::time::Instant, total: u64) {
        if let Ok(mut s) = self.samples.lock() {
            s.push_back((at, total));
            // Keep one sample older than the window as the anchor.
            while s.len() > 2
                && s.get(1)
                    .is_some_and(|(t, _)| at.duration_since(*t) >= Self::WINDOW)
            {
                s.pop_front();
            }
        }
    }

    /// Events per second between the anchor (the window's start, or the first sample) and
    /// `now`, given the total now.
    pub fn per_second(&self, now: std::time::Instant, total: u64) -> f64 {
        let Ok(s) = self.samples.lock() else {
            return 0.0;
        };
        let anchor = s
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= Self::WINDOW)
            .or_else(|| s.front());
        match anchor {
            Some((t, n)) => {
                let secs = now
                    .duration_since(*t)
                    .as_secs_f64()
                    .max(Self::WINDOW.as_secs_f64());
                total.saturating_sub(*n) as f64 / secs
            }
            None => 0.0,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct NotificationLabel {
    pub channel: String,
    pub outcome: String,
}

impl Metrics {
    pub fn new(front: Arc<FrontStats>) -> Metrics {
        let mut registry = Registry::with_prefix("lockerfleet");
        let m = Metrics {
            events_received: Counter::default(),
            events_stored: Counter::default(),
            events_duplicate: Counter::default(),
            heartbeats_received: Counter::default(),
            receipts_held: Counter::default(),
            heartbeats_written: Counter::default(),
            events_past_gap: Counter::default(),
            events_unreadable: Counter::default(),
            malformed: Family::default(),
            receipts_sent: Counter::default(),
            ingest_batches: Counter::default(),
            db_errors: Counter::default(),
            devices_online: Gauge::default(),
            leader: Gauge::default(),
            retention_rows: Family::default(),
            retention_passes: Family::default(),
            certificates_renewed: Counter::default(),
            release_bytes_served: Counter::default(),
            certificates_refused: Counter::default(),
            commands: Family::default(),
            // 0.5 ms .. ~16 s: remote opens are milliseconds when all is well.
            command_latency: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16),
            ),
            ingest_batch_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 16),
            ),
            reservations: Counter::default(),
            reservations_refused: Counter::default(),
            items_overdue: Counter::default(),
            code_syncs: Counter::default(),
            notifications: Family::default(),
            boxes: Family::default(),
            alarms_open: Family::default(),
            deployments: Family::default(),
            deployment_devices: Family::default(),
            config_syncs: Counter::default(),
            config_drift: Gauge::default(),
            influx_written: Counter::default(),
            influx_dropped: Family::default(),
            influx_errors: Counter::default(),
            influx_spool: Gauge::default(),
            ingest_rate: Arc::new(IngestRate::default()),
            api_throttled: Counter::default(),
            audit_head_seq: Gauge::default(),
            limits: Family::default(),
            registry: Arc::new(Registry::default()),
        };
        let r = &mut registry;
        r.register(
            "events_received",
            "Events received from devices",
            m.events_received.clone(),
        );
        r.register(
            "events_stored",
            "Events newly stored (after deduplication)",
            m.events_stored.clone(),
        );
        r.register(
            "events_duplicate",
            "Events received again and ignored",
            m.events_duplicate.clone(),
        );
        r.register(
            "receipts_held",
            "Receipts not sent because the commit was not synchronously replicated (the standby was down); the cabinets resend",
            m.receipts_held.clone(),
        );
        r.register(
            "heartbeats_received",
            "Heartbeats heard from devices",
            m.heartbeats_received.clone(),
        );
        r.register(
            "heartbeats_written",
            "Heartbeat rows written to the database (routine ones together every heartbeat_flush_secs)",
            m.heartbeats_written.clone(),
        );
        r.register(
            "events_past_gap",
            "Events refused because an earlier seq is missing (the agent resends them in order)",
            m.events_past_gap.clone(),
        );
        r.register(
            "events_unreadable",
            "Events of a type or value this server does not know (a newer agent), stored as sent",
            m.events_unreadable.clone(),
        );
        r.register(
            "messages_malformed",
            "Device messages refused as malformed, by channel",
            m.malformed.clone(),
        );
        r.register(
            "retention_rows",
            "Rows removed by retention (box_hours: hourly rollup rows folded into days), by class",
            m.retention_rows.clone(),
        );
        r.register(
            "retention_passes",
            "Retention passes by outcome (done, failed)",
            m.retention_passes.clone(),
        );
        r.register(
            "receipts_sent",
            "Receipts published to devices",
            m.receipts_sent.clone(),
        );
        r.register(
            "ingest_batches",
            "Storage transactions of the ingest writer",
            m.ingest_batches.clone(),
        );
        r.register(
            "db_errors",
            "Failed storage transactions (retried)",
            m.db_errors.clone(),
        );
        r.register(
            "devices_online",
            "Devices with an open broker session",
            m.devices_online.clone(),
        );
        r.register(
            "leader",
            "1 while this server replica leads: runs the sweeps, notifications and command upkeep",
            m.leader.clone(),
        );
        r.register(
            "release_bytes_served",
            "Bytes of agent releases sent to devices (bounded by release_bytes_per_sec)",
            m.release_bytes_served.clone(),
        );
        r.register(
            "certificates_renewed",
            "Device certificates signed on the devices' own requests",
            m.certificates_renewed.clone(),
        );
        r.register(
            "certificates_refused",
            "Device certificate requests refused (no CA key, a bad request, too soon)",
            m.certificates_refused.clone(),
        );
        r.register("commands", "Command status transitions", m.commands.clone());
        r.register(
            "command_latency_seconds",
            "Remote command latency: API call to outcome at the door",
            m.command_latency.clone(),
        );
        r.register(
            "ingest_batch_seconds",
            "Duration of one ingest transaction",
            m.ingest_batch_seconds.clone(),
        );
        r.register(
            "reservations",
            "Reservations that got a box",
            m.reservations.clone(),
        );
        r.register(
            "reservations_refused",
            "Reservations refused for lack of a free box (unmet demand)",
            m.reservations_refused.clone(),
        );
        r.register(
            "items_overdue",
            "Items that went overdue",
            m.items_overdue.clone(),
        );
        r.register(
            "code_syncs",
            "Code grant sets sent to cabinets",
            m.code_syncs.clone(),
        );
        r.register(
            "notifications",
            "SMS and webhook delivery attempts by outcome (sent, retry, failed)",
            m.notifications.clone(),
        );
        r.register(
            "boxes",
            "Boxes by state across the fleet (free, occupied, reserved, out_of_service; faulty: with an open alarm)",
            m.boxes.clone(),
        );
        r.register(
            "alarms_open",
            "Open (active or acknowledged) alarms by kind",
            m.alarms_open.clone(),
        );
        r.register(
            "deployments",
            "Deployments by state (set by the leading replica)",
            m.deployments.clone(),
        );
        r.register(
            "deployment_devices",
            "Devices of running, paused and halted deployments by rollout state (set by the leading replica)",
            m.deployment_devices.clone(),
        );
        r.register(
            "config_syncs",
            "Desired configuration sets sent to devices",
            m.config_syncs.clone(),
        );
        r.register(
            "config_drift",
            "Known devices whose configuration in effect is not the desired one (set by the leading replica)",
            m.config_drift.clone(),
        );
        r.register(
            "influx_points_written",
            "Points InfluxDB accepted",
            m.influx_written.clone(),
        );
        r.register(
            "influx_points_dropped",
            "Points given up, by reason: spool_full (InfluxDB unreachable too long), rejected (InfluxDB refused them), shutdown",
            m.influx_dropped.clone(),
        );
        r.register(
            "influx_write_errors",
            "Failed InfluxDB write requests (retried)",
            m.influx_errors.clone(),
        );
        r.register(
            "influx_spool_points",
            "Points waiting to be written to InfluxDB",
            m.influx_spool.clone(),
        );
        r.register(
            "api_throttled",
            "API requests refused with 429: their token went over api_requests_per_sec",
            m.api_throttled.clone(),
        );
        r.register(
            "audit_head_seq",
            "Sequence number of the audit chain's newest row: a fall means rows were removed",
            m.audit_head_seq.clone(),
        );
        r.register(
            "limits",
            "Configured limits (0: none): max_connections, max_handshakes, max_handshakes_per_ip, max_packet_size, device_publish_per_sec, device_publish_burst, api_requests_per_sec, api_burst",
            m.limits.clone(),
        );
        r.register_collector(Box::new(FrontCollector(front)));
        r.register_collector(Box::new(RateCollector {
            rate: m.ingest_rate.clone(),
            stored: m.events_stored.clone(),
        }));
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn command_status(&self, status: &str) {
        self.commands
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .inc();
    }

    /// Sets the fleet gauges from the database's figures (every kind listed, zeros included,
    /// so a kind whose alarms all cleared reads 0, not its last value).
    pub fn fleet(&self, boxes: &[(&str, i64)], alarms: &[(String, i64)]) {
        for (state, n) in boxes {
            self.boxes
                .get_or_create(&StateLabel {
                    state: (*state).to_owned(),
                })
                .set(*n);
        }
        for (kind, n) in alarms {
            self.alarms_open
                .get_or_create(&KindLabel { kind: kind.clone() })
                .set(*n);
        }
    }

    /// Sets the deployment gauges (every state listed, zeros included).
    pub fn deployments(&self, deployments: &[(String, i64)], devices: &[(String, i64)]) {
        use domain::deployments::{DeploymentState, DeviceRollout};
        for s in DeploymentState::ALL {
            let n = deployments
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map_or(0, |(_, n)| *n);
            self.deployments
                .get_or_create(&StateLabel {
                    state: s.as_str().to_owned(),
                })
                .set(n);
        }
        for s in DeviceRollout::ALL {
            let n = devices
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map_or(0, |(_, n)| *n);
            self.deployment_devices
                .get_or_create(&StateLabel {
                    state: s.as_str().to_owned(),
                })
                .set(n);
        }
    }

    pub fn notification(&self, channel: &str, outcome: &str) {
        self.notifications
            .get_or_create(&NotificationLabel {
                channel: channel.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn influx_dropped(&self, reason: &str, n: u64) {
        self.influx_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }

    pub fn malformed(&self, channel: &str) {
        self.malformed
            .get_or_create(&ChannelLabel {
                channel: channel.to_owned(),
            })
            .inc();
    }
}

/// The ingest rate at scrape time.
#[derive(Debug)]
struct RateCollector {
    rate: Arc<IngestRate>,
    stored: Counter,
}

impl Collector for RateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(
            self.rate
                .per_second(std::time::Instant::now(), self.stored.get()),
        );
        g.encode(encoder.encode_descriptor(
            "ingest_events_per_second",
            "Events stored per second over the last 10 s",
            None,
            g.metric_type(),
        )?)
    }
}

/// Reads the broker front's counters at scrape time.
#[derive(Debug)]
struct FrontCollector(Arc<FrontStats>);

impl Collector for FrontCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let counters: [(&str, &str, &AtomicU64); 13] = [
            (
                "broker_connections_accepted",
                "TCP connections accepted on the device port",
                &s.accepted,
            ),
            (
                "broker_connections_rejected_limit",
                "Connections refused at the connection limit",
                &s.rejected_limit,
            ),
            (
                "broker_handshake_failed",
                "TLS handshakes that failed (bad or missing client certificate, ...)",
                &s.handshake_failed,
            ),
            (
                "broker_handshake_timeout",
                "Connections closed for not finishing TLS or CONNECT in time",
                &s.handshake_timeout,
            ),
            (
                "broker_handshake_queue_timeout",
                "Connections closed because no TLS handshake slot freed up in time (max_handshakes)",
                &s.handshake_queue_timeout,
            ),
            (
                "broker_identity_rejected",
                "Sessions refused: certificate without a device id, or client id differing from it",
                &s.identity_rejected,
            ),
            (
                "broker_violations",
                "Devices disconnected for publishing or subscribing outside their own topics or malformed packets",
                &s.violations,
            ),
            ("broker_sessions", "MQTT sessions accepted", &s.sessions),
            (
                "broker_downlink_queued",
                "Server messages (commands, receipts, code sets) handed to a device's connection",
                &s.downlink_queued,
            ),
            (
                "broker_downlink_undeliverable",
                "Server messages for a device that was offline or not subscribed (re-sent by their senders)",
                &s.downlink_undeliverable,
            ),
            (
                "broker_downlink_dropped_full",
                "Server messages dropped because the device stopped reading its connection",
                &s.downlink_dropped_full,
            ),
            (
                "broker_publish_throttled",
                "Device publishes held until the device's rate allowed them (device_publish_per_sec)",
                &s.publish_throttled,
            ),
            (
                "broker_handshake_refused_per_ip",
                "Connections closed after their ClientHello: their address had max_handshakes_per_ip handshakes in progress until their handshake deadline",
                &s.handshake_refused_per_ip,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(FrontStats::get(value));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let g = ConstGauge::new(FrontStats::get(&s.active) as i64);
        g.encode(encoder.encode_descriptor(
            "broker_connections_active",
            "Open connections on the device port",
            None,
            g.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::IngestRate;

    #[test]
    fn ingest_rate_is_over_the_last_ten_seconds() {
        let r = IngestRate::default();
        let t0 = Instant::now();
        r.record_at(t0, 0);
        r.record_at(t0 + Duration::from_secs(5), 500);
        r.record_at(t0 + Duration::from_secs(10), 1_000);
        assert_eq!(r.per_second(t0 + Duration::from_secs(10), 1_000), 100.0);
        r.record_at(t0 + Duration::from_secs(20), 1_000);
        // Nothing stored in the last 10 s: the rate falls to 0.
        assert_eq!(r.per_second(t0 + Duration::from_secs(20), 1_000), 0.0);
    }
}
