//! A scenario and a seed become a plan: every person, staff round and fault with its
//! simulated time, drawn up front from one seeded generator, so the same seed gives the
//! same run (what the server answers, such as which box, is the server's business).

use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::scenario::{FlowKind, Scenario};

/// One person using a flow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Person {
    pub flow: FlowKind,
    pub site: usize,
    pub size: &'static str,
    /// Seconds from the reservation to the cabinet (drop-off, supplement).
    pub walk_s: f64,
    /// Pick-ups: seconds from the deposit until the person comes.
    pub dwell_s: f64,
    /// Supplements: seconds from the request to its deadline.
    pub deadline_s: f64,
    /// Never comes.
    pub no_show: bool,
    /// Types a wrong code first.
    pub wrong_code: bool,
    /// Types the used code again afterwards.
    pub replay: bool,
    /// The lock jams on this open.
    pub jam: bool,
    /// Leaves the door open this long, seconds.
    pub left_open_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum Action {
    Arrival(Person),
    StaffRound {
        site: usize,
    },
    ForcedOpen {
        cabinet: usize,
        box_no: u16,
        open_s: f64,
    },
    NetworkDrop {
        cabinet: usize,
        secs: f64,
    },
    PowerLoss {
        cabinet: usize,
        secs: f64,
    },
    AgentRestart {
        cabinet: usize,
    },
    RemoteOpen {
        cabinet: usize,
        box_no: u16,
    },
}

impl Action {
    /// Every label, in the order reports list them.
    pub(crate) const LABELS: [&'static str; 7] = [
        "arrival",
        "staff_round",
        "forced_open",
        "network_drop",
        "power_loss",
        "agent_restart",
        "remote_open",
    ];

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Action::Arrival(_) => "arrival",
            Action::StaffRound { .. } => "staff_round",
            Action::ForcedOpen { .. } => "forced_open",
            Action::NetworkDrop { .. } => "network_drop",
            Action::PowerLoss { .. } => "power_loss",
            Action::AgentRestart { .. } => "agent_restart",
            Action::RemoteOpen { .. } => "remote_open",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Planned {
    /// Simulated seconds from the start of the run.
    pub at_s: f64,
    #[serde(flatten)]
    pub what: Action,
}

/// One cabinet of the fleet: its site and its place there.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CabinetSlot {
    pub id: String,
    pub site: usize,
    pub boxes: u16,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    pub seed: u64,
    pub duration_s: f64,
    pub cabinets: Vec<CabinetSlot>,
    /// Station devices and their site.
    pub stations: Vec<(String, usize)>,
    pub actions: Vec<Planned>,
    /// SHA-256 of the plan: equal seeds give equal digests.
    pub digest: String,
}

impl Plan {
    pub(crate) fn count(&self, label: &str) -> usize {
        self.actions
            .iter()
            .filter(|a| a.what.label() == label)
            .count()
    }
}

pub(crate) fn cabinet_id(site: &str, n: usize) -> String {
    format!("{site}-cab-{:02}", n + 1)
}

pub(crate) fn station_id(site: &str, n: usize) -> String {
    format!("{site}-stn-{:02}", n + 1)
}

/// Arrival times of a Poisson process over `[0, duration_s)` whose rate per hour follows
/// `rate_at(local hour)`; the rate changes on the hour, and exponential gaps restart at each
/// hour boundary (the process is memoryless, so this is exact).
fn poisson_times(
    rng: &mut impl Rng,
    start_hour: f64,
    duration_s: f64,
    rate_at: impl Fn(usize) -> f64,
) -> Vec<f64> {
    let mut out = Vec::new();
    let mut t = 0.0;
    while t < duration_s {
        let clock_s = start_hour * 3600.0 + t;
        let hour = (clock_s / 3600.0).floor();
        let segment_end = ((hour + 1.0) * 3600.0 - start_hour * 3600.0).min(duration_s);
        let rate = rate_at(hour as usize % 24) / 3600.0;
        if rate > 0.0 {
            let mut at = t;
            loop {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                at += -u.ln() / rate;
                if at >= segment_end {
                    break;
                }
                out.push(at);
            }
        }
        t = segment_end;
    }
    out
}

fn pick_size(rng: &mut impl Rng, shares: &std::collections::BTreeMap<String, f64>) -> &'static str {
    let total: f64 = shares.values().sum();
    if shares.is_empty() || total <= 0.0 {
        return "S";
    }
    let mut roll = rng.gen_range(0.0..total);
    for (size, share) in shares {
        if roll < *share {
            return match size.as_str() {
                "M" => "M",
                "L" => "L",
                _ => "S",
            };
        }
        roll -= share;
    }
    "S"
}

/// Draws the whole run from `seed`. `duration_s` (simulated) overrides the scenario's.
pub(crate) fn plan(s: &Scenario, seed: u64, duration_s: f64) -> Plan {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cabinets = Vec::new();
    let mut stations = Vec::new();
    for (i, site) in s.sites.iter().enumerate() {
        for n in 0..site.cabinets {
            cabinets.push(CabinetSlot {
                id: cabinet_id(&site.id, n),
                site: i,
                boxes: site.boxes_per_cabinet(),
            });
        }
        for n in 0..site.stations {
            stations.push((station_id(&site.id, n), i));
        }
    }
    let mut actions = Vec::new();
    let f = &s.faults;
    for kind in FlowKind::ALL {
        let Some(flow) = s.flows.get(kind) else {
            continue;
        };
        for (i, site) in s.sites.iter().enumerate() {
            let scale = site.rate_scale(kind);
            for at_s in poisson_times(&mut rng, s.start_hour, duration_s, |h| {
                flow.per_hour[h] * scale
            }) {
                let person = Person {
                    flow: kind,
                    site: i,
                    size: pick_size(&mut rng, &flow.sizes),
                    walk_s: s.timers.walk_min.sample(&mut rng) * 60.0,
                    dwell_s: flow
                        .dwell_min
                        .as_ref()
                        .map(|d| d.sample(&mut rng) * 60.0)
                        .unwrap_or(0.0),
                    deadline_s: flow.deadline_min.unwrap_or(0.0) * 60.0,
                    no_show: rng.gen_bool(flow.no_show),
                    wrong_code: rng.gen_bool(f.wrong_code_per_person),
                    replay: rng.gen_bool(f.replay_per_person),
                    jam: rng.gen_bool(f.jam_per_open),
                    left_open_s: rng
                        .gen_bool(f.left_open_per_open)
                        .then(|| f.left_open_min.sample(&mut rng) * 60.0),
                };
                actions.push(Planned {
                    at_s,
                    what: Action::Arrival(person),
                });
            }
        }
    }
    // Staff rounds at the given local hours of every simulated day.
    for (i, _) in s.sites.iter().enumerate() {
        for day in 0..=((s.start_hour * 3600.0 + duration_s) / 86_400.0) as usize {
            for hour in &s.staff.rounds {
                let at_s = day as f64 * 86_400.0 + hour * 3600.0 - s.start_hour * 3600.0;
                if (0.0..duration_s).contains(&at_s) {
                    actions.push(Planned {
                        at_s,
                        what: Action::StaffRound { site: i },
                    });
                }
            }
        }
    }
    for (c, slot) in cabinets.iter().enumerate() {
        let flat = |rate: f64, rng: &mut rand::rngs::StdRng| {
            poisson_times(rng, s.start_hour, duration_s, |_| rate)
        };
        for at_s in flat(f.forced_open_per_hour, &mut rng) {
            let box_no = rng.gen_range(1..=slot.boxes);
            let open_s = rng.gen_range(5.0..40.0);
            actions.push(Planned {
                at_s,
                what: Action::ForcedOpen {
                    cabinet: c,
                    box_no,
                    open_s,
                },
            });
        }
        for at_s in flat(f.network_drop_per_hour, &mut rng) {
            let secs = f.network_drop_min.sample(&mut rng) * 60.0;
            actions.push(Planned {
                at_s,
                what: Action::NetworkDrop { cabinet: c, secs },
            });
        }
        for at_s in flat(f.power_loss_per_hour, &mut rng) {
            let secs = f.power_loss_min.sample(&mut rng) * 60.0;
            actions.push(Planned {
                at_s,
                what: Action::PowerLoss { cabinet: c, secs },
            });
        }
        for at_s in flat(f.agent_restart_per_hour, &mut rng) {
            actions.push(Planned {
                at_s,
                what: Action::AgentRestart { cabinet: c },
            });
        }
        for at_s in flat(f.remote_open_per_hour, &mut rng) {
            let box_no = rng.gen_range(1..=slot.boxes);
            actions.push(Planned {
                at_s,
                what: Action::RemoteOpen { cabinet: c, box_no },
            });
        }
    }
    actions.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let mut plan = Plan {
        seed,
        duration_s,
        cabinets,
        stations,
        actions,
        digest: String::new(),
    };
    let bytes = serde_json::to_vec(&plan).unwrap_or_default();
    plan.digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/document.toml"),
        )
        .expect("document scenario");
        Scenario::parse(&text, "document.toml").expect("valid")
    }

    #[test]
    fn the_same_seed_gives_the_same_plan() {
        let s = scenario();
        let d = s.duration_hours * 3600.0;
        let a = plan(&s, 7, d);
        let b = plan(&s, 7, d);
        let c = plan(&s, 8, d);
        assert_eq!(a.actions, b.actions);
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
        assert!(a.actions.windows(2).all(|w| w[0].at_s <= w[1].at_s));
        assert!(a.actions.iter().all(|p| (0.0..d).contains(&p.at_s)));
    }

    #[test]
    fn arrivals_follow_the_hourly_rates() {
        // 200 days of one hour at 30/h and one at 0/h: the mean lands near 30 and the quiet
        // hour stays empty.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut counts = [0usize; 2];
        for _ in 0..200 {
            for t in poisson_times(&mut rng, 9.0, 7200.0, |h| if h == 9 { 30.0 } else { 0.0 }) {
                counts[(t / 3600.0) as usize] += 1;
            }
        }
        let mean = counts[0] as f64 / 200.0;
        assert!((27.0..33.0).contains(&mean), "mean {mean}");
        assert_eq!(counts[1], 0);
    }

    #[test]
    fn staff_rounds_fall_on_their_hours() {
        let mut s = scenario();
        s.start_hour = 6.0;
        s.staff.rounds = vec![8.0, 20.0];
        let p = plan(&s, 1, 30.0 * 3600.0);
        let rounds: Vec<f64> = p
            .actions
            .iter()
            .filter(|a| matches!(a.what, Action::StaffRound { site: 0 }))
            .map(|a| a.at_s / 3600.0)
            .collect();
        assert_eq!(rounds, vec![2.0, 14.0, 26.0]);
    }
}
