//! `device-agent doctor`: what a technician at the cabinet checks before trusting it — the
//! certificate and its days to expiry, the clock, the server reachable with this cabinet's
//! certificate accepted, every configured box answering on the lock board, and room for the
//! outbox. Each check says PASS or FAIL and why; any FAIL makes the command exit non-zero.
//!
//! It never connects as the cabinet over MQTT (that would take over the running agent's
//! session): the server check stops after the TLS handshake and the server's verdict on the
//! certificate.

use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use protocol::{BoxNo, DeviceId};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::config::AgentConfig;
use crate::driver::LockDriver;

/// Least free space for the outbox: days of events at a busy cabinet, and SQLite's headroom.
const MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;
/// A clock further off than this is a FAIL (the agent judges on the server's time, but a
/// technician should fix it).
const MAX_OFFSET_MS: i64 = 60_000;
/// How long the server may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn pass(name: &'static str, detail: String) -> Check {
    Check {
        name,
        ok: true,
        detail,
    }
}

fn fail(name: &'static str, detail: String) -> Check {
    Check {
        name,
        ok: false,
        detail,
    }
}

/// Runs every check; the order is the order a technician fixes things in.
pub async fn run<D: LockDriver>(cfg: &AgentConfig, driver: &D) -> Vec<Check> {
    run_with(cfg, driver, None).await
}

/// The checks from inside the running agent (remote diagnostics): the clock is judged on
/// the offset the agent holds (`offset_ms`) instead of the outbox it has open.
pub(crate) async fn run_live<D: LockDriver>(
    cfg: &AgentConfig,
    driver: &D,
    offset_ms: i64,
) -> Vec<Check> {
    run_with(cfg, driver, Some(offset_ms)).await
}

async fn run_with<D: LockDriver>(
    cfg: &AgentConfig,
    driver: &D,
    offset_ms: Option<i64>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let id = match cfg.validate().and_then(|()| {
        DeviceId::parse(&cfg.id).map_err(|e| crate::config::ConfigError::Invalid {
            key: "id",
            why: e.to_string(),
        })
    }) {
        Ok(id) => {
            checks.push(pass(
                "config",
                format!("device {id}, server {}", cfg.server),
            ));
            id
        }
        Err(e) => {
            checks.push(fail("config", e.to_string()));
            return checks;
        }
    };
    let now = crate::clock::Clock::new(cfg.fake.clock_skew_ms).local_ms();
    let identity = crate::renew::load_identity(&cfg.certs, &cfg.data_dir, &id, now);
    checks.push(match &identity {
        Ok(i) if i.not_after_ms <= now => fail(
            "certificate",
            format!(
                "{} expired {} days ago; issue a new one (`fleet-certs issue --force`)",
                i.source.display(),
                (now - i.not_after_ms) / 86_400_000
            ),
        ),
        Ok(i) => {
            let days = (i.not_after_ms - now) / 86_400_000;
            let due = days < cfg.renew_before_days as i64;
            pass(
                "certificate",
                format!(
                    "{} valid for {days} more days{}",
                    i.source.display(),
                    if due {
                        " (renewal due: the agent asks the server for a new one)"
                    } else {
                        ""
                    }
                ),
            )
        }
        Err(e) => fail("certificate", e.to_string()),
    });
    checks.push(match offset_ms {
        Some(offset) => judge_offset(cfg, offset),
        None => clock(cfg).await,
    });
    checks.push(match &identity {
        Ok(i) => server(cfg, i.tls.clone()).await,
        Err(_) => fail("server", "not tried without a usable certificate".into()),
    });
    checks.push(board(driver).await);
    checks.push(disk(&cfg.data_dir));
    checks
}

/// The local clock against what the agent last learned from the server's receipts.
async fn clock(cfg: &AgentConfig) -> Check {
    let now = crate::clock::Clock::new(cfg.fake.clock_skew_ms).local_ms();
    // 2024-01-01: a board that lost its real-time clock starts in 1970 or 2000.
    if now < 1_704_067_200_000 {
        return fail(
            "clock",
            format!("the clock says {now} ms since 1970, before 2024: set it (NTP)"),
        );
    }
    if !cfg.data_dir.join("outbox.db").exists() {
        return pass(
            "clock",
            "no offset learned yet (the agent has not run here); checked again at the first receipt"
                .into(),
        );
    }
    let held = || {
        pass(
            "clock",
            "set (after 2024); the running agent holds the outbox, so the offset it last learned is on the server's device page"
                .into(),
        )
    };
    match crate::outbox::Outbox::open(&cfg.data_dir, cfg.durability).await {
        Ok(outbox) => match outbox.clock_offset().await {
            Ok(offset) if offset.abs() > MAX_OFFSET_MS => fail(
                "clock",
                format!(
                    "{} s {} the server's when last connected; the agent judges on the server's time, but fix this clock (NTP)",
                    offset.abs() / 1000,
                    if offset > 0 { "behind" } else { "ahead of" }
                ),
            ),
            Ok(offset) => pass(
                "clock",
                format!(
                    "within {} ms of the server's when last connected",
                    offset.abs()
                ),
            ),
            Err(e) if e.is_busy() => held(),
            Err(e) => fail("clock", format!("the outbox cannot say: {e}")),
        },
        Err(e) if e.is_busy() => held(),
        Err(e) => fail("clock", format!("the outbox cannot say: {e}")),
    }
}

/// The running agent's clock against the server's, from the offset it learned.
fn judge_offset(cfg: &AgentConfig, offset: i64) -> Check {
    let now = crate::clock::Clock::new(cfg.fake.clock_skew_ms).local_ms();
    if now < 1_704_067_200_000 {
        return fail(
            "clock",
            format!("the clock says {now} ms since 1970, before 2024: set it (NTP)"),
        );
    }
    if offset.abs() > MAX_OFFSET_MS {
        fail(
            "clock",
            format!(
                "{} s {} the server's; the agent judges on the server's time, but fix this clock (NTP)",
                offset.abs() / 1000,
                if offset > 0 { "behind" } else { "ahead of" }
            ),
        )
    } else {
        pass(
            "clock",
            format!("within {} ms of the server's", offset.abs()),
        )
    }
}

/// TCP, then TLS with this cabinet's certificate, then a moment for the server's verdict on
/// it (with TLS 1.3 a refused certificate is told after the client's side of the handshake).
async fn server(cfg: &AgentConfig, tls: Arc<rustls::ClientConfig>) -> Check {
    let (host, port) = match cfg.server_addr() {
        Ok(a) => a,
        Err(e) => return fail("server", e.to_string()),
    };
    let target = format!("{host}:{port}");
    let addr = match (host.as_str(), port)
        .to_socket_addrs()
        .map(|mut a| a.next())
    {
        Ok(Some(a)) => a,
        _ => return fail("server", format!("{target}: the name does not resolve")),
    };
    let tcp = match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail("server", format!("{target}: {e}")),
        Err(_) => return fail("server", format!("{target}: no answer within 5 s")),
    };
    let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
        Ok(n) => n,
        Err(e) => return fail("server", format!("{host}: {e}")),
    };
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut stream = match tokio::time::timeout(TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return fail(
                "server",
                format!(
                    "{target}: TLS failed: {e} (a certificate revoked, expired or from another CA?)"
                ),
            );
        }
        Err(_) => return fail("server", format!("{target}: TLS did not finish within 5 s")),
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut byte)).await {
        // Silence: the server waits for the MQTT CONNECT this check does not send.
        Err(_) => pass(
            "server",
            format!("{target} reachable; it accepted this cabinet's certificate"),
        ),
        Ok(Err(e)) => fail(
            "server",
            format!("{target} refused this cabinet's certificate: {e}"),
        ),
        Ok(Ok(_)) => fail(
            "server",
            format!("{target} closed the connection after TLS"),
        ),
    }
}

/// Every configured box read once: door sensor, and occupancy sensor where there is one.
async fn board<D: LockDriver>(driver: &D) -> Check {
    // A silent board fails all its boxes with one reason: said once, with the boxes.
    let mut silent: Vec<(String, Vec<u16>)> = Vec::new();
    for (b, reading) in BoxNo::all(driver.boxes()).zip(driver.sense().await) {
        if let Err(e) = reading {
            let why = e.to_string();
            match silent.iter_mut().find(|(w, _)| *w == why) {
                Some((_, boxes)) => boxes.push(b.get()),
                None => silent.push((why, vec![b.get()])),
            }
        }
    }
    if silent.is_empty() {
        pass(
            "lock board",
            format!("all {} boxes answered", driver.boxes()),
        )
    } else {
        let text: Vec<String> = silent
            .iter()
            .map(|(why, boxes)| format!("{}: {why}", box_ranges(boxes)))
            .collect();
        fail("lock board", text.join("; "))
    }
}

/// `box 3`, `boxes 1-12`, `boxes 1-4, 9`: ascending box numbers as ranges.
fn box_ranges(boxes: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < boxes.len() {
        let start = boxes[i];
        let mut end = start;
        while i + 1 < boxes.len() && boxes[i + 1] == end + 1 {
            i += 1;
            end = boxes[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    let one = boxes.len() == 1;
    format!("{} {}", if one { "box" } else { "boxes" }, parts.join(", "))
}

/// Free space where the outbox lives, and that it can be written there.
fn disk(data_dir: &Path) -> Check {
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        return fail("disk", format!("cannot create {}: {e}", data_dir.display()));
    }
    let probe = data_dir.join(".doctor-probe");
    if let Err(e) = std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
        return fail(
            "disk",
            format!("cannot write in {}: {e}", data_dir.display()),
        );
    }
    match rustix::fs::statvfs(data_dir) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let text = format!(
                "{} MiB free in {}",
                free / (1024 * 1024),
                data_dir.display()
            );
            if free < MIN_FREE_BYTES {
                fail(
                    "disk",
                    format!("{text}: at least 64 MiB needed for the outbox"),
                )
            } else {
                pass("disk", text)
            }
        }
        Err(e) => fail(
            "disk",
            format!("cannot read free space of {}: {e}", data_dir.display()),
        ),
    }
}

/// The list as a technician reads it.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{}  {:<12} {}\n",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_board_and_a_missing_certificate_fail_with_reasons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = AgentConfig {
            id: "cab-1".into(),
            certs: dir.path().join("certs"),
            data_dir: dir.path().join("data"),
            server: "localhost:1".into(),
            boxes: 2,
            ..AgentConfig::default()
        };
        let locks = crate::FakeLocks::new(crate::FakeConfig::locker(2));
        locks.set_bus_down(true);
        let checks = run(&cfg, &locks).await;
        let by = |n: &str| checks.iter().find(|c| c.name == n).cloned().expect(n);
        assert!(by("config").ok);
        assert!(!by("certificate").ok, "{checks:?}");
        assert!(!by("server").ok);
        assert!(
            !by("lock board").ok && by("lock board").detail.starts_with("boxes 1-2: "),
            "{checks:?}"
        );
        assert!(by("disk").ok, "{checks:?}");
        assert_eq!(box_ranges(&[1, 2, 3, 5, 7, 8]), "boxes 1-3, 5, 7-8");
        assert_eq!(box_ranges(&[4]), "box 4");
        let text = render(&checks);
        assert!(text.contains("FAIL  certificate"), "{text}");
    }
}
