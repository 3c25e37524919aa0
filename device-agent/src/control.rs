//! A loopback control socket for fake hardware: tests, the demo and people at a terminal type
//! at the fake keypad and move fake doors as if they stood at the cabinet.
//!
//! One command per line, one JSON answer per line:
//! `code 48151623` · `staff CARD-0042 5` · `open 5` · `close 5` · `occupied 5 true` · `pulses`
//! · `bus down|up` · `power battery|mains` · `tamper open|closed` · `disk full|ok` (the outbox
//! refuses to grow, as on a full disk) and, on station devices,
//! `paper ok|low|out` · `toner ok|low|out` · `paper_jam on|off` · `service on|off`.

use std::net::SocketAddr;
use std::sync::Arc;

use protocol::{BoxNo, Level};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::driver::FakeLocks;
use crate::keypad::SoftKeypadHandle;
use crate::outbox::Outbox;

/// Binds `addr` (loopback only: this socket opens boxes) and serves it until cancelled.
pub async fn serve(
    addr: SocketAddr,
    locks: Arc<FakeLocks>,
    keypad: SoftKeypadHandle,
    outbox: Arc<Outbox>,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the fake control socket opens boxes: bind it to a loopback address, not {addr}"
            ),
        ));
    }
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = cancel.cancelled() => break,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        continue;
                    }
                },
            };
            let (locks, keypad, outbox, cancel) = (
                locks.clone(),
                keypad.clone(),
                outbox.clone(),
                cancel.clone(),
            );
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                loop {
                    let line = tokio::select! {
                        _ = cancel.cancelled() => break,
                        l = lines.next_line() => match l {
                            Ok(Some(l)) => l,
                            _ => break,
                        },
                    };
                    let answer = command(&line, &locks, &keypad, &outbox).await;
                    if write
                        .write_all(format!("{answer}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    Ok((bound, task))
}

async fn command(
    line: &str,
    locks: &FakeLocks,
    keypad: &SoftKeypadHandle,
    outbox: &Outbox,
) -> serde_json::Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    let box_arg = |i: usize| -> Result<BoxNo, String> {
        words
            .get(i)
            .and_then(|w| w.parse::<u16>().ok())
            .and_then(|n| BoxNo::new(n).ok())
            .ok_or_else(|| format!("expected a box number (1 or more) as word {}", i + 1))
    };
    if let Some(typed) = crate::keypad::typed_line(&words, keypad).await {
        return typed.unwrap_or_else(|e| json!({ "error": e }));
    }
    let result: Result<serde_json::Value, String> = match words.as_slice() {
        ["open", _] => box_arg(1).and_then(|b| {
            locks.open_by_hand(b).map_err(|e| e.to_string())?;
            Ok(json!({"ok": true}))
        }),
        ["close", _] => box_arg(1).and_then(|b| {
            locks.close(b).map_err(|e| e.to_string())?;
            Ok(json!({"ok": true}))
        }),
        ["occupied", _, v @ ("true" | "false")] => box_arg(1).and_then(|b| {
            locks
                .set_occupied(b, *v == "true")
                .map_err(|e| e.to_string())?;
            Ok(json!({"ok": true}))
        }),
        ["pulses"] => Ok(json!({"pulses": locks.pulses()})),
        ["disk", v @ ("full" | "ok")] => outbox
            .simulate_disk_full(*v == "full")
            .await
            .map(|()| json!({"ok": true}))
            .map_err(|e| e.to_string()),
        ["bus", v @ ("down" | "up")] => {
            locks.set_bus_down(*v == "down");
            Ok(json!({"ok": true}))
        }
        ["power", v @ ("battery" | "mains")] => {
            locks.set_on_battery(*v == "battery");
            Ok(json!({"ok": true}))
        }
        ["tamper", v @ ("open" | "closed")] => {
            locks.set_tamper(*v == "open");
            Ok(json!({"ok": true}))
        }
        [what @ ("paper" | "toner"), v @ ("ok" | "low" | "out")] => {
            let level = match *v {
                "low" => Level::Low,
                "out" => Level::Out,
                _ => Level::Ok,
            };
            locks
                .set_station(|s| match *what {
                    "paper" => s.paper = level,
                    _ => s.toner = level,
                })
                .map(|s| json!(s))
                .map_err(|e| e.to_string())
        }
        [what @ ("paper_jam" | "service"), v @ ("on" | "off")] => locks
            .set_station(|s| match *what {
                "paper_jam" => s.paper_jam = *v == "on",
                _ => s.needs_service = *v == "on",
            })
            .map(|s| json!(s))
            .map_err(|e| e.to_string()),
        _ => Err(format!(
            "unknown command {line:?}; use: code DIGITS | staff CREDENTIAL BOX | typing | open BOX | close BOX | occupied BOX true|false | pulses | bus down|up | power battery|mains | tamper open|closed | paper ok|low|out | toner ok|low|out | paper_jam on|off | service on|off"
        )),
    };
    result.unwrap_or_else(|e| json!({ "error": e }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{FakeConfig, LockDriver};
    use crate::keypad::{EntryOutcome, Keypad, SoftKeypad};

    #[tokio::test]
    async fn only_loopback_and_clear_answers() {
        let locks = Arc::new(FakeLocks::new(FakeConfig {
            close_after: std::time::Duration::from_secs(60),
            ..FakeConfig::locker(2)
        }));
        let (mut keypad, keys) = SoftKeypad::new();
        let cancel = CancellationToken::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Arc::new(
            Outbox::open(dir.path(), crate::Durability::Normal)
                .await
                .expect("outbox"),
        );
        let open = serve(
            "0.0.0.0:0".parse().expect("addr"),
            locks.clone(),
            keys.clone(),
            outbox.clone(),
            cancel.clone(),
        )
        .await;
        assert!(open.is_err(), "a control socket on every interface");
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            locks.clone(),
            keys,
            outbox.clone(),
            cancel.clone(),
        )
        .await
        .expect("serve");
        // A keypad that refuses everything, standing in for the agent.
        tokio::spawn(async move {
            while keypad.next().await.is_some() {
                keypad
                    .show(&EntryOutcome::Rejected {
                        reason: protocol::RejectReason::Unknown,
                    })
                    .await;
            }
        });
        let ask = |line: &'static str| async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (r, mut w) = stream.into_split();
            w.write_all(format!("{line}\n").as_bytes())
                .await
                .expect("write");
            let mut answer = String::new();
            BufReader::new(r)
                .read_line(&mut answer)
                .await
                .expect("read");
            serde_json::from_str::<serde_json::Value>(&answer).expect("json")
        };
        assert_eq!(
            ask("code 12345678").await,
            json!({"outcome": "rejected", "reason": "unknown"})
        );
        assert_eq!(ask("open 2").await, json!({"ok": true}));
        // A full disk: once the outbox needs a new page, writes fail; `disk ok` lifts it.
        assert_eq!(ask("disk full").await, json!({"ok": true}));
        let lost = protocol::EventBody::Lost {
            detail: "x".repeat(200),
        };
        let mut failed = false;
        for _ in 0..200 {
            if outbox.append(1, vec![lost.clone()]).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "writes fail once the disk is full");
        assert_eq!(ask("disk ok").await, json!({"ok": true}));
        outbox
            .append(1, vec![lost])
            .await
            .expect("writes work again");
        assert!(
            locks
                .door_open(BoxNo::new(2).expect("box"))
                .await
                .expect("sensor")
        );
        assert!(
            ask("open 0").await["error"]
                .as_str()
                .is_some_and(|e| e.contains("box number"))
        );
        assert_eq!(ask("bus down").await, json!({"ok": true}));
        assert!(locks.door_open(BoxNo::new(2).expect("box")).await.is_err());
        assert!(
            ask("paper low").await["error"]
                .as_str()
                .is_some_and(|e| e.contains("not a station")),
            "a locker has no paper"
        );
        assert!(
            ask("dance").await["error"]
                .as_str()
                .is_some_and(|e| e.contains("unknown command"))
        );
        cancel.cancel();
    }
}
