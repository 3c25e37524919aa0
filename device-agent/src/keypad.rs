//! The keypad port: what people type at the cabinet, and what the cabinet shows back.
//!
//! An adapter reads a keypad or card reader and drives a display; [`SoftKeypad`] takes
//! entries from software — the cabinet's screen application over the keypad socket
//! (`keypad_socket.rs`), tests, the simulator, the fake control socket — and hands each
//! outcome back to whoever typed.

use protocol::{AckStatus, BoxNo, RejectReason};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// One entry at the keypad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeypadEntry {
    /// A citizen's one-time code.
    Code(String),
    /// A member of staff: their PIN or card, then the box to open.
    Staff { credential: String, box_no: u16 },
    /// A key was pressed: someone is typing an entry (the cabinet is busy, an install waits).
    Typing,
}

/// What the cabinet answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EntryOutcome {
    Opened {
        #[serde(rename = "box")]
        box_no: BoxNo,
        status: AckStatus,
    },
    Rejected {
        reason: RejectReason,
    },
    /// Too many wrong entries: try again after `until` (epoch ms).
    LockedOut {
        until: i64,
    },
    /// A keypress was noted; nothing to show.
    Noted,
}

/// The keypad port.
pub trait Keypad: Send + 'static {
    /// The next entry; `None` when the keypad is gone.
    fn next(&mut self) -> impl std::future::Future<Output = Option<KeypadEntry>> + Send;
    /// Shows the outcome of the last entry.
    fn show(&mut self, outcome: &EntryOutcome) -> impl std::future::Future<Output = ()> + Send;
}

type Pending = (KeypadEntry, oneshot::Sender<EntryOutcome>);

/// A keypad driven from software (see the module's text).
pub struct SoftKeypad {
    rx: mpsc::Receiver<Pending>,
    waiting: Option<oneshot::Sender<EntryOutcome>>,
}

/// Types on a [`SoftKeypad`].
#[derive(Clone)]
pub struct SoftKeypadHandle {
    tx: mpsc::Sender<Pending>,
}

impl SoftKeypad {
    pub fn new() -> (SoftKeypad, SoftKeypadHandle) {
        let (tx, rx) = mpsc::channel(16);
        (SoftKeypad { rx, waiting: None }, SoftKeypadHandle { tx })
    }
}

impl Keypad for SoftKeypad {
    async fn next(&mut self) -> Option<KeypadEntry> {
        let (entry, reply) = self.rx.recv().await?;
        self.waiting = Some(reply);
        Some(entry)
    }

    async fn show(&mut self, outcome: &EntryOutcome) {
        if let Some(w) = self.waiting.take() {
            let _ = w.send(outcome.clone());
        }
    }
}

impl SoftKeypadHandle {
    /// Types an entry and waits for what the cabinet shows; `None` if the agent stopped.
    pub async fn enter(&self, entry: KeypadEntry) -> Option<EntryOutcome> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((entry, tx)).await.ok()?;
        rx.await.ok()
    }

    pub async fn code(&self, code: &str) -> Option<EntryOutcome> {
        self.enter(KeypadEntry::Code(code.to_owned())).await
    }

    pub async fn staff(&self, credential: &str, box_no: u16) -> Option<EntryOutcome> {
        self.enter(KeypadEntry::Staff {
            credential: credential.to_owned(),
            box_no,
        })
        .await
    }
}

/// One line of a keypad protocol (`code DIGITS`, `staff CREDENTIAL BOX`, `typing`) typed on `keypad`:
/// `None` when the line is neither; else the outcome as JSON, or why not.
pub(crate) async fn typed_line(
    words: &[&str],
    keypad: &SoftKeypadHandle,
) -> Option<Result<serde_json::Value, String>> {
    let outcome = match words {
        ["code", code] => keypad.code(code).await,
        ["typing"] => keypad.enter(KeypadEntry::Typing).await,
        ["staff", credential, b] => match b.parse::<u16>() {
            Ok(b) if b > 0 => keypad.staff(credential, b).await,
            _ => {
                return Some(Err(format!(
                    "expected a box number (1 or more) after the credential, not {b:?}"
                )));
            }
        },
        _ => return None,
    };
    Some(
        outcome
            .map(|o| serde_json::json!(o))
            .ok_or_else(|| "the agent is stopping".to_owned()),
    )
}
