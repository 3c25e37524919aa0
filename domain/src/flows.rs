//! The locker service flows as data: site kinds, box sizes, flows, the item state machine,
//! and the masking of personal data in logs. No I/O; the store and the service use these.

use serde::{Deserialize, Serialize};

str_enum!(
    /// Where a site stands (the document's four kinds).
    SiteKind {
        ServiceHall => "service_hall",
        EnterpriseCluster => "enterprise_cluster",
        Station => "station",
        Community => "community",
    }
);

str_enum!(
    /// What a box is doing, as operators see it.
    BoxStatus {
        Free => "free",
        Reserved => "reserved",
        Occupied => "occupied",
        OutOfService => "out_of_service",
    }
);

str_enum!(
    /// Box sizes, smallest first: allocation falls back to the next larger one.
    Size {
        S => "S",
        M => "M",
        L => "L",
    }
);

// Sizes are written in capitals on the wire and on the doors.
impl Size {
    pub fn rank(self) -> u8 {
        match self {
            Size::S => 0,
            Size::M => 1,
            Size::L => 2,
        }
    }

    /// This size and every larger one, in the order allocation tries them.
    pub fn and_larger(self) -> impl Iterator<Item = Size> {
        Size::ALL
            .iter()
            .copied()
            .filter(move |s| s.rank() >= self.rank())
    }
}

str_enum!(
    /// What an item in a box is for.
    Flow {
        /// A citizen drops application documents; staff collect them.
        Dropoff => "dropoff",
        /// Supplementary material for an accept-with-deficiencies case, before a deadline.
        Supplement => "supplement",
        /// Staff deposit an issued licence; the citizen picks it up.
        Pickup => "pickup",
    }
);

str_enum!(
    /// The life of an item.
    ItemState {
        /// Drop-off or supplement: box held, waiting for the citizen's code.
        Reserved => "reserved",
        /// Pick-up: box held, waiting for staff to load it (same day).
        AwaitingDeposit => "awaiting_deposit",
        /// Documents (or the licence) are in the box.
        InBox => "in_box",
        /// Staff took the dropped documents out.
        Collected => "collected",
        /// The citizen took the licence out.
        PickedUp => "picked_up",
        /// The code was never used in its window; nothing in the box.
        Expired => "expired",
        /// Past its time: a pick-up not collected by the end of its window (still in the
        /// box, for staff to retrieve), or a supplement not dropped by its deadline.
        Overdue => "overdue",
        /// Staff took an overdue item back out.
        Retrieved => "retrieved",
        /// Cancelled by the service platform before anything was in the box.
        Cancelled => "cancelled",
    }
);

impl ItemState {
    /// Whether an item in this state keeps its box from being allocated to another.
    pub fn holds_box(self, flow: Flow) -> bool {
        match self {
            ItemState::Reserved | ItemState::AwaitingDeposit | ItemState::InBox => true,
            // An overdue supplement never reached the box; an overdue pick-up is still in it.
            ItemState::Overdue => flow == Flow::Pickup,
            _ => false,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            ItemState::Collected
                | ItemState::PickedUp
                | ItemState::Expired
                | ItemState::Retrieved
                | ItemState::Cancelled
        )
    }
}

/// What happens to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its one-time code opened the box.
    CodeUsed,
    /// A member of staff opened its box.
    StaffOpen,
    /// Its code window (or deadline) passed.
    TimeUp,
    /// The service platform cancelled it.
    Cancel,
}

/// The state machine: the next state, or `None` where the trigger does not apply.
pub fn next_state(flow: Flow, state: ItemState, trigger: Trigger) -> Option<ItemState> {
    use ItemState::*;
    match (flow, state, trigger) {
        (Flow::Dropoff | Flow::Supplement, Reserved, Trigger::CodeUsed) => Some(InBox),
        (Flow::Dropoff | Flow::Supplement, InBox, Trigger::StaffOpen) => Some(Collected),
        (Flow::Dropoff, Reserved, Trigger::TimeUp) => Some(Expired),
        (Flow::Supplement, Reserved, Trigger::TimeUp) => Some(Overdue),
        (Flow::Pickup, AwaitingDeposit, Trigger::StaffOpen) => Some(InBox),
        (Flow::Pickup, InBox, Trigger::CodeUsed) => Some(PickedUp),
        (Flow::Pickup, InBox, Trigger::TimeUp) => Some(Overdue),
        (Flow::Pickup, Overdue, Trigger::StaffOpen) => Some(Retrieved),
        (Flow::Pickup, AwaitingDeposit, Trigger::TimeUp) => Some(Expired),
        (_, Reserved | AwaitingDeposit, Trigger::Cancel) => Some(Cancelled),
        _ => None,
    }
}

/// The platform webhook event for entering `state` (None: not reported).
pub fn webhook_event(flow: Flow, from: ItemState, to: ItemState) -> Option<&'static str> {
    Some(match (flow, from, to) {
        (_, _, ItemState::InBox) if flow == Flow::Pickup => "deposited",
        (_, _, ItemState::InBox) => "dropped_off",
        (_, _, ItemState::Collected) => "collected",
        (_, _, ItemState::PickedUp) => "picked_up",
        (_, _, ItemState::Overdue) => "overdue",
        (_, _, ItemState::Retrieved) => "retrieved",
        (_, _, ItemState::Expired) => "expired",
        (_, _, ItemState::Cancelled) => "cancelled",
        _ => return None,
    })
}

/// `138****5678`: enough for a person to recognise, not enough to call.
/// A phone number as given: 5 to 20 digits, optionally with a leading `+`; returns it
/// trimmed, or the error to show.
pub fn check_phone(phone: &str) -> Result<String, String> {
    let phone = phone.trim();
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if !(5..=20).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("phone must be 5 to 20 digits, optionally with a leading +".into());
    }
    Ok(phone.to_owned())
}

pub fn mask_phone(phone: &str) -> String {
    mask(phone, 3, 4)
}

/// `GZ2***0457`: case numbers identify people's applications; logs get them masked.
pub fn mask_case(case: &str) -> String {
    mask(case, 3, 4)
}

fn mask(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len().max(1));
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Great-circle distance in metres (haversine); enough for "nearest site".
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_flows_run_through() {
        use ItemState::*;
        let run = |flow, triggers: &[Trigger], start| {
            triggers
                .iter()
                .try_fold(start, |s, t| next_state(flow, s, *t))
        };
        assert_eq!(
            run(
                Flow::Dropoff,
                &[Trigger::CodeUsed, Trigger::StaffOpen],
                Reserved
            ),
            Some(Collected)
        );
        assert_eq!(
            run(
                Flow::Pickup,
                &[Trigger::StaffOpen, Trigger::CodeUsed],
                AwaitingDeposit
            ),
            Some(PickedUp)
        );
        assert_eq!(
            run(
                Flow::Pickup,
                &[Trigger::StaffOpen, Trigger::TimeUp, Trigger::StaffOpen],
                AwaitingDeposit
            ),
            Some(Retrieved)
        );
        assert_eq!(
            run(Flow::Supplement, &[Trigger::TimeUp], Reserved),
            Some(Overdue)
        );
        assert_eq!(
            run(Flow::Dropoff, &[Trigger::TimeUp], Reserved),
            Some(Expired)
        );
    }

    #[test]
    fn nothing_moves_twice_or_backwards() {
        for flow in Flow::ALL {
            for state in ItemState::ALL {
                for t in [
                    Trigger::CodeUsed,
                    Trigger::StaffOpen,
                    Trigger::TimeUp,
                    Trigger::Cancel,
                ] {
                    if state.is_final() {
                        assert_eq!(
                            next_state(*flow, *state, t),
                            None,
                            "{flow:?} {state:?} {t:?}"
                        );
                    }
                    if let Some(next) = next_state(*flow, *state, t) {
                        assert_ne!(next, *state);
                    }
                }
            }
        }
        // A code opens a drop-off box once: a second use finds the item in the box.
        assert_eq!(
            next_state(Flow::Dropoff, ItemState::InBox, Trigger::CodeUsed),
            None
        );
        // Nothing is cancelled once it is in a box.
        assert_eq!(
            next_state(Flow::Pickup, ItemState::InBox, Trigger::Cancel),
            None
        );
    }

    #[test]
    fn boxes_held() {
        assert!(ItemState::Overdue.holds_box(Flow::Pickup));
        assert!(!ItemState::Overdue.holds_box(Flow::Supplement));
        assert!(!ItemState::Collected.holds_box(Flow::Dropoff));
    }

    #[test]
    fn masking() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_case("GZ2026-0457"), "GZ2****0457");
        assert_eq!(mask_phone("123"), "***");
        assert_eq!(
            Size::S.and_larger().collect::<Vec<_>>(),
            vec![Size::S, Size::M, Size::L]
        );
        assert_eq!(Size::parse("M"), Some(Size::M));
    }

    #[test]
    fn distances() {
        let d = distance_m((23.1291, 113.2644), (23.1391, 113.2644));
        assert!((d - 1112.0).abs() < 5.0, "{d}");
    }
}
