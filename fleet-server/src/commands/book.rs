//! What this replica knows of its commands ahead of storage: an outcome a cabinet reported is
//! visible to the API the moment it arrives, while its write waits for the writer (ADR 0030).

use std::collections::HashMap;
use std::sync::Mutex;

use protocol::{CommandStatus, DeviceId};

use crate::store::CommandRow;

/// Most commands kept at once; past it new commands are answered from storage alone (a
/// fleet with this many commands in flight on one replica has bigger worries than 100 ms).
const MAX_KEPT: usize = 100_000;

/// Commands this replica created, in the state their latest report left them, until storage
/// holds them final. Only ever ahead of storage, never a substitute: every read merges it
/// with the stored row ([`Book::newest`]), so a move another replica stored, or a sweep, is
/// seen as well.
#[derive(Default)]
pub(crate) struct Book {
    rows: Mutex<HashMap<String, CommandRow>>,
    /// Whether a full book was reported.
    full: std::sync::atomic::AtomicBool,
}

/// What noting a report did.
#[derive(Debug, PartialEq)]
pub(crate) enum Noted {
    /// Not kept here (created by another replica, or before a restart): storage decides.
    Unknown,
    /// The command belongs to another cabinet; the report is ignored.
    OtherDevice(DeviceId),
    /// The kept state is already this far (a repeat, or a late message).
    Unchanged,
    /// The command moved from `was`; this is its row now.
    Moved {
        row: Box<CommandRow>,
        was: CommandStatus,
    },
}

impl Book {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<String, CommandRow>> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a command just stored. A full book keeps nothing more (those commands are
    /// answered from storage alone, as before the book) and says so once.
    pub(crate) fn keep(&self, row: CommandRow) {
        let mut rows = self.rows();
        if rows.len() < MAX_KEPT {
            rows.insert(row.command_id.to_string(), row);
        } else if !self.full.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                kept = rows.len(),
                "the command book is full: new commands' outcomes are shown once written"
            );
        }
    }

    /// Notes what `device` reported of a command at `at`, by the rule storage applies
    /// ([`CommandRow::advanced`]).
    pub(crate) fn note(
        &self,
        device: &DeviceId,
        id: &str,
        status: CommandStatus,
        at: i64,
        detail: Option<&str>,
    ) -> Noted {
        let mut rows = self.rows();
        let Some(row) = rows.get_mut(id) else {
            return Noted::Unknown;
        };
        if &row.device_id != device {
            return Noted::OtherDevice(row.device_id.clone());
        }
        match row.advanced(status, at, detail) {
            Some(next) => {
                let was = std::mem::replace(row, next.clone()).status;
                Noted::Moved {
                    row: Box::new(next),
                    was,
                }
            }
            None => Noted::Unchanged,
        }
    }

    /// The kept row, if any: taken before storage is read, so that a write landing between
    /// the two (which makes storage catch up and the book forget) never shows an older row.
    pub(crate) fn get(&self, id: &str) -> Option<CommandRow> {
        self.rows().get(id).cloned()
    }

    /// The further of the stored row and `kept` (the book's row taken before storage was
    /// read); settles the book with what storage holds ([`Book::stored`]).
    pub(crate) fn newest(
        &self,
        kept: Option<CommandRow>,
        stored: Option<CommandRow>,
    ) -> Option<CommandRow> {
        let Some(kept) = kept else {
            return stored;
        };
        match stored {
            // Storage would no longer take the kept state: the kept row is no news.
            Some(s) if s.advanced(kept.status, 0, None).is_none() => {
                self.stored(&s);
                Some(s)
            }
            // Not stored at all (a commit still on its way, or rolled back): what this
            // replica created is what there is.
            _ => Some(kept),
        }
    }

    /// The kept row when it is final, to answer a request woken by the outcome without
    /// reading storage. A hint: should storage refuse that outcome (it had failed or
    /// expired the command meanwhile), the writer settles the book with storage's row and
    /// wakes the request again ([`super::Commands::store_outcome`]).
    pub(crate) fn settled(&self, id: &str) -> Option<CommandRow> {
        self.rows()
            .get(id)
            .filter(|r| r.status.is_terminal())
            .cloned()
    }

    /// Storage holds `row`. Where storage would not take the kept state (it is as far, or
    /// further, or refused it), storage's row replaces the kept one, which is forgotten once
    /// final. Returns the kept status it replaced, if it did.
    pub(crate) fn stored(&self, row: &CommandRow) -> Option<CommandStatus> {
        let mut rows = self.rows();
        let kept = rows.get_mut(row.command_id.as_str())?;
        if row.advanced(kept.status, 0, None).is_some() {
            return None;
        }
        let was = kept.status;
        if row.status.is_terminal() {
            rows.remove(row.command_id.as_str());
        } else {
            *kept = row.clone();
        }
        Some(was)
    }

    /// Forgets commands past the time storage's sweeps make every command final (expired
    /// undelivered, or failed without an outcome `final_after_ms` after delivery): one that
    /// another replica finished and nobody read here would otherwise stay.
    pub(crate) fn prune(&self, now: i64, final_after_ms: i64) {
        self.rows()
            .retain(|_, r| now <= r.expires_at.saturating_add(final_after_ms));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.rows().len()
    }
}

#[cfg(test)]
mod tests {
    use protocol::{BoxNo, CommandId};

    use super::*;

    fn row(id: &str, device: &str, status: CommandStatus) -> CommandRow {
        CommandRow {
            command_id: CommandId::parse(id).expect("id"),
            device_id: DeviceId::parse(device).expect("device"),
            box_no: BoxNo::new(3).expect("box"),
            action: "open".into(),
            status,
            actor: "op".into(),
            reason: "test".into(),
            idempotency_key: None,
            created_at: 1_000,
            expires_at: 31_000,
            sent_at: Some(1_000),
            delivered_at: None,
            finished_at: None,
            detail: None,
            latency_ms: None,
        }
    }

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("device")
    }

    #[test]
    fn an_outcome_is_visible_before_storage_has_it_and_forgotten_after() {
        let book = Book::default();
        let sent = row("c1", "cab-1", CommandStatus::Sent);
        book.keep(sent.clone());
        let noted = book.note(&dev("cab-1"), "c1", CommandStatus::Opened, 1_040, None);
        let Noted::Moved { row: opened, .. } = noted else {
            panic!("not moved: {noted:?}");
        };
        assert_eq!(opened.status, CommandStatus::Opened);
        assert_eq!(opened.finished_at, Some(1_040));
        assert_eq!(opened.latency_ms, Some(40));
        // Storage still says sent: the kept outcome wins, and is kept.
        assert_eq!(
            book.newest(book.get("c1"), Some(sent.clone())),
            Some(*opened.clone())
        );
        let read = book
            .newest(book.get("c1"), Some(sent.clone()))
            .expect("row");
        assert_eq!(read.status, CommandStatus::Opened);
        assert_eq!(book.len(), 1);
        // A repeat (the durable copy of the ack) changes nothing.
        assert_eq!(
            book.note(&dev("cab-1"), "c1", CommandStatus::Opened, 1_090, None),
            Noted::Unchanged
        );
        // Storage caught up: the stored row is the answer and the kept one goes.
        let stored = *opened;
        assert_eq!(
            book.newest(book.get("c1"), Some(stored.clone())),
            Some(stored)
        );
        assert_eq!(book.len(), 0);
    }

    #[test]
    fn a_command_is_kept_while_storage_has_it_unfinished() {
        let book = Book::default();
        let sent = row("c1", "cab-1", CommandStatus::Sent);
        book.keep(sent.clone());
        // The waiting request reads storage before the outcome: as far as the book, not final.
        assert_eq!(
            book.newest(book.get("c1"), Some(sent.clone())),
            Some(sent.clone())
        );
        let delivered = sent
            .advanced(CommandStatus::Delivered, 1_010, None)
            .expect("moves");
        book.stored(&delivered);
        assert_eq!(book.len(), 1, "kept until final in storage");
        assert!(matches!(
            book.note(&dev("cab-1"), "c1", CommandStatus::Opened, 1_020, None),
            Noted::Moved { .. }
        ));
        assert_eq!(
            book.settled("c1").map(|r| r.status),
            Some(CommandStatus::Opened)
        );
        // Past the sweeps' horizon it is forgotten whatever storage said.
        book.prune(31_000 + 120_000, 120_000);
        assert_eq!(book.len(), 1);
        book.prune(31_001 + 120_000, 120_000);
        assert_eq!(book.len(), 0);
    }

    #[test]
    fn an_outcome_storage_refused_gives_way_to_storages_row() {
        // The leader failed the command (no outcome in time) just before a late `opened`.
        let book = Book::default();
        let sent = row("c1", "cab-1", CommandStatus::Sent);
        book.keep(sent.clone());
        assert!(matches!(
            book.note(&dev("cab-1"), "c1", CommandStatus::Opened, 1_100, None),
            Noted::Moved { .. }
        ));
        let failed = sent
            .advanced(CommandStatus::Failed, 1_050, Some("no outcome"))
            .expect("fails");
        assert_eq!(
            book.stored(&failed),
            Some(CommandStatus::Opened),
            "the kept outcome it replaced, for the writer to announce storage's"
        );
        assert_eq!(book.settled("c1"), None);
        assert_eq!(
            book.newest(book.get("c1"), Some(failed.clone())),
            Some(failed)
        );
    }

    #[test]
    fn a_write_between_the_two_reads_never_shows_an_older_row() {
        let book = Book::default();
        let sent = row("c1", "cab-1", CommandStatus::Sent);
        book.keep(sent.clone());
        let Noted::Moved { row: opened, .. } =
            book.note(&dev("cab-1"), "c1", CommandStatus::Opened, 1_100, None)
        else {
            panic!("moves");
        };
        // A reader takes the book's row, then reads storage (still `sent`); the outcome's
        // write lands just after that read, and the book forgets the command.
        let kept = book.get("c1");
        let read = Some(sent);
        book.stored(&opened);
        assert_eq!(book.len(), 0);
        assert_eq!(book.newest(kept, read), Some(*opened));
    }

    #[test]
    fn storage_further_than_the_book_wins_and_clears_it() {
        // Another replica stored the outcome; this one only saw the command created.
        let book = Book::default();
        book.keep(row("c1", "cab-1", CommandStatus::Sent));
        let mut jammed = row("c1", "cab-1", CommandStatus::Jammed);
        jammed.finished_at = Some(1_500);
        let read = book
            .newest(book.get("c1"), Some(jammed.clone()))
            .expect("row");
        assert_eq!(read, jammed);
        assert_eq!(book.len(), 0);
    }

    #[test]
    fn a_door_outcome_replaces_expired_in_the_book_as_in_storage() {
        let book = Book::default();
        book.keep(row("c1", "cab-1", CommandStatus::Sent));
        let mut expired = row("c1", "cab-1", CommandStatus::Expired);
        expired.finished_at = Some(31_000);
        expired.detail = Some("not delivered within its time to live".into());
        book.stored(&expired);
        assert_eq!(book.len(), 0, "a sweep storage made is further than sent");
        book.keep(expired.clone());
        let Noted::Moved { row: opened, was } =
            book.note(&dev("cab-1"), "c1", CommandStatus::Opened, 31_500, None)
        else {
            panic!("a physical outcome must replace expired");
        };
        assert_eq!(was, CommandStatus::Expired);
        assert_eq!(opened.detail, None, "expired's detail goes with it");
        // Storage still expired: the book's door outcome is what a reader sees.
        assert_eq!(
            book.newest(book.get("c1"), Some(expired)).map(|r| r.status),
            Some(CommandStatus::Opened)
        );
    }

    #[test]
    fn another_cabinets_report_and_unknown_commands_are_left_to_storage() {
        let book = Book::default();
        book.keep(row("c1", "cab-1", CommandStatus::Sent));
        assert_eq!(
            book.note(&dev("cab-2"), "c1", CommandStatus::Opened, 1_100, None),
            Noted::OtherDevice(dev("cab-1"))
        );
        assert_eq!(
            book.note(&dev("cab-1"), "c2", CommandStatus::Opened, 1_100, None),
            Noted::Unknown
        );
        assert_eq!(book.newest(book.get("c2"), None), None);
        // A command not yet readable from storage is still answered from the book.
        assert_eq!(
            book.newest(book.get("c1"), None).map(|r| r.status),
            Some(CommandStatus::Sent)
        );
    }
}
