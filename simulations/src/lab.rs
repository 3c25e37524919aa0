//! Clustered peers on loopback for the benchmarks and the end-to-end tests: a RabbitMQ
//! cluster started by `deploy/cluster/rabbitmq.sh` with a `fleet-server broker-auth` per
//! node (ADR 0024), and the ports such peers must be told before they start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// A loopback port for a peer that must be told its port before it starts (RabbitMQ,
/// PostgreSQL, VictoriaMetrics cannot report a port-0 bind).
///
/// Not a port-0 pick: a port the kernel handed out once is ephemeral, and any outgoing
/// connection (another test's, or one cluster node dialling the next) may take it before the
/// peer binds it — CI lost a RabbitMQ node to `dist_port_already_used` that way. The kernel
/// never hands out ports below its ephemeral range, so this walks those from a per-run
/// start, skipping any bound now; the counter keeps one process's callers apart.
pub fn reserved_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .clamp(2_048, 65_535);
    // Up to 12,000 ports just below the ephemeral range, never the privileged ones.
    let base = low.saturating_sub(12_000).max(1_024);
    let span = low - base;
    // A start that differs from run to run: in a fresh pid namespace every run has the same
    // pid, and a run killed before cleaning up can leave lock files naming its ports (e.g.
    // PostgreSQL's socket lock in /var/run/postgresql) that the next run must not meet.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    let _ = NEXT.compare_exchange(0, seed % span + 1, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..span {
        let port = u16::try_from(base + NEXT.fetch_add(1, Ordering::SeqCst) % span)?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port between {base} and {low}")
}

/// A RabbitMQ cluster of Debian's `rabbitmq-server` (ADR 0024) in `dir`, each node asking
/// its own `fleet-server broker-auth`. Every node is killed (kill -9) on drop.
pub struct RabbitCluster {
    script: PathBuf,
    dir: PathBuf,
    auth: Vec<Child>,
    /// Each node's MQTT listener (the cabinets').
    pub mqtt: Vec<SocketAddr>,
    /// Each node's AMQP listener (the replicas').
    pub amqps: Vec<SocketAddr>,
}

/// What a cluster is started from.
pub struct RabbitSpec<'a> {
    /// `deploy/cluster/rabbitmq.sh` of this checkout.
    pub script: &'a Path,
    /// The nodes' data, logs and cookie; made open to the `rabbitmq` user.
    pub dir: &'a Path,
    /// The fleet CA and server certificate the nodes present (`fleet-certs init`).
    pub certs: &'a Path,
    pub nodes: usize,
    /// The `fleet-server` binary that answers the nodes' auth questions.
    pub fleet_server: &'a Path,
    /// Where broker-auth `n` (0-based) logs.
    pub auth_log: &'a dyn Fn(usize) -> anyhow::Result<Stdio>,
    /// The Erlang cluster's name; unique per cluster on a machine.
    pub name: &'a str,
}

impl RabbitCluster {
    pub fn start(spec: &RabbitSpec<'_>) -> anyhow::Result<RabbitCluster> {
        anyhow::ensure!(
            Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists(),
            "RabbitMQ is not installed: `apt-get install rabbitmq-server` (.ci/run does)"
        );
        anyhow::ensure!(
            spec.script.exists(),
            "{} not found: run from the repository's root or give --script",
            spec.script.display()
        );
        std::fs::create_dir_all(spec.dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            // The nodes run as the `rabbitmq` user when started by root.
            std::fs::set_permissions(spec.dir, std::fs::Permissions::from_mode(0o755))?;
        }
        let mut cluster = RabbitCluster {
            script: spec.script.to_owned(),
            dir: spec.dir.to_owned(),
            auth: Vec::new(),
            mqtt: Vec::new(),
            amqps: Vec::new(),
        };
        let mut urls = Vec::new();
        for n in 0..spec.nodes {
            let mut child = Command::new(spec.fleet_server)
                .args(["broker-auth", "--listen", "127.0.0.1:0"])
                .stdout(Stdio::piped())
                .stderr((spec.auth_log)(n)?)
                .spawn()
                .context("starting broker-auth")?;
            let stdout = child.stdout.take().context("broker-auth stdout")?;
            cluster.auth.push(child);
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
            let addr = line
                .trim()
                .strip_prefix("LOCKERFLEET_READY auth=")
                .with_context(|| format!("broker-auth said {line:?}"))?
                .to_owned();
            urls.push(format!("http://{addr}"));
        }
        let ports = || {
            (0..spec.nodes)
                .map(|_| reserved_port())
                .collect::<anyhow::Result<Vec<_>>>()
        };
        let (mqtt, amqps, dist) = (ports()?, ports()?, ports()?);
        let join = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
        let local = |p: &[u16]| {
            p.iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect()
        };
        cluster.mqtt = local(&mqtt);
        cluster.amqps = local(&amqps);
        let out = Command::new(spec.script)
            .args(["start", &spec.dir.display().to_string()])
            .env("LF_CERTS", spec.certs)
            .env("LF_MQTT_PORTS", join(&mqtt))
            .env("LF_AMQPS_PORTS", join(&amqps))
            .env("LF_DIST_PORTS", join(&dist))
            .env("LF_AUTH_URLS", urls.join(" "))
            .env("LF_CLUSTER", spec.name)
            .output()
            .context("running deploy/cluster/rabbitmq.sh")?;
        anyhow::ensure!(
            out.status.success(),
            "the RabbitMQ cluster did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(cluster)
    }

    /// `rabbitmq.sh COMMAND DIR ARGS...`, what it printed.
    fn script(&self, command: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new(&self.script)
            .args([command, &self.dir.display().to_string()])
            .args(args)
            .output()
            .context("running deploy/cluster/rabbitmq.sh")
    }

    fn run(&self, command: &str, node: Option<usize>) -> anyhow::Result<()> {
        let n = node.map(|n| n.to_string());
        let out = self.script(command, &n.iter().map(String::as_str).collect::<Vec<_>>())?;
        anyhow::ensure!(
            out.status.success(),
            "rabbitmq.sh {command} {node:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// kill -9 of node `n` (1-based), as a dying machine.
    pub fn kill9(&self, n: usize) -> anyhow::Result<()> {
        self.run("kill", Some(n))
    }

    /// Starts node `n` (1-based) again; it rejoins the cluster.
    pub fn restart(&self, n: usize) -> anyhow::Result<()> {
        self.run("restart", Some(n))
    }

    /// `rabbitmqctl ARGS` against node `n` (1-based): what it printed, for a test's diagnosis.
    pub fn ctl(&self, n: usize, args: &[&str]) -> anyhow::Result<String> {
        let n = n.to_string();
        let out = self.script("ctl", &[&[n.as_str()][..], args].concat())?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Applies the certificates directory's revocation list after `fleet-certs revoke`.
    pub fn apply_crl(&self) -> anyhow::Result<()> {
        self.run("crl", None)
    }

    /// Each node's Erlang VM, for its memory (None: not running).
    pub fn node_pids(&self) -> Vec<Option<u32>> {
        (1..=self.mqtt.len())
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("n{n}/beam.pid")))
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
            })
            .collect()
    }

    /// The replicas' `--external-broker` value: every node's AMQP listener.
    pub fn amqps_url(&self) -> String {
        format!("amqps://{}", Self::hosts(&self.amqps))
    }

    /// The agents' `--server` value: every node's MQTT listener.
    pub fn agent_servers(&self) -> String {
        Self::hosts(&self.mqtt)
    }

    // `localhost`, the name in the server certificate the nodes present.
    fn hosts(addrs: &[SocketAddr]) -> String {
        addrs
            .iter()
            .map(|a| format!("localhost:{}", a.port()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for n in 1..=self.mqtt.len() {
            let _ = self.run("kill", Some(n));
        }
        for c in &mut self.auth {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
