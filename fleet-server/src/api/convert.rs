//! The edge between storage and the API: each typed store row mapped to its wire type in
//! `api_types`. The store never depends on how the API spells a row (ADR 0016).

use api_types::History;
use api_types::alarms::Alarm;
use api_types::audit::AuditEntry;
use api_types::cabinets::{BoxView, Cabinet};
use api_types::commands::Command;
use api_types::devices::{BoxReading, Device, DeviceDetail, Event, Layers, PresenceEntry};
use api_types::items::{Item, Reservation};
use api_types::sites::Site;
use api_types::staff::Staff;
use api_types::tokens::Token;

use crate::store::{
    AlarmRow, AuditRow, CabinetRow, CommandRow, DeviceRow, EventRow, HistoryRow, ItemRow,
    PresenceRow, ReleaseRow, ReleaseState, SiteRow, StaffRow, TokenRow,
};

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
            device_id: r.device_id.to_string(),
            box_no: r.box_no.map(protocol::BoxNo::get),
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

impl From<DeviceRow> for Device {
    fn from(r: DeviceRow) -> Device {
        Device {
            id: r.id,
            online: r.online,
            boxes: r.boxes,
            agent_version: r.agent_version,
            last_seen: r.last_seen,
            presence_changed_at: r.presence_changed_at,
            presence_reason: r.presence_reason,
            acked_seq: r.acked_seq,
            profile: r.profile,
            heartbeat_at: r.heartbeat_at,
            heartbeat_secs: r.heartbeat_secs,
            uptime_s: r.uptime_s,
            lock_bus: r.lock_bus,
            lock_bus_detail: r.lock_bus_detail,
            power: r.power,
            outbox_pending: r.outbox_pending,
            station: r.station,
            clock_offset_ms: r.clock_offset_ms,
            layers: r.layers.into(),
            release: r.release.map(|(version, state, reason, at)| {
                api_types::devices::DeviceRelease {
                    version,
                    state,
                    reason,
                    at,
                }
            }),
            labels: r.labels,
        }
    }
}

impl From<crate::store::Layers> for Layers {
    fn from(r: crate::store::Layers) -> Layers {
        Layers {
            session: r.session.into(),
            heartbeat: r.heartbeat.into(),
            lock_bus: r.lock_bus,
        }
    }
}

impl From<crate::store::BoxRow> for BoxReading {
    fn from(r: crate::store::BoxRow) -> BoxReading {
        BoxReading {
            box_no: box_no(r.box_no),
            door: r.door.into(),
            occupied: r.occupied,
            last_change: r.last_change,
        }
    }
}

impl From<crate::store::DeviceDetail> for DeviceDetail {
    fn from(r: crate::store::DeviceDetail) -> DeviceDetail {
        DeviceDetail {
            device: r.device.into(),
            boxes: all(r.boxes),
        }
    }
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Event {
        Event {
            seq: r.seq,
            ts: r.ts,
            received_at: r.received_at,
            kind: r.kind,
            box_no: r.box_no.map(box_no),
            body: r.body,
        }
    }
}

impl From<PresenceRow> for PresenceEntry {
    fn from(r: PresenceRow) -> PresenceEntry {
        PresenceEntry {
            ts: r.ts,
            session: r.session,
            online: r.online,
            reason: r.reason,
            layer: r.layer,
        }
    }
}

impl From<SiteRow> for Site {
    fn from(r: SiteRow) -> Site {
        Site {
            id: r.id,
            kind: r.kind,
            name: r.name,
            address: r.address,
            lat: r.lat,
            lon: r.lon,
            lang: r.lang.map(|l| l.tag().to_owned()),
            time_zone: r.time_zone,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<StaffRow> for Staff {
    fn from(r: StaffRow) -> Staff {
        Staff {
            id: r.id,
            name: r.name,
            site_id: r.site_id,
            active: r.active,
            created_at: r.created_at,
            phone: r.phone,
            on_duty: r.on_duty,
        }
    }
}

impl From<ReleaseRow> for api_types::releases::Release {
    fn from(r: ReleaseRow) -> api_types::releases::Release {
        use api_types::releases::ReleaseState as Wire;
        let state = match r.state() {
            ReleaseState::AwaitingBinary => Wire::AwaitingBinary,
            ReleaseState::Available => Wire::Available,
            ReleaseState::Withdrawn => Wire::Withdrawn,
        };
        api_types::releases::Release {
            version: r.manifest.version.to_string(),
            target: r.manifest.target,
            size: r.manifest.size,
            sha256: r.manifest.sha256,
            min_server_version: r.manifest.min_server_version.to_string(),
            notes: r.manifest.notes,
            key_id: r.signed.key_id,
            state,
            created_at: r.created_at,
            created_by: r.created_by,
            uploaded_at: r.uploaded_at,
            withdrawn_at: r.withdrawn_at,
            withdrawn_by: r.withdrawn_by,
            withdraw_note: r.withdraw_note,
        }
    }
}

impl From<TokenRow> for Token {
    fn from(r: TokenRow) -> Token {
        Token {
            id: r.id,
            name: r.name,
            role: r.role,
            sites: r.sites,
            created_at: r.created_at,
            created_by: r.created_by,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// Maps every row of a list.
/// A deployment and its devices as the API shows them, with each wave's progress.
pub(crate) fn detail(
    d: crate::store::DeploymentRow,
    devices: Vec<crate::store::RolloutRow>,
) -> api_types::deployments::DeploymentDetail {
    use api_types::deployments::{Deployment, DeploymentDetail, DeploymentDevice, WaveProgress};
    use domain::deployments::DeviceRollout as R;
    let waves_n = devices.iter().map(|r| r.wave + 1).max().unwrap_or(0).max(0) as usize;
    let mut waves: Vec<WaveProgress> = (0..waves_n)
        .map(|i| WaveProgress {
            wave: i as u32 + 1,
            ..Default::default()
        })
        .collect();
    for r in &devices {
        let Some(w) = usize::try_from(r.wave).ok().and_then(|i| waves.get_mut(i)) else {
            continue;
        };
        w.devices += 1;
        match r.state {
            R::Pending => w.pending += 1,
            R::Succeeded => w.succeeded += 1,
            R::Failed => w.failed += 1,
            R::RolledBack => w.rolled_back += 1,
            _ => w.in_progress += 1,
        }
    }
    DeploymentDetail {
        deployment: Deployment {
            id: d.id,
            target: d.target,
            version: d.version,
            rollback: d.rollback,
            state: d.state,
            reason: d.reason,
            wave: u32::try_from(d.wave + 1).unwrap_or(0),
            waves,
            window: d.window.map(Into::into),
            soak_secs: u64::try_from(d.soak_secs).unwrap_or(0),
            success_percent: d.thresholds.success_percent,
            max_failures_percent: d.thresholds.max_failures_percent,
            manual: d.manual,
            deadline_at: d.deadline_at,
            created_at: d.created_at,
            created_by: d.created_by,
            updated_at: d.updated_at,
        },
        devices: devices
            .into_iter()
            .map(|r| DeploymentDevice {
                device_id: r.device.to_string(),
                wave: u32::try_from(r.wave + 1).unwrap_or(0),
                state: r.state,
                reason: r.reason,
                from_version: r.from_version,
                updated_at: r.updated_at,
            })
            .collect(),
    }
}

pub(crate) fn all<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}
