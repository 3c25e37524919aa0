//! `fleet-sim bench planner`: the planner on generated cities of thousands of demand points
//! that are also the candidate sites, against a proven upper bound on the coverage any choice
//! could reach (the Lagrangian relaxation, `domain::planner::upper_bound`). Goal: each plan in
//! ≤ 10 s on 2 cores, ≥ 99.5% of the bound.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use domain::planner::{self, Candidate, DemandPoint, PlanParams, Weight};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};

#[derive(Debug, Clone, clap::Args)]
pub struct PlannerOptions {
    /// Demand points per city (each is also a candidate site).
    #[arg(long, value_delimiter = ',', default_values_t = [5000, 8000])]
    pub points: Vec<usize>,
    /// Walking radii, metres.
    #[arg(long, value_delimiter = ',', default_values_t = [300.0, 500.0, 800.0])]
    pub radius: Vec<f64>,
    /// New sites asked for.
    #[arg(long, value_delimiter = ',', default_values_t = [50, 100])]
    pub sites: Vec<usize>,
    /// Seeds: one city per seed and size.
    #[arg(long, value_delimiter = ',', default_values_t = [1])]
    pub seed: Vec<u64>,
    /// Subgradient steps for the bound (it stops early once it meets the plan).
    #[arg(long, default_value_t = 50_000)]
    pub bound_rounds: usize,
    /// Also write each city as `demand-N-SEED.csv` here, to try with `fleet-server plan
    /// --demand F --candidates F`.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Also write each instance as a MILP in CPLEX LP format (`city-N-SEED-rR-kK.lp`) here,
    /// for an independent solver to check the bound and the plan (e.g. `cbc FILE solve`).
    #[arg(long)]
    pub lp: Option<PathBuf>,
}

/// Maximum coverage as a MILP: maximise Σ wᵢ yᵢ subject to yᵢ ≤ Σ_{j covers i} xⱼ,
/// Σ xⱼ = k, x binary, 0 ≤ y ≤ 1.
fn write_lp(
    path: &std::path::Path,
    sets: &[Vec<usize>],
    w: &[f64],
    k: usize,
) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?,
    );
    let mut covering: Vec<Vec<usize>> = vec![Vec::new(); w.len()];
    for (j, set) in sets.iter().enumerate() {
        for &i in set {
            covering[i].push(j);
        }
    }
    writeln!(f, "Maximize\n obj:")?;
    for (i, w) in w.iter().enumerate() {
        writeln!(f, " + {w} y{i}")?;
    }
    writeln!(f, "Subject To")?;
    for (i, by) in covering.iter().enumerate() {
        // Short lines: LP readers limit their length.
        write!(f, " c{i}: y{i}")?;
        for (n, j) in by.iter().enumerate() {
            write!(f, " - x{j}{}", if n % 10 == 9 { "\n" } else { "" })?;
        }
        writeln!(f, " <= 0")?;
    }
    writeln!(f, " sites:")?;
    for j in 0..sets.len() {
        writeln!(f, " + x{j}")?;
    }
    writeln!(f, " = {k}\nBounds")?;
    for i in 0..w.len() {
        writeln!(f, " 0 <= y{i} <= 1")?;
    }
    writeln!(f, "Binary")?;
    for j in 0..sets.len() {
        writeln!(f, " x{j}")?;
    }
    writeln!(f, "End")?;
    Ok(())
}

/// A city like the ones planners load: business parks and dense blocks (clusters of very
/// different sizes and spreads) in a centre that thins out, enterprises per point heavy-tailed.
pub fn city(points: usize, seed: u64) -> Vec<DemandPoint> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (lat0, lon0) = (23.13, 113.26);
    let at = |east: f64, north: f64| {
        (
            lat0 + north / 111_195.0,
            lon0 + east / (111_195.0 * lat0.to_radians().cos()),
        )
    };
    let centre = Normal::new(0.0, 6_000.0).expect("finite");
    let park_size = LogNormal::new(0.0, 1.0).expect("finite");
    let ents = LogNormal::new(1.2, 1.1).expect("finite");
    // 60% of the points in parks, the rest scattered around the centre.
    let parks: Vec<(f64, f64, f64, f64)> = (0..points / 100)
        .map(|_| {
            (
                centre.sample(&mut rng),
                centre.sample(&mut rng),
                rng.gen_range(150.0..1_200.0),
                park_size.sample(&mut rng),
            )
        })
        .collect();
    let share: f64 = parks.iter().map(|p| p.3).sum();
    let mut out = Vec::with_capacity(points);
    for i in 0..points {
        let (e, n, park) = if i < points * 6 / 10 {
            let mut pick = rng.gen_range(0.0..share);
            let p = parks
                .iter()
                .find(|p| {
                    pick -= p.3;
                    pick <= 0.0
                })
                .unwrap_or(&parks[0]);
            let spread = Normal::new(0.0, p.2).expect("finite");
            (
                p.0 + spread.sample(&mut rng),
                p.1 + spread.sample(&mut rng),
                true,
            )
        } else {
            (centre.sample(&mut rng), centre.sample(&mut rng), false)
        };
        let (lat, lon) = at(e, n);
        let scale: f64 = if park { 2.0 } else { 1.0 };
        let enterprises = (ents.sample(&mut rng) * scale).ceil() as u32;
        out.push(DemandPoint {
            id: format!("b{i}"),
            name: String::new(),
            lat,
            lon,
            enterprises,
            monthly_cases: Some(f64::from(enterprises) * rng.gen_range(0.5..4.0)),
            cluster: None,
        });
    }
    out
}

pub fn planner(o: PlannerOptions) -> anyhow::Result<()> {
    println!(
        "| points | radius m | sites | plan s | covered | bound | covered ÷ bound | bound s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst: Option<(f64, f64)> = None;
    for &seed in &o.seed {
        for &n in &o.points {
            let demand = city(n, seed);
            if let Some(dir) = &o.write {
                std::fs::create_dir_all(dir)?;
                let path = dir.join(format!("demand-{n}-{seed}.csv"));
                let mut f = std::io::BufWriter::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("writing {}", path.display()))?,
                );
                writeln!(f, "id,lat,lon,enterprises,monthly_cases")?;
                for d in &demand {
                    writeln!(
                        f,
                        "{},{:.6},{:.6},{},{:.1}",
                        d.id,
                        d.lat,
                        d.lon,
                        d.enterprises,
                        d.monthly_cases.unwrap_or(0.0)
                    )?;
                }
            }
            let candidates: Vec<Candidate> = demand
                .iter()
                .map(|d| Candidate {
                    id: d.id.clone(),
                    name: String::new(),
                    lat: d.lat,
                    lon: d.lon,
                    max_boxes: None,
                })
                .collect();
            let weights: Vec<f64> = demand.iter().map(|d| f64::from(d.enterprises)).collect();
            let pre = vec![false; n];
            let places: Vec<(f64, f64)> = demand.iter().map(|d| (d.lat, d.lon)).collect();
            for &radius in &o.radius {
                let sets = planner::within(&places, &places, radius);
                for &k in &o.sites {
                    if let Some(dir) = &o.lp {
                        std::fs::create_dir_all(dir)?;
                        write_lp(
                            &dir.join(format!("city-{n}-{seed}-r{radius:.0}-k{k}.lp")),
                            &sets,
                            &weights,
                            k,
                        )?;
                    }
                    let params = PlanParams {
                        radius_m: radius,
                        new_sites: k,
                        weight: Weight::Enterprises,
                        ..PlanParams::default()
                    };
                    let started = Instant::now();
                    let plan = planner::plan(&demand, &candidates, &[], &params);
                    let took = started.elapsed().as_secs_f64();
                    let covered = plan.covered_after as f64;
                    let started = Instant::now();
                    let bound =
                        planner::upper_bound(&sets, &weights, &pre, k, covered, o.bound_rounds);
                    let bound_took = started.elapsed().as_secs_f64();
                    anyhow::ensure!(
                        covered <= bound + 1e-6,
                        "the plan covers {covered} but the bound says at most {bound}: the bound is wrong"
                    );
                    let ratio = covered / bound;
                    println!(
                        "| {n} | {radius:.0} | {k} | {took:.2} | {covered:.0} | {bound:.0} | {:.3}% | {bound_took:.1} |",
                        ratio * 100.0
                    );
                    let w = worst.get_or_insert((ratio, took));
                    w.0 = w.0.min(ratio);
                    w.1 = w.1.max(took);
                }
            }
        }
    }
    if let Some((ratio, took)) = worst {
        println!(
            "\nworst: {:.3}% of the bound, slowest plan {took:.2} s (goal: ≥ 99.5%, ≤ 10 s)",
            ratio * 100.0
        );
    }
    Ok(())
}
