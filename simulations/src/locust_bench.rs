//! Durable ingest measured by an independent load generator: locust (PyPI) users as cabinets,
//! written from PROTOCOL.md with paho-mqtt (`simulations/locust/locustfile.py`), against a
//! real `fleet-server` process. Locust counts an event when the server's receipt covers it;
//! the server's own counter of stored events is read afterwards and must agree.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::DeviceId;

#[derive(Debug, Clone, clap::Args)]
pub struct LocustOptions {
    /// Locust users, one device (and certificate) each.
    #[arg(long, default_value_t = 50)]
    pub devices: usize,
    /// How long locust runs.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Events published and not yet receipted, per device.
    #[arg(long, default_value_t = 20)]
    pub window: u64,
    /// Events per message.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Locust worker processes (`--processes`; locust itself is single-threaded Python).
    #[arg(long, default_value_t = 1)]
    pub processes: u32,
    /// The locustfile (default: the one in this source tree).
    #[arg(long)]
    pub locustfile: Option<PathBuf>,
}

pub async fn locust(opts: LocustOptions) -> anyhow::Result<()> {
    let locustfile = opts
        .locustfile
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("locust/locustfile.py"));
    anyhow::ensure!(
        locustfile.is_file(),
        "{} not found: pass --locustfile",
        locustfile.display()
    );
    let dir = crate::fleet::scratch_dir("lockerfleet-bench-locust");
    let _ = std::fs::remove_dir_all(&dir);
    let prefix = "locust";
    let ids: Vec<DeviceId> = (0..opts.devices)
        .map(|n| DeviceId::parse(&format!("{prefix}-{n:05}")).context("device id"))
        .collect::<Result<_, _>>()?;
    let certs = dir.join("certs");
    crate::fleet::ensure_certs(&certs, &ids)?;
    let (mut server, mqtt, http) =
        crate::scale_bench::start_server(&dir, "127.0.0.1:0", "127.0.0.1:0")?;
    let stored_before = stored_events(http).await?;
    let cpu_before = cpu_seconds(server.id());

    let log = dir.join("locust.log");
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let mut cmd = Command::new("locust");
    cmd.arg("-f")
        .arg(&locustfile)
        .args(["--headless", "--json", "--loglevel", "WARNING"])
        .args(["-u", &opts.devices.to_string()])
        .args(["-r", &opts.devices.to_string()])
        .args(["-t", &format!("{}s", opts.seconds)])
        .args(["--stop-timeout", "5"])
        .env("LF_HOST", mqtt.ip().to_string())
        .env("LF_PORT", mqtt.port().to_string())
        .env("LF_CERTS", &certs)
        .env("LF_PREFIX", prefix)
        .env("LF_COUNT", opts.devices.to_string())
        .env("LF_WINDOW", opts.window.to_string())
        .env("LF_BATCH", opts.batch.to_string())
        .env("LF_PROCESSES", opts.processes.max(1).to_string())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?);
    if opts.processes > 1 {
        cmd.args(["--processes", &opts.processes.to_string()]);
    }
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context("running locust (pip install locust paho-mqtt)")?;
    let elapsed = started.elapsed();
    // Receipts in flight when locust stopped: give the last commits a moment to land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = stored_events(http).await? - stored_before;
    let server_cpu = cpu_seconds(server.id()) - cpu_before;
    let _ = server.kill();
    let _ = server.wait();

    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    // With --processes each worker prints its own (empty) summary before the master's.
    let stats: Vec<LocustStats> = serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter::<Vec<LocustStats>>()
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("locust printed no stats; its log:\n{log_text}"))?
        .into_iter()
        .rfind(|s| !s.is_empty())
        .unwrap_or_default();
    let failures: u64 = stats.iter().map(|s| s.num_failures).sum();
    let locust = stats
        .iter()
        .find(|s| s.name.starts_with("event stored"))
        .with_context(|| format!("no event was receipted; locust's log:\n{log_text}"))?;
    println!(
        "durable ingest, load from {} (paho-mqtt): {} devices, window {}, {} event(s) per message, {} s",
        locust_version(),
        opts.devices,
        opts.window,
        opts.batch,
        opts.seconds
    );
    println!(
        "  locust: {} events receipted, {:.0} events/s; publish → receipt p50 {} ms, p99 {} ms; {} failures",
        locust.num_requests,
        locust.rate(),
        locust.percentile(0.5),
        locust.percentile(0.99),
        failures
    );
    println!(
        "  server: {stored} events stored in {:.1} s of locust run = {:.0} events/s, using {:.0}% of one core (of 2; the rest is locust's)",
        elapsed.as_secs_f64(),
        stored as f64 / elapsed.as_secs_f64(),
        100.0 * server_cpu / elapsed.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        output.status.success(),
        "locust exited with {}; its log:\n{log_text}",
        output.status
    );
    anyhow::ensure!(
        failures == 0,
        "locust reported {failures} failures; its log:\n{log_text}"
    );
    // Every receipted event is stored; at most the last window per device is stored but
    // not yet receipted when locust stopped.
    let slack = opts.devices as u64 * opts.window;
    anyhow::ensure!(
        stored >= locust.num_requests && stored <= locust.num_requests + slack,
        "the server stored {stored} events but locust saw {} receipted (± {slack} in flight)",
        locust.num_requests
    );
    Ok(())
}

/// One entry of locust's `--json` summary.
#[derive(serde::Deserialize)]
struct LocustStats {
    name: String,
    num_requests: u64,
    num_failures: u64,
    start_time: f64,
    last_request_timestamp: Option<f64>,
    /// Response time (ms, rounded as locust buckets them) → count.
    response_times: std::collections::BTreeMap<String, u64>,
}

impl LocustStats {
    fn rate(&self) -> f64 {
        let span = self.last_request_timestamp.unwrap_or(self.start_time) - self.start_time;
        if span > 0.0 {
            self.num_requests as f64 / span
        } else {
            0.0
        }
    }

    /// The response time (ms) below which `q` of the requests fall.
    fn percentile(&self, q: f64) -> u64 {
        let mut times: Vec<(u64, u64)> = self
            .response_times
            .iter()
            .filter_map(|(ms, n)| ms.parse::<f64>().ok().map(|ms| (ms as u64, *n)))
            .collect();
        times.sort_unstable();
        let total: u64 = times.iter().map(|(_, n)| n).sum();
        let target = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (ms, n) in times {
            seen += n;
            if seen >= target {
                return ms;
            }
        }
        0
    }
}

/// "locust 2.47.0", from `locust --version`.
fn locust_version() -> String {
    Command::new("locust")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split(" from ").next().map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "locust".into())
}

/// User + system CPU seconds of a process so far, from `/proc` (0 where there is none).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// `lockerfleet_events_stored_total` from the server's `/metrics`.
async fn stored_events(http: std::net::SocketAddr) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("lockerfleet_events_stored_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("no lockerfleet_events_stored_total in /metrics")
}

#[cfg(test)]
mod tests {
    use super::LocustStats;

    #[test]
    fn locust_summary_gives_rate_and_percentiles() {
        let json = r#"[{"name": "event stored (publish → receipt)", "method": "MQTT",
            "last_request_timestamp": 110.0, "start_time": 100.0, "num_requests": 100,
            "num_none_requests": 0, "num_failures": 0, "total_response_time": 1.0,
            "max_response_time": 90.0, "min_response_time": 5.0, "total_content_length": 0,
            "response_times": {"5": 50, "18": 40, "35": 9, "90": 1},
            "num_reqs_per_sec": {}, "num_fail_per_sec": {}}]"#;
        let stats: Vec<LocustStats> = serde_json::from_str(json).expect("locust --json");
        let s = &stats[0];
        assert_eq!(s.rate(), 10.0);
        assert_eq!(s.percentile(0.5), 5);
        assert_eq!(s.percentile(0.9), 18);
        assert_eq!(s.percentile(0.99), 35);
        assert_eq!(s.percentile(1.0), 90);
    }
}
