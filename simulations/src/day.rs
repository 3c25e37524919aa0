//! A day at the lockers, for the demo: sites, cabinets and staff are configured through the
//! API, the "service platform" reserves boxes, simulated citizens type their codes at the
//! cabinets' keypads, and helpers work their collect and deposit lists with their cards.
//!
//! Everything goes through the real paths: HTTP API, MQTT over TLS, the agents' code books.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use device_agent::LockDriver;
use rand::Rng;
use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiClient;
use crate::fleet::{Fleet, FleetSpec};
use crate::layout::{Layout, site_id, staff_card};

/// What happened so far, for the status line.
#[derive(Debug, Default)]
pub(crate) struct DayStats {
    pub reserved: AtomicU64,
    pub refused: AtomicU64,
    pub dropped: AtomicU64,
    pub collected: AtomicU64,
    pub deposited: AtomicU64,
    pub picked_up: AtomicU64,
    pub wrong_codes: AtomicU64,
    pub helped: AtomicU64,
}

impl DayStats {
    pub(crate) fn line(&self, lang: l10n::Lang) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        l10n::t!(
            lang,
            "demo-day",
            reserved = g(&self.reserved),
            refused = g(&self.refused),
            dropped = g(&self.dropped),
            collected = g(&self.collected),
            deposited = g(&self.deposited),
            picked_up = g(&self.picked_up),
            wrong = g(&self.wrong_codes),
            helped = g(&self.helped)
        )
    }
}

/// Configures sites, cabinets (box sizes S/M/L, two accessible boxes each), station devices
/// and one helper per site through the API; returns a token with the platform role. Safe to
/// repeat on a reused data dir (and after the history wrote the same layout).
pub(crate) async fn configure(api: &ApiClient, layout: &Layout) -> anyhow::Result<ApiClient> {
    for site in &layout.sites {
        let (s, r) = api
            .send(
                Method::PUT,
                &format!("/api/v1/sites/{}", site.id),
                &site.body(),
            )
            .await?;
        anyhow::ensure!(s < 300, "configuring site {}: {s} {r}", site.id);
    }
    for h in &layout.helpers {
        let (s, r) = api.send(Method::POST, "/api/v1/staff", &h.body()).await?;
        anyhow::ensure!(s < 300 || s == 409, "adding staff {}: {s} {r}", h.id);
    }
    for c in &layout.cabinets {
        let (s, r) = api
            .send(
                Method::PUT,
                &format!("/api/v1/cabinets/{}", c.id),
                &c.body(),
            )
            .await?;
        anyhow::ensure!(s < 300, "configuring cabinet {}: {s} {r}", c.id);
    }
    // Station devices belong to their site too (no boxes), so their alarms reach its staff.
    for (id, site) in &layout.stations {
        let (s, r) = api
            .send(
                Method::PUT,
                &format!("/api/v1/cabinets/{id}"),
                &json!({"site_id": site_id(*site), "name": id.as_str(), "boxes": []}),
            )
            .await?;
        anyhow::ensure!(s < 300, "configuring station {id}: {s} {r}");
    }
    let (s, r) = api
        .send(
            Method::POST,
            "/api/v1/tokens",
            &json!({"name": "demo-platform", "role": "platform"}),
        )
        .await?;
    anyhow::ensure!(s < 300, "creating the platform token: {s} {r}");
    Ok(api.with_token(r["token"].as_str().context("token in answer")?))
}

/// Runs the day until cancelled: `per_minute` reservations across the fleet (Poisson), a
/// person behind each, and helpers sweeping their lists every `staff_every`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    admin: ApiClient,
    platform: ApiClient,
    fleet: Arc<Fleet>,
    spec: FleetSpec,
    per_minute: f64,
    stats: Arc<DayStats>,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    let index: Arc<HashMap<String, usize>> = Arc::new(
        fleet
            .cabinets
            .iter()
            .enumerate()
            .map(|(i, c)| (c.agent.id.to_string(), i))
            .collect(),
    );
    let admin_for_desk = admin.clone();
    let t = tracker.clone();
    let (f, s, c, p, idx) = (
        fleet.clone(),
        stats.clone(),
        cancel.clone(),
        platform.clone(),
        index.clone(),
    );
    tracker.spawn(async move {
        if per_minute <= 0.0 {
            return;
        }
        loop {
            let wait = {
                let u: f64 = rand::thread_rng().gen_range(f64::EPSILON..1.0);
                Duration::from_secs_f64(-u.ln() * 60.0 / per_minute)
            };
            tokio::select! {
                _ = c.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            let site = rand::thread_rng().gen_range(1..=spec.sites);
            let person = citizen(
                p.clone(),
                admin.clone(),
                f.clone(),
                idx.clone(),
                s.clone(),
                site,
                c.clone(),
            );
            t.spawn(person);
        }
    });
    tracker.spawn(mischief(fleet.clone(), cancel.clone()));
    tracker.spawn(wear(fleet.clone(), cancel.clone()));
    tracker.spawn(night_desk(admin_for_desk, cancel.clone()));
    for site in 1..=spec.sites {
        tracker.spawn(helper(
            platform.clone(),
            fleet.clone(),
            index.clone(),
            stats.clone(),
            site,
            cancel.clone(),
        ));
    }
}

async fn pause(cancel: &CancellationToken, lo: f64, hi: f64) -> bool {
    let d = Duration::from_secs_f64(rand::thread_rng().gen_range(lo..hi));
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// One applicant: a reservation, then the walk to the cabinet and the code at its keypad.
async fn citizen(
    platform: ApiClient,
    admin: ApiClient,
    fleet: Arc<Fleet>,
    index: Arc<HashMap<String, usize>>,
    stats: Arc<DayStats>,
    site: usize,
    cancel: CancellationToken,
) {
    let (flow, size, case, phone) = {
        let mut rng = rand::thread_rng();
        let roll: f64 = rng.r#gen();
        let flow = if roll < 0.45 {
            "dropoff"
        } else if roll < 0.85 {
            "pickup"
        } else {
            "supplement"
        };
        let size = ["S", "S", "S", "M", "M", "L"][rng.gen_range(0..6)];
        (
            flow,
            size,
            format!("GZ2026-{:06}", rng.gen_range(0..1_000_000)),
            format!("138{:08}", rng.gen_range(0..100_000_000)),
        )
    };
    let now = fleet_server::now_ms();
    let mut body = json!({"flow": flow, "case_number": case, "phone": phone,
                          "site_id": site_id(site), "size": size});
    if flow == "supplement" {
        body["deadline"] = json!(now + 10 * 60_000);
    }
    let Ok((status, r)) = platform
        .send(Method::POST, "/api/v1/reservations", &body)
        .await
    else {
        return;
    };
    if status == 409 {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if status != 201 {
        tracing::warn!(status, answer = %r, "demo reservation refused");
        return;
    }
    stats.reserved.fetch_add(1, Ordering::Relaxed);
    let (Some(id), Some(code), Some(device), Some(b)) = (
        r["reservation_id"].as_str(),
        r["code"].as_str(),
        r["device_id"].as_str(),
        r["box"].as_u64(),
    ) else {
        return;
    };
    let Some(cab) = index.get(device).and_then(|i| fleet.cabinets.get(*i)) else {
        return;
    };
    let Ok(box_no) = protocol::BoxNo::new(b as u16) else {
        return;
    };
    if flow == "pickup" {
        // Wait for the helper's deposit (the SMS), then come by.
        loop {
            if !pause(&cancel, 2.0, 4.0).await {
                return;
            }
            match platform.get(&format!("/api/v1/items/{id}")).await {
                Ok(v) if v["item"]["state"] == json!("in_box") => break,
                Ok(v) if v["item"]["state"] != json!("awaiting_deposit") => return,
                _ => {}
            }
        }
    }
    if !pause(&cancel, 3.0, 30.0).await {
        return;
    }
    // Now and then a typo first.
    if rand::thread_rng().gen_bool(0.1) {
        let typo: String = code.chars().rev().collect();
        let _ = cab.keys.code(&typo).await;
        stats.wrong_codes.fetch_add(1, Ordering::Relaxed);
    }
    let Some(outcome) = cab.keys.code(code).await else {
        return;
    };
    match serde_json::to_value(&outcome).unwrap_or_default() {
        v if v["outcome"] == json!("opened") => {
            let placing = flow != "pickup";
            let _ = cab.locks.set_occupied(box_no, placing);
            let counter = if placing {
                &stats.dropped
            } else {
                &stats.picked_up
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if v["status"] == json!("jammed") {
                // Stuck at the locker at night: the operator opens it remotely.
                let _ = admin
                    .open_and_wait(
                        device,
                        b as u16,
                        "demo: the door stuck after a valid code",
                        Duration::from_secs(40),
                    )
                    .await;
                stats.helped.fetch_add(1, Ordering::Relaxed);
            }
        }
        v => tracing::info!(outcome = %v, "demo citizen refused at the keypad"),
    }
}

/// Overdue pick-ups a helper takes back to the window per round: the rest wait for the next
/// (the round's time goes to the collect and deposit lists first), so overdue items stay on
/// the operators' list for a while, as they do in a service hall.
const OVERDUE_PER_ROUND: usize = 2;

/// One helper per site: collects dropped documents and deposits results from the lists.
async fn helper(
    api: ApiClient,
    fleet: Arc<Fleet>,
    index: Arc<HashMap<String, usize>>,
    stats: Arc<DayStats>,
    site: usize,
    cancel: CancellationToken,
) {
    let card = staff_card(site);
    loop {
        if !pause(&cancel, 15.0, 25.0).await {
            return;
        }
        for (list, placing, counter) in [
            ("collect", false, &stats.collected),
            ("deposit", true, &stats.deposited),
            ("overdue", false, &stats.collected),
        ] {
            let Ok(v) = api
                .get(&format!("/api/v1/worklists/{list}?site={}", site_id(site)))
                .await
            else {
                continue;
            };
            let mut retrieved = 0;
            for item in v["items"].as_array().cloned().unwrap_or_default() {
                // Only an overdue pick-up is in a box to retrieve; an overdue supplement never
                // reached one.
                if list == "overdue"
                    && (item["state"] != json!("overdue")
                        || item["flow"] != json!("pickup")
                        || retrieved == OVERDUE_PER_ROUND)
                {
                    continue;
                }
                let (Some(device), Some(b)) = (item["device_id"].as_str(), item["box"].as_u64())
                else {
                    continue;
                };
                let Some(cab) = index.get(device).and_then(|i| fleet.cabinets.get(*i)) else {
                    continue;
                };
                let Ok(box_no) = protocol::BoxNo::new(b as u16) else {
                    continue;
                };
                if let Some(o) = cab.keys.staff(&card, b as u16).await
                    && matches!(o, device_agent::EntryOutcome::Opened { .. })
                {
                    let _ = cab.locks.set_occupied(box_no, placing);
                    counter.fetch_add(1, Ordering::Relaxed);
                    retrieved += usize::from(list == "overdue");
                }
            }
        }
    }
}

/// Faults at a realistic rate: about every half minute somewhere a door is pulled open
/// without a code (forced open); most are shut within seconds, some stay open past the
/// left-open alarm time. Jammed locks come from the fleet's jam rate.
async fn mischief(fleet: Arc<Fleet>, cancel: CancellationToken) {
    loop {
        if !pause(&cancel, 15.0, 45.0).await {
            return;
        }
        let (cab, b, left_open) = {
            let mut rng = rand::thread_rng();
            let cab = rng.gen_range(0..fleet.cabinets.len());
            let boxes = fleet.cabinets[cab].locks.boxes();
            (cab, rng.gen_range(1..=boxes), rng.gen_bool(0.15))
        };
        let Ok(box_no) = protocol::BoxNo::new(b) else {
            continue;
        };
        let locks = &fleet.cabinets[cab].locks;
        if locks.open_by_hand(box_no).is_err() {
            continue;
        }
        let (lo, hi) = if left_open {
            (130.0, 180.0)
        } else {
            (2.0, 20.0)
        };
        if !pause(&cancel, lo, hi).await {
            return;
        }
        let _ = locks.close(box_no);
    }
}

/// Wear and weather: now and then a station's paper runs low or out or jams, a printer's
/// toner runs low, a cabinet's mains drops for a while or its lock bus glitches; each is put
/// right after a while (a helper refills, the power returns).
async fn wear(fleet: Arc<Fleet>, cancel: CancellationToken) {
    loop {
        if !pause(&cancel, 30.0, 90.0).await {
            return;
        }
        let (pick, station, cabinet, fix_after) = {
            let mut rng = rand::thread_rng();
            (
                rng.gen_range(0..6u8),
                (!fleet.stations.is_empty()).then(|| rng.gen_range(0..fleet.stations.len())),
                rng.gen_range(0..fleet.cabinets.len().max(1)),
                rng.gen_range(20.0..120.0),
            )
        };
        // A lock-bus glitch is short: while it lasts nobody can open a box there.
        let fix_after = if pick == 5 {
            fix_after / 8.0
        } else {
            fix_after
        };
        let station = station.map(|i| fleet.stations[i].locks.clone());
        let cabinet = fleet.cabinets.get(cabinet).map(|c| c.locks.clone());
        type Fix = Box<dyn FnOnce() + Send>;
        let fix: Option<Fix> = match (pick, station, cabinet) {
            (0, Some(s), _) => {
                let _ = s.set_station(|st| st.paper = protocol::Level::Low);
                Some(Box::new(move || {
                    let _ = s.set_station(|st| st.paper = protocol::Level::Ok);
                }))
            }
            (1, Some(s), _) => {
                let _ = s.set_station(|st| st.paper = protocol::Level::Out);
                Some(Box::new(move || {
                    let _ = s.set_station(|st| st.paper = protocol::Level::Ok);
                }))
            }
            (2, Some(s), _) => {
                let _ = s.set_station(|st| st.paper_jam = true);
                Some(Box::new(move || {
                    let _ = s.set_station(|st| st.paper_jam = false);
                }))
            }
            (3, Some(s), _) => {
                // Only printers have toner; the others refuse quietly.
                let _ = s.set_station(|st| {
                    if st.toner != protocol::Level::Absent {
                        st.toner = protocol::Level::Low;
                    }
                });
                Some(Box::new(move || {
                    let _ = s.set_station(|st| {
                        if st.toner != protocol::Level::Absent {
                            st.toner = protocol::Level::Ok;
                        }
                    });
                }))
            }
            (4, _, Some(c)) => {
                c.set_on_battery(true);
                Some(Box::new(move || c.set_on_battery(false)))
            }
            (5, _, Some(c)) => {
                c.set_bus_down(true);
                Some(Box::new(move || c.set_bus_down(false)))
            }
            _ => None,
        };
        if let Some(fix) = fix {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs_f64(fix_after)) => {}
                }
                fix();
            });
        }
    }
}

/// The night desk acknowledges the oldest active alarm now and then.
async fn night_desk(admin: ApiClient, cancel: CancellationToken) {
    loop {
        if !pause(&cancel, 20.0, 40.0).await {
            return;
        }
        let Ok(v) = admin.get("/api/v1/alarms?state=active&limit=100").await else {
            continue;
        };
        let Some(id) = v["alarms"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|a| a["id"].as_str())
        else {
            continue;
        };
        let _ = admin
            .send(
                Method::POST,
                &format!("/api/v1/alarms/{id}/ack"),
                &json!({"note": "demo night desk: looking into it"}),
            )
            .await;
    }
}
