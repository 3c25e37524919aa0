//! The locker service: reservations with one-time codes, cancellations, staff credentials,
//! the code grants each cabinet verifies offline, and the sweeps that expire items, flag late
//! deposits and queue reminders.
//!
//! Codes are drawn here, returned once to the caller and sealed into the SMS outbox; only
//! their HMAC tag is stored (see `protocol::code` and `docs/adr/0005-offline-codes.md`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{BoxNo, Channel, CodeGrant, CodeSync, DeviceId, ItemId, StaffId, code};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use api_types::items::{Near, ReservationRequest};

use crate::devices::Online;
use crate::devices::Publisher;
use crate::metrics::Metrics;
use crate::secrets::{SecretError, Secrets};
use crate::store::{
    Effects, Issued, ItemRow, NewItem, Placement, Presence, StaffRow, Store, StoreError,
};
use domain::flows::{
    Flow, ItemState, Size, Trigger, check_phone, distance_m, mask_case, mask_phone,
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// How often a cabinet that has not confirmed its code version is sent it again.
const CODES_RETRANSMIT: Duration = Duration::from_secs(5);

/// Codes drawn for one reservation. One is almost always enough: the chance that a random
/// eight-digit code is accepted by one of a cabinet's ~20 live grants is about 2 × 10⁻⁷; all
/// four, never in practice.
const CODE_CANDIDATES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "no free {size} box (or larger{accessible}) at {place}; counted as unmet demand. Try another site, a later time, or a larger size"
    )]
    NoFreeBox {
        size: &'static str,
        accessible: &'static str,
        place: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Settings the service takes from the server configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub code_digits: usize,
    pub dropoff_valid: Duration,
    pub pickup_valid: Duration,
    pub collect_overdue: Duration,
    pub reminder_before: Duration,
    pub timeup_grace: Duration,
    pub utc_offset_minutes: i32,
    /// The language of SMS where neither the request nor the site says.
    pub lang: l10n::Lang,
}

#[derive(Clone)]
pub struct Service {
    pub store: Store,
    pub secrets: Secrets,
    pub settings: Settings,
    /// Cabinets whose code grants changed: the code sync task sends them the new set.
    pub codes: mpsc::Sender<DeviceId>,
    /// Wakes the notification worker.
    pub notify: Arc<Notify>,
    pub metrics: Metrics,
    /// Tells live views (the console) what changed.
    pub changes: crate::changes::Changes,
}

/// What a reservation made (`api_types::items::Reservation` on the wire). `code` is present
/// exactly once: in the answer that created the reservation.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub reservation_id: String,
    pub code: Option<String>,
    pub created: bool,
    /// Set when an earlier reservation with the same idempotency key is returned.
    pub note: Option<&'static str>,
    pub item: ItemRow,
}

impl Service {
    pub async fn reserve(
        &self,
        req: ReservationRequest,
        caller: &str,
    ) -> Result<Reservation, ServiceError> {
        self.reserve_at(req, caller, crate::clock::now_ms()).await
    }

    /// [`Service::reserve`] as if it were `now`: the live path passes the clock, a history
    /// load (`crate::backfill`) the time of its past request.
    pub async fn reserve_at(
        &self,
        req: ReservationRequest,
        caller: &str,
        now: i64,
    ) -> Result<Reservation, ServiceError> {
        let bad = |m: String| Err(ServiceError::BadRequest(m));
        let Some(flow) = Flow::parse(&req.flow) else {
            return bad(format!(
                "flow {:?} is unknown; use one of: {}",
                req.flow,
                Flow::choices()
            ));
        };
        let case_number = req.case_number.trim().to_owned();
        if case_number.is_empty()
            || case_number.len() > 64
            || !case_number
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_/.".contains(&b))
        {
            return bad("case_number is required: 1 to 64 letters, digits or - _ / .".into());
        }
        let phone = check_phone(&req.phone).map_err(ServiceError::BadRequest)?;
        let lang = req
            .lang
            .as_deref()
            .map(str::parse::<l10n::Lang>)
            .transpose()
            .map_err(|e| ServiceError::BadRequest(format!("lang: {e}")))?;
        let size = match req.size.as_deref() {
            None => Size::S,
            Some(s) => Size::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                ServiceError::BadRequest(format!(
                    "size {s:?} is unknown; use one of: {}",
                    Size::choices()
                ))
            })?,
        };
        if let Some(key) = &req.idempotency_key
            && (key.is_empty() || key.len() > 200)
        {
            return bad("idempotency_key must be 1 to 200 characters".into());
        }
        let valid_from = req.valid_from.unwrap_or(now);
        let deadline = match (flow, req.deadline) {
            (Flow::Supplement, None) => {
                return bad("a supplement needs its deadline (epoch ms)".into());
            }
            (Flow::Supplement, Some(d)) if d <= now => {
                return bad("the deadline has already passed".into());
            }
            (Flow::Supplement, d) => d,
            (_, Some(_)) => return bad("deadline applies to supplements only".into()),
            (_, None) => None,
        };
        let default_until = match flow {
            Flow::Dropoff => valid_from + self.settings.dropoff_valid.as_millis() as i64,
            Flow::Pickup => valid_from + self.settings.pickup_valid.as_millis() as i64,
            Flow::Supplement => deadline.unwrap_or(now),
        };
        let valid_until = req.valid_until.unwrap_or(default_until);
        if valid_until <= valid_from || valid_until <= now {
            return bad("valid_until must be after valid_from and in the future".into());
        }
        if valid_until - valid_from > 90 * DAY_MS {
            return bad("a code window is at most 90 days".into());
        }
        if let Some(d) = deadline
            && valid_until > d
        {
            return bad("a supplement's code cannot outlive its deadline".into());
        }

        if let Some(key) = &req.idempotency_key
            && let Some(existing) = self.store.item_by_key(caller, key).await?
        {
            return Ok(Reservation {
                reservation_id: existing.id.clone(),
                code: None,
                created: false,
                note: Some(
                    "this idempotency key was used before: the existing reservation is returned; its code was shown only once",
                ),
                item: existing,
            });
        }
        let placement = self.placement(&req).await?;
        let id = ItemId::parse(&uuid::Uuid::new_v4().simple().to_string())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let due_by = (flow == Flow::Pickup).then(|| self.end_of_local_day(now));
        let new = NewItem {
            id: id.clone(),
            flow,
            case_number: case_number.clone(),
            phone: phone.clone(),
            size,
            accessible: req.accessible,
            created_by: caller.to_owned(),
            idempotency_key: req.idempotency_key.clone(),
            created_at: now,
            valid_from,
            valid_until,
            deadline,
            due_by,
        };
        // A few codes drawn up front: the cabinet is chosen inside the store's transaction, and
        // there the first code none of its live grants accepts is taken.
        let mut candidates = (0..CODE_CANDIDATES)
            .map(|_| self.secrets.code(self.settings.code_digits))
            .collect::<Result<Vec<String>, _>>()?;
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let secrets = self.secrets.clone();
        let book = crate::sms_text::SmsBook::load(
            &self.store,
            self.settings.lang,
            self.settings.utc_offset_minutes,
        )
        .await?;
        let sms = |site: &str,
                   device: &DeviceId,
                   b: BoxNo,
                   live: &[CodeGrant]|
         -> Result<Issued, StoreError> {
            let key = secrets.cabinet_key(device);
            let Some(n) = distinct_code(&candidates, &key, device, live) else {
                return Err(StoreError::Conflict(format!(
                    "no code distinct from cabinet {device}'s {} live codes in {CODE_CANDIDATES} draws; retry",
                    live.len()
                )));
            };
            taken.store(n, std::sync::atomic::Ordering::Relaxed);
            let code = &candidates[n];
            let binding = code::Binding {
                device,
                item: &id,
                box_no: b,
                not_before: valid_from,
                not_after: valid_until,
            };
            let sms = book.compose(&crate::sms_text::Message {
                site,
                lang,
                flow,
                case: &case_number,
                cabinet: device.as_str(),
                box_no: b.get(),
                code,
                until_ms: valid_until,
            });
            Ok(Issued {
                code_tag: code::code_tag(&key, &binding, code),
                sms_sealed: secrets
                    .seal(&sms.body(&phone))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })
        };
        let place = placement_name(&req);
        let Some(allocated) = self.store.reserve(&new, &placement, sms).await? else {
            self.metrics.reservations_refused.inc();
            tracing::info!(flow = flow.as_str(), size = size.as_str(), %place,
                case = %mask_case(&case_number), "no free box; recorded as unmet demand");
            return Err(ServiceError::NoFreeBox {
                size: size.as_str(),
                accessible: if req.accessible { ", accessible" } else { "" },
                place,
            });
        };
        self.metrics.reservations.inc();
        let item = allocated.item;
        tracing::info!(item = %item.id, flow = flow.as_str(), device = %item.device_id,
            r#box = item.box_no, case = %mask_case(&case_number), phone = %mask_phone(&phone),
            "reserved");
        if let Ok(d) = DeviceId::parse(&item.device_id) {
            let _ = self.codes.send(d).await;
        }
        self.notify.notify_one();
        let code = candidates.swap_remove(taken.load(std::sync::atomic::Ordering::Relaxed));
        Ok(Reservation {
            reservation_id: item.id.clone(),
            code: Some(code),
            created: true,
            note: None,
            item,
        })
    }

    /// Sites to try in order: the named site, the cabinet's site, or every site with a
    /// location by distance.
    async fn placement(&self, req: &ReservationRequest) -> Result<Placement, ServiceError> {
        let given = [
            req.site_id.is_some(),
            req.device_id.is_some(),
            req.near.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(ServiceError::BadRequest(
                "give exactly one of site_id, device_id or near {lat, lon}".into(),
            ));
        }
        if let Some(site) = &req.site_id {
            if self.store.site(site).await?.is_none() {
                return Err(ServiceError::NotFound(format!(
                    "site {site:?} does not exist; GET /api/v1/sites lists them"
                )));
            }
            return Ok(Placement {
                sites: vec![site.clone()],
                device: None,
            });
        }
        if let Some(d) = &req.device_id {
            let device = DeviceId::parse(d).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
            let Some(cab) = self.store.cabinet(&device).await? else {
                return Err(ServiceError::NotFound(format!(
                    "cabinet {d:?} is not configured; PUT /api/v1/cabinets/{d} first"
                )));
            };
            return Ok(Placement {
                sites: vec![cab.site_id],
                device: Some(device),
            });
        }
        let near = req.near.unwrap_or(Near { lat: 0.0, lon: 0.0 });
        if !(-90.0..=90.0).contains(&near.lat) || !(-180.0..=180.0).contains(&near.lon) {
            return Err(ServiceError::BadRequest(
                "near.lat must be -90..90 and near.lon -180..180".into(),
            ));
        }
        let mut sites = self.store.sites().await?;
        sites.sort_by(|a, b| {
            distance_m((near.lat, near.lon), (a.lat, a.lon))
                .total_cmp(&distance_m((near.lat, near.lon), (b.lat, b.lon)))
        });
        Ok(Placement {
            sites: sites.into_iter().map(|s| s.id).collect(),
            device: None,
        })
    }

    /// Cancels a reservation that has nothing in its box yet.
    pub async fn cancel(&self, id: &str, actor: &str) -> Result<ItemRow, ServiceError> {
        let Some(item) = self.store.item(id).await? else {
            return Err(ServiceError::NotFound(format!(
                "reservation {id:?} does not exist"
            )));
        };
        match self
            .store
            .trigger_item(
                id,
                Trigger::Cancel,
                actor,
                Some("cancelled"),
                crate::clock::now_ms(),
            )
            .await?
        {
            Some((_, effects)) => self.after(effects).await,
            None => {
                return Err(ServiceError::Conflict(format!(
                    "reservation {id} is {}; only reserved or awaiting_deposit ones can be cancelled",
                    item.state
                )));
            }
        }
        Ok(self.store.item(id).await?.unwrap_or(item))
    }

    /// Registers a member of staff; the credential is hashed here and never stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_staff(
        &self,
        id: &str,
        name: &str,
        site: Option<&str>,
        credential: &str,
        phone: Option<&str>,
        on_duty: bool,
        actor: &str,
    ) -> Result<StaffRow, ServiceError> {
        self.add_staff_at(
            id,
            name,
            site,
            credential,
            phone,
            on_duty,
            actor,
            crate::clock::now_ms(),
        )
        .await
    }

    /// [`Service::add_staff`] as if it were `now` (a history load).
    #[allow(clippy::too_many_arguments)]
    pub async fn add_staff_at(
        &self,
        id: &str,
        name: &str,
        site: Option<&str>,
        credential: &str,
        phone: Option<&str>,
        on_duty: bool,
        actor: &str,
        now: i64,
    ) -> Result<StaffRow, ServiceError> {
        StaffId::parse(id).map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        let phone = phone
            .map(check_phone)
            .transpose()
            .map_err(ServiceError::BadRequest)?;
        if on_duty && phone.is_none() {
            return Err(ServiceError::BadRequest(
                "on_duty staff need a phone for alarm notifications".into(),
            ));
        }
        code::check_staff_credential(credential)
            .map_err(|e| ServiceError::BadRequest(e.to_string()))?;
        if let Some(s) = site
            && self.store.site(s).await?.is_none()
        {
            return Err(ServiceError::NotFound(format!("site {s:?} does not exist")));
        }
        let mut salt = [0u8; 16];
        self.secrets.random(&mut salt)?;
        let hash = code::staff_hash(credential, &salt, code::STAFF_ITERATIONS);
        let row = StaffRow {
            id: id.to_owned(),
            name: name.to_owned(),
            site_id: site.map(str::to_owned),
            active: true,
            created_at: now,
            phone: phone.as_deref().map(mask_phone),
            on_duty,
        };
        if !self
            .store
            .insert_staff(
                &row,
                phone.as_deref(),
                &hex::encode(salt),
                &hash,
                code::STAFF_ITERATIONS,
                actor,
            )
            .await?
        {
            return Err(ServiceError::Conflict(format!(
                "staff id {id:?} exists; deactivate it first or choose another id"
            )));
        }
        self.resync_site(site).await?;
        Ok(row)
    }

    /// Sends every cabinet of a site (all for `None`) its code set again.
    pub async fn resync_site(&self, site: Option<&str>) -> Result<(), ServiceError> {
        let site = site.map(|s| vec![s.to_owned()]);
        for c in self.store.cabinets(site.as_deref()).await? {
            if let Ok(d) = DeviceId::parse(&c.id) {
                let _ = self.codes.send(d).await;
            }
        }
        Ok(())
    }

    /// Acts on what a transaction changed: code sets to send, notifications to wake.
    pub async fn after(&self, effects: Effects) {
        for d in effects.codes_changed {
            let _ = self.codes.send(d).await;
        }
        if effects.notify {
            self.notify.notify_one();
        }
    }

    fn end_of_local_day(&self, now: i64) -> i64 {
        self.start_of_local_day(now) + DAY_MS - 1
    }

    /// Local midnight (`utc_offset_minutes`) of the day `now` falls in.
    pub fn start_of_local_day(&self, now: i64) -> i64 {
        let offset = i64::from(self.settings.utc_offset_minutes) * 60_000;
        crate::store::usage::day_start(now, offset)
    }

    /// Expires and overdues items, flags late deposits and queues reminders; every 2 s.
    pub async fn sweep(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self
                .sweep_once(crate::clock::now_ms(), Presence::Live)
                .await
            {
                tracing::warn!(error = %e, "item sweep failed; retrying in 2 s");
            }
        }
    }

    pub async fn sweep_once(&self, now: i64, presence: Presence) -> Result<(), ServiceError> {
        let grace = self.settings.timeup_grace.as_millis() as i64;
        for item in self
            .store
            .items_timed_out(now, grace, 500, presence)
            .await?
        {
            let detail = match item.state {
                ItemState::Reserved if item.flow == Flow::Supplement => {
                    "supplement not dropped by its deadline"
                }
                ItemState::Reserved => "code not used in its window",
                ItemState::AwaitingDeposit => "never deposited within the pick-up window",
                _ => "not picked up in its window; staff must retrieve it",
            };
            if let Some((state, effects)) = self
                .store
                .trigger_item(&item.id, Trigger::TimeUp, "system", Some(detail), now)
                .await?
            {
                tracing::info!(item = %item.id, case = %mask_case(&item.case_number),
                    state = state.as_str(), "{detail}");
                if state == ItemState::Overdue {
                    self.metrics.items_overdue.inc();
                }
                self.after(effects).await;
            }
        }
        for item in self.store.flag_late_deposits(now).await? {
            tracing::warn!(item = %item.id, case = %mask_case(&item.case_number),
                site = %item.site_id, "pick-up not deposited on its day");
        }
        let before = self.settings.reminder_before.as_millis() as i64;
        let book = crate::sms_text::SmsBook::load(
            &self.store,
            self.settings.lang,
            self.settings.utc_offset_minutes,
        )
        .await?;
        let queued = self
            .store
            .queue_reminders(now, before, |i| {
                book.reminder(
                    &i.site_id,
                    &i.case_number,
                    &i.device_id,
                    i.box_no,
                    i.valid_until,
                )
                .body(&i.phone_full)
            })
            .await?;
        if queued > 0 {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Collection is overdue for documents dropped before this.
    pub fn collect_before(&self, now: i64) -> i64 {
        now - self.settings.collect_overdue.as_millis() as i64
    }
}

/// Sends each cabinet its code set: when it asks (connect), when it changes, and again
/// until the cabinet confirms the version with a `codes_applied` event.
///
/// Only reads: the sets are read on reader connections and the retransmission clock is kept
/// here, so a burst of reservations does not queue code sets on the writer behind ingest.
pub async fn sync_codes(
    service: Service,
    mut rx: mpsc::Receiver<DeviceId>,
    publisher: Publisher,
    online: Online,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    let mut resends = Resends::default();
    loop {
        let devices: Vec<DeviceId> = tokio::select! {
            _ = cancel.cancelled() => break,
            d = rx.recv() => match d {
                Some(d) => {
                    let mut v = vec![d];
                    while let Ok(more) = rx.try_recv() {
                        if !v.contains(&more) {
                            v.push(more);
                        }
                    }
                    v
                }
                None => break,
            },
            _ = tick.tick() => match service.store.codes_lagging().await {
                Ok(ids) => resends.due(
                    ids.iter().filter_map(|i| DeviceId::parse(i).ok()),
                    Instant::now(),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "reading lagging code versions failed");
                    Vec::new()
                }
            },
        };
        for device in devices {
            if !online.is_online(&device) {
                continue;
            }
            match send_codes(&service, &publisher, &device).await {
                Ok(true) => resends.sent(device, Instant::now()),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%device, error = %e, "sending code grants failed; retrying")
                }
            }
        }
    }
}

/// When each cabinet whose confirmation is outstanding was last sent its set. In memory: a
/// restarted server (or another replica) sends a lagging set once more, which a cabinet
/// ignores if it has it (versions only rise).
#[derive(Default)]
struct Resends {
    last: HashMap<DeviceId, Instant>,
}

impl Resends {
    fn sent(&mut self, device: DeviceId, now: Instant) {
        self.last.insert(device, now);
    }

    /// Of the cabinets still lagging, those not sent their set within [`CODES_RETRANSMIT`].
    /// Cabinets no longer lagging are forgotten, so the map holds only outstanding ones.
    fn due(&mut self, lagging: impl Iterator<Item = DeviceId>, now: Instant) -> Vec<DeviceId> {
        let lagging: HashSet<DeviceId> = lagging.collect();
        self.last.retain(|d, _| lagging.contains(d));
        let mut due: Vec<DeviceId> = lagging
            .into_iter()
            .filter(|d| {
                self.last
                    .get(d)
                    .is_none_or(|t| now.duration_since(*t) >= CODES_RETRANSMIT)
            })
            .collect();
        due.sort();
        due
    }
}

/// Publishes one cabinet's code set; false when it is not a cabinet (nothing to verify).
async fn send_codes(
    service: &Service,
    publisher: &Publisher,
    device: &DeviceId,
) -> Result<bool, StoreError> {
    let Some(m) = service.store.code_material(device).await? else {
        return Ok(false);
    };
    let msg = CodeSync {
        v: protocol::PROTOCOL_VERSION,
        version: m.version.max(0) as u64,
        key: service.secrets.cabinet_key(device).to_hex(),
        grants: m.grants,
        staff: m.staff,
        report_since: m.report_since,
    };
    publisher.publish(device, Channel::Codes, protocol::encode(&msg));
    service.metrics.code_syncs.inc();
    Ok(true)
}

/// The first of `candidates` that none of the cabinet's `live` grants accepts. A cabinet
/// tries a typed code against every grant and opens the first that accepts it, so two grants
/// accepting one code would let one citizen open the other's box (or find their own code
/// refused as used). Across cabinets equal digits do no harm: each grant is bound to its own.
fn distinct_code(
    candidates: &[String],
    key: &code::CabinetKey,
    device: &DeviceId,
    live: &[CodeGrant],
) -> Option<usize> {
    candidates.iter().position(|c| {
        !live
            .iter()
            .any(|g| code::verify_code(key, &code::Binding::of_grant(device, g), c, &g.tag))
    })
}

fn placement_name(req: &ReservationRequest) -> String {
    match (&req.site_id, &req.device_id, &req.near) {
        (Some(s), _, _) => format!("site {s}"),
        (_, Some(d), _) => format!("cabinet {d}"),
        (_, _, Some(n)) => format!("any site near ({}, {})", n.lat, n.lon),
        _ => "the requested place".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{CODES_RETRANSMIT, Resends, distinct_code};
    use protocol::{BoxNo, CodeGrant, DeviceId, ItemId, code};
    use std::time::{Duration, Instant};

    #[test]
    fn a_new_code_differs_from_every_live_code_of_its_cabinet() {
        let device = DeviceId::parse("cab-1").expect("id");
        let key = code::CabinetKey::derive(b"master secret of this test", &device);
        let grant = |item: &str, box_no: u16, code: &str| {
            let mut g = CodeGrant {
                tag: String::new(),
                item: ItemId::parse(item).expect("item"),
                box_no: BoxNo::new(box_no).expect("box"),
                not_before: 0,
                not_after: 1_000,
                needs_deposit: false,
                pickup: false,
            };
            g.tag = code::code_tag(&key, &code::Binding::of_grant(&device, &g), code);
            g
        };
        let live = [grant("i1", 1, "11112222"), grant("i2", 2, "33334444")];
        let draws = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            distinct_code(&draws(&["33334444", "55556666"]), &key, &device, &live),
            Some(1),
            "the first draw opens item i2's box"
        );
        assert_eq!(
            distinct_code(&draws(&["55556666", "11112222"]), &key, &device, &live),
            Some(0)
        );
        assert_eq!(
            distinct_code(&draws(&["11112222", "33334444"]), &key, &device, &live),
            None
        );
        // The same digits on another cabinet are another credential.
        let other = DeviceId::parse("cab-2").expect("id");
        let other_key = code::CabinetKey::derive(b"master secret of this test", &other);
        assert_eq!(
            distinct_code(&draws(&["11112222"]), &other_key, &other, &live),
            Some(0)
        );
    }

    fn ids(v: &[&str]) -> Vec<DeviceId> {
        v.iter().map(|s| DeviceId::parse(s).expect("id")).collect()
    }

    #[test]
    fn a_lagging_code_set_is_resent_once_per_interval_until_confirmed() {
        let t0 = Instant::now();
        let mut r = Resends::default();
        r.sent(ids(&["cab-a"])[0].clone(), t0);
        let lagging = || ids(&["cab-b", "cab-a"]).into_iter();
        assert_eq!(r.due(lagging(), t0), ids(&["cab-b"]), "never sent: due now");
        let almost = t0 + CODES_RETRANSMIT - Duration::from_millis(1);
        assert_eq!(r.due(lagging(), almost), ids(&["cab-b"]));
        assert_eq!(
            r.due(lagging(), t0 + CODES_RETRANSMIT),
            ids(&["cab-a", "cab-b"])
        );
        // Confirmed (no longer lagging): forgotten, so a later lag counts as never sent.
        assert!(r.due(std::iter::empty(), t0).is_empty());
        assert!(r.last.is_empty());
        assert_eq!(r.due(ids(&["cab-a"]).into_iter(), t0), ids(&["cab-a"]));
    }
}
