//! Time series export to InfluxDB v2 (`POST /api/v2/write`, line protocol): door events, box
//! state, device health and usage rollups, for Grafana and long-term analysis.
//!
//! Producers (the ingest writer, the usage task) never wait: they push encoded lines into a
//! bounded spool. One flusher sends batches with retry and backoff; a batch leaves the spool
//! only when InfluxDB accepted it. While InfluxDB is unreachable the spool fills; past its
//! bound the oldest points are dropped, and every dropped point is counted
//! (`lockerfleet_influx_points_dropped_total{reason}`) and logged, never lost silently.
//! Writing the same point twice is harmless: InfluxDB keeps one point per series and time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use influxdb_line_protocol::LineProtocolBuilder;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::usage::HOUR_MS;

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field {
    F(f64),
    I(i64),
    B(bool),
}

/// One point: measurement, tags, at least one field, time in epoch ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: &'static str,
    pub tags: Vec<(&'static str, String)>,
    pub fields: Vec<(&'static str, Field)>,
    pub ts_ms: i64,
}

/// Line protocol for `points` (millisecond precision), via InfluxData's builder, which
/// escapes measurement, tag and field text as the protocol requires.
pub(crate) fn encode(points: &[Point]) -> Vec<u8> {
    let mut b = LineProtocolBuilder::new();
    for p in points {
        let Some(((k0, v0), rest)) = p.fields.split_first() else {
            continue;
        };
        let mut m = b.measurement(p.measurement);
        for (k, v) in &p.tags {
            // Empty tag values are not allowed by the protocol: leave the tag out.
            if !v.is_empty() {
                m = m.tag(k, v);
            }
        }
        let mut f = match *v0 {
            Field::F(x) => m.field(k0, x),
            Field::I(x) => m.field(k0, x),
            Field::B(x) => m.field(k0, x),
        };
        for (k, v) in rest {
            f = match *v {
                Field::F(x) => f.field(k, x),
                Field::I(x) => f.field(k, x),
                Field::B(x) => f.field(k, x),
            };
        }
        b = f.timestamp(p.ts_ms).close_line();
    }
    b.build()
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct InfluxConfig {
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub token: Option<String>,
    pub spool_points: usize,
    pub batch_points: usize,
    pub usage_every: Duration,
}

/// Points waiting for InfluxDB, oldest first. Kept as points, not text, so the flusher can
/// fill in each cabinet's site with the freshest map when it writes them.
#[derive(Default)]
struct Spool {
    points: VecDeque<Point>,
    /// Points ever dropped from the front for room: tells the flusher how many of the batch
    /// it is writing were dropped meanwhile.
    evicted: u64,
}

/// The producers' handle: cheap to clone; a no-op when export is off.
#[derive(Clone, Default)]
pub struct Exporter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    spool: Mutex<Spool>,
    wake: Notify,
    cap: usize,
    metrics: Metrics,
}

impl Exporter {
    pub fn off() -> Exporter {
        Exporter::default()
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues points; never waits. Past the spool's bound the oldest points give way.
    pub fn push(&self, points: &[Point]) {
        let Some(inner) = &self.inner else { return };
        if points.is_empty() {
            return;
        }
        let mut dropped = 0u64;
        if let Ok(mut s) = inner.spool.lock() {
            for p in points {
                s.points.push_back(p.clone());
                if s.points.len() > inner.cap {
                    s.points.pop_front();
                    s.evicted += 1;
                    dropped += 1;
                }
            }
            inner.metrics.influx_spool.set(s.points.len() as i64);
        }
        if dropped > 0 {
            inner.metrics.influx_dropped("spool_full", dropped);
        }
        inner.wake.notify_one();
    }

    /// Points waiting to be written.
    pub fn pending(&self) -> usize {
        self.inner
            .as_ref()
            .and_then(|i| i.spool.lock().ok().map(|s| s.points.len()))
            .unwrap_or(0)
    }
}

/// Starts export when configured: returns the producers' handle and spawns the flusher and
/// the usage task on `tracker`.
pub(crate) fn start(
    cfg: Option<InfluxConfig>,
    store: Store,
    metrics: Metrics,
    tracker: &tokio_util::task::TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<Exporter> {
    let Some(cfg) = cfg else {
        return Ok(Exporter::off());
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow::anyhow!("building the InfluxDB HTTP client: {e}"))?;
    let inner = Arc::new(Inner {
        spool: Mutex::new(Spool::default()),
        wake: Notify::new(),
        cap: cfg.spool_points,
        metrics,
    });
    let exporter = Exporter {
        inner: Some(inner.clone()),
    };
    // The url crate (through reqwest) encodes the query; org and bucket names may hold
    // spaces and other characters.
    let mut url = reqwest::Url::parse(&format!("{}/api/v2/write", cfg.url.trim_end_matches('/')))
        .map_err(|e| anyhow::anyhow!("influx_url {:?} is not a URL: {e}", cfg.url))?;
    url.query_pairs_mut()
        .append_pair("org", &cfg.org)
        .append_pair("bucket", &cfg.bucket)
        .append_pair("precision", "ms");
    let url = url.to_string();
    tracing::info!(url = %cfg.url, bucket = %cfg.bucket, "exporting time series to InfluxDB");
    tracker.spawn(flush(
        inner,
        Writer {
            client,
            url,
            token: cfg.token.clone(),
        },
        Sites::new(store.clone()),
        cfg.batch_points,
        cancel.clone(),
    ));
    tracker.spawn(usage_points(
        exporter.clone(),
        store,
        cfg.usage_every,
        cancel,
    ));
    Ok(exporter)
}

/// What a write attempt came to.
enum Outcome {
    Written,
    /// InfluxDB refused the points themselves (400, 413): retrying cannot help.
    Rejected(String),
    /// Unreachable, overloaded, or refusing us (auth, unknown bucket): retry later.
    Retry(String),
}

struct Writer {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

/// Cabinet → site, so points carry their site as a tag; refreshed from the database when a
/// point names a cabinet it does not know (a new cabinet), at most every 2 s.
struct Sites {
    store: Store,
    map: HashMap<String, String>,
    loaded: Option<std::time::Instant>,
}

impl Sites {
    fn new(store: Store) -> Sites {
        Sites {
            store,
            map: HashMap::new(),
            loaded: None,
        }
    }

    async fn fill(&mut self, points: &mut [Point]) {
        let missing = |p: &Point, map: &HashMap<String, String>| {
            device_of(p).is_some_and(|d| !map.contains_key(d))
        };
        let stale = self
            .loaded
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        if stale && points.iter().any(|p| missing(p, &self.map)) {
            match self.store.cabinets(None).await {
                Ok(cabs) => {
                    self.map = cabs.into_iter().map(|c| (c.id, c.site_id)).collect();
                }
                Err(e) => tracing::warn!(error = %e, "reading cabinets for export failed"),
            }
            self.loaded = Some(std::time::Instant::now());
        }
        for p in points {
            let site = device_of(p).and_then(|d| self.map.get(d)).cloned();
            if let (Some(site), Some(slot)) = (site, p.tags.iter_mut().find(|(k, _)| *k == "site"))
            {
                slot.1 = site;
            }
        }
    }
}

fn device_of(p: &Point) -> Option<&str> {
    p.tags
        .iter()
        .find(|(k, _)| *k == "device")
        .map(|(_, v)| v.as_str())
}

async fn write(w: &Writer, body: Vec<u8>) -> Outcome {
    let mut req = w
        .client
        .post(&w.url)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(body);
    if let Some(t) = &w.token {
        req = req.header("Authorization", format!("Token {t}"));
    }
    match req.send().await {
        Ok(r) if r.status().is_success() => Outcome::Written,
        Ok(r) => {
            let status = r.status();
            let text: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            if status == reqwest::StatusCode::BAD_REQUEST
                || status == reqwest::StatusCode::PAYLOAD_TOO_LARGE
            {
                Outcome::Rejected(format!("{status}: {text}"))
            } else {
                Outcome::Retry(format!("{status}: {text}"))
            }
        }
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

/// The flusher: sends what is spooled, oldest first, in batches; backs off while InfluxDB
/// fails; at shutdown makes one last attempt and counts what is left as dropped.
async fn flush(
    inner: Arc<Inner>,
    writer: Writer,
    mut sites: Sites,
    batch: usize,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(250);
    let mut failing = false;
    loop {
        let stopping = cancel.is_cancelled();
        let (mut points, evicted): (Vec<Point>, u64) = match inner.spool.lock() {
            Ok(s) => (s.points.iter().take(batch).cloned().collect(), s.evicted),
            Err(_) => return,
        };
        if points.is_empty() {
            if stopping {
                return;
            }
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = inner.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            // Let a burst collect into one request.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let n = points.len();
        sites.fill(&mut points).await;
        let outcome = write(&writer, encode(&points)).await;
        let done = |inner: &Inner| {
            if let Ok(mut s) = inner.spool.lock() {
                // Pushes since only appended, but a full spool may have evicted some of
                // these from the front meanwhile (already counted): remove the rest.
                let gone = usize::try_from(s.evicted - evicted).unwrap_or(usize::MAX);
                let n = n.saturating_sub(gone).min(s.points.len());
                s.points.drain(..n);
                inner.metrics.influx_spool.set(s.points.len() as i64);
            }
        };
        match outcome {
            Outcome::Written => {
                done(&inner);
                inner.metrics.influx_written.inc_by(n as u64);
                if failing {
                    tracing::info!("InfluxDB writes succeed again");
                    failing = false;
                }
                backoff = Duration::from_millis(250);
            }
            Outcome::Rejected(why) => {
                done(&inner);
                inner.metrics.influx_dropped("rejected", n as u64);
                tracing::error!(points = n, error = %why,
                    "InfluxDB rejected a batch of points; they are dropped and counted");
            }
            Outcome::Retry(why) => {
                inner.metrics.influx_errors.inc();
                if stopping {
                    let left = inner.spool.lock().map(|s| s.points.len()).unwrap_or(0);
                    inner.metrics.influx_dropped("shutdown", left as u64);
                    tracing::warn!(points = left, error = %why,
                        "InfluxDB unreachable at shutdown; spooled points are dropped (counted)");
                    return;
                }
                if !failing {
                    tracing::warn!(error = %why, retry_in_ms = backoff.as_millis() as u64,
                        "InfluxDB write failed; points wait in the spool and are retried");
                    failing = true;
                }
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Every `every`: exports the usage rollups of the previous and the current hour per site
/// (rewriting the same points as the hours fill up).
async fn usage_points(
    exporter: Exporter,
    store: Store,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms();
        let start = now.div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS;
        match store.site_hours(start, 2, now).await {
            Ok(sites) => {
                let mut points = Vec::new();
                for (site, kind, hours) in sites {
                    for h in hours {
                        points.push(usage_point(&site, kind.as_str(), &h));
                    }
                }
                exporter.push(&points);
            }
            Err(e) => tracing::warn!(error = %e, "reading usage rollups for export failed"),
        }
    }
}

/// A site's usage in one hour.
pub(crate) fn usage_point(site: &str, kind: &str, h: &crate::store::usage::UsageFigures) -> Point {
    Point {
        measurement: "usage",
        tags: vec![("site", site.to_owned()), ("kind", kind.to_owned())],
        fields: vec![
            ("occupancy", Field::F(h.occupancy)),
            ("held_rate", Field::F(h.held_rate)),
            ("box_hours", Field::F(h.box_hours)),
            ("uses", Field::I(h.uses)),
            ("unmet", Field::I(h.unmet)),
        ],
        ts_ms: h.start,
    }
}

/// The points of stored device events: door changes and box occupancy. The site tag is
/// filled in when written.
pub(crate) fn event_point(device: &str, e: &protocol::Event) -> Option<Point> {
    use protocol::EventBody;
    let (measurement, box_no, field) = match &e.body {
        EventBody::Door { box_no, open } => ("door", box_no, ("open", Field::B(*open))),
        EventBody::Occupancy { box_no, occupied } => {
            ("box_state", box_no, ("occupied", Field::B(*occupied)))
        }
        _ => return None,
    };
    Some(Point {
        measurement,
        tags: vec![
            ("site", String::new()),
            ("device", device.to_owned()),
            ("box", box_no.get().to_string()),
        ],
        fields: vec![field, ("seq", Field::I(e.seq as i64))],
        ts_ms: e.ts,
    })
}

/// A heartbeat as a point, at the server's receive time (device clocks may be off).
pub(crate) fn health_point(device: &str, h: &protocol::Heartbeat, received_at: i64) -> Point {
    Point {
        measurement: "device_health",
        tags: vec![
            ("site", String::new()),
            ("device", device.to_owned()),
            ("profile", h.profile.as_str().to_owned()),
        ],
        fields: vec![
            ("uptime_s", Field::I(h.uptime_s as i64)),
            ("outbox_pending", Field::I(h.outbox_pending as i64)),
            (
                "lock_bus_ok",
                Field::B(matches!(h.lock_bus, protocol::BusHealth::Ok)),
            ),
            (
                "on_battery",
                Field::B(matches!(h.power, protocol::Power::Battery)),
            ),
        ],
        ts_ms: received_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door() -> Point {
        Point {
            measurement: "door",
            tags: vec![
                ("site", "hall-1".into()),
                ("device", "cab 01,a".into()),
                ("box", "3".into()),
            ],
            fields: vec![("open", Field::B(true)), ("seq", Field::I(42))],
            ts_ms: 1_764_288_000_000,
        }
    }

    #[test]
    fn golden_lines() {
        let usage = Point {
            measurement: "usage",
            tags: vec![("site", "hall-1".into()), ("kind", String::new())],
            fields: vec![("occupancy", Field::F(0.8125)), ("uses", Field::I(7))],
            ts_ms: 1_764_284_400_000,
        };
        let text = String::from_utf8(encode(&[door(), usage])).expect("utf-8");
        assert_eq!(
            text,
            "door,site=hall-1,device=cab\\ 01\\,a,box=3 open=true,seq=42i 1764288000000\n\
             usage,site=hall-1 occupancy=0.8125,uses=7i 1764284400000\n"
        );
    }

    #[test]
    fn lines_parse_back_with_the_same_crate() {
        use influxdb_line_protocol::{FieldValue, parse_lines};
        let text = String::from_utf8(encode(&[door()])).expect("utf-8");
        let lines: Vec<_> = parse_lines(&text)
            .collect::<Result<_, _>>()
            .expect("parses");
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l.series.measurement.as_str(), "door");
        assert_eq!(
            l.tag_value("device").map(|v| v.to_string()),
            Some("cab 01,a".into())
        );
        assert_eq!(l.field_value("open"), Some(&FieldValue::Boolean(true)));
        assert_eq!(l.field_value("seq"), Some(&FieldValue::I64(42)));
        assert_eq!(l.timestamp, Some(1_764_288_000_000));
    }

    #[tokio::test]
    async fn a_full_spool_drops_the_oldest_and_counts_them() {
        let metrics = Metrics::new(Arc::new(broker::FrontStats::default()));
        let inner = Arc::new(Inner {
            spool: Mutex::new(Spool::default()),
            wake: Notify::new(),
            cap: 3,
            metrics: metrics.clone(),
        });
        let e = Exporter {
            inner: Some(inner.clone()),
        };
        let points: Vec<Point> = (0..5).map(|i| Point { ts_ms: i, ..door() }).collect();
        e.push(&points);
        assert_eq!(e.pending(), 3);
        let first = inner.spool.lock().expect("lock").points[0].ts_ms;
        assert_eq!(first, 2, "the oldest gave way");
        assert!(
            metrics
                .encode()
                .contains("lockerfleet_influx_points_dropped_total{reason=\"spool_full\"} 2")
        );
    }
}
