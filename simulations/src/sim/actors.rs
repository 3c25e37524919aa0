//! The run's actors: citizens with their codes, staff rounds, remote opens and injected
//! faults, each acting on the world at its simulated time.

use api_types::items::ReservationRequest;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device_agent::EntryOutcome;
use protocol::{AckStatus, BoxNo, RejectReason};
use reqwest::Method;

use super::world::World;
use crate::checks::CommandRecord;
use crate::scenario::FlowKind;
use crate::schedule::{Action, Person};

pub(super) async fn act(w: Arc<World>, n: usize, what: Action) {
    match what {
        Action::Arrival(p) => person(&w, n, p).await,
        Action::StaffRound { site } => staff_round(&w, site).await,
        Action::ForcedOpen {
            cabinet,
            box_no,
            open_s,
        } => {
            let d = &w.devices[cabinet];
            let Ok(b) = BoxNo::new(box_no) else { return };
            // Only a shut door nobody is using can be forced.
            if !w.busy(cabinet, box_no, true) {
                return;
            }
            // Reading the door must not touch it: a door a helper just opened closes by itself.
            let open = device_agent::LockDriver::door_open(&*d.locks, b)
                .await
                .unwrap_or(true);
            if open || d.locks.open_by_hand(b).is_err() {
                w.busy(cabinet, box_no, false);
                return;
            }
            w.inject("forced_open", cabinet, Some(box_no), Some("forced_open"));
            // Long enough for the agent's poll to see it, whatever the acceleration.
            let held = w.clock.real(open_s).max(Duration::from_millis(400));
            tokio::time::sleep(held).await;
            let _ = d.locks.close(b);
            w.busy(cabinet, box_no, false);
        }
        Action::NetworkDrop { cabinet, secs } => {
            let d = &w.devices[cabinet];
            if d.link.is_down() {
                return;
            }
            let real = w.clock.real(secs);
            // A drop near the grace could go either way: only clearly longer ones must alarm.
            let alarm = if real.as_secs_f64() > w.offline_grace_real + 2.0 {
                Some("device_offline")
            } else {
                None
            };
            let noted = w.inject("network_drop", cabinet, None, alarm);
            d.link.set_down(true);
            let began = std::time::Instant::now();
            let whole = w.clock.sleep_real(real).await;
            d.link.set_down(false);
            // The run's end cut it short (the last drops of a run): judged by how long it
            // really lasted, as any drop is.
            if !whole && began.elapsed().as_secs_f64() <= w.offline_grace_real + 2.0 {
                w.ledger().injected[noted].expect_alarm = None;
            }
            tracing::debug!(
                cabinet,
                cut_so_far = d.link.cut_connections(),
                "network back"
            );
        }
        Action::PowerLoss { cabinet, secs } => {
            let d = &w.devices[cabinet];
            d.locks.set_on_battery(true);
            w.inject("power_loss", cabinet, None, Some("on_battery"));
            tokio::time::sleep(w.clock.real(secs).max(Duration::from_millis(500))).await;
            d.locks.set_on_battery(false);
        }
        Action::AgentRestart { cabinet } => {
            let d = &w.devices[cabinet];
            let Some(old) = d.live.write().await.take() else {
                return;
            };
            w.inject("agent_restart", cabinet, None, None);
            old.agent.shutdown().await;
            tokio::time::sleep(w.clock.real(5.0)).await;
            match d.start_agent(&w.agents_cancel).await {
                Ok(l) => *d.live.write().await = Some(l),
                Err(e) => w
                    .ledger()
                    .errors
                    .push(format!("restarting {}: {e:#}", d.id)),
            }
        }
        Action::RemoteOpen { cabinet, box_no } => {
            if !w.busy(cabinet, box_no, true) {
                return;
            }
            remote_open(
                &w,
                cabinet,
                box_no,
                "simulated hotline: caller at the cabinet",
            )
            .await;
            w.busy(cabinet, box_no, false);
        }
    }
}

/// The night desk opens a box and waits for the outcome; the command is recorded.
pub(super) async fn remote_open(
    w: &World,
    device: usize,
    box_no: u16,
    reason: &str,
) -> Option<String> {
    let d = &w.devices[device];
    let id = d.id.to_string();
    let session = d.session().await;
    match w
        .admin
        .open_and_wait(&id, box_no, reason, Duration::from_secs(30))
        .await
    {
        Ok(o) => {
            let cabinet_online = d.stayed_online(session).await;
            w.ledger().commands.push(CommandRecord {
                id: o.command_id.clone(),
                device: id,
                box_no,
                status: o.status.clone(),
                round_trip_ms: o.round_trip.as_secs_f64() * 1000.0,
                answered_ms: o.answered.as_secs_f64() * 1000.0,
                steps_ms: CommandRecord::steps(&o.command),
                cabinet_online,
            });
            Some(o.status)
        }
        Err(e) => {
            let mut l = w.ledger();
            l.command_errors.push(format!("{id} box {box_no}: {e:#}"));
            None
        }
    }
}

/// A code that is not this one: every digit moved by one.
pub(super) fn wrong_code(code: &str) -> String {
    code.chars()
        .map(|c| {
            c.to_digit(10)
                .map_or(c, |d| char::from(b'0' + ((d + 1) % 10) as u8))
        })
        .collect()
}

pub(super) async fn person(w: &World, n: usize, p: Person) {
    let now = fleet_server::now_ms();
    let body = ReservationRequest {
        flow: p.flow.name().to_owned(),
        case_number: format!("SIM-{}-{n}", w.plan.seed),
        phone: format!("138{:08}", n % 100_000_000),
        site_id: Some(w.site_id(p.site).to_owned()),
        size: Some(p.size.to_owned()),
        idempotency_key: Some(format!(
            "sim-{}-{}-{n}",
            w.plan.digest.get(..12).unwrap_or(""),
            w.plan.seed
        )),
        deadline: (p.flow == FlowKind::Supplement)
            .then(|| now + w.clock.real(p.deadline_s).as_millis() as i64),
        ..ReservationRequest::default()
    };
    let answer = w
        .platform
        .send(Method::POST, "/api/v1/reservations", &body)
        .await;
    let r = match answer {
        Ok((201, r)) => r,
        Ok((409, _)) => {
            w.ledger().refused += 1;
            return;
        }
        Ok((status, r)) => {
            w.ledger()
                .errors
                .push(format!("reservation answered {status}: {r}"));
            return;
        }
        Err(e) => {
            w.ledger().errors.push(format!("reservation: {e:#}"));
            return;
        }
    };
    w.ledger().reserved += 1;
    let (Some(item), Some(code), Some(device), Some(b)) = (
        r["reservation_id"].as_str(),
        r["code"].as_str(),
        r["device_id"]
            .as_str()
            .and_then(|d| w.by_id.get(d).copied()),
        r["box"].as_u64().map(|b| b as u16),
    ) else {
        w.ledger().errors.push(format!(
            "reservation answer without id, code, device or box: {r}"
        ));
        return;
    };
    if p.flow != FlowKind::Pickup {
        // How long until the cabinet's own code book accepts the new code; a cabinet offline
        // (a network drop, a restart) for part of the wait is counted apart: its code waits
        // on the reconnection, not on the server.
        let d = &w.devices[device];
        let t0 = Instant::now();
        let session = d.session().await;
        while !d.verifies(code).await && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if d.verifies(code).await {
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            let online = d.stayed_online(session).await;
            let mut l = w.ledger();
            if online {
                l.code_ready_ms.push(ms);
            } else {
                l.code_ready_reconnecting_ms.push(ms);
            }
        }
    }
    if p.no_show {
        w.ledger().no_shows += 1;
        return;
    }
    if p.flow == FlowKind::Pickup {
        // Comes once staff have deposited the licence (see staff_round).
        w.pickups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(item.to_owned(), (p, code.to_owned()));
        return;
    }
    if !w.clock.sleep(p.walk_s).await {
        return;
    }
    visit(w, &p, item, code, device, b, true).await;
}

/// The person at the keypad: maybe a wrong code first, their code (retried while the cabinet
/// has not got it yet), the box used, the door shut (or left open), maybe the code again.
/// Opens are counted per item: two items may be given the same digits (on different
/// cabinets), and each of them may open once.
pub(super) async fn visit(
    w: &World,
    p: &Person,
    item: &str,
    code: &str,
    device: usize,
    b: u16,
    placing: bool,
) {
    let d = &w.devices[device];
    let Ok(box_no) = BoxNo::new(b) else { return };
    w.busy(device, b, true);
    if p.wrong_code {
        let wrong = wrong_code(code);
        if let Some(keys) = d.keys(&w.clock).await {
            let outcome = keys.code(&wrong).await;
            let mut l = w.ledger();
            l.wrong_codes += 1;
            if matches!(outcome, Some(EntryOutcome::Opened { .. })) {
                l.violations
                    .push(format!("wrong code {wrong} opened a box of {}", d.id));
            }
        }
    }
    let mut jam_armed = !p.jam;
    // A person tries for up to ten simulated minutes (at least five real seconds): a
    // cabinet offline since the reservation does not know the code yet, a locked keypad
    // opens again. While the cabinet does not know the code they wait instead of typing it
    // again and again: at high acceleration the milliseconds a code set takes to arrive are
    // simulated minutes, and repeated refusals would lock the keypad for everyone.
    let mut opened = None;
    let give_up = Instant::now() + w.clock.real(600.0).max(Duration::from_secs(5));
    let retry = w.clock.real(30.0).max(Duration::from_millis(200));
    while opened.is_none() {
        let Some(keys) = d.keys(&w.clock).await else {
            break;
        };
        let known = d.verifies(code).await;
        if !known && Instant::now() < give_up {
            if !w.clock.sleep_real(Duration::from_millis(20)).await {
                break;
            }
            continue;
        }
        if !jam_armed && known {
            // The jam is armed only for a pulse this code will cause.
            let _ = d.locks.jam_next(box_no);
            jam_armed = true;
        }
        match keys.code(code).await {
            Some(EntryOutcome::Opened {
                box_no: got,
                status,
            }) => {
                let mut l = w.ledger();
                *l.uses.entry(item.to_owned()).or_default() += 1;
                if got != box_no {
                    l.violations
                        .push(format!("code for box {b} of {} opened box {got}", d.id));
                }
                opened = Some(status);
            }
            Some(EntryOutcome::Rejected {
                reason: RejectReason::Used,
            }) => {
                w.ledger()
                    .violations
                    .push(format!("a fresh code of {} was refused as used", d.id));
                break;
            }
            Some(
                EntryOutcome::Rejected { .. }
                | EntryOutcome::LockedOut { .. }
                | EntryOutcome::Noted,
            )
            | None => {
                if Instant::now() > give_up || !w.clock.sleep_real(retry).await {
                    w.ledger().gave_up += 1;
                    break;
                }
            }
        }
    }
    let Some(status) = opened else {
        w.busy(device, b, false);
        return;
    };
    if status == AckStatus::Jammed {
        w.inject("jam", device, Some(b), Some("lock_jam"));
        // The person calls the hotline; the operator opens the box remotely.
        remote_open(w, device, b, "simulated: lock jammed after a valid code").await;
    }
    let _ = d.locks.set_occupied(box_no, placing);
    if let Some(left) = p.left_open_s
        && d.locks.hold_open(box_no).unwrap_or(false)
    {
        let real = w.clock.real(left);
        // Only a door clearly open past the agent's alarm time must alarm.
        let alarm = (real.as_secs_f64() > w.door_alarm_real + 1.0).then_some("door_left_open");
        w.inject("door_left_open", device, Some(b), alarm);
        tokio::time::sleep(real).await;
        let _ = d.locks.close(box_no);
    }
    {
        let mut l = w.ledger();
        *l.done.entry(p.flow.name().to_owned()).or_default() += 1;
    }
    if p.replay {
        w.clock.sleep(60.0).await;
        if let Some(keys) = d.keys(&w.clock).await {
            let outcome = keys.code(code).await;
            let mut l = w.ledger();
            l.replays += 1;
            if matches!(outcome, Some(EntryOutcome::Opened { .. })) {
                *l.uses.entry(item.to_owned()).or_default() += 1;
            }
        }
    }
    w.busy(device, b, false);
}

/// The site's helper works the collect list (documents dropped, supplements) and the deposit
/// list (licences for pick-up) with their card, box by box.
pub(super) async fn staff_round(w: &Arc<World>, site: usize) {
    let card = w.staff_card(site);
    for (list, placing) in [("collect", false), ("deposit", true)] {
        let items = match w
            .platform
            .get(&format!(
                "/api/v1/worklists/{list}?site={}",
                w.site_id(site)
            ))
            .await
        {
            Ok(v) => v["items"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                w.ledger().errors.push(format!("worklist {list}: {e:#}"));
                continue;
            }
        };
        for item in items {
            let (Some(id), Some(device), Some(b)) = (
                item["id"].as_str(),
                item["device_id"]
                    .as_str()
                    .and_then(|d| w.by_id.get(d).copied()),
                item["box"].as_u64().map(|b| b as u16),
            ) else {
                continue;
            };
            let Ok(box_no) = BoxNo::new(b) else { continue };
            let d = &w.devices[device];
            let Some(keys) = d.keys(&w.clock).await else {
                return;
            };
            match keys.staff(&card, b).await {
                Some(EntryOutcome::Opened { .. }) => {
                    let _ = d.locks.set_occupied(box_no, placing);
                    let mut l = w.ledger();
                    if placing {
                        l.deposited += 1;
                    } else {
                        l.collected += 1;
                    }
                }
                other => {
                    let why = match other {
                        Some(EntryOutcome::Rejected { reason }) => reason.as_str().to_owned(),
                        Some(EntryOutcome::LockedOut { .. }) => "locked_out".to_owned(),
                        Some(EntryOutcome::Opened { .. } | EntryOutcome::Noted) | None => {
                            "agent stopped".to_owned()
                        }
                    };
                    *w.ledger().staff_refused.entry(why).or_default() += 1;
                    continue;
                }
            }
            if placing {
                let waiting = w
                    .pickups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                if let Some((p, code)) = waiting {
                    // The SMS goes out; the person comes after their dwell time, as a task of
                    // its own while the helper moves on.
                    let w2 = w.clone();
                    let item = id.to_owned();
                    w.tasks.spawn(async move {
                        if w2.clock.sleep(p.dwell_s).await {
                            visit(&w2, &p, &item, &code, device, b, false).await;
                        }
                    });
                }
            }
            // The helper shuts the door before the next box.
            w.clock.sleep(w.scenario.timers.door_close_s).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_typo_is_a_code_of_the_same_length_that_differs_in_every_digit() {
        let typo = super::wrong_code("048219");
        assert_eq!(typo, "159320");
        assert_eq!(typo.len(), 6);
        assert_ne!(super::wrong_code("9"), "9");
    }
}
