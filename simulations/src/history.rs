//! The demo's past: the last N days of its fleet, drawn by the simulator's own planner
//! (`schedule::plan`: arrivals by the hour, walks, dwell times, no-shows, staff rounds) and
//! written through the server's service layer at their own times before the server starts
//! (`fleet_server::backfill`), so the console opens on occupancy curves, a saturated hall,
//! overdue items and a plan from measured usage instead of zeros.
//!
//! Why not play the days through the agents: ADR 0015 (the platform keeps the wall clock).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use anyhow::Context;
use domain::flows::{Flow, ItemState, Size};
use fleet_server::ServerConfig;
use fleet_server::backfill::Backfill;
use fleet_server::service::{ReservationRequest, ServiceError};
use protocol::{AckStatus, BoxNo, DeviceId, EventBody, ItemId, RejectReason, StaffId};
use rand::{Rng, SeedableRng};

use crate::layout::{Layout, site_id};
use crate::scenario::{FaultRates, FlowKind, Flows, Scenario, SiteSpec, Staff, Timers};
use crate::schedule::{Action, Person};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The item sweep runs this often in history (every 2 s live): windows end at most this
/// late.
const SWEEP_EVERY_MS: i64 = 30 * MINUTE_MS;
/// A helper spends this long per box on a round.
const PER_BOX_MS: i64 = 20_000;
/// The reservations' author, as the demo's platform token is named.
const PLATFORM: &str = "demo-platform";

/// The people of a demo site with 100 boxes at load 1, hour by hour (local time, from
/// midnight), after the source document: drop-offs peak mid-morning and mid-afternoon with
/// some use at night; licences are booked for pick-up in office hours and their holders
/// come the next day more often than the same evening; supplements are due within the
/// working day.
const FLOWS: &str = r#"
[dropoff]
per_hour = [0.2,0.1,0.1,0.1,0.1,0.2,0.5,1.0,1.6,2.2,2.2,1.8,1.2,1.4,2.0,2.0,1.6,1.4,1.2,1.0,0.8,0.6,0.4,0.3]
sizes = { S = 0.7, M = 0.25, L = 0.05 }
no_show = 0.05

[supplement]
per_hour = [0,0,0,0,0,0,0,0.1,0.3,0.5,0.5,0.4,0.2,0.3,0.5,0.5,0.4,0.2,0.1,0,0,0,0,0]
deadline_min = 480
no_show = 0.15

[pickup]
per_hour = [0,0,0,0,0,0,0,0.6,2.4,4.0,4.4,4.0,2.0,2.8,4.0,4.4,3.6,2.0,0,0,0,0,0,0]
sizes = { S = 0.8, M = 0.2 }
dwell_min = { dist = "lognormal", median = 1200, sigma = 1.0 }
no_show = 0.04
"#;

/// How busy each site is, as a multiple of the flows above per 100 boxes: the first service
/// hall runs above the document's 80% (saturated, a case for a new cluster), the others
/// below it.
fn busyness(layout: &Layout, n: usize) -> f64 {
    match layout.sites.get(n - 1).map(|s| s.kind) {
        _ if n == 1 => 2.1,
        Some("service_hall") => 1.0,
        Some("enterprise_cluster") if n.is_multiple_of(2) => 0.8,
        Some("enterprise_cluster") => 0.6,
        _ => 0.4,
    }
}

/// The demo fleet as a simulator scenario: its sites, the flows above, helpers' rounds; no
/// faults (a history of items, not of alarms).
pub(crate) fn scenario(layout: &Layout, start_hour: f64) -> anyhow::Result<Scenario> {
    let flows: Flows = toml::from_str(FLOWS).context("the demo history's flows")?;
    let sites = layout
        .sites
        .iter()
        .map(|s| SiteSpec {
            id: s.id.clone(),
            kind: s.kind.to_owned(),
            name: Some(s.name.clone()),
            lat: s.lat,
            lon: s.lon,
            cabinets: 0,
            boxes: Default::default(),
            accessible: 0,
            stations: 0,
            demand: busyness(layout, s.n) * layout.boxes_at(s.n) as f64 / 100.0,
            flow_scale: Default::default(),
        })
        .collect();
    Ok(Scenario {
        name: "demo-history".into(),
        description: "The demo fleet's past days".into(),
        duration_hours: 0.0,
        acceleration: 1.0,
        start_hour,
        seed: 0,
        timers: Timers::default(),
        sites,
        flows,
        // Helpers look at their lists every hour of the office day, so a licence waits less
        // than an hour for its box.
        staff: Staff {
            rounds: (8..=18).map(f64::from).collect(),
        },
        faults: FaultRates {
            jam_per_open: 0.0,
            left_open_per_open: 0.0,
            forced_open_per_hour: 0.0,
            network_drop_per_hour: 0.0,
            power_loss_per_hour: 0.0,
            agent_restart_per_hour: 0.0,
            remote_open_per_hour: 0.0,
            replay_per_person: 0.0,
            ..FaultRates::default()
        },
    })
}

/// What a history load did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Where it started and ended (epoch ms); equal when there was nothing to add.
    pub from: i64,
    pub to: i64,
    pub reserved: u64,
    /// Reservations refused for want of a free box (unmet demand).
    pub refused: u64,
    pub codes_used: u64,
    pub wrong_codes: u64,
    pub staff_opens: u64,
    pub sms_sent: u64,
}

impl Summary {
    pub(crate) fn line(&self, lang: l10n::Lang) -> String {
        if self.from == self.to {
            return l10n::t!(lang, "demo-history-up-to-date");
        }
        l10n::t!(
            lang,
            "demo-history-done",
            days = format!("{:.1}", (self.to - self.from) as f64 / DAY_MS as f64),
            reserved = self.reserved,
            refused = self.refused,
            codes = self.codes_used,
            wrong = self.wrong_codes,
            staff = self.staff_opens
        )
    }
}

/// A citizen coming to the keypad with their code.
#[derive(Debug, Clone)]
struct Visit {
    item: ItemId,
    device: DeviceId,
    box_no: BoxNo,
    valid_until: i64,
    wrong_code: bool,
}

/// A pick-up's holder, known once the licence is in the box.
#[derive(Debug, Clone, Copy)]
struct Holder {
    dwell_ms: i64,
    no_show: bool,
    wrong_code: bool,
}

#[derive(Debug, Clone)]
enum Ev {
    Arrival(Person),
    Visit(Visit),
    /// A helper's round at a site (1-based).
    Round(usize),
    StaffOpen {
        site: usize,
        device: DeviceId,
        box_no: BoxNo,
        item: String,
    },
    Sweep,
}

/// One thing at one time; ties in the order they were planned.
struct At {
    at: i64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for At {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for At {}
impl PartialOrd for At {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for At {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The day's events in time order.
#[derive(Default)]
struct Agenda {
    heap: BinaryHeap<Reverse<At>>,
    seq: u64,
}

impl Agenda {
    fn push(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse(At {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn pop_until(&mut self, end: i64) -> Option<(i64, Ev)> {
        if self.heap.peek().is_some_and(|Reverse(a)| a.at < end) {
            return self.heap.pop().map(|Reverse(a)| (a.at, a.ev));
        }
        None
    }
}

/// Told how far the load has come: simulated ms done of the total.
pub(crate) trait Progress: Send + Sync {
    fn at(&self, done_ms: i64, total_ms: i64, summary: &Summary);
}

impl Progress for () {
    fn at(&self, _: i64, _: i64, _: &Summary) {}
}

/// Writes the last `days` days (up to `now`) of `layout` into the database of `cfg`, or the
/// days since its latest activity when it has some (a reused data dir): the layout first
/// (as of the first day, so its boxes count in the usage rate from then on), then everyone
/// of the plan drawn from `seed`. Runs before the server starts on that database.
///
/// It runs on a thread of its own pinned to one CPU, with the database's connection threads
/// (which it starts, so they inherit the pinning): every statement is a hand-off to such a
/// thread, and on one CPU a hand-off is a cheap switch instead of a wake-up across CPUs
/// (BENCHMARKS.md, "Demo history": 1.7× faster on this 2-core machine). `pin: false`
/// leaves it free to move (`fleet-sim bench history --unpinned` measures the difference).
pub(crate) async fn load(
    cfg: ServerConfig,
    layout: Layout,
    days: u32,
    seed: u64,
    now: i64,
    progress: std::sync::Arc<dyn Progress>,
    pin: bool,
) -> anyhow::Result<Summary> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("history".into())
        .spawn(move || {
            if pin {
                pin_to_this_cpu();
            }
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("a runtime for the history")
                .and_then(|rt| {
                    rt.block_on(async {
                        let db = Backfill::open(&cfg)
                            .await
                            .context("opening the demo's database for its history")?;
                        let result = play(&db, &layout, days, seed, now, &*progress).await;
                        db.close().await;
                        result
                    })
                });
            let _ = tx.send(result);
        })
        .context("starting the history's thread")?;
    rx.await
        .context("the history's thread ended without an answer")?
}

/// Keeps the calling thread (and the threads it starts) on the CPU it runs on now. Best
/// effort: where it is refused, the history is only slower.
fn pin_to_this_cpu() {
    use rustix::thread::{CpuSet, sched_getcpu, sched_setaffinity};
    let mut one = CpuSet::new();
    one.set(sched_getcpu());
    if let Err(e) = sched_setaffinity(None, &one) {
        tracing::debug!(error = %e, "history thread not pinned to one CPU");
    }
}

async fn play(
    db: &Backfill,
    layout: &Layout,
    days: u32,
    seed: u64,
    now: i64,
    progress: &dyn Progress,
) -> anyhow::Result<Summary> {
    let first_day = db.start_of_local_day(now - i64::from(days) * DAY_MS);
    let latest = db.store().latest_item_activity().await?;
    let from = latest.map_or(first_day, |l| (l + 1).max(first_day));
    let mut summary = Summary {
        from: now,
        to: now,
        ..Summary::default()
    };
    if days == 0 || now - from < HOUR_MS {
        return Ok(summary);
    }
    summary.from = from;
    configure(db, layout, first_day).await?;

    let start_hour = (from - db.start_of_local_day(from)) as f64 / HOUR_MS as f64;
    let scenario = scenario(layout, start_hour)?;
    // Drawn to the end of today, played up to now: the past days are the same whenever the
    // demo starts (on a new data dir, `from` is a midnight), only today is cut at the present.
    let end_of_today = db.start_of_local_day(now) + DAY_MS;
    let plan = crate::schedule::plan(&scenario, seed, ((end_of_today - from) / 1000) as f64);
    let mut agenda = Agenda::default();
    for p in plan.actions {
        let at = from + (p.at_s * 1000.0) as i64;
        match p.what {
            Action::Arrival(person) => agenda.push(at, Ev::Arrival(person)),
            Action::StaffRound { site } => agenda.push(at, Ev::Round(site + 1)),
            _ => {}
        }
    }
    let mut t = from + SWEEP_EVERY_MS;
    while t < now {
        agenda.push(t, Ev::Sweep);
        t += SWEEP_EVERY_MS;
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut holders: HashMap<String, Holder> = HashMap::new();
    // Items a helper is on the way to: a later round does not list them twice.
    let mut pending: HashSet<String> = HashSet::new();
    // The local day of each site's last overdue round: helpers take overdue pick-ups back
    // to the window on their first round of a day.
    let mut overdue_day: HashMap<usize, i64> = HashMap::new();
    let mut shown = from;
    while let Some((at, ev)) = agenda.pop_until(now) {
        match ev {
            Ev::Arrival(p) => {
                arrive(
                    db,
                    layout,
                    &p,
                    at,
                    &mut rng,
                    &mut agenda,
                    &mut holders,
                    &mut summary,
                )
                .await?
            }
            Ev::Visit(v) => {
                if v.wrong_code {
                    let typo = EventBody::CodeRejected {
                        reason: RejectReason::Unknown,
                        item: None,
                    };
                    db.keypad(&v.device, &typo, at).await?;
                    summary.wrong_codes += 1;
                }
                let at = at + if v.wrong_code { 15_000 } else { 0 };
                let entry = if at > v.valid_until {
                    // Came after the code's window: the cabinet refuses it.
                    EventBody::CodeRejected {
                        reason: RejectReason::Expired,
                        item: Some(v.item),
                    }
                } else {
                    summary.codes_used += 1;
                    EventBody::CodeUsed {
                        item: v.item,
                        box_no: v.box_no,
                        status: AckStatus::Opened,
                    }
                };
                db.keypad(&v.device, &entry, at).await?;
            }
            Ev::Round(site) => {
                let day = db.start_of_local_day(at);
                let overdue = overdue_day.insert(site, day) != Some(day);
                round(db, site, at, overdue, &mut agenda, &mut pending).await?
            }
            Ev::StaffOpen {
                site,
                device,
                box_no,
                item,
            } => {
                pending.remove(&item);
                // The item may have moved since the round listed it (its window ended).
                let Some(listed) = db.store().item(&item).await? else {
                    continue;
                };
                if !matches!(
                    listed.state.as_str(),
                    "in_box" | "awaiting_deposit" | "overdue"
                ) {
                    continue;
                }
                let card = EventBody::StaffOpen {
                    staff: StaffId::parse(&format!("helper-{site}"))
                        .context("demo staff ids are valid")?,
                    box_no,
                    status: AckStatus::Opened,
                };
                db.keypad(&device, &card, at).await?;
                summary.staff_opens += 1;
                // A licence just deposited: its holder comes after their dwell.
                if listed.state == ItemState::AwaitingDeposit
                    && let Some(h) = holders.remove(&item)
                    && !h.no_show
                {
                    agenda.push(
                        at + h.dwell_ms,
                        Ev::Visit(Visit {
                            item: ItemId::parse(&item).context("stored item ids are valid")?,
                            device,
                            box_no,
                            valid_until: listed.valid_until,
                            wrong_code: h.wrong_code,
                        }),
                    );
                }
            }
            Ev::Sweep => {
                db.sweep(at).await?;
                if (at - from) % DAY_MS < SWEEP_EVERY_MS {
                    db.checkpoint().await?;
                }
            }
        }
        if at - shown >= HOUR_MS {
            shown = at;
            progress.at(at - from, now - from, &summary);
        }
    }
    db.sweep(now).await?;
    summary.sms_sent = db.deliver_notifications(now).await?;
    progress.at(now - from, now - from, &summary);
    Ok(summary)
}

/// The layout as of `at`: what exists already is left alone.
async fn configure(db: &Backfill, layout: &Layout, at: i64) -> anyhow::Result<()> {
    for s in &layout.sites {
        let row = fleet_server::store::SiteRow {
            id: s.id.clone(),
            lang: s.lang,
            time_zone: None,
            kind: domain::flows::SiteKind::parse(s.kind).ok_or_else(|| {
                anyhow::anyhow!("layout site {} has unknown kind {}", s.id, s.kind)
            })?,
            name: s.name.clone(),
            address: s.address.clone(),
            lat: s.lat,
            lon: s.lon,
            created_at: at,
            updated_at: at,
        };
        db.site(&row, at).await?;
    }
    for h in &layout.helpers {
        db.staff(
            &h.id,
            &h.name,
            Some(&site_id(h.site)),
            &h.card,
            Some(&h.phone),
            true,
            at,
        )
        .await?;
    }
    for c in &layout.cabinets {
        let boxes: Vec<(BoxNo, Size, bool)> = c
            .boxes
            .iter()
            .filter_map(|(b, size, accessible)| Some((*b, Size::parse(size)?, *accessible)))
            .collect();
        db.cabinet(&c.id, &site_id(c.site), c.id.as_str(), &boxes, at)
            .await?;
    }
    for (id, site) in &layout.stations {
        db.cabinet(id, &site_id(*site), id.as_str(), &[], at)
            .await?;
    }
    Ok(())
}

/// A reservation by the service platform for `p`; drop-offs and supplements come to the
/// cabinet after their walk, pick-ups wait for a helper's deposit.
#[allow(clippy::too_many_arguments)]
async fn arrive(
    db: &Backfill,
    layout: &Layout,
    p: &Person,
    at: i64,
    rng: &mut impl Rng,
    agenda: &mut Agenda,
    holders: &mut HashMap<String, Holder>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let site = layout
        .sites
        .get(p.site)
        .context("the plan's sites are the layout's")?;
    let req = ReservationRequest {
        flow: p.flow.name().into(),
        case_number: format!("GZ2026-{:06}", rng.gen_range(0..1_000_000)),
        phone: format!("138{:08}", rng.gen_range(0..100_000_000)),
        site_id: Some(site.id.clone()),
        device_id: None,
        near: None,
        size: Some(p.size.into()),
        accessible: false,
        valid_from: None,
        valid_until: None,
        deadline: (p.flow == FlowKind::Supplement).then(|| at + (p.deadline_s * 1000.0) as i64),
        idempotency_key: None,
        lang: None,
    };
    let r = match db.reserve(req, PLATFORM, at).await {
        Ok(r) => r,
        Err(ServiceError::NoFreeBox { .. }) => {
            summary.refused += 1;
            return Ok(());
        }
        Err(e) => return Err(e).context("a reservation of the demo's history"),
    };
    summary.reserved += 1;
    let item = ItemId::parse(&r.reservation_id).context("reservation ids are item ids")?;
    let device = DeviceId::parse(&r.item.device_id).context("stored device ids are valid")?;
    let box_no = u16::try_from(r.item.box_no)
        .ok()
        .and_then(|b| BoxNo::new(b).ok())
        .context("stored box numbers are valid")?;
    match p.flow {
        FlowKind::Pickup => {
            holders.insert(
                r.reservation_id,
                Holder {
                    dwell_ms: (p.dwell_s * 1000.0) as i64,
                    no_show: p.no_show,
                    wrong_code: p.wrong_code,
                },
            );
        }
        FlowKind::Dropoff | FlowKind::Supplement if !p.no_show => agenda.push(
            at + (p.walk_s * 1000.0) as i64,
            Ev::Visit(Visit {
                item,
                device,
                box_no,
                valid_until: r.item.valid_until,
                wrong_code: p.wrong_code,
            }),
        ),
        _ => {}
    }
    Ok(())
}

/// A helper's round at `site`: what waits to be collected and deposited (and on the day's
/// first round, overdue pick-ups), one box after another.
async fn round(
    db: &Backfill,
    site: usize,
    at: i64,
    overdue: bool,
    agenda: &mut Agenda,
    pending: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let sites = [site_id(site)];
    let store = db.store();
    let mut items = store.worklist_collect(Some(&sites)).await?;
    items.extend(store.worklist_deposit(Some(&sites)).await?);
    if overdue {
        items.extend(
            store
                .worklist_overdue(Some(&sites), at - DAY_MS)
                .await?
                .into_iter()
                .filter(|i| i.state == ItemState::Overdue && i.flow == Flow::Pickup),
        );
    }
    let mut k = 0;
    for i in items {
        if !pending.insert(i.id.clone()) {
            continue;
        }
        let (Ok(device), Some(box_no)) = (
            DeviceId::parse(&i.device_id),
            u16::try_from(i.box_no)
                .ok()
                .and_then(|b| BoxNo::new(b).ok()),
        ) else {
            continue;
        };
        agenda.push(
            at + k * PER_BOX_MS,
            Ev::StaffOpen {
                site,
                device,
                box_no,
                item: i.id,
            },
        );
        k += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fleet_server::store::Store;
    use fleet_server::store::usage::{Bucket, Scope, UsageQuery};

    use super::*;
    use crate::fleet::FleetSpec;

    /// 2026-11-20 09:30 UTC: a fixed present, so the plan (drawn relative to it) is too.
    const NOW: i64 = 1_795_685_400_000;

    fn small() -> Layout {
        Layout::of(&FleetSpec {
            sites: 2,
            cabinets: 4,
            boxes: 24,
            ..FleetSpec::default()
        })
    }

    fn config(dir: &std::path::Path) -> ServerConfig {
        ServerConfig {
            data_dir: dir.to_owned(),
            ..ServerConfig::default()
        }
    }

    async fn fleet_days(
        store: &Store,
        from: i64,
        to: i64,
    ) -> fleet_server::store::usage::UsageReport {
        store
            .usage(&UsageQuery {
                scope: Scope::Fleet,
                from,
                to,
                bucket: Bucket::Day,
                utc_offset_ms: 0,
                now: to,
            })
            .await
            .expect("usage")
    }

    #[tokio::test]
    async fn nine_days_of_a_small_fleet_read_as_lived() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path());
        let s = load(cfg.clone(), small(), 9, 7, NOW, Arc::new(()), true)
            .await
            .expect("history");
        assert!(
            s.reserved > 200 && s.codes_used > 100 && s.staff_opens > 100,
            "{s:?}"
        );
        assert!(
            s.sms_sent >= s.reserved,
            "every reservation's SMS went: {s:?}"
        );
        let first_day = NOW.div_euclid(DAY_MS) * DAY_MS - 9 * DAY_MS;
        assert_eq!((s.from, s.to), (first_day, NOW));

        let store = Store::connect(&cfg.database_url()).await.expect("store");
        // The hall is the busiest site and the cluster well below it, over the last week.
        let sat = store
            .saturation(NOW, 0, 0.8, 5, 7)
            .await
            .expect("saturation");
        let occupancy = |id: &str| {
            sat.iter()
                .find(|x| x.site_id == id)
                .map(|x| x.occupancy)
                .expect("site")
        };
        assert!(occupancy("site-1") > 0.75, "{sat:?}");
        assert!(occupancy("site-2") < 0.6, "{sat:?}");
        // Every day of it has figures; none is left to the live sweep or the SMS sender.
        let days = fleet_days(&store, first_day, first_day + 9 * DAY_MS).await;
        assert!(
            days.buckets.iter().all(|d| d.uses > 0 && d.occupancy > 0.0),
            "{days:?}"
        );
        assert!(
            store
                .due_notifications(NOW, 10)
                .await
                .expect("due")
                .is_empty()
        );
        assert!(
            store
                .items_timed_out(NOW, 60_000, 10, fleet_server::store::Presence::Assumed)
                .await
                .expect("timed out")
                .is_empty()
        );
        // Supplements nobody brought are overdue; pick-ups nobody came for went overdue
        // after their week and a helper took them back on a morning round.
        let overdue = store
            .items(None, Some("overdue"), None, 1000)
            .await
            .expect("overdue");
        assert!(
            overdue
                .iter()
                .filter(|i| i.flow == Flow::Supplement)
                .count()
                >= 2,
            "{overdue:?}"
        );
        let retrieved = store
            .items(None, Some("retrieved"), None, 1000)
            .await
            .expect("retrieved");
        assert!(
            retrieved.iter().all(|i| i.flow == Flow::Pickup
                && i.finished_by
                    .as_deref()
                    .is_some_and(|by| by.starts_with("staff:helper-"))),
            "{retrieved:?}"
        );
        assert!(retrieved.len() >= 2, "{retrieved:?}");
        // The rollups are what a rebuild from the items' history makes.
        store.rebuild_usage().await.expect("rebuild");
        assert_eq!(
            fleet_days(&store, first_day, first_day + 9 * DAY_MS).await,
            days
        );
        assert!(store.verify_audit().await.expect("audit").broken.is_none());
        store.close().await;
    }

    #[tokio::test]
    async fn the_same_seed_and_present_give_the_same_past_and_a_rerun_adds_only_the_gap() {
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let one = load(config(a.path()), small(), 2, 11, NOW, Arc::new(()), true)
            .await
            .expect("one");
        let two = load(config(b.path()), small(), 2, 11, NOW, Arc::new(()), true)
            .await
            .expect("two");
        assert_eq!(one, two);

        // The same data dir an hour and a half later: only what happened since is written.
        let later = NOW + 90 * 60_000;
        let gap = load(config(a.path()), small(), 2, 11, later, Arc::new(()), true)
            .await
            .expect("gap");
        assert!(gap.from > NOW - HOUR_MS && gap.to == later, "{gap:?}");
        assert!(gap.reserved < one.reserved / 4, "{gap:?} after {one:?}");
        // And a minute after that: nothing to add.
        let none = load(
            config(a.path()),
            small(),
            2,
            11,
            later + 60_000,
            Arc::new(()),
            true,
        )
        .await
        .expect("none");
        assert_eq!(none.from, none.to);
        assert_eq!(
            none.line(l10n::Lang::En),
            "history: up to date (the data dir has it already)"
        );
    }
}
