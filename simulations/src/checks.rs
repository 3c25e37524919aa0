//! What a simulator run recorded, and the invariants checked against the server at its end:
//! every event stored exactly once, every command resolved, every code used at most once, an
//! alarm for every injected fault. A broken one fails the run.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::api::ApiClient;

/// A remote open the simulator asked for, with its outcome.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CommandRecord {
    pub id: String,
    pub device: String,
    pub box_no: u16,
    pub status: String,
    pub round_trip_ms: f64,
    /// The API call answered (command created and sent), as the client saw it.
    pub answered_ms: f64,
    /// The server's steps, from its timestamps (ms): created → sent, sent → delivered,
    /// delivered → finished; where the tail of a slow open was.
    pub steps_ms: Option<[i64; 3]>,
    /// The cabinet stayed connected from the call to the outcome (no drop, no restart).
    pub cabinet_online: bool,
}

impl CommandRecord {
    /// The server's step times from a command as the API returned it.
    pub(crate) fn steps(command: &Value) -> Option<[i64; 3]> {
        let at = |k: &str| command[k].as_i64();
        let (c, s, d, f) = (
            at("created_at")?,
            at("sent_at")?,
            at("delivered_at")?,
            at("finished_at")?,
        );
        Some([s - c, d - s, f - d])
    }
}

/// A fault the simulator injected, and the alarm it must raise (if the fault is long enough
/// to be one).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Injected {
    pub kind: String,
    pub device: String,
    pub box_no: Option<u16>,
    /// Wall clock, epoch ms.
    pub at_ms: i64,
    pub expect_alarm: Option<String>,
}

/// Counters and records of a run, filled by the simulated people, staff and faults.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Ledger {
    pub reserved: u64,
    /// Reservations refused for want of a free box (unmet demand).
    pub refused: u64,
    pub no_shows: u64,
    /// People who could not open their box within ten simulated minutes.
    pub gave_up: u64,
    pub wrong_codes: u64,
    pub replays: u64,
    pub deposited: u64,
    pub collected: u64,
    /// Staff card entries refused, by reason (a locked keypad, a box emptied meanwhile).
    pub staff_refused: BTreeMap<String, u64>,
    /// Completed visits per flow.
    pub done: BTreeMap<String, u64>,
    /// Opens per item's code (must never exceed one), by item id: the same digits may be
    /// issued for two items (on different cabinets), each a credential of its own.
    #[serde(skip)]
    pub uses: HashMap<String, u32>,
    pub commands: Vec<CommandRecord>,
    /// Reservation answered → the cabinet's code book accepts the code, ms (drop-offs and
    /// supplements; a pick-up's code waits for the deposit), the cabinet online throughout.
    pub code_ready_ms: Vec<f64>,
    /// The same for cabinets offline or reconnecting for part of the wait.
    pub code_ready_reconnecting_ms: Vec<f64>,
    pub command_errors: Vec<String>,
    pub injected: Vec<Injected>,
    /// Broken rules seen on the spot (a wrong code opening a box, a used code accepted).
    pub violations: Vec<String>,
    /// API answers outside the documented ones.
    pub errors: Vec<String>,
}

/// One sample of the run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    pub real_s: f64,
    pub sim_s: f64,
    /// Events recorded by all agents so far.
    pub recorded: u64,
    /// ... of which the server receipted (stored).
    pub receipted: u64,
    /// Occupancy per site (overview), in scenario order.
    pub occupancy: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    fn new(name: &str, problems: &[String], ok: String) -> Check {
        Check {
            name: name.to_owned(),
            passed: problems.is_empty(),
            detail: if problems.is_empty() {
                ok
            } else {
                let mut d = problems
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                if problems.len() > 5 {
                    d.push_str(&format!("; and {} more", problems.len() - 5));
                }
                d
            },
        }
    }

    pub(crate) fn failed(name: &str, detail: String) -> Check {
        Check {
            name: name.to_owned(),
            passed: false,
            detail,
        }
    }
}

/// The stored sequence numbers of a device must be exactly 1..=last: a gap is a lost event,
/// a repeat a duplicate, anything past `last` an event the agent never recorded.
pub(crate) fn sequence_problem(device: &str, last: u64, seqs: &[i64]) -> Option<String> {
    let mut expected = 1i64;
    for &s in seqs {
        if s < expected {
            return Some(format!("{device}: seq {s} stored twice"));
        }
        if s > expected {
            return Some(format!(
                "{device}: events {expected}..{} missing (lost)",
                s - 1
            ));
        }
        expected += 1;
    }
    let stored = expected - 1;
    match stored.cmp(&(last as i64)) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Less => Some(format!(
            "{device}: {stored} of {last} recorded events stored"
        )),
        std::cmp::Ordering::Greater => Some(format!(
            "{device}: {stored} events stored but the agent recorded {last}"
        )),
    }
}

/// Whether `alarms` (of the injected fault's device and kind) hold one raised for it.
pub(crate) fn alarm_for(inj: &Injected, alarms: &[Value], slack_ms: i64) -> bool {
    alarms.iter().any(|a| {
        let box_ok = match inj.box_no {
            Some(b) => a["box"].as_u64() == Some(u64::from(b)),
            None => a["box"].is_null(),
        };
        box_ok
            && a["last_seen"]
                .as_i64()
                .is_some_and(|t| t >= inj.at_ms - slack_ms)
    })
}

const TERMINAL: [&str; 5] = ["opened", "already_open", "jammed", "failed", "expired"];

/// Runs every check. `totals` is (device, last seq recorded, highest receipted) per device.
pub(crate) async fn run_all(
    api: &ApiClient,
    ledger: &Ledger,
    totals: &[(String, u64, u64)],
) -> Vec<Check> {
    let mut out = Vec::new();

    let mut problems = Vec::new();
    let mut events = 0u64;
    for (device, last, receipted) in totals {
        if receipted < last {
            problems.push(format!("{device}: receipted up to {receipted} of {last}"));
        }
        let mut seqs = Vec::new();
        let mut after = 0i64;
        loop {
            match api
                .get(&format!(
                    "/api/v1/devices/{device}/events?after={after}&limit=10000"
                ))
                .await
            {
                Ok(v) => {
                    let page: Vec<i64> = v["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e["seq"].as_i64())
                        .collect();
                    let Some(&next) = page.last() else { break };
                    let full = page.len() == 10_000;
                    seqs.extend(page);
                    after = next;
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    problems.push(format!("{device}: reading its events: {e:#}"));
                    break;
                }
            }
        }
        events += seqs.len() as u64;
        problems.extend(sequence_problem(device, *last, &seqs));
    }
    out.push(Check::new(
        "every event stored exactly once",
        &problems,
        format!(
            "{events} events of {} devices, each stored once, none missing",
            totals.len()
        ),
    ));

    let mut problems = ledger.command_errors.clone();
    for c in &ledger.commands {
        match api.get(&format!("/api/v1/commands/{}", c.id)).await {
            Ok(v) if TERMINAL.contains(&v["status"].as_str().unwrap_or_default()) => {}
            Ok(v) => problems.push(format!("command {} still {}", c.id, v["status"])),
            Err(e) => problems.push(format!("command {}: {e:#}", c.id)),
        }
    }
    out.push(Check::new(
        "every command resolved",
        &problems,
        format!(
            "{} remote opens, each with an outcome",
            ledger.commands.len()
        ),
    ));

    let mut problems: Vec<String> = ledger
        .uses
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(item, n)| format!("the code of item {item} opened {n} times"))
        .collect();
    problems.extend(ledger.violations.iter().cloned());
    out.push(Check::new(
        "every code used at most once",
        &problems,
        format!(
            "{} codes used once; {} replays and {} wrong codes refused",
            ledger.uses.len(),
            ledger.replays,
            ledger.wrong_codes
        ),
    ));

    let mut problems = Vec::new();
    let mut cache: HashMap<(String, String), Vec<Value>> = HashMap::new();
    let mut judged = 0;
    for inj in &ledger.injected {
        let Some(kind) = &inj.expect_alarm else {
            continue;
        };
        judged += 1;
        let key = (inj.device.clone(), kind.clone());
        if !cache.contains_key(&key) {
            let path = format!(
                "/api/v1/alarms?state=all&device={}&kind={kind}&limit=10000",
                inj.device
            );
            let alarms = match api.get(&path).await {
                Ok(v) => v["alarms"].as_array().cloned().unwrap_or_default(),
                Err(e) => {
                    problems.push(format!("{path}: {e:#}"));
                    Vec::new()
                }
            };
            cache.insert(key.clone(), alarms);
        }
        if !alarm_for(inj, &cache[&key], 5_000) {
            problems.push(format!(
                "{} on {}{} at {}: no {kind} alarm",
                inj.kind,
                inj.device,
                inj.box_no.map(|b| format!(" box {b}")).unwrap_or_default(),
                inj.at_ms
            ));
        }
    }
    out.push(Check::new(
        "an alarm for every injected fault",
        &problems,
        format!(
            "{judged} faults long enough to alarm, each raised one ({} shorter or restarts)",
            ledger.injected.len() - judged
        ),
    ));

    out.push(Check::new(
        "the API answered as documented",
        &ledger.errors,
        "no unexpected answers".into(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sequences_must_be_exactly_one_to_last() {
        assert_eq!(sequence_problem("d", 3, &[1, 2, 3]), None);
        assert_eq!(sequence_problem("d", 0, &[]), None);
        assert!(
            sequence_problem("d", 3, &[1, 3])
                .expect("gap")
                .contains("2..2 missing")
        );
        assert!(
            sequence_problem("d", 3, &[1, 1, 2, 3])
                .expect("dup")
                .contains("twice")
        );
        assert!(
            sequence_problem("d", 3, &[1, 2])
                .expect("short")
                .contains("2 of 3")
        );
        assert!(
            sequence_problem("d", 2, &[1, 2, 3])
                .expect("extra")
                .contains("recorded 2")
        );
    }

    #[test]
    fn an_alarm_matches_its_box_and_time() {
        let inj = Injected {
            kind: "jam".into(),
            device: "d".into(),
            box_no: Some(4),
            at_ms: 10_000,
            expect_alarm: Some("lock_jam".into()),
        };
        let a = |b: Value, t: i64| json!({"box": b, "last_seen": t});
        assert!(alarm_for(&inj, &[a(json!(4), 10_500)], 1_000));
        assert!(
            !alarm_for(&inj, &[a(json!(5), 10_500)], 1_000),
            "another box"
        );
        assert!(
            !alarm_for(&inj, &[a(json!(4), 8_000)], 1_000),
            "an older alarm"
        );
        assert!(
            !alarm_for(&inj, &[a(Value::Null, 10_500)], 1_000),
            "the device's"
        );
        let dev = Injected {
            box_no: None,
            ..inj
        };
        assert!(alarm_for(&dev, &[a(Value::Null, 10_500)], 1_000));
    }
}
