//! The keypad socket: how a real cabinet's screen application (touch screen, keypad or card
//! reader program on the same PC) hands what people type to the agent, on any lock hardware.
//!
//! A Unix socket (mode 0660: the agent's user and group only), one entry per line, one JSON
//! answer per line: `code 48151623` → `{"outcome":"opened","box":5,"status":"opened"}`,
//! `{"outcome":"rejected","reason":"unknown"}` or `{"outcome":"locked_out","until":…}`;
//! `staff CARD-0042 5` the same for staff. Entries are served one at a time by the agent's
//! keypad loop, like keys on one keypad. Nothing else is accepted here: doors, the bus and the
//! power belong to the hardware, not to whoever can write to this socket.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::keypad::{SoftKeypadHandle, typed_line};

/// Longest line read from a client: a code or a staff card is a few dozen bytes.
const MAX_LINE: usize = 256;

/// Binds `path` (replacing a stale socket left by a killed agent, never another kind of file)
/// and serves it until cancelled.
pub async fn serve(
    path: &Path,
    keypad: SoftKeypadHandle,
    cancel: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; choose another keypad_socket",
                    path.display()
                ),
            ));
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let path: PathBuf = path.to_owned();
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                a = listener.accept() => match a {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "keypad socket accept failed");
                        continue;
                    }
                },
            };
            let (keypad, cancel) = (keypad.clone(), cancel.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    // A screen application keeps its connection for days; each line is
                    // bounded, not the connection.
                    let mut line = String::new();
                    let mut bounded = (&mut reader).take(MAX_LINE as u64 + 1);
                    let read = bounded.read_line(&mut line);
                    let n = tokio::select! {
                        _ = cancel.cancelled() => break,
                        n = read => match n {
                            Ok(n) if n > 0 => n,
                            _ => break,
                        },
                    };
                    let answer = if n > MAX_LINE && !line.ends_with('\n') {
                        json!({"error": format!("line longer than {MAX_LINE} bytes; closing")})
                    } else {
                        answer(line.trim_end(), &keypad).await
                    };
                    let too_long = answer["error"]
                        .as_str()
                        .is_some_and(|e| e.ends_with("closing"));
                    if write
                        .write_all(format!("{answer}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    if too_long {
                        break;
                    }
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn answer(line: &str, keypad: &SoftKeypadHandle) -> serde_json::Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    match typed_line(&words, keypad).await {
        Some(Ok(outcome)) => outcome,
        Some(Err(e)) => json!({ "error": e }),
        None => json!({
            "error": format!("unknown entry {line:?}; use: code DIGITS | staff CREDENTIAL BOX | typing")
        }),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;

    use super::*;
    use crate::keypad::{EntryOutcome, Keypad, KeypadEntry, SoftKeypad};

    #[tokio::test]
    async fn entries_reach_the_keypad_and_outcomes_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keypad.sock");
        // A stale socket of a killed agent is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale"));
        let (mut keypad, keys) = SoftKeypad::new();
        let cancel = CancellationToken::new();
        let task = serve(&path, keys, cancel.clone()).await.expect("serve");
        let mode = std::fs::metadata(&path)
            .expect("socket")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o660);
        // The agent's keypad loop, played here: the first entry opens box 5, others are unknown.
        tokio::spawn(async move {
            while let Some(entry) = keypad.next().await {
                let outcome = match entry {
                    KeypadEntry::Code(c) if c == "48151623" => EntryOutcome::Opened {
                        box_no: protocol::BoxNo::new(5).expect("box"),
                        status: protocol::AckStatus::Opened,
                    },
                    _ => EntryOutcome::Rejected {
                        reason: protocol::RejectReason::Unknown,
                    },
                };
                keypad.show(&outcome).await;
            }
        });
        let stream = UnixStream::connect(&path).await.expect("connect");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut ask = async |line: &str| {
            write
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("write");
            let answer = lines.next_line().await.expect("read").expect("a line");
            serde_json::from_str::<serde_json::Value>(&answer).expect("json")
        };
        assert_eq!(
            ask("code 48151623").await,
            json!({"outcome": "opened", "box": 5, "status": "opened"})
        );
        assert_eq!(
            ask("staff CARD-1 3").await,
            json!({"outcome": "rejected", "reason": "unknown"})
        );
        for (bad, says) in [
            ("open 5", "unknown entry"),
            ("staff CARD-1 0", "expected a box number"),
            ("bus down", "unknown entry"),
        ] {
            let a = ask(bad).await;
            assert!(
                a["error"].as_str().is_some_and(|e| e.contains(says)),
                "{bad}: {a}"
            );
        }
        let a = ask(&format!("code {}", "9".repeat(300))).await;
        assert!(
            a["error"]
                .as_str()
                .is_some_and(|e| e.contains("longer than 256")),
            "{a}"
        );
        cancel.cancel();
        task.await.expect("stops");
        assert!(!path.exists(), "the socket file is removed at stop");
    }

    #[tokio::test]
    async fn a_file_in_the_way_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "id = 'x'").expect("file");
        let (_keypad, keys) = SoftKeypad::new();
        let err = serve(&path, keys, CancellationToken::new())
            .await
            .expect_err("not a socket");
        assert!(err.to_string().contains("is not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), "id = 'x'");
    }
}
