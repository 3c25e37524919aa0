//! The plan as text tables for a terminal (`fleet-server plan`), in the reader's language;
//! columns line up whatever the script (a Chinese character takes two cells).

use std::fmt::Write;

use domain::planner::{ClusterSource, MIN_CLUSTER, Plan};
use l10n::{Lang, t};
use unicode_width::UnicodeWidthStr;

/// `text` cut to `width` terminal cells and padded to it, on the left when `right`.
fn cell(text: &str, width: usize, right: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if (out.as_str().width() + c.to_string().width()) > width {
            break;
        }
        out.push(c);
    }
    let pad = " ".repeat(width.saturating_sub(out.as_str().width()));
    if right { pad + &out } else { out + &pad }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The plan as text tables, in `lang`.
pub fn render(plan: &Plan, lang: Lang) -> String {
    let mut out = String::new();
    let p = &plan.params;
    let _ = writeln!(
        out,
        "{}",
        t!(
            lang,
            "planner-coverage",
            radius = format!("{:.0}", p.radius_m),
            before = plan.covered_before.to_string(),
            enterprises = plan.enterprises.to_string(),
            share_before = pct(plan.share_before),
            after = plan.covered_after.to_string(),
            share_after = pct(plan.share_after),
            sites = plan.recommendations.len().to_string()
        )
    );
    let _ = writeln!(
        out,
        "{}\n",
        t!(
            lang,
            "planner-sizing",
            overflow = pct(p.overflow),
            peak = p.peak_factor.to_string(),
            dwell = format!("{:.1}", p.dwell_hours),
            uses = p.uses_per_case.to_string()
        )
    );
    // Each column's width in terminal cells and whether it is right-aligned.
    const COLUMNS: [(usize, bool); 10] = [
        (4, false),
        (20, false),
        (10, true),
        (11, true),
        (11, true),
        (11, true),
        (9, true),
        (5, true),
        (6, true),
        (8, true),
    ];
    let row = |values: [String; 10]| -> String {
        COLUMNS
            .iter()
            .zip(values)
            .map(|(&(width, right), v)| cell(&v, width, right))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let header = [
        t!(lang, "planner-col-rank"),
        t!(lang, "planner-col-candidate"),
        t!(lang, "planner-col-lat"),
        t!(lang, "planner-col-lon"),
        t!(lang, "planner-col-enterprises"),
        t!(lang, "planner-col-cases"),
        t!(lang, "planner-col-sizes"),
        t!(lang, "planner-col-boxes"),
        t!(lang, "planner-col-usage"),
        t!(lang, "planner-col-overflow"),
    ];
    let _ = writeln!(out, "{}", row(header));
    for r in &plan.recommendations {
        let name = if r.name.is_empty() {
            &r.candidate_id
        } else {
            &r.name
        };
        let line = row([
            r.rank.to_string(),
            name.clone(),
            format!("{:.6}", r.lat),
            format!("{:.6}", r.lon),
            r.enterprises_covered.to_string(),
            format!("{:.0}", r.cases_covered),
            format!("{}/{}/{}", r.boxes.s, r.boxes.m, r.boxes.l),
            r.boxes.total.to_string(),
            pct(r.expected_usage),
            format!("{:.1}%", r.overflow_probability * 100.0),
        ]);
        let capped = if r.capped {
            format!("  {}", t!(lang, "planner-capped"))
        } else {
            String::new()
        };
        let _ = writeln!(out, "{line}{capped}");
    }
    if p.new_sites == 0 {
        let _ = writeln!(out, "{}", t!(lang, "planner-none-asked"));
    } else if plan.recommendations.is_empty() {
        let _ = writeln!(out, "{}", t!(lang, "planner-none-reach"));
    }
    let points = plan.clusters.iter().map(|c| c.demand_points).sum::<usize>();
    if plan.points_without_cases > 0 && plan.points_without_cases == points {
        let _ = writeln!(out, "{}", t!(lang, "planner-no-cases"));
    } else if plan.points_without_cases > 0 {
        let _ = writeln!(
            out,
            "{}",
            t!(
                lang,
                "planner-some-cases",
                without = plan.points_without_cases.to_string(),
                points = points.to_string()
            )
        );
    }
    if !plan.expansions.is_empty() {
        let _ = writeln!(out, "\n{}", t!(lang, "planner-expansions"));
        for e in &plan.expansions {
            let _ = writeln!(
                out,
                "  {}",
                t!(
                    lang,
                    "planner-expansion",
                    site = cell(&e.name, 20, false),
                    boxes = e.boxes.to_string(),
                    needed = e.boxes_needed.to_string(),
                    add = e.add.to_string(),
                    peak = pct(e.peak_occupancy),
                    refused = format!("{:.1}", e.unmet_per_day)
                )
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        t!(lang, "planner-clusters", target = pct(p.coverage_target))
    );
    let count = |s: ClusterSource| plan.clusters.iter().filter(|c| c.source == s).count();
    let (named, dense) = (count(ClusterSource::Named), count(ClusterSource::Density));
    let radius = format!("{:.0}", p.radius_m);
    let kind = match (named, dense) {
        (0, _) => t!(
            lang,
            "planner-clusters-density",
            radius = radius,
            min = MIN_CLUSTER.to_string()
        ),
        (_, 0) => t!(lang, "planner-clusters-named"),
        _ => t!(
            lang,
            "planner-clusters-both",
            named = named.to_string(),
            dense = dense.to_string(),
            radius = radius
        ),
    };
    let _ = writeln!(out, "  {kind}");
    // The clusters that matter, then the rest in a line each for smaller and scattered.
    let shown = plan
        .clusters
        .iter()
        .take_while(|c| c.source != ClusterSource::Scattered)
        .take(20)
        .count();
    for c in &plan.clusters[..shown] {
        let verdict = if c.meets_target {
            t!(lang, "planner-meets")
        } else {
            t!(lang, "planner-below")
        };
        let _ = writeln!(
            out,
            "  {} {}  {verdict}",
            cell(&c.cluster, 20, false),
            t!(
                lang,
                "planner-cluster-row",
                enterprises = cell(&c.enterprises.to_string(), 5, true),
                before = cell(&pct(c.share_before), 4, true),
                after = cell(&pct(c.share_after), 4, true)
            )
        );
    }
    let (more, scattered): (Vec<_>, Vec<_>) = plan.clusters[shown..]
        .iter()
        .partition(|c| c.source != ClusterSource::Scattered);
    let sum = |group: &[&domain::planner::ClusterCoverage]| {
        (
            group.len().to_string(),
            group.iter().map(|c| c.enterprises).sum::<u64>().to_string(),
        )
    };
    if !more.is_empty() {
        let (count, enterprises) = sum(&more);
        let line = t!(
            lang,
            "planner-more-clusters",
            count = count,
            enterprises = enterprises
        );
        let _ = writeln!(out, "  {line}");
    }
    if !scattered.is_empty() {
        let (count, enterprises) = sum(&scattered);
        let line = t!(
            lang,
            "planner-scattered",
            count = count,
            enterprises = enterprises
        );
        let _ = writeln!(out, "  {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use domain::planner::{Candidate, DemandPoint, PlanParams, plan};

    use super::*;

    fn demand(id: &str, lat: f64, lon: f64) -> DemandPoint {
        DemandPoint {
            id: id.into(),
            name: String::new(),
            lat,
            lon,
            enterprises: 10,
            monthly_cases: Some(50.0),
            cluster: None,
        }
    }

    /// The report gives each recommended site's coordinates, says "no new sites asked for"
    /// for `--new-sites 0` (not that no candidate reaches uncovered demand), and says how its
    /// clusters were found, in English and in Chinese with the columns lined up.
    #[test]
    fn the_report_places_its_sites_in_either_language() {
        let points: Vec<DemandPoint> = (0..5)
            .map(|i| demand(&format!("p{i}"), 22.54 + f64::from(i) * 0.0005, 113.95))
            .collect();
        let candidates = [Candidate {
            id: "c1".into(),
            name: "北门广场".into(),
            lat: 22.5401,
            lon: 113.9502,
            max_boxes: None,
        }];
        let made = plan(&points, &candidates, &[], &PlanParams::default());
        for lang in Lang::ALL {
            let text = render(&made, lang);
            assert!(
                text.contains("22.540100") && text.contains("113.950200"),
                "{text}"
            );
            // Every line of the table is as wide as its header, in terminal cells.
            let lines: Vec<&str> = text.lines().skip(3).take(2).collect();
            assert_eq!(lines[0].width(), lines[1].width(), "{text}");
        }
        let en = render(&made, Lang::En);
        assert!(en.contains("found by density"), "{en}");
        let zh = render(&made, Lang::ZhCn);
        assert!(zh.contains("按密度划分") && zh.contains("纬度"), "{zh}");
        let none = PlanParams {
            new_sites: 0,
            ..PlanParams::default()
        };
        let text = render(&plan(&points, &candidates, &[], &none), Lang::En);
        assert!(text.contains("no new sites asked for"), "{text}");
        assert!(!text.contains("no candidate reaches"), "{text}");
    }

    #[test]
    fn a_cell_is_cut_and_padded_in_terminal_cells() {
        assert_eq!(cell("北门广场", 6, false), "北门广");
        assert_eq!(cell("北门广场", 10, false).width(), 10);
        assert_eq!(cell("42", 4, true), "  42");
    }
}
