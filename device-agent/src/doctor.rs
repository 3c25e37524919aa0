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

use l10n::{Lang, t};

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
    /// A stable key (`config`, `certificate`, `clock`, `server`, `lock board`, `disk`).
    pub name: &'static str,
    pub ok: bool,
    /// Why, in the language the checks ran in.
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
pub async fn run<D: LockDriver>(cfg: &AgentConfig, driver: &D, lang: Lang) -> Vec<Check> {
    run_with(cfg, driver, None, lang).await
}

/// The checks from inside the running agent (remote diagnostics): the clock is judged on
/// the offset the agent holds (`offset_ms`) instead of the outbox it has open.
pub(crate) async fn run_live<D: LockDriver>(
    cfg: &AgentConfig,
    driver: &D,
    offset_ms: i64,
    lang: Lang,
) -> Vec<Check> {
    run_with(cfg, driver, Some(offset_ms), lang).await
}

async fn run_with<D: LockDriver>(
    cfg: &AgentConfig,
    driver: &D,
    offset_ms: Option<i64>,
    lang: Lang,
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
                t!(
                    lang,
                    "doctor-config-ok",
                    id = id.as_str(),
                    server = cfg.server.as_str()
                ),
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
            t!(
                lang,
                "doctor-cert-expired",
                file = i.source.display().to_string(),
                days = (now - i.not_after_ms) / 86_400_000
            ),
        ),
        Ok(i) => {
            let days = (i.not_after_ms - now) / 86_400_000;
            let due = days < cfg.renew_before_days as i64;
            let file = i.source.display().to_string();
            pass(
                "certificate",
                if due {
                    t!(lang, "doctor-cert-valid-renewing", file = file, days = days)
                } else {
                    t!(lang, "doctor-cert-valid", file = file, days = days)
                },
            )
        }
        Err(e) => fail("certificate", e.to_string()),
    });
    checks.push(match offset_ms {
        Some(offset) => judge_offset(cfg, offset, lang),
        None => clock(cfg, lang).await,
    });
    checks.push(match &identity {
        Ok(i) => server(cfg, i.tls.clone(), lang).await,
        Err(_) => fail("server", t!(lang, "doctor-server-untried")),
    });
    checks.push(board(driver, lang).await);
    checks.push(disk(&cfg.data_dir, lang));
    checks
}

/// The local clock against what the agent last learned from the server's receipts.
async fn clock(cfg: &AgentConfig, lang: Lang) -> Check {
    let now = crate::clock::Clock::new(cfg.fake.clock_skew_ms).local_ms();
    // 2024-01-01: a board that lost its real-time clock starts in 1970 or 2000.
    if now < 1_704_067_200_000 {
        return fail("clock", t!(lang, "doctor-clock-unset", now = now));
    }
    if !cfg.data_dir.join("outbox.db").exists() {
        return pass("clock", t!(lang, "doctor-clock-unlearned"));
    }
    let held = || pass("clock", t!(lang, "doctor-clock-held"));
    match crate::outbox::Outbox::open(&cfg.data_dir, cfg.durability).await {
        Ok(outbox) => match outbox.clock_offset().await {
            Ok(offset) if offset.abs() > MAX_OFFSET_MS => fail(
                "clock",
                t!(
                    lang,
                    "doctor-clock-off-last",
                    secs = offset.abs() / 1000,
                    direction = direction(offset)
                ),
            ),
            Ok(offset) => pass(
                "clock",
                t!(lang, "doctor-clock-near-last", ms = offset.abs()),
            ),
            Err(e) if e.is_busy() => held(),
            Err(e) => fail(
                "clock",
                t!(lang, "doctor-clock-outbox", error = e.to_string()),
            ),
        },
        Err(e) if e.is_busy() => held(),
        Err(e) => fail(
            "clock",
            t!(lang, "doctor-clock-outbox", error = e.to_string()),
        ),
    }
}

/// The running agent's clock against the server's, from the offset it learned.
fn judge_offset(cfg: &AgentConfig, offset: i64, lang: Lang) -> Check {
    let now = crate::clock::Clock::new(cfg.fake.clock_skew_ms).local_ms();
    if now < 1_704_067_200_000 {
        return fail("clock", t!(lang, "doctor-clock-unset", now = now));
    }
    if offset.abs() > MAX_OFFSET_MS {
        fail(
            "clock",
            t!(
                lang,
                "doctor-clock-off",
                secs = offset.abs() / 1000,
                direction = direction(offset)
            ),
        )
    } else {
        pass("clock", t!(lang, "doctor-clock-near", ms = offset.abs()))
    }
}

/// A positive offset: the local clock is behind the server's.
fn direction(offset: i64) -> &'static str {
    if offset > 0 { "behind" } else { "ahead" }
}

/// TCP, then TLS with this cabinet's certificate, then a moment for the server's verdict on
/// it (with TLS 1.3 a refused certificate is told after the client's side of the handshake).
async fn server(cfg: &AgentConfig, tls: Arc<rustls::ClientConfig>, lang: Lang) -> Check {
    let addrs = match cfg.server_addrs() {
        Ok(a) => a,
        Err(e) => return fail("server", e.to_string()),
    };
    // Every node of a cluster is tried: the cabinet works while one accepts it, and a
    // technician learns which are down.
    let mut checks = Vec::new();
    for (host, port) in addrs {
        checks.push(server_node(host, port, tls.clone(), lang).await);
    }
    let ok = checks.iter().any(|c| c.ok);
    let detail = checks
        .into_iter()
        .map(|c| c.detail)
        .collect::<Vec<_>>()
        .join("; ");
    if ok {
        pass("server", detail)
    } else {
        fail("server", detail)
    }
}

/// One broker address: TCP, TLS with this cabinet's certificate, the server's verdict.
async fn server_node(host: String, port: u16, tls: Arc<rustls::ClientConfig>, lang: Lang) -> Check {
    let target = format!("{host}:{port}");
    let addr = match (host.as_str(), port)
        .to_socket_addrs()
        .map(|mut a| a.next())
    {
        Ok(Some(a)) => a,
        _ => {
            return fail(
                "server",
                t!(lang, "doctor-server-unresolved", target = &target),
            );
        }
    };
    let tcp = match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let error = e.to_string();
            return fail(
                "server",
                t!(
                    lang,
                    "doctor-server-unreachable",
                    target = &target,
                    error = error
                ),
            );
        }
        Err(_) => return fail("server", t!(lang, "doctor-server-silent", target = &target)),
    };
    let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
        Ok(n) => n,
        Err(e) => {
            let error = e.to_string();
            return fail(
                "server",
                t!(lang, "doctor-server-bad-name", host = &host, error = error),
            );
        }
    };
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut stream = match tokio::time::timeout(TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let error = e.to_string();
            return fail(
                "server",
                t!(
                    lang,
                    "doctor-server-tls-failed",
                    target = &target,
                    error = error
                ),
            );
        }
        Err(_) => {
            return fail(
                "server",
                t!(lang, "doctor-server-tls-slow", target = &target),
            );
        }
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(1500), stream.read(&mut byte)).await {
        // Silence: the server waits for the MQTT CONNECT this check does not send.
        Err(_) => pass("server", t!(lang, "doctor-server-ok", target = &target)),
        Ok(Err(e)) => {
            let error = e.to_string();
            fail(
                "server",
                t!(
                    lang,
                    "doctor-server-refused",
                    target = &target,
                    error = error
                ),
            )
        }
        Ok(Ok(_)) => fail("server", t!(lang, "doctor-server-closed", target = &target)),
    }
}

/// Every configured box read once: door sensor, and occupancy sensor where there is one.
async fn board<D: LockDriver>(driver: &D, lang: Lang) -> Check {
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
            t!(lang, "doctor-board-ok", count = driver.boxes()),
        )
    } else {
        let text: Vec<String> = silent
            .iter()
            .map(|(why, boxes)| format!("{}: {why}", box_ranges(boxes, lang)))
            .collect();
        fail("lock board", text.join("; "))
    }
}

/// `box 3`, `boxes 1-12`, `boxes 1-4, 9`: ascending box numbers as ranges.
fn box_ranges(boxes: &[u16], lang: Lang) -> String {
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
    t!(
        lang,
        "doctor-boxes",
        count = boxes.len(),
        list = parts.join(", ")
    )
}

/// Free space where the outbox lives, and that it can be written there.
fn disk(data_dir: &Path, lang: Lang) -> Check {
    let dir = data_dir.display().to_string();
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        let error = e.to_string();
        return fail(
            "disk",
            t!(lang, "doctor-disk-create", dir = &dir, error = error),
        );
    }
    let probe = data_dir.join(".doctor-probe");
    if let Err(e) = std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)) {
        let error = e.to_string();
        return fail(
            "disk",
            t!(lang, "doctor-disk-write", dir = &dir, error = error),
        );
    }
    match rustix::fs::statvfs(data_dir) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let mib = free / (1024 * 1024);
            if free < MIN_FREE_BYTES {
                fail("disk", t!(lang, "doctor-disk-low", mib = mib, dir = &dir))
            } else {
                pass("disk", t!(lang, "doctor-disk-free", mib = mib, dir = &dir))
            }
        }
        Err(e) => {
            let error = e.to_string();
            fail(
                "disk",
                t!(lang, "doctor-disk-unknown", dir = &dir, error = error),
            )
        }
    }
}

/// The list as a technician reads it: verdict, name, why, in aligned columns (a Chinese
/// character takes two).
pub fn render(checks: &[Check], lang: Lang) -> String {
    let (pass, fail) = (t!(lang, "doctor-pass"), t!(lang, "doctor-fail"));
    let mut out = String::new();
    for c in checks {
        let verdict = if c.ok { &pass } else { &fail };
        out.push_str(&format!(
            "{}  {} {}\n",
            pad(verdict, 4),
            pad(&l10n::doctor_check(lang, c.name), 12),
            c.detail
        ));
    }
    out
}

/// `text` padded with spaces to `columns` terminal columns.
fn pad(text: &str, columns: usize) -> String {
    let width = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(columns.saturating_sub(width)))
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
        let checks = run(&cfg, &locks, Lang::En).await;
        let by = |n: &str| checks.iter().find(|c| c.name == n).cloned().expect(n);
        assert!(by("config").ok);
        assert!(!by("certificate").ok, "{checks:?}");
        assert!(!by("server").ok);
        assert!(
            !by("lock board").ok && by("lock board").detail.starts_with("boxes 1-2: "),
            "{checks:?}"
        );
        assert!(by("disk").ok, "{checks:?}");
        assert_eq!(
            box_ranges(&[1, 2, 3, 5, 7, 8], Lang::En),
            "boxes 1-3, 5, 7-8"
        );
        assert_eq!(box_ranges(&[4], Lang::En), "box 4");
        let text = render(&checks, Lang::En);
        assert!(text.contains("FAIL  certificate"), "{text}");
        // The same checks for a technician reading Chinese: names and verdicts aligned.
        let zh = run(&cfg, &locks, Lang::ZhCn).await;
        let text = render(&zh, Lang::ZhCn);
        assert!(text.contains("失败  证书"), "{text}");
        assert!(text.contains("箱格 1-2"), "{text}");
        let columns: Vec<usize> = text
            .lines()
            .map(|l| {
                let detail = l.split_whitespace().nth(2).expect("detail");
                unicode_width::UnicodeWidthStr::width(&l[..l.find(detail).expect("in line")])
            })
            .collect();
        assert!(columns.iter().all(|c| *c == columns[0]), "{text}");
    }
}
