//! The keypad loop: codes and staff credentials entered at the cabinet, verified offline,
//! boxes opened, lockouts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::{BoxNo, EventBody, FaultKind, RejectReason};
use tokio_util::sync::CancellationToken;

use crate::{Ctx, EntryOutcome, Keypad, KeypadEntry, LockDriver, codes};

use crate::clock::Clock;
use crate::commands::open_and_record;

/// Serves the keypad: one entry at a time, verified against the local code book.
pub(crate) async fn keypad_loop<D: LockDriver, K: Keypad>(
    ctx: Arc<Ctx<D>>,
    mut keypad: K,
    cancel: CancellationToken,
) {
    loop {
        // The lockout is a fault while it lasts: raised when it starts (also found at a
        // restart), cleared when it ends.
        let until = sync_lockout_fault(&ctx).await;
        let entry = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sleep_until_ms(&ctx.clock, until) => continue,
            e = keypad.next() => match e {
                Some(e) => e,
                None => break,
            },
        };
        ctx.keypad_touched();
        if entry == KeypadEntry::Typing {
            keypad.show(&EntryOutcome::Noted).await;
            continue;
        }
        let outcome = handle_entry(&ctx, entry).await;
        keypad.show(&outcome).await;
        ctx.stats
            .last_seq
            .store(ctx.outbox.last_seq(), Ordering::Relaxed);
        ctx.notify.notify_one();
    }
}

/// Raises or clears the `keypad_locked` fault to match the code book; returns when the
/// lock ends if it is on.
pub(crate) async fn sync_lockout_fault<D>(ctx: &Ctx<D>) -> Option<i64> {
    let (until, now) = (ctx.codes.locked_until(), ctx.clock.now_ms());
    let locked = until > now;
    let faults = &ctx.recorder.faults;
    let changed = if locked {
        let evidence = protocol::evidence::say(
            protocol::evidence::Code::KeypadLocked,
            &[&until.to_string()],
        );
        faults
            .raise(None, FaultKind::KeypadLocked, evidence, now)
            .await
    } else {
        let evidence = protocol::evidence::say(protocol::evidence::Code::KeypadUnlocked, &[]);
        faults
            .clear(None, FaultKind::KeypadLocked, evidence, now)
            .await
    };
    match changed {
        Ok(true) => {
            ctx.stats
                .last_seq
                .store(ctx.outbox.last_seq(), Ordering::Relaxed);
            ctx.notify.notify_one();
        }
        Ok(false) => {}
        Err(e) => tracing::error!(device = %ctx.id, error = %e, "recording the keypad lock failed"),
    }
    locked.then_some(until)
}

pub(crate) async fn sleep_until_ms(clock: &Clock, at: Option<i64>) {
    match at {
        Some(t) => {
            let wait = (t - clock.now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

/// One keypad entry: lockout, verification, durable spend, pulse, event. Never waits on the
/// network.
pub(crate) async fn handle_entry<D: LockDriver>(ctx: &Ctx<D>, entry: KeypadEntry) -> EntryOutcome {
    let now = ctx.clock.now_ms();
    let staff_entry = matches!(entry, KeypadEntry::Staff { .. });
    let rejected = |reason, item| {
        if staff_entry {
            EventBody::StaffRejected { reason }
        } else {
            EventBody::CodeRejected { reason, item }
        }
    };
    let until = ctx.codes.locked_until();
    if until > now {
        record(ctx, rejected(RejectReason::LockedOut, None)).await;
        return EntryOutcome::LockedOut { until };
    }
    let verdict = match entry {
        KeypadEntry::Code(code) => match ctx.codes.verify(&code, now) {
            Ok(m) => Ok((m.grant.box_no, Some(m), None)),
            Err(r) => Err(r),
        },
        KeypadEntry::Typing => return EntryOutcome::Noted,
        KeypadEntry::Staff { credential, box_no } => {
            match BoxNo::new(box_no)
                .ok()
                .filter(|b| b.get() <= ctx.driver.boxes())
            {
                None => Err(codes::Refusal {
                    reason: RejectReason::NoSuchBox,
                    item: None,
                }),
                Some(b) => match ctx.codes.verify_staff(&credential).await {
                    Some(staff) => Ok((b, None, Some(staff))),
                    None => Err(codes::Refusal {
                        reason: if protocol::code::check_staff_credential(&credential).is_ok() {
                            RejectReason::Unknown
                        } else {
                            RejectReason::Malformed
                        },
                        item: None,
                    }),
                },
            }
        }
    };
    let (b, code, staff) = match verdict {
        Ok(v) => v,
        Err(refusal) => {
            record(ctx, rejected(refusal.reason, refusal.item.clone())).await;
            if refusal.counts() {
                match ctx.codes.failure(now).await {
                    Ok(Some(until)) => return EntryOutcome::LockedOut { until },
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(device = %ctx.id, error = %e, "recording a wrong entry failed")
                    }
                }
            }
            return EntryOutcome::Rejected {
                reason: refusal.reason,
            };
        }
    };
    if let Some(m) = &code {
        match ctx.codes.spend(m, now).await {
            Ok(true) => {}
            Ok(false) => {
                return EntryOutcome::Rejected {
                    reason: RejectReason::Used,
                };
            }
            Err(e) => {
                // Not recorded as used, so not opened: a code must never work twice.
                tracing::error!(device = %ctx.id, error = %e, "recording a code use failed; box not opened");
                return EntryOutcome::Rejected {
                    reason: RejectReason::Unknown,
                };
            }
        }
    }
    if staff.is_some()
        && let Err(e) = ctx.codes.deposited(b, now).await
    {
        tracing::error!(device = %ctx.id, error = %e, "recording a deposit failed");
    }
    let (status, detail) = {
        let _box = ctx.box_locks[usize::from(b.get()) - 1].lock().await;
        open_and_record(ctx, b).await
    };
    if let Some(d) = detail {
        tracing::warn!(device = %ctx.id, r#box = %b, status = ?status, detail = %d, "keypad open did not succeed");
    }
    let done = ctx.clock.now_ms();
    let written = match (code, staff) {
        (Some(m), _) => {
            ctx.outbox
                .finish_code_use(&m.grant.item, b, status, done)
                .await
        }
        (None, Some(staff)) => ctx
            .outbox
            .append(
                done,
                vec![EventBody::StaffOpen {
                    staff,
                    box_no: b,
                    status,
                }],
            )
            .await
            .map(|_| ()),
        (None, None) => Ok(()),
    };
    if let Err(e) = written {
        tracing::error!(device = %ctx.id, error = %e, "recording a keypad open failed");
    }
    ctx.stats.keypad_opens.fetch_add(1, Ordering::Relaxed);
    EntryOutcome::Opened { box_no: b, status }
}

pub(crate) async fn record<D>(ctx: &Ctx<D>, body: EventBody) {
    if let Err(e) = ctx.outbox.append(ctx.clock.now_ms(), vec![body]).await {
        tracing::error!(device = %ctx.id, error = %e, "recording a keypad event failed");
    }
}
