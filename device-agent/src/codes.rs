//! The cabinet's code book: the grants and staff credentials it verifies without the network,
//! the codes already used, local deposits, and the keypad lockout.
//!
//! Memory holds the working copy; every change is written to the outbox database first, so
//! a restart resumes with the same used codes and the same lockout.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::code::{self, Binding, CabinetKey};
use protocol::{
    BoxNo, CodeGrant, CodeSync, DeviceId, DroppedGrant, ItemId, RejectReason, SpentCode,
    StaffCredential, StaffId,
};

use protocol::message::MAX_RECONCILED;

use crate::outbox::{Outbox, OutboxError};

/// Brute-force protection of the keypad.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    /// Wrong entries within `window_ms` that lock the keypad.
    pub max_failures: u32,
    pub window_ms: i64,
    /// How long the keypad stays locked.
    pub lock_ms: i64,
}

#[derive(Default)]
struct Book {
    version: u64,
    key: Option<CabinetKey>,
    grants: Vec<CodeGrant>,
    staff: Vec<StaffCredential>,
    /// Items whose code was used here, and when.
    used: HashMap<String, i64>,
    deposited: HashSet<String>,
    locked_until: i64,
}

pub struct CodeBook {
    device: DeviceId,
    outbox: Arc<Outbox>,
    /// Changed live by central configuration.
    lockout: std::sync::Mutex<Lockout>,
    book: Mutex<Book>,
    /// Held from the version check to the install: two sets arriving together (a resend
    /// beside a newer set) must not both pass the check and leave the older one stored.
    applying: tokio::sync::Mutex<()>,
}

/// A code that verified and may open its box now.
#[derive(Debug, Clone)]
pub struct Match {
    /// The grant it matched (item, box, window), kept with the use: a server restored from
    /// an older backup may need it back.
    pub grant: CodeGrant,
}

/// Why a code did not open anything, and whether it counts towards the lockout.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: RejectReason,
    pub item: Option<ItemId>,
}

impl Refusal {
    /// Guessing shows up as malformed, unknown or reused codes; a genuine code at the wrong
    /// time (not yet valid, expired, box not loaded) does not count.
    pub fn counts(&self) -> bool {
        matches!(
            self.reason,
            RejectReason::Malformed
                | RejectReason::Unknown
                | RejectReason::Used
                | RejectReason::NoSuchBox
        )
    }
}

impl CodeBook {
    /// Loads what the outbox database holds.
    pub async fn load(
        device: DeviceId,
        outbox: Arc<Outbox>,
        lockout: Lockout,
    ) -> Result<CodeBook, OutboxError> {
        let mut book = Book {
            locked_until: outbox.keypad_locked_until().await?,
            used: outbox.code_uses().await?.into_iter().collect(),
            deposited: outbox.deposits().await?.into_iter().collect(),
            ..Book::default()
        };
        if let Some(body) = outbox.code_sync().await? {
            match protocol::decode::<CodeSync>(body.as_bytes()) {
                Ok(sync) => install(&mut book, sync),
                Err(e) => {
                    // Only the server can repair it; it sends the set again on connect.
                    tracing::error!(%device, error = %e, "stored code grants unreadable; waiting for the server's next set")
                }
            }
        }
        Ok(CodeBook {
            device,
            outbox,
            lockout: std::sync::Mutex::new(lockout),
            book: Mutex::new(book),
            applying: tokio::sync::Mutex::new(()),
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding it leaves plain data behind; keep using it.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn version(&self) -> u64 {
        self.book().version
    }

    pub fn locked_until(&self) -> i64 {
        self.book().locked_until
    }

    /// Stores a newer grant set (with its `codes_applied` event); an older or equal one is
    /// ignored. Returns whether it was applied.
    pub async fn apply(&self, sync: CodeSync, now: i64) -> Result<bool, OutboxError> {
        let _one_at_a_time = self.applying.lock().await;
        if sync.version <= self.version() {
            return Ok(false);
        }
        if let Err(e) = CabinetKey::from_hex(&sync.key) {
            tracing::error!(device = %self.device, error = %e, "code grants with a bad key ignored");
            return Ok(false);
        }
        let granted: Vec<ItemId> = sync.grants.iter().map(|g| g.item.clone()).collect();
        let (spent, dropped) = match sync.report_since {
            Some(since) => self.differences(&sync, since, now).await?,
            None => (Vec::new(), Vec::new()),
        };
        let body = String::from_utf8(protocol::encode(&sync)).unwrap_or_default();
        self.outbox
            .store_code_sync(sync.version, &body, &granted, spent, dropped, now)
            .await?;
        let mut book = self.book();
        let keep: HashSet<&str> = granted.iter().map(|i| i.as_str()).collect();
        book.deposited.retain(|i| keep.contains(i.as_str()));
        install(&mut book, sync);
        Ok(true)
    }

    /// What a server restored from a backup taken at `since` asks for with its set: codes of
    /// the set already used here (it missed the use), and grants it leaves out that still
    /// matter — in the current book and in their window or used here, or used here since
    /// `since` (with the grant kept at the use). An hour's allowance for the two clocks.
    async fn differences(
        &self,
        sync: &CodeSync,
        since: i64,
        now: i64,
    ) -> Result<(Vec<SpentCode>, Vec<DroppedGrant>), OutboxError> {
        let since = since - 3_600_000;
        let used_since = self.outbox.used_grants_since(since).await?;
        let book = self.book();
        let kept: HashSet<&str> = sync.grants.iter().map(|g| g.item.as_str()).collect();
        let mut spent: Vec<SpentCode> = sync
            .grants
            .iter()
            .filter_map(|g| {
                book.used.get(g.item.as_str()).map(|&used_at| SpentCode {
                    item: g.item.clone(),
                    box_no: g.box_no,
                    used_at,
                })
            })
            .collect();
        let mut dropped: Vec<DroppedGrant> = book
            .grants
            .iter()
            .filter(|g| !kept.contains(g.item.as_str()))
            .filter_map(|g| {
                let used_at = book.used.get(g.item.as_str()).copied();
                (used_at.is_some() || now <= g.not_after).then(|| DroppedGrant {
                    grant: g.clone(),
                    used_at,
                    deposited: book.deposited.contains(g.item.as_str()),
                })
            })
            .collect();
        let reported: HashSet<String> = dropped
            .iter()
            .map(|d| d.grant.item.as_str().to_owned())
            .collect();
        for (grant, used_at) in used_since {
            let item = grant.item.as_str();
            if !kept.contains(item) && !reported.contains(item) {
                dropped.push(DroppedGrant {
                    grant,
                    used_at: Some(used_at),
                    deposited: false,
                });
            }
        }
        if spent.len() > MAX_RECONCILED || dropped.len() > MAX_RECONCILED {
            tracing::warn!(device = %self.device, spent = spent.len(), dropped = dropped.len(),
                "more codes differ from the new set than one report carries; the first {MAX_RECONCILED} of each are reported");
            spent.truncate(MAX_RECONCILED);
            dropped.truncate(MAX_RECONCILED);
        }
        Ok((spent, dropped))
    }

    /// Finds the grant `code` was issued for. Constant-time tag comparisons; every grant is
    /// tried, so the time taken does not tell which one matched.
    pub fn verify(&self, code: &str, now: i64) -> Result<Match, Refusal> {
        let refuse = |reason, item| Err(Refusal { reason, item });
        if code::check_code(code).is_err() {
            return refuse(RejectReason::Malformed, None);
        }
        let book = self.book();
        let Some(key) = &book.key else {
            return refuse(RejectReason::Unknown, None);
        };
        let mut found: Option<&CodeGrant> = None;
        for g in &book.grants {
            let binding = Binding::of_grant(&self.device, g);
            if code::verify_code(key, &binding, code, &g.tag) && found.is_none() {
                found = Some(g);
            }
        }
        let Some(g) = found else {
            return refuse(RejectReason::Unknown, None);
        };
        let item = Some(g.item.clone());
        if book.used.contains_key(g.item.as_str()) {
            return refuse(RejectReason::Used, item);
        }
        if now < g.not_before {
            return refuse(RejectReason::NotYetValid, item);
        }
        if now > g.not_after {
            return refuse(RejectReason::Expired, item);
        }
        if g.needs_deposit && !book.deposited.contains(g.item.as_str()) {
            return refuse(RejectReason::NotReady, item);
        }
        Ok(Match { grant: g.clone() })
    }

    /// Records the use durably before the lock is pulsed; `false` if it was used already.
    pub async fn spend(&self, m: &Match, now: i64) -> Result<bool, OutboxError> {
        if !self.outbox.begin_code_use(&m.grant, now).await? {
            return Ok(false);
        }
        self.book()
            .used
            .insert(m.grant.item.as_str().to_owned(), now);
        Ok(true)
    }

    /// The member of staff `credential` belongs to. PBKDF2 takes milliseconds per person,
    /// so it runs off the async workers.
    pub async fn verify_staff(&self, credential: &str) -> Option<StaffId> {
        if code::check_staff_credential(credential).is_err() {
            return None;
        }
        let staff = self.book().staff.clone();
        let credential = credential.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut found = None;
            for s in &staff {
                if code::verify_staff(&credential, &s.salt, s.iterations, &s.hash)
                    && found.is_none()
                {
                    found = Some(s.staff.clone());
                }
            }
            found
        })
        .await
        .ok()
        .flatten()
    }

    /// Staff opened `b`: a pick-up waiting for its deposit there may now be collected, also
    /// before the server hears of it.
    pub async fn deposited(&self, b: BoxNo, now: i64) -> Result<(), OutboxError> {
        let waiting: Vec<ItemId> = {
            let book = self.book();
            book.grants
                .iter()
                .filter(|g| {
                    g.box_no == b && g.needs_deposit && !book.deposited.contains(g.item.as_str())
                })
                .map(|g| g.item.clone())
                .collect()
        };
        for item in waiting {
            self.outbox.record_deposit(&item, now).await?;
            self.book().deposited.insert(item.as_str().to_owned());
        }
        Ok(())
    }

    pub fn lockout(&self) -> Lockout {
        *self.lockout.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From the next wrong entry on (a lock already in force keeps its end).
    pub fn set_lockout(&self, l: Lockout) {
        *self.lockout.lock().unwrap_or_else(|p| p.into_inner()) = l;
    }

    /// Counts a wrong entry; locks the keypad (durably, with its event) at the threshold.
    /// Returns the lock's end when this entry locked it.
    pub async fn failure(&self, now: i64) -> Result<Option<i64>, OutboxError> {
        let lockout = self.lockout();
        let n = self
            .outbox
            .keypad_failure(now, now - lockout.window_ms)
            .await?;
        if n < lockout.max_failures {
            return Ok(None);
        }
        let until = now + lockout.lock_ms;
        self.outbox.lock_keypad(until, n, now).await?;
        self.book().locked_until = until;
        tracing::warn!(device = %self.device, failures = n, until, "keypad locked after repeated wrong entries");
        Ok(Some(until))
    }
}

fn install(book: &mut Book, sync: CodeSync) {
    book.version = sync.version;
    book.key = CabinetKey::from_hex(&sync.key).ok();
    book.grants = sync.grants;
    book.staff = sync.staff;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Durability;

    fn set(version: u64) -> CodeSync {
        CodeSync {
            v: 1,
            version,
            key: "00".repeat(32),
            grants: vec![],
            staff: vec![],
            report_since: None,
        }
    }

    /// A resend of an older set arriving beside a newer one (each applied by its own task)
    /// never leaves the older one in memory or on disk.
    #[tokio::test]
    async fn an_older_set_applied_alongside_a_newer_one_never_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Arc::new(
            Outbox::open(dir.path(), Durability::Normal)
                .await
                .expect("outbox"),
        );
        let lockout = Lockout {
            max_failures: 5,
            window_ms: 600_000,
            lock_ms: 900_000,
        };
        let id = DeviceId::parse("cab-1").expect("id");
        let book = CodeBook::load(id.clone(), outbox.clone(), lockout)
            .await
            .expect("book");
        let (newer, older) = tokio::join!(book.apply(set(2), 10), book.apply(set(1), 11));
        assert_eq!((newer.expect("v2"), older.expect("v1")), (true, false));
        assert_eq!(book.version(), 2);
        let reloaded = CodeBook::load(id, outbox, lockout).await.expect("reload");
        assert_eq!(reloaded.version(), 2, "the stored set is the newer one");
    }
}
