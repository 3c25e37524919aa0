//! Simulator scenarios: the TOML a planner or engineer writes to describe a fleet, the
//! people using it hour by hour, and the faults to inject. Loaded, checked and explained here;
//! `schedule` turns one into a seeded plan and `sim` runs it.

use std::collections::BTreeMap;
use std::path::Path;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// What went wrong with a scenario file, in words that say what to change.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario {path} is not valid TOML for a scenario: {message}")]
    Parse { path: String, message: String },
    #[error("scenario {path}: {field}: {problem}")]
    Invalid {
        path: String,
        field: String,
        problem: String,
    },
}

/// A whole scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Simulated hours the run covers.
    pub duration_hours: f64,
    /// Simulated seconds per wall-clock second (1 = real time).
    #[serde(default = "one")]
    pub acceleration: f64,
    /// Local hour of day at which the run starts (0..24, fractions allowed).
    #[serde(default)]
    pub start_hour: f64,
    /// Seed of the plan when `--seed` is not given.
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub timers: Timers,
    #[serde(rename = "site")]
    pub sites: Vec<SiteSpec>,
    pub flows: Flows,
    #[serde(default)]
    pub staff: Staff,
    #[serde(default)]
    pub faults: FaultRates,
}

fn one() -> f64 {
    1.0
}

/// Detection times of the platform, in simulated seconds. The embedded server and the agents
/// get them divided by the acceleration (at least one second), so an accelerated run detects
/// a door left open or a cabinet offline after the same simulated time as a real one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Timers {
    /// A door open this long raises `door_left_open` on the agent.
    pub door_left_open_s: f64,
    /// A cabinet offline this long raises `device_offline` on the server.
    pub offline_grace_s: f64,
    /// A person shuts a door this long after it opened.
    pub door_close_s: f64,
    /// A person walks from the reservation to the cabinet within this many minutes.
    pub walk_min: Dist,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            door_left_open_s: 120.0,
            offline_grace_s: 60.0,
            door_close_s: 8.0,
            walk_min: Dist::Uniform {
                min: 2.0,
                max: 20.0,
            },
        }
    }
}

/// One site with its cabinets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SiteSpec {
    /// Site id in the platform (letters, digits, `-`, `_`).
    pub id: String,
    /// service_hall, enterprise_cluster, station or community.
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub cabinets: usize,
    /// Boxes of each cabinet by size (S, M, L).
    pub boxes: BTreeMap<String, u16>,
    /// Boxes per cabinet marked accessible (the lowest numbers).
    #[serde(default)]
    pub accessible: u16,
    /// Station devices (kiosk, tax machine, printer in turn).
    #[serde(default)]
    pub stations: usize,
    /// Multiplies every flow's arrival rate at this site.
    #[serde(default = "one")]
    pub demand: f64,
    /// Multiplies one flow's rate at this site, e.g. `{ pickup = 2.0 }`.
    #[serde(default)]
    pub flow_scale: BTreeMap<String, f64>,
}

impl SiteSpec {
    pub(crate) fn boxes_per_cabinet(&self) -> u16 {
        self.boxes.values().sum()
    }

    /// The size of box `n` (1-based): S first, then M, then L.
    pub(crate) fn size_of(&self, n: u16) -> &'static str {
        let mut upto = 0;
        for size in SIZES {
            upto += self.boxes.get(size).copied().unwrap_or(0);
            if n <= upto {
                return size;
            }
        }
        "L"
    }

    pub(crate) fn rate_scale(&self, flow: FlowKind) -> f64 {
        self.demand * self.flow_scale.get(flow.name()).copied().unwrap_or(1.0)
    }
}

const SIZES: [&str; 3] = ["S", "M", "L"];
const KINDS: [&str; 4] = ["service_hall", "enterprise_cluster", "station", "community"];

/// The flows of the document: drop-off (documents left for staff), supplement (missing
/// material before a deadline), pick-up (a licence deposited by staff, collected later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FlowKind {
    Dropoff,
    Supplement,
    Pickup,
}

impl FlowKind {
    pub(crate) const ALL: [FlowKind; 3] =
        [FlowKind::Dropoff, FlowKind::Supplement, FlowKind::Pickup];

    pub(crate) fn name(self) -> &'static str {
        match self {
            FlowKind::Dropoff => "dropoff",
            FlowKind::Supplement => "supplement",
            FlowKind::Pickup => "pickup",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Flows {
    pub dropoff: Option<Flow>,
    pub supplement: Option<Flow>,
    pub pickup: Option<Flow>,
}

impl Flows {
    pub(crate) fn get(&self, kind: FlowKind) -> Option<&Flow> {
        match kind {
            FlowKind::Dropoff => self.dropoff.as_ref(),
            FlowKind::Supplement => self.supplement.as_ref(),
            FlowKind::Pickup => self.pickup.as_ref(),
        }
    }
}

/// Arrivals of one flow at a site of demand 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Flow {
    /// Mean arrivals in each local hour of the day (24 values, hour 0 first): a Poisson
    /// process whose rate changes on the hour.
    pub per_hour: Vec<f64>,
    /// Share of requests for each box size; default all S.
    #[serde(default)]
    pub sizes: BTreeMap<String, f64>,
    /// Pick-ups: minutes from the deposit until the person comes.
    #[serde(default)]
    pub dwell_min: Option<Dist>,
    /// Supplements: minutes from the request to its deadline.
    #[serde(default)]
    pub deadline_min: Option<f64>,
    /// Share of people who never come (the code expires, or staff retrieve the item).
    #[serde(default)]
    pub no_show: f64,
}

/// A distribution of a duration; the unit is in the field's name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Dist {
    Fixed {
        value: f64,
    },
    Uniform {
        min: f64,
        max: f64,
    },
    Exponential {
        mean: f64,
    },
    /// `median` and the log-space standard deviation `sigma`.
    Lognormal {
        median: f64,
        sigma: f64,
    },
}

impl Dist {
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> f64 {
        use rand_distr::Distribution;
        let v = match *self {
            Dist::Fixed { value } => value,
            Dist::Uniform { min, max } if max > min => rng.gen_range(min..max),
            Dist::Uniform { min, .. } => min,
            Dist::Exponential { mean } => rand_distr::Exp::new(1.0 / mean)
                .map(|d| d.sample(rng))
                .unwrap_or(mean),
            Dist::Lognormal { median, sigma } => rand_distr::LogNormal::new(median.ln(), sigma)
                .map(|d| d.sample(rng))
                .unwrap_or(median),
        };
        v.max(0.0)
    }

    fn check(&self) -> Result<(), String> {
        let ok = match *self {
            Dist::Fixed { value } => value.is_finite() && value >= 0.0,
            Dist::Uniform { min, max } => {
                min.is_finite() && max.is_finite() && 0.0 <= min && min <= max
            }
            Dist::Exponential { mean } => mean.is_finite() && mean > 0.0,
            Dist::Lognormal { median, sigma } => {
                median.is_finite() && median > 0.0 && sigma.is_finite() && sigma >= 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{self:?} is not a distribution of a duration (values must be finite and \
                 non-negative, min ≤ max, mean and median above zero)"
            ))
        }
    }
}

/// Staff rounds: at these local hours a helper at every site works the collect and deposit
/// lists with their card.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Staff {
    pub rounds: Vec<f64>,
}

impl Default for Staff {
    fn default() -> Self {
        Staff {
            rounds: vec![8.5, 10.0, 11.5, 13.5, 15.0, 16.5, 18.0],
        }
    }
}

/// Faults to inject. Rates are per cabinet per simulated hour unless the name says per
/// open or per person; durations in simulated minutes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FaultRates {
    /// Share of code opens whose lock jams (the operator then opens it remotely).
    pub jam_per_open: f64,
    /// Share of code opens after which the door is left open.
    pub left_open_per_open: f64,
    /// How long a door stays open when left open, minutes.
    pub left_open_min: Dist,
    pub forced_open_per_hour: f64,
    pub network_drop_per_hour: f64,
    pub network_drop_min: Dist,
    pub power_loss_per_hour: f64,
    pub power_loss_min: Dist,
    /// The agent process restarts (an update, a watchdog).
    pub agent_restart_per_hour: f64,
    /// Share of people who first type a wrong code.
    pub wrong_code_per_person: f64,
    /// Share of people who type their code again after using it (it must be refused).
    pub replay_per_person: f64,
    /// Remote opens by the night desk (a person on the hotline), per cabinet per hour.
    pub remote_open_per_hour: f64,
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates {
            jam_per_open: 0.01,
            left_open_per_open: 0.01,
            left_open_min: Dist::Uniform { min: 3.0, max: 8.0 },
            forced_open_per_hour: 0.01,
            network_drop_per_hour: 0.01,
            network_drop_min: Dist::Uniform {
                min: 2.0,
                max: 10.0,
            },
            power_loss_per_hour: 0.005,
            power_loss_min: Dist::Uniform {
                min: 2.0,
                max: 15.0,
            },
            agent_restart_per_hour: 0.005,
            wrong_code_per_person: 0.05,
            replay_per_person: 0.02,
            remote_open_per_hour: 0.02,
        }
    }
}

impl Scenario {
    pub(crate) fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses and checks a scenario; `path` names it in errors.
    pub(crate) fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        s.check()
            .map_err(|(field, problem)| ScenarioError::Invalid {
                path: path.to_owned(),
                field,
                problem,
            })?;
        Ok(s)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, p: String| Err((f.to_owned(), p));
        if self.name.trim().is_empty() {
            return bad("name", "give the scenario a name".into());
        }
        if !(self.duration_hours > 0.0 && self.duration_hours <= 24.0 * 366.0) {
            return bad(
                "duration_hours",
                format!(
                    "{} is not between 0 and a year of hours",
                    self.duration_hours
                ),
            );
        }
        if !(self.acceleration >= 1.0 && self.acceleration <= 100_000.0) {
            return bad(
                "acceleration",
                format!("{} must be 1 (real time) to 100000", self.acceleration),
            );
        }
        if !(0.0..24.0).contains(&self.start_hour) {
            return bad(
                "start_hour",
                format!("{} is not an hour of the day (0..24)", self.start_hour),
            );
        }
        for (f, v) in [
            ("timers.door_left_open_s", self.timers.door_left_open_s),
            ("timers.offline_grace_s", self.timers.offline_grace_s),
            ("timers.door_close_s", self.timers.door_close_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(f, format!("{v} must be a positive number of seconds"));
            }
        }
        self.timers
            .walk_min
            .check()
            .or_else(|p| bad("timers.walk_min", p))?;
        if self.sites.is_empty() {
            return bad("site", "add at least one [[site]]".into());
        }
        let mut ids = std::collections::HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            let f = |name: &str| format!("site[{i}] ({}).{name}", site.id);
            if protocol::DeviceId::parse(&format!("{}-cab-01", site.id)).is_err() {
                return bad(
                    &f("id"),
                    "use letters, digits, '-' and '_' (it becomes part of device ids)".into(),
                );
            }
            if !ids.insert(site.id.clone()) {
                return bad(&f("id"), "two sites have this id".into());
            }
            if !KINDS.contains(&site.kind.as_str()) {
                return bad(
                    &f("kind"),
                    format!("{:?} is not one of {KINDS:?}", site.kind),
                );
            }
            if !(-90.0..=90.0).contains(&site.lat) || !(-180.0..=180.0).contains(&site.lon) {
                return bad(&f("lat/lon"), "not a position on Earth".into());
            }
            if site.cabinets == 0 || site.cabinets > 10_000 {
                return bad(
                    &f("cabinets"),
                    format!("{} must be 1 to 10000", site.cabinets),
                );
            }
            if let Some(size) = site.boxes.keys().find(|k| !SIZES.contains(&k.as_str())) {
                return bad(
                    &f("boxes"),
                    format!("{size:?} is not a box size (S, M or L)"),
                );
            }
            let n = site.boxes.values().map(|&v| u32::from(v)).sum::<u32>();
            if n == 0 || n > 200 {
                return bad(&f("boxes"), format!("{n} boxes per cabinet; give 1 to 200"));
            }
            if u32::from(site.accessible) > n {
                return bad(&f("accessible"), "more accessible boxes than boxes".into());
            }
            if !(site.demand.is_finite() && site.demand >= 0.0) {
                return bad(&f("demand"), format!("{} must be 0 or more", site.demand));
            }
            for (flow, v) in &site.flow_scale {
                if !FlowKind::ALL.iter().any(|k| k.name() == flow) {
                    return bad(
                        &f("flow_scale"),
                        format!("{flow:?} is not a flow (dropoff, supplement, pickup)"),
                    );
                }
                if !(v.is_finite() && *v >= 0.0) {
                    return bad(&f("flow_scale"), format!("{flow} = {v} must be 0 or more"));
                }
            }
        }
        if FlowKind::ALL.iter().all(|k| self.flows.get(*k).is_none()) {
            return bad(
                "flows",
                "give at least one of [flows.dropoff], [flows.supplement], [flows.pickup]".into(),
            );
        }
        for kind in FlowKind::ALL {
            let Some(flow) = self.flows.get(kind) else {
                continue;
            };
            let f = |name: &str| format!("flows.{}.{name}", kind.name());
            if flow.per_hour.len() != 24 {
                return bad(
                    &f("per_hour"),
                    format!(
                        "has {} values; give 24, one per hour from midnight",
                        flow.per_hour.len()
                    ),
                );
            }
            if let Some(v) = flow
                .per_hour
                .iter()
                .find(|v| !(v.is_finite() && **v >= 0.0))
            {
                return bad(&f("per_hour"), format!("{v} is not a rate (0 or more)"));
            }
            if let Some(size) = flow.sizes.keys().find(|k| !SIZES.contains(&k.as_str())) {
                return bad(
                    &f("sizes"),
                    format!("{size:?} is not a box size (S, M or L)"),
                );
            }
            if flow.sizes.values().any(|v| !(v.is_finite() && *v >= 0.0))
                || (!flow.sizes.is_empty() && flow.sizes.values().sum::<f64>() <= 0.0)
            {
                return bad(&f("sizes"), "shares must be 0 or more and not all 0".into());
            }
            if !(0.0..=1.0).contains(&flow.no_show) {
                return bad(
                    &f("no_show"),
                    format!("{} is not a share (0..1)", flow.no_show),
                );
            }
            match (kind, &flow.dwell_min, flow.deadline_min) {
                (FlowKind::Pickup, None, _) => {
                    return bad(
                        &f("dwell_min"),
                        "pick-ups need a dwell time distribution".into(),
                    );
                }
                (FlowKind::Supplement, _, None) => {
                    return bad(
                        &f("deadline_min"),
                        "supplements need their deadline in minutes".into(),
                    );
                }
                (FlowKind::Supplement, _, Some(d)) if !(d.is_finite() && d > 0.0) => {
                    return bad(&f("deadline_min"), format!("{d} must be above 0"));
                }
                _ => {}
            }
            if let Some(d) = &flow.dwell_min {
                d.check().or_else(|p| bad(&f("dwell_min"), p))?;
            }
        }
        if let Some(h) = self.staff.rounds.iter().find(|h| !(0.0..24.0).contains(*h)) {
            return bad(
                "staff.rounds",
                format!("{h} is not an hour of the day (0..24)"),
            );
        }
        let fr = &self.faults;
        for (f, v) in [
            ("faults.jam_per_open", fr.jam_per_open),
            ("faults.left_open_per_open", fr.left_open_per_open),
            ("faults.wrong_code_per_person", fr.wrong_code_per_person),
            ("faults.replay_per_person", fr.replay_per_person),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(f, format!("{v} is not a share (0..1)"));
            }
        }
        for (f, v) in [
            ("faults.forced_open_per_hour", fr.forced_open_per_hour),
            ("faults.network_drop_per_hour", fr.network_drop_per_hour),
            ("faults.power_loss_per_hour", fr.power_loss_per_hour),
            ("faults.agent_restart_per_hour", fr.agent_restart_per_hour),
            ("faults.remote_open_per_hour", fr.remote_open_per_hour),
        ] {
            if !(v.is_finite() && (0.0..=60.0).contains(&v)) {
                return bad(f, format!("{v} must be 0 to 60 per cabinet-hour"));
            }
        }
        for (f, d) in [
            ("faults.left_open_min", &fr.left_open_min),
            ("faults.network_drop_min", &fr.network_drop_min),
            ("faults.power_loss_min", &fr.power_loss_min),
        ] {
            d.check().or_else(|p| bad(f, p))?;
        }
        Ok(())
    }

    /// Wall-clock seconds for `sim_s` simulated seconds.
    pub(crate) fn real_secs(&self, sim_s: f64) -> f64 {
        sim_s / self.acceleration
    }

    /// A platform timer for the embedded server and agents: simulated seconds scaled to
    /// whole wall-clock seconds, at least one.
    pub(crate) fn scaled_timer(&self, sim_s: f64) -> u64 {
        (sim_s / self.acceleration).ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "tiny"
duration_hours = 2
acceleration = 600
[[site]]
id = "hall"
kind = "service_hall"
lat = 23.1
lon = 113.2
cabinets = 2
boxes = { S = 6, M = 3, L = 1 }
[flows.dropoff]
per_hour = [0,0,0,0,0,0,0,0,5,10,10,10,5,5,10,10,10,5,0,0,0,0,0,0]
"#;

    fn err(text: &str) -> String {
        Scenario::parse(text, "t.toml")
            .expect_err("rejected")
            .to_string()
    }

    #[test]
    fn a_minimal_scenario_gets_defaults() {
        let s = Scenario::parse(MINIMAL, "t.toml").expect("valid");
        assert_eq!(s.sites[0].boxes_per_cabinet(), 10);
        assert_eq!(s.sites[0].size_of(6), "S");
        assert_eq!(s.sites[0].size_of(7), "M");
        assert_eq!(s.sites[0].size_of(10), "L");
        assert_eq!(s.scaled_timer(120.0), 1);
        assert_eq!(s.real_secs(600.0), 1.0);
        assert_eq!(s.sites.iter().map(|s| s.cabinets).sum::<usize>(), 2);
    }

    #[test]
    fn mistakes_are_named_with_their_field() {
        let e = err(&MINIMAL.replace("per_hour = [0,0,", "per_hour = [0,"));
        assert!(
            e.contains("flows.dropoff.per_hour") && e.contains("23 values"),
            "{e}"
        );
        let e = err(&MINIMAL.replace("service_hall", "mall"));
        assert!(e.contains("site[0] (hall).kind"), "{e}");
        let e = err(&MINIMAL.replace("L = 1", "XL = 1"));
        assert!(e.contains("\"XL\" is not a box size"), "{e}");
        let e = err(&MINIMAL.replace("acceleration = 600", "acceleration = 0.5"));
        assert!(e.contains("acceleration"), "{e}");
        let e = err(&format!("{MINIMAL}\n[faults]\njam_per_open = 2\n"));
        assert!(e.contains("faults.jam_per_open"), "{e}");
        let e = err(&format!(
            "{MINIMAL}\n[flows.pickup]\nper_hour = {:?}\n",
            vec![1.0; 24]
        ));
        assert!(e.contains("dwell_min"), "{e}");
        let e = err(&MINIMAL.replace("cabinets = 2", "cabinets = 2\ncolour = 1"));
        assert!(e.contains("unknown field") && e.contains("colour"), "{e}");
        let e = err(&MINIMAL.replace("id = \"hall\"", "id = \"hall/1\""));
        assert!(e.contains("letters, digits"), "{e}");
    }

    #[test]
    fn distributions_sample_within_their_bounds() {
        let mut rng = rand::rngs::mock::StepRng::new(1, 1 << 40);
        let u = Dist::Uniform { min: 2.0, max: 3.0 };
        let l = Dist::Lognormal {
            median: 60.0,
            sigma: 0.5,
        };
        for _ in 0..100 {
            let v = u.sample(&mut rng);
            assert!((2.0..3.0).contains(&v));
            assert!(l.sample(&mut rng) > 0.0);
        }
        assert_eq!(Dist::Fixed { value: 4.0 }.sample(&mut rng), 4.0);
        assert!(Dist::Exponential { mean: 0.0 }.check().is_err());
    }

    #[test]
    fn shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 3, "ship at least three scenarios, found {n}");
    }
}
