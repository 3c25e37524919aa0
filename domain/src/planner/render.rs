//! The plan as text tables for a terminal (`fleet-server plan`).

use super::{ClusterSource, MIN_CLUSTER, Plan};

/// The plan as text tables for a terminal (`fleet-server plan`).
pub fn render(plan: &Plan) -> String {
    use std::fmt::Write;
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let mut out = String::new();
    let p = &plan.params;
    let _ = writeln!(
        out,
        "Enterprises within {:.0} m of a locker: {} of {} ({}) now, {} ({}) with {} new site(s).",
        p.radius_m,
        plan.covered_before,
        plan.enterprises,
        pct(plan.share_before),
        plan.covered_after,
        pct(plan.share_after),
        plan.recommendations.len()
    );
    let _ = writeln!(
        out,
        "Boxes sized for {} overflow at the peak ({}x the mean hour, {:.1} h dwell, {} uses per case).\n",
        pct(p.overflow),
        p.peak_factor,
        p.dwell_hours,
        p.uses_per_case
    );
    let _ = writeln!(
        out,
        "{:<4} {:<20} {:>10} {:>11} {:>11} {:>11} {:>9} {:>5} {:>6} {:>8}",
        "rank",
        "candidate",
        "lat",
        "lon",
        "enterprises",
        "cases/month",
        "S/M/L",
        "boxes",
        "usage",
        "overflow"
    );
    for r in &plan.recommendations {
        let name = if r.name.is_empty() {
            &r.candidate_id
        } else {
            &r.name
        };
        let _ = writeln!(
            out,
            "{:<4} {:<20} {:>10.6} {:>11.6} {:>11} {:>11.0} {:>9} {:>5} {:>6} {:>8}{}",
            r.rank,
            name.chars().take(20).collect::<String>(),
            r.lat,
            r.lon,
            r.enterprises_covered,
            r.cases_covered,
            format!("{}/{}/{}", r.boxes.s, r.boxes.m, r.boxes.l),
            r.boxes.total,
            pct(r.expected_usage),
            format!("{:.1}%", r.overflow_probability * 100.0),
            if r.capped {
                "  (capped by max_boxes)"
            } else {
                ""
            }
        );
    }
    if p.new_sites == 0 {
        let _ = writeln!(out, "(no new sites asked for)");
    } else if plan.recommendations.is_empty() {
        let _ = writeln!(
            out,
            "(no candidate reaches demand that is not already covered)"
        );
    }
    let points = plan.clusters.iter().map(|c| c.demand_points).sum::<usize>();
    if plan.points_without_cases > 0 && plan.points_without_cases == points {
        let _ = writeln!(
            out,
            "(boxes not sized: no demand point gives monthly_cases; add the column to size them)"
        );
    } else if plan.points_without_cases > 0 {
        let _ = writeln!(
            out,
            "({} of {} demand points give no monthly_cases: boxes are sized for the cases of the others)",
            plan.points_without_cases, points
        );
    }
    if !plan.expansions.is_empty() {
        let _ = writeln!(out, "\nExisting sites that need more boxes:");
        for e in &plan.expansions {
            let _ = writeln!(
                out,
                "  {:<20} {} boxes -> {} (+{}): busiest hour {} occupied, {:.1} refused a day",
                e.name.chars().take(20).collect::<String>(),
                e.boxes,
                e.boxes_needed,
                e.add,
                pct(e.peak_occupancy),
                e.unmet_per_day
            );
        }
    }
    let count = |s: ClusterSource| plan.clusters.iter().filter(|c| c.source == s).count();
    let (named, dense) = (count(ClusterSource::Named), count(ClusterSource::Density));
    let _ = writeln!(
        out,
        "\nClusters (target: {} of each cluster's enterprises within walking distance):",
        pct(p.coverage_target)
    );
    let _ = writeln!(
        out,
        "  {}",
        match (named, dense) {
            (0, _) => format!(
                "found by density: the points around each peak of enterprises within {:.0} m, {} points at least",
                p.radius_m, MIN_CLUSTER
            ),
            (_, 0) => "as the demand points name them".to_owned(),
            _ => format!(
                "{named} as the demand points name them, {dense} found by density (peaks of enterprises within {:.0} m) among the unnamed points",
                p.radius_m
            ),
        }
    );
    // The clusters that matter, then the scattered rest in one line.
    let shown = plan
        .clusters
        .iter()
        .take_while(|c| c.source != ClusterSource::Scattered)
        .take(20)
        .count();
    for c in &plan.clusters[..shown] {
        let _ = writeln!(
            out,
            "  {:<20} {:>5} enterprises  {:>4} -> {:>4}  {}",
            c.cluster.chars().take(20).collect::<String>(),
            c.enterprises,
            pct(c.share_before),
            pct(c.share_after),
            if c.meets_target {
                "meets target"
            } else {
                "below target"
            }
        );
    }
    let rest = &plan.clusters[shown..];
    let (more, scattered): (Vec<_>, Vec<_>) = rest
        .iter()
        .partition(|c| c.source != ClusterSource::Scattered);
    if !more.is_empty() {
        let _ = writeln!(
            out,
            "  ... and {} smaller cluster(s) ({} enterprises)",
            more.len(),
            more.iter().map(|c| c.enterprises).sum::<u64>()
        );
    }
    if !scattered.is_empty() {
        let _ = writeln!(
            out,
            "  ... and {} scattered demand point(s) in no cluster ({} enterprises)",
            scattered.len(),
            scattered.iter().map(|c| c.enterprises).sum::<u64>()
        );
    }
    out
}
