//! Siting new locker clusters: where demand is not within walking distance of a locker, which
//! candidate sites cover the most of it, how many boxes each needs, and which existing sites
//! are saturated. Pure computation (no I/O): the store, the CLI and the API feed it.
//!
//! Coverage is greedy maximum coverage with lazy evaluation, then local search by swaps;
//! sizing is an Erlang loss model per box size. ARCHITECTURE.md explains both; [`exact`]
//! solves small instances exactly for the tests that hold the heuristic to ≥ 95%.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where demand comes from: a building or a park's enterprises, as the service platform
/// exports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DemandPoint {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    /// Enterprises at this point.
    pub enterprises: u32,
    /// Cases per month the service platform handled for them; unknown when the export has
    /// none (coverage by enterprises needs none; boxes are sized from the cases known).
    #[serde(default)]
    pub monthly_cases: Option<f64>,
    /// The park or cluster it belongs to, when the platform knows; else found by distance.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// A place a new cluster could go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidate {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    /// Most boxes that fit there (none: no limit).
    #[serde(default)]
    pub max_boxes: Option<u32>,
}

/// A site in service, with what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExistingSite {
    pub id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub boxes: u32,
    /// Occupancy over the measured period (0..1).
    pub occupancy: f64,
    /// Occupancy in the busiest local hour of day.
    pub peak_occupancy: f64,
    /// Reservations refused for lack of a box, per day.
    pub unmet_per_day: f64,
}

/// What a plan optimises and assumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanParams {
    /// Walking distance a locker serves, metres.
    pub radius_m: f64,
    /// New sites to recommend at most.
    pub new_sites: usize,
    /// Boxes across all new sites at most (none: no limit).
    pub max_boxes: Option<u32>,
    /// Target probability that a new site has no free box of the size asked for when an
    /// item arrives (Erlang loss), e.g. 0.05.
    pub overflow: f64,
    /// `enterprises` (the document's coverage yardstick) or `cases`.
    pub weight: Weight,
    /// Locker uses per case (a drop-off and a pick-up: 2).
    pub uses_per_case: f64,
    /// Busiest hour's arrivals over the average hour's.
    pub peak_factor: f64,
    /// Mean hours an item stays in its box (measured when the fleet has history).
    pub dwell_hours: f64,
    /// Share of items needing an S, M or L box.
    pub size_mix: [f64; 3],
    /// Share of a cluster's enterprises that should be within walking distance (0.5).
    pub coverage_target: f64,
}

impl Default for PlanParams {
    fn default() -> Self {
        PlanParams {
            radius_m: 500.0,
            new_sites: 3,
            max_boxes: None,
            overflow: 0.05,
            weight: Weight::Enterprises,
            uses_per_case: 2.0,
            peak_factor: 2.0,
            dwell_hours: 24.0,
            size_mix: [0.5, 0.35, 0.15],
            coverage_target: 0.5,
        }
    }
}

impl PlanParams {
    /// Refuses parameters no plan can be made with, saying which and why.
    pub fn check(&self) -> Result<(), String> {
        if !(self.radius_m > 0.0 && self.radius_m <= 50_000.0) {
            return Err(format!("radius_m {} must be in (0, 50000]", self.radius_m));
        }
        if self.new_sites > 100 {
            return Err(format!("new_sites {} must be at most 100", self.new_sites));
        }
        if !(self.overflow > 0.0 && self.overflow < 1.0) {
            return Err(format!(
                "overflow {} must be in (0, 1), e.g. 0.05",
                self.overflow
            ));
        }
        if !(self.uses_per_case > 0.0 && self.peak_factor >= 1.0 && self.dwell_hours > 0.0) {
            return Err(
                "uses_per_case and dwell_hours must be above 0, peak_factor at least 1".into(),
            );
        }
        let mix: f64 = self.size_mix.iter().sum();
        if self.size_mix.iter().any(|s| *s < 0.0) || (mix - 1.0).abs() > 0.01 {
            return Err(format!(
                "size_mix {:?} must be three shares summing to 1",
                self.size_mix
            ));
        }
        if !(self.coverage_target > 0.0 && self.coverage_target <= 1.0) {
            return Err("coverage_target must be in (0, 1]".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Weight {
    Enterprises,
    Cases,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct BoxesBySize {
    #[serde(rename = "S")]
    pub s: u32,
    #[serde(rename = "M")]
    pub m: u32,
    #[serde(rename = "L")]
    pub l: u32,
    pub total: u32,
}

/// A new site to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Recommendation {
    pub rank: usize,
    pub candidate_id: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    /// Enterprises within walking distance that no existing or higher-ranked site reaches.
    pub enterprises_covered: u64,
    /// Their monthly cases.
    pub cases_covered: f64,
    pub demand_points: usize,
    /// Items arriving in the busiest hour.
    pub peak_arrivals_per_hour: f64,
    /// Offered load at the peak: arrivals × dwell (boxes busy on average if never full).
    pub offered_load: f64,
    pub boxes: BoxesBySize,
    /// Occupancy expected at the peak with these boxes (carried load ÷ boxes).
    pub expected_usage: f64,
    /// Chance an arriving item finds no box of its size, at the peak.
    pub overflow_probability: f64,
    /// The candidate's `max_boxes` cut the boxes the model asked for.
    pub capped: bool,
}

/// An existing site that needs more boxes for the same overflow target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Expansion {
    pub site_id: String,
    pub name: String,
    pub boxes: u32,
    pub boxes_needed: u32,
    pub add: u32,
    pub peak_occupancy: f64,
    pub unmet_per_day: f64,
}

/// Coverage of one cluster of enterprises, before and after the recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ClusterCoverage {
    pub cluster: String,
    pub lat: f64,
    pub lon: f64,
    pub demand_points: usize,
    pub enterprises: u64,
    pub covered_before: u64,
    pub covered_after: u64,
    pub share_before: f64,
    pub share_after: f64,
    /// The share after reaches the coverage target.
    pub meets_target: bool,
    /// How the cluster was found.
    pub source: ClusterSource,
}

/// Where a cluster comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClusterSource {
    /// The platform named it (the demand points' `cluster`).
    Named,
    /// The points around one peak of enterprise density (see ARCHITECTURE.md, planner).
    #[default]
    Density,
    /// A point no cluster of at least [`MIN_CLUSTER`] points holds.
    Scattered,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Plan {
    pub params: PlanParams,
    // Sums in 64 bits: a city's enterprises summed in 32 wrapped silently.
    pub enterprises: u64,
    pub covered_before: u64,
    pub covered_after: u64,
    pub share_before: f64,
    pub share_after: f64,
    pub recommendations: Vec<Recommendation>,
    /// Demand points without `monthly_cases`: no load counted for them when sizing boxes.
    pub points_without_cases: usize,
    pub expansions: Vec<Expansion>,
    pub clusters: Vec<ClusterCoverage>,
}

/// Great-circle distance in metres.
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const R: f64 = 6_371_000.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

/// Erlang B: the chance all `n` servers are busy under offered load `a` (erlangs).
pub fn erlang_b(n: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (f64::from(k) + a * b);
    }
    b
}

/// The fewest boxes that keep the loss probability at or below `target` (up to 10,000).
pub fn boxes_for(a: f64, target: f64) -> u32 {
    if a <= 0.0 {
        return 0;
    }
    let mut b = 1.0;
    for n in 1..=10_000u32 {
        b = a * b / (f64::from(n) + a * b);
        if b <= target {
            return n;
        }
    }
    10_000
}

/// Boxes by size for a peak offered load `a` (erlangs) at the overflow target.
fn size_boxes(a: f64, p: &PlanParams, cap: Option<u32>) -> (BoxesBySize, f64, f64, bool) {
    let loads: Vec<f64> = p.size_mix.iter().map(|s| a * s).collect();
    let mut n: Vec<u32> = loads.iter().map(|l| boxes_for(*l, p.overflow)).collect();
    let mut capped = false;
    if let Some(cap) = cap {
        while n.iter().sum::<u32>() > cap {
            // Take from the size whose loss grows least.
            let Some(i) = (0..3).filter(|&i| n[i] > 0).min_by(|&x, &y| {
                let dx = erlang_b(n[x] - 1, loads[x]) - erlang_b(n[x], loads[x]);
                let dy = erlang_b(n[y] - 1, loads[y]) - erlang_b(n[y], loads[y]);
                (dx * loads[x]).total_cmp(&(dy * loads[y]))
            }) else {
                break;
            };
            n[i] -= 1;
            capped = true;
        }
    }
    let total: u32 = n.iter().sum();
    let (mut carried, mut lost) = (0.0, 0.0);
    for i in 0..3 {
        let b = erlang_b(n[i], loads[i]);
        carried += loads[i] * (1.0 - b);
        lost += loads[i] * b;
    }
    let usage = if total > 0 {
        carried / f64::from(total)
    } else {
        0.0
    };
    let overflow = if a > 0.0 { lost / a } else { 0.0 };
    (
        BoxesBySize {
            s: n[0],
            m: n[1],
            l: n[2],
            total,
        },
        usage,
        overflow,
        capped,
    )
}

/// Clusters of demand: the platform's names where given; else each point climbs to the
/// densest point within the walking radius (density: enterprises within the radius), and the
/// points that reach the same peak are one cluster (quick shift). Chaining points within the
/// radius joined a whole dense city into one cluster; peaks are at least a radius apart, so a
/// cluster is an area a planner can walk and name. Groups of fewer than [`MIN_CLUSTER`]
/// points are scattered demand, not clusters.
fn clusters(demand: &[DemandPoint], radius_m: f64) -> Vec<(ClusterSource, Vec<usize>)> {
    let mut named: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut unnamed = Vec::new();
    for (i, d) in demand.iter().enumerate() {
        match &d.cluster {
            Some(c) if !c.is_empty() => named.entry(c.clone()).or_default().push(i),
            _ => unnamed.push(i),
        }
    }
    let mut out: Vec<(ClusterSource, Vec<usize>)> = named
        .into_values()
        .map(|m| (ClusterSource::Named, m))
        .collect();
    let points: Vec<(f64, f64)> = unnamed
        .iter()
        .map(|&i| (demand[i].lat, demand[i].lon))
        .collect();
    let near = reach::within(&points, &points, radius_m);
    let weight = |a: usize| u64::from(demand[unnamed[a]].enterprises.max(1));
    let density: Vec<u64> = near
        .iter()
        .map(|n| n.iter().map(|&b| weight(b)).sum())
        .collect();
    // Each point's parent is the densest point within reach, itself included (a peak is its
    // own parent); ties go to the lower index, so every point has one way up.
    let rank = |a: usize| (density[a], std::cmp::Reverse(a));
    let parent: Vec<usize> = (0..points.len())
        .map(|a| {
            near[a]
                .iter()
                .copied()
                .max_by_key(|&b| rank(b))
                .unwrap_or(a)
        })
        .collect();
    let root = |mut a: usize| {
        while parent[a] != a {
            a = parent[a];
        }
        a
    };
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (a, &i) in unnamed.iter().enumerate() {
        groups.entry(root(a)).or_default().push(i);
    }
    let mut scattered = Vec::new();
    for (_, members) in groups {
        if members.len() >= MIN_CLUSTER {
            out.push((ClusterSource::Density, members));
        } else {
            scattered.extend(members);
        }
    }
    // Scattered points stay apart: each is its own group in the report's tail.
    out.extend(
        scattered
            .into_iter()
            .map(|i| (ClusterSource::Scattered, vec![i])),
    );
    out
}

/// Fewest demand points a cluster found by density has.
pub const MIN_CLUSTER: usize = 3;

/// What [`plan_with`] is doing, for a person waiting on a city's plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Finding which demand points each candidate reaches.
    Reach { points: usize, candidates: usize },
    /// The greedy choice is made; it covers this weight.
    Greedy { covered: f64 },
    /// Searching for better choices: `done` of `of` moves, the best covers `best`.
    Search { done: usize, of: usize, best: f64 },
}

/// Makes a plan.
pub fn plan(
    demand: &[DemandPoint],
    candidates: &[Candidate],
    existing: &[ExistingSite],
    p: &PlanParams,
) -> Plan {
    plan_with(demand, candidates, existing, p, &mut |_| {})
}

/// [`plan`], telling `progress` what it does.
pub fn plan_with(
    demand: &[DemandPoint],
    candidates: &[Candidate],
    existing: &[ExistingSite],
    p: &PlanParams,
    progress: &mut dyn FnMut(Progress),
) -> Plan {
    progress(Progress::Reach {
        points: demand.len(),
        candidates: candidates.len(),
    });
    let points: Vec<(f64, f64)> = demand.iter().map(|d| (d.lat, d.lon)).collect();
    let weights: Vec<f64> = demand
        .iter()
        .map(|d| match p.weight {
            Weight::Enterprises => f64::from(d.enterprises),
            Weight::Cases => d.monthly_cases.unwrap_or(0.0),
        })
        .collect();
    let mut before = vec![false; demand.len()];
    let sites: Vec<(f64, f64)> = existing.iter().map(|s| (s.lat, s.lon)).collect();
    for i in reach::within(&points, &sites, p.radius_m)
        .into_iter()
        .flatten()
    {
        before[i] = true;
    }
    let places: Vec<(f64, f64)> = candidates.iter().map(|c| (c.lat, c.lon)).collect();
    let sets = reach::within(&points, &places, p.radius_m);
    // Box budget: each candidate costs the boxes its whole reach would need.
    let cost: Vec<u32> = sets
        .iter()
        .zip(candidates)
        .map(|(set, c)| {
            let cases: f64 = set.iter().filter_map(|&i| demand[i].monthly_cases).sum();
            let a = peak_load(cases, p);
            size_boxes(a, p, c.max_boxes).0.total
        })
        .collect();
    let chosen = max_coverage_with(
        &sets,
        &weights,
        &before,
        p.new_sites,
        &cost,
        p.max_boxes,
        progress,
    );

    // Rank by marginal coverage in the order of the final choice's own greedy order.
    let mut covered = before.clone();
    let mut remaining = chosen.clone();
    let mut order = Vec::new();
    while !remaining.is_empty() {
        let (pos, _) = remaining
            .iter()
            .enumerate()
            .map(|(pos, &j)| {
                let g: f64 = sets[j]
                    .iter()
                    .filter(|&&i| !covered[i])
                    .map(|&i| weights[i])
                    .sum();
                (pos, g)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .unwrap_or((0, 0.0));
        let j = remaining.remove(pos);
        for &i in &sets[j] {
            covered[i] = true;
        }
        order.push(j);
    }
    let mut covered = before.clone();
    let mut recommendations = Vec::new();
    for (rank, &j) in order.iter().enumerate() {
        let c = &candidates[j];
        let fresh: Vec<usize> = sets[j].iter().copied().filter(|&i| !covered[i]).collect();
        for &i in &fresh {
            covered[i] = true;
        }
        // The site serves the demand it newly reaches (demand already near a locker keeps
        // using that one).
        let cases: f64 = fresh.iter().filter_map(|&i| demand[i].monthly_cases).sum();
        let a = peak_load(cases, p);
        let (boxes, usage, overflow, capped) = size_boxes(a, p, c.max_boxes);
        recommendations.push(Recommendation {
            rank: rank + 1,
            candidate_id: c.id.clone(),
            name: c.name.clone(),
            lat: c.lat,
            lon: c.lon,
            enterprises_covered: fresh
                .iter()
                .map(|&i| u64::from(demand[i].enterprises))
                .sum(),
            cases_covered: cases,
            demand_points: fresh.len(),
            peak_arrivals_per_hour: a / p.dwell_hours,
            offered_load: a,
            boxes,
            expected_usage: usage,
            overflow_probability: overflow,
            capped,
        });
    }

    let expansions = existing
        .iter()
        .filter_map(|s| {
            // Measured peak load: boxes busy at the peak plus what was turned away.
            let a = s.peak_occupancy * f64::from(s.boxes)
                + s.unmet_per_day / 24.0 * p.peak_factor * p.dwell_hours;
            let needed = boxes_for(a, p.overflow);
            (needed > s.boxes).then(|| Expansion {
                site_id: s.id.clone(),
                name: s.name.clone(),
                boxes: s.boxes,
                boxes_needed: needed,
                add: needed - s.boxes,
                peak_occupancy: s.peak_occupancy,
                unmet_per_day: s.unmet_per_day,
            })
        })
        .collect();

    let ent = |set: &dyn Fn(usize) -> bool, idx: &mut dyn Iterator<Item = usize>| -> u64 {
        idx.filter(|&i| set(i))
            .map(|i| u64::from(demand[i].enterprises))
            .sum()
    };
    let share = |part: u64, whole: u64| {
        if whole > 0 {
            part as f64 / whole as f64
        } else {
            0.0
        }
    };
    let mut clusters: Vec<ClusterCoverage> = clusters(demand, p.radius_m)
        .into_iter()
        .map(|(source, members)| {
            let total: u64 = members
                .iter()
                .map(|&i| u64::from(demand[i].enterprises))
                .sum();
            let b = ent(&|i| before[i], &mut members.iter().copied());
            let a = ent(&|i| covered[i], &mut members.iter().copied());
            let (lat, lon) = members.iter().fold((0.0, 0.0), |(la, lo), &i| {
                let e = f64::from(demand[i].enterprises.max(1));
                (la + demand[i].lat * e, lo + demand[i].lon * e)
            });
            let wsum: f64 = members
                .iter()
                .map(|&i| f64::from(demand[i].enterprises.max(1)))
                .sum();
            ClusterCoverage {
                cluster: members
                    .first()
                    .and_then(|&i| demand[i].cluster.clone())
                    .filter(|c| !c.is_empty())
                    .unwrap_or_default(),
                lat: lat / wsum,
                lon: lon / wsum,
                demand_points: members.len(),
                enterprises: total,
                covered_before: b,
                covered_after: a,
                share_before: share(b, total),
                share_after: share(a, total),
                meets_target: share(a, total) >= p.coverage_target,
                source,
            }
        })
        .collect();
    // Clusters by size, the scattered points after them.
    clusters.sort_by(|x, y| {
        (x.source == ClusterSource::Scattered)
            .cmp(&(y.source == ClusterSource::Scattered))
            .then_with(|| y.enterprises.cmp(&x.enterprises))
            .then_with(|| x.cluster.cmp(&y.cluster))
    });
    for (n, c) in clusters.iter_mut().enumerate() {
        if c.cluster.is_empty() {
            c.cluster = format!("cluster-{}", n + 1);
        }
    }
    let total: u64 = demand.iter().map(|d| u64::from(d.enterprises)).sum();
    let all = 0..demand.len();
    let covered_before = ent(&|i| before[i], &mut all.clone());
    let covered_after = ent(&|i| covered[i], &mut all.clone());
    Plan {
        params: p.clone(),
        enterprises: total,
        covered_before,
        covered_after,
        share_before: share(covered_before, total),
        share_after: share(covered_after, total),
        recommendations,
        points_without_cases: demand.iter().filter(|d| d.monthly_cases.is_none()).count(),
        expansions,
        clusters,
    }
}

/// Offered load (erlangs) at the peak hour of `monthly_cases`.
fn peak_load(monthly_cases: f64, p: &PlanParams) -> f64 {
    let per_hour = monthly_cases * p.uses_per_case / (30.0 * 24.0);
    per_hour * p.peak_factor * p.dwell_hours
}

mod coverage;
mod geojson;
mod reach;

pub use coverage::{exact, max_coverage, max_coverage_with, upper_bound};
pub use geojson::geojson;
pub use reach::within;

#[cfg(test)]
mod tests;
