//! The plan as text tables for a terminal (`fleet-server plan`).

use super::Plan;

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
        "{:<4} {:<20} {:>11} {:>11} {:>9} {:>5} {:>6} {:>8}",
        "rank", "candidate", "enterprises", "cases/month", "S/M/L", "boxes", "usage", "overflow"
    );
    for r in &plan.recommendations {
        let name = if r.name.is_empty() {
            &r.candidate_id
        } else {
            &r.name
        };
        let _ = writeln!(
            out,
            "{:<4} {:<20} {:>11} {:>11.0} {:>9} {:>5} {:>6} {:>8}{}",
            r.rank,
            name.chars().take(20).collect::<String>(),
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
    if plan.recommendations.is_empty() {
        let _ = writeln!(
            out,
            "(no candidate reaches demand that is not already covered)"
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
    let _ = writeln!(
        out,
        "\nClusters (target: {} of each cluster's enterprises within walking distance):",
        pct(p.coverage_target)
    );
    // The clusters that matter, then the scattered rest in one line.
    let shown = plan
        .clusters
        .iter()
        .take_while(|c| c.demand_points >= 3 || c.meets_target)
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
    if !rest.is_empty() {
        let _ = writeln!(
            out,
            "  ... and {} scattered group(s) of fewer than 3 demand points ({} enterprises)",
            rest.len(),
            rest.iter().map(|c| c.enterprises).sum::<u64>()
        );
    }
    out
}
