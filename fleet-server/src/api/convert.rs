//! The edge between storage and the API: each typed store row mapped to its wire type in
//! `api_types`. The store never depends on how the API spells a row (ADR 0016).

use api_types::History;
use api_types::alarms::Alarm;
use api_types::audit::AuditEntry;
use api_types::cabinets::{BoxView, Cabinet};
use api_types::commands::Command;
use api_types::items::{Item, Reservation};

use crate::store::{AlarmRow, AuditRow, CabinetRow, CommandRow, HistoryRow, ItemRow};

/// A box number as stored (`i64`) on the wire (`u16`); out of range only in a corrupt row,
/// shown as 0 rather than failing the whole answer.
fn box_no(b: i64) -> u16 {
    u16::try_from(b).unwrap_or(0)
}

impl From<CommandRow> for Command {
    fn from(r: CommandRow) -> Command {
        Command {
            command_id: r.command_id.to_string(),
            device_id: r.device_id.to_string(),
            box_no: r.box_no.get(),
            action: r.action,
            status: r.status,
            actor: r.actor,
            reason: r.reason,
            idempotency_key: r.idempotency_key,
            created_at: r.created_at,
            expires_at: r.expires_at,
            sent_at: r.sent_at,
            delivered_at: r.delivered_at,
            finished_at: r.finished_at,
            detail: r.detail,
            latency_ms: r.latency_ms,
        }
    }
}

impl From<ItemRow> for Item {
    fn from(r: ItemRow) -> Item {
        Item {
            id: r.id,
            flow: r.flow,
            case_number: r.case_number,
            phone: r.phone,
            site_id: r.site_id,
            device_id: r.device_id,
            box_no: box_no(r.box_no),
            size: r.size,
            state: r.state,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            deadline: r.deadline,
            due_by: r.due_by,
            in_box_at: r.in_box_at,
            deposited_by: r.deposited_by,
            finished_at: r.finished_at,
            finished_by: r.finished_by,
            late_deposit: r.late_deposit,
        }
    }
}

impl From<HistoryRow> for History {
    fn from(r: HistoryRow) -> History {
        History {
            at: r.at,
            state: r.state,
            actor: r.actor,
            detail: r.detail,
        }
    }
}

impl From<CabinetRow> for Cabinet {
    fn from(r: CabinetRow) -> Cabinet {
        Cabinet {
            id: r.id,
            site_id: r.site_id,
            name: r.name,
            codes_version: r.codes_version,
            codes_applied: r.codes_applied,
            online: r.online,
        }
    }
}

impl From<crate::store::BoxView> for BoxView {
    fn from(v: crate::store::BoxView) -> BoxView {
        BoxView {
            box_no: box_no(v.config.box_no),
            size: v.config.size,
            accessible: v.config.accessible,
            in_service: v.config.in_service,
            service_note: v.config.service_note,
            state: v.state,
            door_open: v.door_open,
            item: v.item.map(Item::from),
        }
    }
}

impl From<AlarmRow> for Alarm {
    fn from(r: AlarmRow) -> Alarm {
        Alarm {
            id: r.id,
            device_id: r.device_id,
            box_no: r.box_no.map(box_no),
            kind: r.kind,
            severity: r.severity,
            state: r.state,
            site_id: r.site_id,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            count: r.count,
            evidence: r.evidence,
            acked_by: r.acked_by,
            acked_at: r.acked_at,
            ack_note: r.ack_note,
            cleared_at: r.cleared_at,
            cleared_by: r.cleared_by,
            clear_note: r.clear_note,
            escalated_at: r.escalated_at,
            notified_at: r.notified_at,
            notify_outcome: r.notify_outcome,
            suppressed: r.suppressed,
        }
    }
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> AuditEntry {
        AuditEntry {
            id: r.id,
            ts: r.ts,
            actor: r.actor,
            action: r.action,
            device_id: r.device_id,
            box_no: r.box_no.map(box_no),
            command_id: r.command_id,
            item_id: r.item_id,
            reason: r.reason,
            result: r.result,
            detail: r.detail,
            latency_ms: r.latency_ms,
            seq: r.seq,
            hash: r.hash,
        }
    }
}

impl From<crate::service::Reservation> for Reservation {
    fn from(r: crate::service::Reservation) -> Reservation {
        Reservation {
            reservation_id: r.reservation_id,
            code: r.code,
            created: r.created,
            note: r.note.map(str::to_owned),
            item: r.item.into(),
        }
    }
}

/// Maps every row of a list.
pub(crate) fn all<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}
