//! The agent's log: stderr as before, plus a bounded in-memory ring of the newest lines that
//! remote diagnostics reads, and a level that central configuration (`log_level`) changes
//! while the agent runs, without a restart.
//!
//! The ring sees only what the filter lets through, so raising the level from the server is
//! how an engineer gets debug lines from one cabinet. It lives in memory: a restart empties
//! it, and journald (or the supervisor's stderr) keeps the long history.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex, OnceLock};

use protocol::message::{LogLine, MAX_LOG_BYTES, MAX_LOG_LINE_BYTES, clip};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Lines the ring keeps.
const RING_LINES: usize = 2_000;
/// Bytes of text the ring keeps (whichever limit is reached first).
const RING_BYTES: usize = 512 * 1024;
/// Noisy dependencies stay at `warn` unless the level asked for is lower.
const DEPENDENCIES: [&str; 3] = ["rumqttc", "sqlx", "rustls"];

/// The newest log lines, bounded by count and bytes.
#[derive(Default)]
pub(crate) struct Ring {
    inner: Mutex<RingInner>,
}

#[derive(Default)]
struct RingInner {
    lines: VecDeque<LogLine>,
    bytes: usize,
    dropped: u64,
}

fn cost(l: &LogLine) -> usize {
    l.text.len() + l.target.len() + l.level.len() + 16
}

impl Ring {
    fn lock(&self) -> std::sync::MutexGuard<'_, RingInner> {
        // Each operation leaves the ring consistent; a panic elsewhere does not spoil it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, line: LogLine) {
        let mut r = self.lock();
        r.bytes += cost(&line);
        r.lines.push_back(line);
        while r.lines.len() > RING_LINES || r.bytes > RING_BYTES {
            match r.lines.pop_front() {
                Some(old) => {
                    r.bytes -= cost(&old);
                    r.dropped += 1;
                }
                None => break,
            }
        }
    }

    /// The newest `n` lines that fit in a report, oldest first, and how many lines the ring
    /// has let go since it began.
    pub(crate) fn recent(&self, n: usize) -> (Vec<LogLine>, u64) {
        let r = self.lock();
        let mut out = Vec::new();
        let mut bytes = 0;
        for l in r.lines.iter().rev().take(n) {
            // JSON escaping can grow text; count it generously.
            bytes += cost(l) + l.text.len() / 4 + 48;
            if bytes > MAX_LOG_BYTES {
                break;
            }
            out.push(l.clone());
        }
        out.reverse();
        (out, r.dropped)
    }
}

/// The process's ring, fed by the subscriber [`init`] installs.
static RING: LazyLock<Ring> = LazyLock::new(Ring::default);
/// The filter's reload handle and the filter the process started with.
static FILTER: OnceLock<(reload::Handle<EnvFilter, Registry>, String)> = OnceLock::new();
/// The filter in effect now, as text.
static CURRENT: Mutex<String> = Mutex::new(String::new());

/// Feeds a [`Ring`] with every event the filter lets through.
pub(crate) struct RingLayer(pub(crate) &'static Ring);

impl<S: tracing::Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut text = Text::default();
        event.record(&mut text);
        let meta = event.metadata();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.0.push(LogLine {
            at,
            level: meta.level().to_string(),
            target: clip(meta.target(), 128),
            text: clip(&text.0, MAX_LOG_LINE_BYTES),
        });
    }
}

/// The message first, then `field=value` as the fmt layer writes them.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let sep = if self.0.is_empty() { "" } else { " " };
        let _ = if field.name() == "message" {
            write!(self.0, "{sep}{value:?}")
        } else {
            write!(self.0, "{sep}{}={value:?}", field.name())
        };
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let sep = if self.0.is_empty() { "" } else { " " };
            self.0.push_str(sep);
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// Logs to stderr and the ring; `LOCKERFLEET_LOG` (tracing filter syntax) overrides
/// `default_filter` until central configuration sets `log_level`.
pub fn init(default_filter: &str) {
    let start = std::env::var("LOCKERFLEET_LOG")
        .ok()
        .filter(|f| EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| default_filter.to_owned());
    let filter = EnvFilter::try_new(&start).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(RingLayer(&RING))
        .try_init()
        .is_ok();
    if installed {
        set_current(&start);
        let _ = FILTER.set((handle, start));
    }
}

fn set_current(filter: &str) {
    let mut c = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    filter.clone_into(&mut c);
}

/// The filter a `log_level` value stands for: the agent's own modules at that level, noisy
/// dependencies at `warn` at most.
pub(crate) fn filter_for(level: u64) -> Option<String> {
    let name = protocol::settings::log_level_name(level)?;
    let deps = protocol::settings::log_level_name(level.min(2))?;
    let mut f = name.to_owned();
    for d in DEPENDENCIES {
        f.push_str(&format!(",{d}={deps}"));
    }
    Some(f)
}

/// Applies a `log_level` (`None`: back to the filter the process started with). Returns the
/// filter in effect. Without [`init`] (tests, an embedding program) nothing changes.
pub(crate) fn set_level(level: Option<u64>) -> String {
    let Some((handle, start)) = FILTER.get() else {
        return current();
    };
    let wanted = level.and_then(filter_for).unwrap_or_else(|| start.clone());
    if current() == wanted {
        return wanted;
    }
    match EnvFilter::try_new(&wanted) {
        Ok(f) => match handle.reload(f) {
            Ok(()) => {
                tracing::info!(filter = %wanted, "log level changed");
                set_current(&wanted);
            }
            Err(e) => tracing::warn!(error = %e, "log level not changed"),
        },
        Err(e) => tracing::warn!(error = %e, filter = %wanted, "log level not changed"),
    }
    current()
}

/// The filter in effect (empty when [`init`] was not called).
pub(crate) fn current() -> String {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The newest `n` lines of this process's log.
pub(crate) fn recent(n: usize) -> (Vec<LogLine>, u64) {
    RING.recent(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_lines_with_their_fields_and_counts_the_rest() {
        let ring: &'static Ring = Box::leak(Box::default());
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(RingLayer(ring));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("not kept: below the filter");
            for i in 0..(RING_LINES + 5) {
                tracing::info!(box_no = i, "door opened");
            }
            tracing::warn!(
                device = "cab-1",
                "柜门未关 {}",
                "x".repeat(2 * MAX_LOG_LINE_BYTES)
            );
        });
        let (lines, dropped) = ring.recent(3);
        assert_eq!(dropped, 6, "2006 lines into a ring of 2000");
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0].text,
            format!("door opened box_no={}", RING_LINES + 3)
        );
        assert_eq!(lines[0].level, "INFO");
        let last = &lines[2];
        assert_eq!(last.level, "WARN");
        assert!(last.text.starts_with("柜门未关 x"), "{}", last.text);
        assert!(last.text.len() <= MAX_LOG_LINE_BYTES && last.text.ends_with('…'));
        assert!(last.target.contains("logs"), "{}", last.target);
        // A report never exceeds its byte budget, however many lines are asked for.
        let (all, _) = ring.recent(usize::MAX);
        let size: usize = all.iter().map(|l| l.text.len()).sum();
        assert!(
            size <= MAX_LOG_BYTES && all.len() < RING_LINES,
            "{}",
            all.len()
        );
    }

    #[test]
    fn levels_map_to_filters_that_keep_dependencies_quiet() {
        assert_eq!(
            filter_for(4).as_deref(),
            Some("debug,rumqttc=warn,sqlx=warn,rustls=warn")
        );
        assert_eq!(
            filter_for(1).as_deref(),
            Some("error,rumqttc=error,sqlx=error,rustls=error")
        );
        assert_eq!(filter_for(0), None);
        assert_eq!(filter_for(6), None);
        for l in 1..=5 {
            assert!(EnvFilter::try_new(filter_for(l).expect("level")).is_ok());
        }
    }
}
