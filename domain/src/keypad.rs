//! What an event from a cabinet's keypad means for the service, decided without I/O: the
//! audit line it leaves, and what it asks of the item it concerns. The store looks the item
//! up and carries the decision out inside the ingest transaction.

use protocol::{AckStatus, BoxNo, EventBody};

use crate::flows::{ItemState, Trigger};

/// How far a cabinet's clock may lag the server's before a staff open is judged older than
/// the item in its box.
pub const STAFF_OPEN_SKEW_MS: i64 = 60_000;

/// One audit row of a keypad event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    pub actor: String,
    pub action: &'static str,
    pub box_no: Option<BoxNo>,
    /// The item named by the event (a code's); a staff open's is the one found in the box.
    pub item: Option<String>,
    /// What came of it: the lock's outcome, or why an entry was refused.
    pub result: String,
    pub detail: Option<String>,
}

/// What a keypad event asks of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemChange {
    pub trigger: Trigger,
    pub actor: String,
    /// The history row's detail when the item moves.
    pub detail: String,
    /// The history note when the state machine does not take the trigger from the item's
    /// state: the event is kept on the item, the item stays as it is.
    pub note_if_refused: String,
}

/// The lock's outcome as keypad audit rows have always spelt it: the variant's name in lower
/// case (`opened`, `alreadyopen`, `jammed`, …; commands' rows say `already_open`).
pub fn lock_result(status: AckStatus) -> String {
    format!("{status:?}").to_lowercase()
}

/// The audit line of a keypad event; `None` for events that are not the keypad's.
pub fn audit_line(body: &EventBody) -> Option<AuditLine> {
    let line = |actor: String, action, box_no, item, result: String, detail| AuditLine {
        actor,
        action,
        box_no,
        item,
        result,
        detail,
    };
    Some(match body {
        EventBody::CodeUsed {
            item,
            box_no,
            status,
        } => line(
            "keypad".into(),
            "code_open",
            Some(*box_no),
            Some(item.to_string()),
            lock_result(*status),
            None,
        ),
        EventBody::CodeRejected { reason, item } => line(
            "keypad".into(),
            "code_rejected",
            None,
            item.as_ref().map(|i| i.to_string()),
            reason.as_str().into(),
            None,
        ),
        EventBody::KeypadLocked { until, failures } => line(
            "keypad".into(),
            "keypad_locked",
            None,
            None,
            "locked".into(),
            Some(format!("{failures} wrong entries; locked until {until}")),
        ),
        EventBody::StaffRejected { reason } => line(
            "keypad".into(),
            "staff_rejected",
            None,
            None,
            reason.as_str().into(),
            None,
        ),
        EventBody::StaffOpen {
            staff,
            box_no,
            status,
        } => line(
            staff_actor(staff.as_str()),
            "staff_open",
            Some(*box_no),
            None,
            lock_result(*status),
            None,
        ),
        _ => return None,
    })
}

/// Who a staff open is attributed to.
pub fn staff_actor(staff: &str) -> String {
    format!("staff:{staff}")
}

/// A citizen's code opened the box of the item it was issued for, at `used_at` (cabinet
/// time), the item being in `state` (server time of now).
pub fn code_used(status: AckStatus, used_at: i64, state: ItemState) -> ItemChange {
    ItemChange {
        trigger: Trigger::CodeUsed,
        actor: "citizen".into(),
        detail: format!("code used at the cabinet (lock: {})", lock_result(status)),
        note_if_refused: format!(
            "code used at {used_at} while the item was {}; no change",
            state.as_str()
        ),
    }
}

/// A helper opened a box with their credential at `opened_at` (cabinet time); the item in
/// it was reserved at `item_created_at` (server time). `None` when the open is older than
/// the item (it happened offline, while the box still looked free to the server), allowing
/// the two clocks [`STAFF_OPEN_SKEW_MS`] of disagreement.
pub fn staff_open(
    staff: &str,
    status: AckStatus,
    opened_at: i64,
    item_created_at: i64,
) -> Option<ItemChange> {
    if opened_at + STAFF_OPEN_SKEW_MS < item_created_at {
        return None;
    }
    let detail = format!(
        "opened by {staff} at the cabinet (lock: {})",
        lock_result(status)
    );
    Some(ItemChange {
        trigger: Trigger::StaffOpen,
        actor: staff_actor(staff),
        note_if_refused: detail.clone(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use protocol::{ItemId, RejectReason, StaffId};

    use super::*;

    fn b(n: u16) -> BoxNo {
        BoxNo::new(n).expect("box")
    }

    #[test]
    fn every_keypad_event_leaves_one_audit_line_and_others_none() {
        let used = audit_line(&EventBody::CodeUsed {
            item: ItemId::parse("it-1").expect("id"),
            box_no: b(3),
            status: AckStatus::Opened,
        })
        .expect("a line");
        assert_eq!(
            (used.actor.as_str(), used.action, used.result.as_str()),
            ("keypad", "code_open", "opened")
        );
        assert_eq!(used.item.as_deref(), Some("it-1"));
        let staff = audit_line(&EventBody::StaffOpen {
            staff: StaffId::parse("st-9").expect("id"),
            box_no: b(2),
            status: AckStatus::AlreadyOpen,
        })
        .expect("a line");
        assert_eq!(
            (staff.actor.as_str(), staff.result.as_str()),
            ("staff:st-9", "alreadyopen")
        );
        let rejected = audit_line(&EventBody::StaffRejected {
            reason: RejectReason::Unknown,
        })
        .expect("a line");
        assert_eq!(rejected.action, "staff_rejected");
        assert!(
            audit_line(&EventBody::Door {
                box_no: b(1),
                open: true
            })
            .is_none()
        );
    }

    #[test]
    fn a_staff_open_older_than_the_item_in_the_box_is_not_about_it() {
        let reserved_at = 1_000_000;
        assert!(staff_open("st-1", AckStatus::Opened, reserved_at - 61_000, reserved_at).is_none());
        // Within the clocks' minute of disagreement it is the item's.
        let c = staff_open("st-1", AckStatus::Opened, reserved_at - 59_000, reserved_at)
            .expect("about the item");
        assert_eq!(c.trigger, Trigger::StaffOpen);
        assert_eq!(c.actor, "staff:st-1");
        assert_eq!(c.detail, "opened by st-1 at the cabinet (lock: opened)");
    }

    #[test]
    fn a_code_used_for_an_item_not_waiting_for_it_is_noted_not_applied() {
        let c = code_used(AckStatus::Opened, 42, ItemState::Collected);
        assert_eq!(c.trigger, Trigger::CodeUsed);
        assert_eq!(
            c.note_if_refused,
            "code used at 42 while the item was collected; no change"
        );
    }
}
