//! The agent's footprint on a cabinet PC: one release `device-agent` process connected to a
//! real `fleet-server`, left at rest (sensors polled, heartbeats sent, nothing happening);
//! its resident memory and CPU share from `/proc`, and the size of its binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::locust_bench::cpu_seconds;
use crate::scale_bench::{TOKEN, rss_mb, start_server};

#[derive(Debug, Clone, clap::Args)]
pub struct FootprintOptions {
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds between the agent's start and the measurement (connect, first heartbeats).
    #[arg(long, default_value_t = 10)]
    pub warmup_secs: u64,
    #[arg(long, default_value_t = 24)]
    pub boxes: u16,
    /// The agent's sensor poll interval (its default: 50 ms).
    #[arg(long, default_value_t = 50)]
    pub poll_interval_ms: u64,
    /// The agent's heartbeat interval (its default: 30 s).
    #[arg(long, default_value_t = 30)]
    pub heartbeat_secs: u64,
    /// The agent's lock hardware, e.g. `modbus-tcp://127.0.0.1:5020` with a board simulator
    /// running there (tests/peers/modbus_board.py; default register map).
    #[arg(long, default_value = "fake")]
    pub hardware: String,
    /// The device-agent binary to measure (default: the one next to fleet-sim), e.g. a
    /// `--profile cabinet` build.
    #[arg(long)]
    pub agent: Option<std::path::PathBuf>,
}

pub async fn footprint(o: FootprintOptions) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    certs::init(&certs, false)?;
    let id = protocol::DeviceId::parse("footprint-cab")?;
    certs::Ca::load(&certs)?.issue_device(&certs, &id, false)?;
    let (server, mqtt, http) = start_server(dir.path(), "127.0.0.1:0", "127.0.0.1:0")?;
    // Both processes go with the bench, on every way out of it.
    let _server = Killed(server);
    let exe = match o.agent.clone() {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("device-agent"))
            .context("no folder of fleet-sim")?,
    };
    anyhow::ensure!(
        exe.exists(),
        "{} is not built (cargo build --release)",
        exe.display()
    );
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "poll_interval_ms = {}\nheartbeat_secs = {}\n",
            o.poll_interval_ms, o.heartbeat_secs
        ),
    )?;
    let agent = Command::new(&exe)
        .args(["--config", &config.display().to_string()])
        .args([
            "--id",
            id.as_str(),
            "--server",
            &format!("localhost:{}", mqtt.port()),
        ])
        .args(["--certs", &certs.display().to_string()])
        .args([
            "--data-dir",
            &dir.path().join("agent").display().to_string(),
        ])
        .args(["--boxes", &o.boxes.to_string(), "--hardware", &o.hardware])
        .env("LOCKERFLEET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let mut agent = Killed(agent);
    let stdout = agent.0.stdout.take().context("agent stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("LOCKERFLEET_AGENT_READY") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .context("device-agent did not start within 30 s")?;
    let online = wait_online(http, id.as_str()).await;
    tokio::time::sleep(Duration::from_secs(o.warmup_secs)).await;

    let pid = agent.0.id();
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    let mut peak_rss = 0.0f64;
    let mut rss_sum = 0.0;
    let mut samples = 0u32;
    while t0.elapsed() < Duration::from_secs(o.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss, _) = rss_mb(pid);
        peak_rss = peak_rss.max(rss);
        rss_sum += rss;
        samples += 1;
    }
    let cpu = cpu_seconds(pid) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let (rss_end, hwm) = rss_mb(pid);
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let size_mb = std::fs::metadata(&exe)?.len() as f64 / 1_048_576.0;
    drop(agent);

    println!(
        "agent footprint at rest: {} boxes on {} polled every {} ms, heartbeat every {} s, {} s measured after {} s warm-up ({})",
        o.boxes,
        o.hardware,
        o.poll_interval_ms,
        o.heartbeat_secs,
        o.seconds,
        o.warmup_secs,
        if online {
            "online at the server"
        } else {
            "NOT seen online"
        }
    );
    println!(
        "  RSS: mean {:.1} MB, peak {:.1} MB, end {:.1} MB, high-water {:.1} MB   (goal ≤ 20 MB)",
        rss_sum / f64::from(samples.max(1)),
        peak_rss,
        rss_end,
        hwm
    );
    println!(
        "  CPU: {:.2} s in {:.0} s = {:.2}% of one core   (goal < 1%)",
        cpu,
        wall,
        100.0 * cpu / wall
    );
    println!("  threads: {threads}");
    println!("  binary: {} {:.1} MB", exe.display(), size_mb);
    anyhow::ensure!(online, "the agent never showed online at the server");
    Ok(())
}

async fn wait_online(http: std::net::SocketAddr, id: &str) -> bool {
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let device: Option<serde_json::Value> = async {
            client
                .get(format!("http://{http}/api/v1/devices/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()
        }
        .await;
        if device.is_some_and(|d| d["online"] == true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A child process killed and reaped when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
