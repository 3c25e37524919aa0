//! Starting, killing and querying real processes for the end-to-end tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// `target/<profile>`: where this test executable's own build put the binaries.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile> dir")
        .to_owned()
}

/// A built binary of the workspace, next to this test's own target dir.
pub(crate) fn bin(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built; `cargo test --workspace` builds it (or run `cargo build --workspace`)",
        path.display()
    );
    path
}

/// A binary of the previous release (tests/previous-release), built by
/// `.ci/previous-release` into the target dir's `previous-release/bin`.
pub(crate) fn previous(name: &str) -> PathBuf {
    let path = profile_dir()
        .parent()
        .expect("target dir")
        .join("previous-release/bin")
        .join(name);
    assert!(
        path.exists(),
        "the previous release's {name} is not built: run .ci/previous-release (it builds the \
         commit named in tests/previous-release into {})",
        path.display()
    );
    path
}

/// The rest of the first stdout line of `child` that starts with `prefix` (within 30 s).
/// Stdout keeps being drained afterwards so the child never blocks on a full pipe.
fn announced(child: &mut Child, prefix: &'static str) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).ok()
}

/// A replica's flags: `extra`, on a free HTTP port unless `extra` names one (a replica
/// restarted where its clients know it).
fn replica_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = Vec::new();
    if !extra.contains(&"--http-listen") {
        args.extend(["--http-listen", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    args
}

/// A test's world: a temp dir with a CA, server certificates, and device certificates.
pub(crate) struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub(crate) fn new(devices: &[&str]) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        certs::init(&certs, false).expect("CA");
        let ca = certs::Ca::load(&certs).expect("load CA");
        for d in devices {
            let id = protocol::DeviceId::parse(d).expect("device id");
            ca.issue_device(&certs, &id, false).expect("device cert");
        }
        World { dir }
    }

    pub(crate) fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Starts the server on free ports.
    pub(crate) fn server(&self) -> Server {
        self.server_on("127.0.0.1:0", "127.0.0.1:0")
    }

    /// Starts the server on the given addresses (a restart reuses the old ports).
    pub(crate) fn server_on(&self, mqtt: &str, http: &str) -> Server {
        self.server_with(mqtt, http, &[])
    }

    /// Starts the server with extra flags.
    pub(crate) fn server_with(&self, mqtt: &str, http: &str, extra: &[&str]) -> Server {
        self.server_bin_with(&bin("fleet-server"), mqtt, http, extra)
    }

    /// The server of another build (the previous release) with the embedded broker.
    pub(crate) fn server_bin(&self, exe: &Path, extra: &[&str]) -> Server {
        self.server_bin_with(exe, "127.0.0.1:0", "127.0.0.1:0", extra)
    }

    fn server_bin_with(&self, exe: &Path, mqtt: &str, http: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--mqtt-listen", mqtt, "--http-listen", http];
        args.extend_from_slice(extra);
        self.spawn_server_bin(exe, "server", &args)
    }

    /// Starts a server replica named `name` (data dir and log of that name) on an external
    /// broker; `extra` adds flags (the broker, the database, a config file).
    pub(crate) fn replica(&self, name: &str, extra: &[&str]) -> Server {
        self.spawn_server(name, &replica_args(extra))
    }

    /// A replica (`replica`) once its health says the broker is connected.
    pub(crate) async fn ready_replica(&self, name: &str, extra: &[&str]) -> Server {
        self.ready_replica_bin(&bin("fleet-server"), name, extra)
            .await
    }

    fn spawn_server(&self, name: &str, args: &[&str]) -> Server {
        self.spawn_server_bin(&bin("fleet-server"), name, args)
    }

    /// A replica (`replica`) of another build of fleet-server (the previous release).
    pub(crate) async fn ready_replica_bin(&self, exe: &Path, name: &str, extra: &[&str]) -> Server {
        let server = self.spawn_server_bin(exe, name, &replica_args(extra));
        let api = server.api();
        eventually(Duration::from_secs(30), "replica connected", || async {
            let (status, health) = api.get("/healthz").await;
            (status == 200 && health["broker"] == "ok").then_some(())
        })
        .await;
        server
    }

    fn spawn_server_bin(&self, exe: &Path, name: &str, args: &[&str]) -> Server {
        let log_path = self.path(&format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log");
        let mut child = Command::new(exe)
            .args(["--data-dir", &self.path(name).display().to_string()])
            .args(["--certs", &self.certs().display().to_string()])
            .args(["--admin-token", ADMIN_TOKEN])
            .args(args)
            // `LOCKERFLEET_TEST_SERVER_LOG=info,fleet_server::runtime::ingest=debug` to look closer.
            .env(
                "LOCKERFLEET_LOG",
                std::env::var("LOCKERFLEET_TEST_SERVER_LOG")
                    .unwrap_or_else(|_| "info,rumqttd=off,sqlx=warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn fleet-server");
        let ready = announced(&mut child, "LOCKERFLEET_READY ").unwrap_or_else(|| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("fleet-server did not become ready; its log:\n{log}")
        });
        let addr = |key: &str| -> SocketAddr {
            ready
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in ready line {ready:?}"))
        };
        Server {
            child,
            mqtt: addr("mqtt="),
            http: addr("http="),
        }
    }

    /// The `device-agent` command for `id` against `mqtt`, logging to `{id}.log`.
    fn agent_command(&self, id: &str, mqtt: SocketAddr, extra: &[&str]) -> Command {
        self.agent_command_bin(&bin("device-agent"), id, mqtt, extra)
    }

    fn agent_command_bin(&self, exe: &Path, id: &str, mqtt: SocketAddr, extra: &[&str]) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("{id}.log")))
            .expect("agent log");
        let mut cmd = Command::new(exe);
        // Eight fake boxes unless the test names its own hardware or size.
        for (flag, default) in [("--boxes", "8"), ("--hardware", "fake")] {
            if !extra.contains(&flag) {
                cmd.args([flag, default]);
            }
        }
        // The test may name the addresses itself (several nodes).
        if !extra.contains(&"--server") {
            cmd.args(["--server", &format!("localhost:{}", mqtt.port())]);
        }
        cmd.args(["--id", id])
            .args(["--certs", &self.certs().display().to_string()])
            .args([
                "--data-dir",
                &self.path(&format!("agent-{id}")).display().to_string(),
            ])
            .args(extra)
            .env("LOCKERFLEET_LOG", "info,rumqttc=warn,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    /// Starts a device agent with fake hardware against `server`.
    pub(crate) fn agent(&self, id: &str, mqtt: SocketAddr, extra: &[&str]) -> Proc {
        let child = self
            .agent_command(id, mqtt, extra)
            .spawn()
            .expect("spawn device-agent");
        Proc { child }
    }

    /// Starts a device agent with a fake-hardware control socket; waits for its address.
    pub(crate) fn agent_ctl(&self, id: &str, mqtt: SocketAddr, extra: &[&str]) -> AgentCtl {
        self.agent_ctl_bin(&bin("device-agent"), id, mqtt, extra)
    }

    /// `agent_ctl` with another build of device-agent (the previous release).
    pub(crate) fn agent_ctl_bin(
        &self,
        exe: &Path,
        id: &str,
        mqtt: SocketAddr,
        extra: &[&str],
    ) -> AgentCtl {
        let mut child = self
            .agent_command_bin(exe, id, mqtt, extra)
            .args(["--fake-control", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn device-agent");
        let addr = announced(&mut child, "LOCKERFLEET_AGENT_CONTROL addr=").unwrap_or_else(|| {
            let log = std::fs::read_to_string(self.path(&format!("{id}.log"))).unwrap_or_default();
            panic!("device-agent {id} printed no control address; its log:\n{log}")
        });
        AgentCtl {
            proc: Proc { child },
            control: addr.parse().expect("control address"),
        }
    }

    /// rumqttc options for a device using `cert_of`'s certificate and `client_id`.
    pub(crate) fn device_options(
        &self,
        cert_of: &str,
        client_id: &str,
        mqtt: SocketAddr,
    ) -> rumqttc::MqttOptions {
        let id = protocol::DeviceId::parse(cert_of).expect("id");
        let certs = self.certs();
        let roots = certs::load_roots(&certs.join(certs::CA_CERT)).expect("roots");
        let chain = certs::load_certs(&certs::device_cert_path(&certs, &id)).expect("cert");
        let key = certs::load_key(&certs::device_key_path(&certs, &id)).expect("key");
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client tls");
        let mut o = rumqttc::MqttOptions::new(client_id, "localhost", mqtt.port());
        o.set_keep_alive(Duration::from_secs(10)).set_transport(
            rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(tls))),
        );
        o
    }
}

/// The statuses a remote open ends in.
pub(crate) const COMMAND_OUTCOMES: [&str; 5] =
    ["opened", "already_open", "jammed", "failed", "expired"];

pub(crate) const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

/// The checks of `device-agent doctor`, in its order.
pub(crate) const DOCTOR_CHECKS: [&str; 6] = [
    "config",
    "certificate",
    "clock",
    "server",
    "lock board",
    "disk",
];

/// An agent process and its fake-hardware control socket.
pub(crate) struct AgentCtl {
    pub proc: Proc,
    pub control: SocketAddr,
}

impl AgentCtl {
    /// Sends one control line (`code 123456`, `staff CARD 3`, `close 3`, ...); the JSON answer.
    pub(crate) async fn send(&self, line: &str) -> Value {
        control_send(self.control, line).await
    }
}

/// One line to an agent's fake-hardware control socket at `addr`; the JSON answer.
async fn control_send(addr: SocketAddr, line: &str) -> Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("control connect");
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("control write");
    let mut answer = String::new();
    tokio::io::BufReader::new(read)
        .read_line(&mut answer)
        .await
        .expect("control read");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("control answer {answer:?}: {e}"))
}

/// What a test HTTP receiver (SMS gateway, platform webhook) got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
}

/// A local HTTP server standing in for the SMS gateway and the service platform. It answers
/// 503 to the first `fail_first` requests, then 200.
pub(crate) struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<std::sync::Mutex<Vec<Received>>>,
    /// Requests still to be failed with 503; set it to change course mid-test.
    pub fail: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests failed so far.
    pub failed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> Receiver {
        use axum::extract::{Request, State};
        let got: Arc<std::sync::Mutex<Vec<Received>>> = Arc::default();
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        type Counter = Arc<std::sync::atomic::AtomicUsize>;
        type St = (Arc<std::sync::Mutex<Vec<Received>>>, Counter, Counter);
        async fn handle(
            State((got, failures, failed)): State<St>,
            req: Request,
        ) -> axum::http::StatusCode {
            use std::sync::atomic::Ordering;
            if failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                failed.fetch_add(1, Ordering::SeqCst);
                return axum::http::StatusCode::SERVICE_UNAVAILABLE;
            }
            let path = req.uri().path().to_owned();
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            got.lock().expect("lock").push(Received {
                path,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
            axum::http::StatusCode::OK
        }
        let app = axum::Router::new().fallback(handle).with_state((
            got.clone(),
            failures.clone(),
            failed.clone(),
        ));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            got,
            fail: failures,
            failed,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn all(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits for a request on `path` whose body matches `pred`.
    pub(crate) async fn wait(
        &self,
        path: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Received {
        eventually(Duration::from_secs(20), what, || async {
            self.all(path)
                .into_iter()
                .find(|r| serde_json::from_str::<Value>(&r.body).is_ok_and(|v| pred(&v)))
        })
        .await
    }
}

/// A PostgreSQL cluster of this test's own, so stopping it disturbs no other test.
pub(crate) struct PrivatePg {
    bin: std::path::PathBuf,
    data: std::path::PathBuf,
    port: u16,
}

impl PrivatePg {
    pub(crate) fn start(dir: &std::path::Path) -> PrivatePg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok().map(|v| v.path().join("bin")))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            })
            .expect(
                "PostgreSQL binaries not found under /usr/lib/postgresql: \
                 `apt-get install postgresql` (.ci/run does)",
            );
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("pg dir");
        let port = reserved_port().expect("free port");
        let pg = PrivatePg { bin, data, port };
        if is_root() {
            // initdb refuses to run as root: the cluster belongs to the postgres user.
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to postgres", dir.display());
        }
        let data_arg = pg.data.display().to_string();
        pg.run(
            "initdb",
            &["-D", &data_arg, "-A", "trust", "-U", "postgres"],
        );
        pg.ctl("start");
        pg
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            std::process::Command::new(&exe)
        };
        let out = cmd.args(args).output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn ctl(&self, action: &str) {
        let data = self.data.display().to_string();
        let log = self.data.join("server.log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port, data
        );
        match action {
            "start" => self.run(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-w", "-o", &opts, "start"],
            ),
            // Immediate: the server dies as on a crash, without a checkpoint.
            _ => self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = std::process::Command::new(if is_root() { "runuser" } else { "true" })
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        if !is_root() {
            let _ = std::process::Command::new(self.bin.join("pg_ctl"))
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output();
        }
    }
}

pub(crate) fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// mosquitto (apt) as the external broker, configured by `fleet-certs mosquitto` from the
/// world's CA on a free port.
pub(crate) struct Mosquitto {
    /// Killed with the test.
    _proc: Proc,
    pub addr: SocketAddr,
}

impl Mosquitto {
    pub(crate) fn start(world: &World) -> Mosquitto {
        let port = reserved_port().expect("free port");
        let files = certs::write_mosquitto(&world.certs(), port).expect("mosquitto settings");
        if is_root() {
            // mosquitto drops root to its own user, which cannot read the 0600 server key.
            let mut conf = std::fs::read_to_string(&files.conf).expect("conf");
            conf.push_str("user root\n");
            std::fs::write(&files.conf, conf).expect("conf");
        }
        let log = std::fs::File::create(world.path("mosquitto.log")).expect("mosquitto log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&files.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto not installed: `apt-get install mosquitto` (.ci/run does)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < until,
                "mosquitto did not listen on {addr}; its log:\n{}",
                std::fs::read_to_string(world.path("mosquitto.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Mosquitto {
            _proc: Proc { child },
            addr,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("mqtts://localhost:{}", self.addr.port())
    }
}

pub(crate) use simulations::lab::reserved_port;

/// A RabbitMQ cluster of Debian's `rabbitmq-server` on loopback (ADR 0024), started by the
/// same script a person uses (`deploy/cluster/rabbitmq.sh`) through the benchmarks' launcher,
/// each node asking its own `fleet-server broker-auth`. Stopped (kill -9) with the test.
pub(crate) struct RabbitCluster {
    // Declared first: the nodes die before their directory is removed.
    nodes: simulations::lab::RabbitCluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for RabbitCluster {
    type Target = simulations::lab::RabbitCluster;
    fn deref(&self) -> &Self::Target {
        &self.nodes
    }
}

impl RabbitCluster {
    pub(crate) fn start(world: &World, nodes: usize) -> RabbitCluster {
        // The replicas' certificate, as `fleet-certs issue --device fleet-server` makes it.
        let replica = certs::server_client_id();
        if !certs::device_cert_path(&world.certs(), &replica).exists() {
            let ca = certs::Ca::load(&world.certs()).expect("load CA");
            ca.issue_device(&world.certs(), &replica, false)
                .expect("replica certificate");
        }
        let dir = tempfile::Builder::new()
            .prefix("lf-rabbit-")
            .tempdir()
            .expect("cluster dir");
        let name = format!(
            "t{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .replace(['.', '_'], "")
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cluster/rabbitmq.sh");
        let log = |n: usize| {
            Ok(std::fs::File::create(world.path(&format!("broker-auth-{n}.log")))?.into())
        };
        let nodes = simulations::lab::RabbitCluster::start(&simulations::lab::RabbitSpec {
            script: &script,
            dir: dir.path(),
            certs: &world.certs(),
            nodes,
            fleet_server: &bin("fleet-server"),
            auth_log: &log,
            name: &name,
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
        RabbitCluster { nodes, _dir: dir }
    }

    /// kill -9 of node `n` (1-based), as a dying machine.
    pub(crate) fn kill9(&self, n: usize) {
        self.nodes.kill9(n).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Starts node `n` again; it rejoins the cluster.
    pub(crate) fn restart(&self, n: usize) {
        self.nodes.restart(n).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Applies the fleet's revocation list (after `fleet-certs revoke`).
    pub(crate) fn apply_crl(&self) {
        self.nodes.apply_crl().unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// PostgreSQL with a synchronous standby and automatic failover (pg_auto_failover from
/// Debian: a monitor and two nodes), started by `deploy/cluster/pg-auto-failover.sh`;
/// stopped with the test.
pub(crate) struct AutoFailover {
    dir: tempfile::TempDir,
    /// node1's and node2's ports.
    pub ports: [u16; 2],
}

impl AutoFailover {
    pub(crate) fn start() -> AutoFailover {
        assert!(
            Command::new("sh")
                .args(["-c", "command -v pg_autoctl"])
                .output()
                .is_ok_and(|o| o.status.success()),
            "pg_auto_failover is not installed: `apt-get install postgresql-15-auto-failover pg-auto-failover-cli` (.ci/run does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("lf-pgaf-")
            .tempdir()
            .expect("database dir");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("dir mode");
        }
        let ports: [u16; 3] = std::array::from_fn(|_| reserved_port().expect("free port"));
        let db = AutoFailover {
            dir,
            ports: [ports[1], ports[2]],
        };
        let out = Command::new(Self::script())
            .args(["start", &db.path()])
            .env("LF_PG_PORTS", ports.map(|p| p.to_string()).join(" "))
            .output()
            .expect("run deploy/cluster/pg-auto-failover.sh");
        assert!(
            out.status.success(),
            "pg_auto_failover did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cluster/pg-auto-failover.sh")
    }

    fn path(&self) -> String {
        self.dir.path().join("db").display().to_string()
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(Self::script())
            .arg(args[0])
            .arg(self.path())
            .args(&args[1..])
            .output()
            .expect("run deploy/cluster/pg-auto-failover.sh");
        assert!(
            out.status.success(),
            "pg-auto-failover.sh {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The servers' database URL: both nodes, as `pg_autoctl show uri` names them.
    pub(crate) fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/lockerfleet?target_session_attrs=read-write&sslmode=disable",
            self.ports[0], self.ports[1]
        )
    }

    /// Which node (1 or 2) is primary now, as the monitor says.
    pub(crate) fn primary(&self) -> usize {
        match self.run(&["primary"]).as_str() {
            "node1" => 1,
            "node2" => 2,
            other => panic!("no primary: {other:?}"),
        }
    }

    /// The monitor's view of the nodes (for a failing test's message).
    pub(crate) fn state(&self) -> String {
        self.run(&["state"])
    }

    /// A single-host URL of node `n`, for the test's own checks.
    pub(crate) fn node_url(&self, n: usize) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/lockerfleet?sslmode=disable",
            self.ports[n - 1]
        )
    }

    /// kill -9 of node `n`'s keeper and PostgreSQL: the machine dies.
    pub(crate) fn kill9(&self, n: usize) {
        self.run(&["kill", &n.to_string()]);
    }

    /// The machine of node `n` comes back: its keeper starts and rejoins as standby.
    pub(crate) fn restart(&self, n: usize) {
        self.run(&["restart", &n.to_string()]);
    }

    /// The last lines of node `n`'s keeper log (for a failing test's message).
    pub(crate) fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(format!("db/node{n}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for AutoFailover {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args(["stop", &self.path()])
            .output();
    }
}

/// A child process killed (SIGKILL) when dropped.
pub(crate) struct Proc {
    pub child: Child,
}

impl Proc {
    /// `kill -9`: no shutdown code runs.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) struct Server {
    pub child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
}

impl Server {
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn api(&self) -> Api {
        Api::new(self.http, ADMIN_TOKEN)
    }

    /// Stops it as its service manager would (SIGTERM) and waits for its ordered shutdown.
    pub(crate) fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        panic!("fleet-server {pid} did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The HTTP API as a client sees it.
#[derive(Clone)]
pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(addr: SocketAddr, token: &str) -> Api {
        Api {
            base: format!("http://{addr}"),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    pub(crate) fn with_token(&self, token: &str) -> Api {
        Api {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    /// GET → (status, JSON body).
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// GET → body text (with the token; `/metrics` ignores it).
    pub(crate) async fn get_text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body")
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// PUT a text body (CSV, GeoJSON) → (status, JSON body).
    pub(crate) async fn put_text(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (u16, Value) {
        let res = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("PUT");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("PUT");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn delete(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("DELETE");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A request that may meet no server (one being restarted): `None` then, else the status
    /// and JSON body.
    pub(crate) async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        Some((status, res.json().await.unwrap_or(Value::Null)))
    }

    pub(crate) async fn open(&self, device: &str, box_no: u16, body: Value) -> (u16, Value) {
        self.post(
            &format!("/api/v1/devices/{device}/boxes/{box_no}/open"),
            body,
        )
        .await
    }

    /// The actions of the newest `limit` audit entries, newest first.
    pub(crate) async fn audit_actions(&self, limit: u32) -> Vec<String> {
        let (s, audit) = self.get(&format!("/api/v1/audit?limit={limit}")).await;
        assert_eq!(s, 200, "{audit}");
        audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["action"].as_str().map(str::to_owned))
            .collect()
    }

    pub(crate) async fn device(&self, id: &str) -> Option<Value> {
        match self.get(&format!("/api/v1/devices/{id}")).await {
            (200, v) => Some(v),
            _ => None,
        }
    }

    /// Every stored event of a device, in sequence order.
    pub(crate) async fn events(&self, id: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (status, body) = self
                .get(&format!(
                    "/api/v1/devices/{id}/events?after={after}&limit=10000"
                ))
                .await;
            assert_eq!(status, 200, "{body}");
            let page = body["events"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return all;
            }
            after = page.last().and_then(|e| e["seq"].as_u64()).unwrap_or(after);
            all.extend(page);
        }
    }

    /// Waits until the command has an outcome, with the API's long poll; returns it.
    pub(crate) async fn wait_command(&self, id: &str, timeout: Duration) -> Value {
        let until = Instant::now() + timeout;
        loop {
            let wait = until
                .saturating_duration_since(Instant::now())
                .as_secs()
                .clamp(1, 30);
            let (code, cmd) = self
                .get(&format!("/api/v1/commands/{id}?wait_secs={wait}"))
                .await;
            assert_eq!(code, 200, "{cmd}");
            let status = cmd["status"].as_str().unwrap_or_default();
            if COMMAND_OUTCOMES.contains(&status) {
                return cmd;
            }
            assert!(Instant::now() < until, "command {id} still {status}: {cmd}");
        }
    }

    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let text = self.get_text("/metrics").await;
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }
}

/// Epoch milliseconds, the API's time format.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Polls `check` until it returns `Some`, or fails the test after `timeout` with `what`.
pub(crate) async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the device is online and has reported its boxes.
pub(crate) async fn wait_online(api: &Api, id: &str) {
    eventually(Duration::from_secs(20), &format!("{id} online"), || async {
        api.device(id).await.filter(|d| {
            d["online"] == json!(true) && d["boxes"].as_array().is_some_and(|b| !b.is_empty())
        })
    })
    .await;
}

/// Asserts the stored events are exactly seqs 1..=n, each once, stored in sequence order.
pub(crate) fn assert_exactly_once_in_order(events: &[Value], n: u64) {
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let expected: Vec<u64> = (1..=n).collect();
    if seqs != expected {
        let missing: Vec<u64> = expected
            .iter()
            .filter(|s| !seqs.contains(s))
            .copied()
            .collect();
        panic!(
            "stored seqs are not exactly 1..={n}: {} stored, missing {:?}",
            seqs.len(),
            &missing[..missing.len().min(20)]
        );
    }
    let received: Vec<i64> = events
        .iter()
        .filter_map(|e| e["received_at"].as_i64())
        .collect();
    assert!(
        received.windows(2).all(|w| w[0] <= w[1]),
        "events were stored out of sequence order"
    );
}

/// A tmux session running one command; killed when dropped.
pub(crate) struct Tmux {
    name: String,
}

impl Tmux {
    pub(crate) fn start(name: &str, width: u16, height: u16, command: &str) -> Tmux {
        let status = Command::new("tmux")
            // -u: UTF-8 whatever the machine's locale, so Chinese screens capture as written.
            .args(["-u", "new-session", "-d", "-s", name])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command)
            .status()
            .unwrap_or_else(|e| {
                panic!("tmux is needed to drive the console (apt-get install tmux): {e}")
            });
        assert!(status.success(), "tmux new-session failed: {status}");
        Tmux {
            name: name.to_owned(),
        }
    }

    pub(crate) fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys by tmux name (`Enter`, `Tab`, `Right`, ...).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys {keys:?}");
    }

    /// Literal text, typed.
    pub(crate) fn text(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys -l {text:?}");
    }

    pub(crate) fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.name])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub(crate) async fn wait_for(&self, what: &str, text: &str) -> String {
        self.wait_longer_for(Duration::from_secs(20), what, text)
            .await
    }

    /// [`Tmux::wait_for`] with a time limit of its own.
    pub(crate) async fn wait_longer_for(&self, limit: Duration, what: &str, text: &str) -> String {
        eventually(limit, what, || async {
            let s = self.screen();
            s.contains(text).then_some(s)
        })
        .await
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The version compiled into the second agent build the release tests install.
pub(crate) const NEXT_VERSION: &str = "0.99.0";

/// A second, genuinely different build of the agent: the same sources with
/// [`NEXT_VERSION`] compiled in (`LOCKERFLEET_AGENT_VERSION`), in the `e2e-next` profile's
/// own folder so it never replaces the agent the other tests run. Built once per test run
/// (`.ci/run` builds it before the tests so its compile does not overlap them; here cargo
/// then finds it fresh).
pub(crate) fn next_agent() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/debug/deps/it-… → target
            let target = exe
                .ancestors()
                .nth(3)
                .expect("the target folder")
                .to_owned();
            let root = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("workspace root")
                .to_owned();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(&root)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "device-agent",
                    "--profile",
                    "e2e-next",
                ])
                .arg("--target-dir")
                .arg(&target)
                .env("LOCKERFLEET_AGENT_VERSION", NEXT_VERSION)
                .status()
                .expect("run cargo to build the next agent");
            assert!(status.success(), "building the next agent failed: {status}");
            let path = target.join("e2e-next").join("device-agent");
            assert!(path.exists(), "{} was not built", path.display());
            path
        })
        .clone()
}

/// An agent run by `device-agent supervise` in its own process group, with fake hardware
/// and a control socket (a new one each time the supervisor starts a version).
pub(crate) struct Supervised {
    child: Child,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl World {
    /// Starts `device-agent supervise` with the agent flags of [`World::agent`] plus `extra`
    /// and the environment `env`.
    pub(crate) fn supervised(
        &self,
        id: &str,
        mqtt: SocketAddr,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Supervised {
        use std::os::unix::process::CommandExt;
        let plain = self.agent_command(id, mqtt, extra);
        let mut cmd = Command::new(plain.get_program());
        cmd.arg("supervise")
            .args(plain.get_args())
            .args(["--fake-control", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env("LOCKERFLEET_LOG", "info,rumqttc=warn,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path(&format!("{id}.log")))
                    .expect("agent log"),
            )
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn device-agent supervise");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = keep.lock() {
                    l.push(line);
                }
            }
        });
        Supervised { child, lines }
    }
}

impl Supervised {
    /// The control socket of the agent version running now (the last one announced).
    pub(crate) async fn control(&self) -> SocketAddr {
        eventually(
            Duration::from_secs(30),
            "an agent control socket",
            || async {
                self.lines.lock().ok().and_then(|l| {
                    l.iter()
                        .rev()
                        .find_map(|l| l.strip_prefix("LOCKERFLEET_AGENT_CONTROL addr="))
                        .and_then(|a| a.parse().ok())
                })
            },
        )
        .await
    }

    /// How many agents the supervisor started so far (each announces itself once).
    pub(crate) fn starts(&self) -> usize {
        self.lines
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|l| l.starts_with("LOCKERFLEET_AGENT_READY"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Sends one control line to the running agent version; its JSON answer.
    pub(crate) async fn send(&self, line: &str) -> Value {
        control_send(self.control().await, line).await
    }

    /// A power loss: the supervisor and the agent it runs die at once (`kill -9` of the group).
    pub(crate) fn power_loss(&mut self) {
        // `-s KILL --` before the group: this machine's kill(1) reads `-9 -1234` as `kill -1`,
        // every process the user may signal.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        // Seen once: the group kill returned and the supervisor lived on, hanging the test in
        // `wait`. The supervisor itself then, directly; its agent follows it (an agent exits
        // when its supervisor's pipe closes).
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Waits for the supervisor to exit by itself (a crash hook aborted it).
    pub(crate) fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.power_loss();
    }
}
