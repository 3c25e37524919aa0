//! The planner against hand-checked cities and the exact solver.

use super::*;

#[test]
fn erlang_b_matches_tables() {
    // Classic table values: 10 erlangs on 15 servers lose 3.65%; 5 on 10 lose 1.84%.
    assert!((erlang_b(15, 10.0) - 0.0365).abs() < 5e-4);
    assert!((erlang_b(10, 5.0) - 0.0184).abs() < 5e-4);
    assert_eq!(boxes_for(10.0, 0.05), 15);
    assert_eq!(boxes_for(0.0, 0.05), 0);
}

#[test]
fn distances_are_metres() {
    // One degree of latitude is about 111 km.
    let d = distance_m(23.0, 113.0, 24.0, 113.0);
    assert!((d - 111_195.0).abs() < 100.0, "{d}");
}

#[test]
fn lazy_greedy_and_swaps_find_the_obvious_best() {
    // Elements 0..6; set 2 covers 0..4, sets 0 and 1 split the rest.
    let sets = vec![vec![0, 1, 4], vec![2, 3, 5], vec![0, 1, 2, 3]];
    let w = vec![1.0; 6];
    let pre = vec![false; 6];
    let mut two = max_coverage(&sets, &w, &pre, 2, &[0, 0, 0], None);
    two.sort();
    // Greedy alone takes set 2 first (4) and then one of 4 or 5 (5 total); the swap
    // finds sets 0 and 1 (6).
    assert_eq!(two, vec![0, 1]);
    assert_eq!(exact(&sets, &w, &pre, 2), 6.0);
}

#[test]
fn a_box_budget_is_kept() {
    let sets = vec![vec![0, 1, 2], vec![3], vec![4]];
    let w = vec![1.0; 5];
    let chosen = max_coverage(&sets, &w, &[false; 5], 3, &[10, 2, 2], Some(5));
    assert_eq!(chosen, vec![1, 2], "the big one does not fit the budget");
}

use proptest::prelude::*;

/// A random instance: `n` elements with weights, `m` sets of random members.
fn instance() -> impl Strategy<Value = (Vec<Vec<usize>>, Vec<f64>, Vec<bool>, usize)> {
    (8usize..40, 4usize..14, 1usize..5).prop_flat_map(|(n, m, k)| {
        (
            proptest::collection::vec(proptest::collection::vec(0..n, 0..(n / 2).max(1)), m),
            proptest::collection::vec(1.0f64..50.0, n),
            proptest::collection::vec(proptest::bool::weighted(0.15), n),
            Just(k),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// On generated instances the heuristic reaches at least 95% of the optimum.
    #[test]
    fn the_heuristic_reaches_95_percent_of_the_optimum((sets, w, pre, k) in instance()) {
        let opt = exact(&sets, &w, &pre, k);
        let chosen = max_coverage(&sets, &w, &pre, k, &vec![0; sets.len()], None);
        prop_assert!(chosen.len() <= k);
        let mut covered = pre.clone();
        let base: f64 = (0..w.len()).filter(|&i| pre[i]).map(|i| w[i]).sum();
        for &j in &chosen {
            for &i in &sets[j] {
                covered[i] = true;
            }
        }
        let got: f64 = (0..w.len()).filter(|&i| covered[i]).map(|i| w[i]).sum::<f64>() - base;
        prop_assert!(got >= 0.95 * opt - 1e-9, "got {got}, optimum {opt}");
    }
}

/// A generated city: three dense enterprise clusters, like the document's three, in
/// scattered demand, candidates on a 400 m grid. The three must be found.
#[test]
fn three_dense_clusters_are_found() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let (lat0, lon0) = (23.10, 113.25);
    // Metres east/north of the city's corner to degrees.
    let at = |east: f64, north: f64| {
        (
            lat0 + north / 111_195.0,
            lon0 + east / (111_195.0 * lat0.to_radians().cos()),
        )
    };
    let centres = [(2_000.0, 2_500.0), (7_000.0, 6_500.0), (3_000.0, 8_000.0)];
    let mut demand = Vec::new();
    for (c, (e, n)) in centres.iter().enumerate() {
        for i in 0..40 {
            let (lat, lon) = at(
                e + rng.gen_range(-250.0..250.0),
                n + rng.gen_range(-250.0..250.0),
            );
            demand.push(DemandPoint {
                id: format!("c{c}-{i}"),
                name: String::new(),
                lat,
                lon,
                enterprises: rng.gen_range(5..30),
                monthly_cases: Some(rng.gen_range(20.0..80.0)),
                cluster: None,
            });
        }
    }
    for i in 0..80 {
        let (lat, lon) = at(rng.gen_range(0.0..10_000.0), rng.gen_range(0.0..10_000.0));
        demand.push(DemandPoint {
            id: format!("s{i}"),
            name: String::new(),
            lat,
            lon,
            enterprises: rng.gen_range(1..4),
            monthly_cases: Some(rng.gen_range(1.0..10.0)),
            cluster: None,
        });
    }
    let mut candidates = Vec::new();
    for x in 0..26 {
        for y in 0..26 {
            let (lat, lon) = at(f64::from(x) * 400.0, f64::from(y) * 400.0);
            candidates.push(Candidate {
                id: format!("g{x}-{y}"),
                name: String::new(),
                lat,
                lon,
                max_boxes: None,
            });
        }
    }
    // An existing service hall far from every cluster.
    let (hlat, hlon) = at(9_500.0, 500.0);
    let hall = ExistingSite {
        id: "hall".into(),
        name: "Service hall".into(),
        lat: hlat,
        lon: hlon,
        boxes: 24,
        occupancy: 0.85,
        peak_occupancy: 0.95,
        unmet_per_day: 3.0,
    };
    let p = PlanParams::default();
    let plan = plan(&demand, &candidates, &[hall], &p);
    assert_eq!(plan.recommendations.len(), 3);
    for (e, n) in centres {
        let (lat, lon) = at(e, n);
        assert!(
            plan.recommendations
                .iter()
                .any(|r| distance_m(r.lat, r.lon, lat, lon) <= 400.0),
            "no site near the cluster at {e} m east, {n} m north: {:?}",
            plan.recommendations
        );
    }
    // Each dense cluster goes from (almost) nothing to at least half its enterprises.
    let dense: Vec<&ClusterCoverage> = plan
        .clusters
        .iter()
        .filter(|c| c.demand_points >= 30)
        .collect();
    assert_eq!(dense.len(), 3, "{:?}", plan.clusters);
    assert!(
        dense.iter().all(|c| c.meets_target && c.share_before < 0.1),
        "{dense:?}"
    );
    assert!(plan.share_after > plan.share_before);
    // Sized by the loss model, and the saturated hall asks for more boxes.
    for r in &plan.recommendations {
        assert!(
            r.boxes.total > 0 && r.overflow_probability <= p.overflow,
            "{r:?}"
        );
        assert!(r.expected_usage > 0.0 && r.expected_usage < 1.0);
    }
    assert_eq!(plan.expansions.len(), 1);
    assert!(plan.expansions[0].add > 0);
}

#[test]
fn a_candidate_cap_is_reported() {
    let p = PlanParams::default();
    let (b, _, overflow, capped) = size_boxes(40.0, &p, Some(10));
    assert_eq!((b.total, capped), (10, true));
    assert!(overflow > p.overflow);
    let (b, _, overflow, capped) = size_boxes(4.0, &p, None);
    assert!(!capped && overflow <= p.overflow && b.s >= b.l, "{b:?}");
}

#[test]
fn a_plan_as_geojson_has_every_kind_of_feature_longitude_first() {
    let d = |id: &str, lat: f64, lon: f64| DemandPoint {
        id: id.into(),
        name: format!("企业 {id}"),
        lat,
        lon,
        enterprises: 20,
        monthly_cases: Some(50.0),
        cluster: Some("科技园".into()),
    };
    let demand = [d("a", 22.540, 113.950), d("b", 22.541, 113.951)];
    let candidates = [Candidate {
        id: "c1".into(),
        name: "驿站".into(),
        lat: 22.5405,
        lon: 113.9505,
        max_boxes: None,
    }];
    let hall = ExistingSite {
        id: "hall".into(),
        name: "政务服务大厅".into(),
        lat: 22.60,
        lon: 114.05,
        boxes: 24,
        occupancy: 0.9,
        peak_occupancy: 0.97,
        unmet_per_day: 4.0,
    };
    let p = PlanParams::default();
    let plan = plan(&demand, &candidates, std::slice::from_ref(&hall), &p);
    let geo = geojson(&plan, &demand, std::slice::from_ref(&hall));
    assert_eq!(geo["type"], "FeatureCollection");
    let features = geo["features"].as_array().expect("features");
    let kind = |k: &str| -> Vec<&serde_json::Value> {
        features
            .iter()
            .filter(|f| f["properties"]["kind"] == k)
            .collect()
    };
    assert_eq!(kind("demand_point").len(), 2);
    assert_eq!(kind("existing_site").len(), 1);
    assert_eq!(kind("recommended_site").len(), plan.recommendations.len());
    assert!(!plan.recommendations.is_empty());
    assert_eq!(kind("cluster").len(), plan.clusters.len());
    let site = kind("existing_site")[0];
    assert_eq!(
        site["geometry"]["coordinates"],
        serde_json::json!([114.05, 22.60]),
        "longitude first"
    );
    assert_eq!(site["properties"]["name"], "政务服务大厅");
    let rec = kind("recommended_site")[0];
    assert_eq!(rec["properties"]["radius_m"], serde_json::json!(p.radius_m));
    assert_eq!(rec["properties"]["id"], "c1");
}

/// A city's enterprises summed in 32 bits wrapped silently (`0 of 1705032704`): sums are 64-bit.
#[test]
fn totals_of_very_large_demand_do_not_wrap() {
    let d = |id: &str, lon: f64| DemandPoint {
        id: id.into(),
        name: String::new(),
        lat: 22.54,
        lon,
        enterprises: 3_000_000_000,
        monthly_cases: Some(50.0),
        cluster: None,
    };
    let demand = [d("a", 113.950), d("b", 113.951)];
    let candidates = [Candidate {
        id: "c1".into(),
        name: String::new(),
        lat: 22.54,
        lon: 113.9505,
        max_boxes: None,
    }];
    let plan = plan(&demand, &candidates, &[], &PlanParams::default());
    assert_eq!(plan.enterprises, 6_000_000_000);
    assert_eq!(plan.covered_after, 6_000_000_000);
    assert_eq!(plan.recommendations[0].enterprises_covered, 6_000_000_000);
    // Two points are no cluster (fewer than MIN_CLUSTER): each is reported scattered.
    assert!(
        plan.clusters
            .iter()
            .all(|c| c.source == ClusterSource::Scattered)
    );
    assert_eq!(
        plan.clusters.iter().map(|c| c.enterprises).sum::<u64>(),
        6_000_000_000
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// The Lagrangian bound is a bound: never below the optimum, whatever its steps found.
    #[test]
    fn the_upper_bound_is_never_below_the_optimum((sets, w, pre, k) in instance(), rounds in 1usize..300) {
        let opt = exact(&sets, &w, &pre, k);
        let bound = upper_bound(&sets, &w, &pre, k, 0.0, rounds);
        prop_assert!(bound >= opt - 1e-6 * opt.max(1.0), "bound {bound} below the optimum {opt}");
    }
}

/// Chaining points within the radius made one cluster of a dense city (3,750 of 3,839
/// points). Two parks joined by a street of offices are two clusters around their peaks.
#[test]
fn a_dense_city_is_not_one_cluster() {
    let (lat0, lon0) = (23.10, 113.25);
    let at = |east: f64, north: f64| {
        (
            lat0 + north / 111_195.0,
            lon0 + east / (111_195.0 * lat0.to_radians().cos()),
        )
    };
    let mut demand = Vec::new();
    let mut point = |id: String, east: f64, north: f64, enterprises: u32| {
        let (lat, lon) = at(east, north);
        demand.push(DemandPoint {
            id,
            name: String::new(),
            lat,
            lon,
            enterprises,
            monthly_cases: Some(10.0),
            cluster: None,
        });
    };
    // Two parks 3 km apart, 10 × 10 points 40 m apart; a street of single offices every
    // 100 m between them (each within 500 m of the next: one chain).
    for (park, east0) in [(0, 0.0), (1, 3_000.0)] {
        for x in 0..10 {
            for y in 0..10 {
                point(
                    format!("p{park}-{x}-{y}"),
                    east0 + f64::from(x) * 40.0,
                    f64::from(y) * 40.0,
                    20,
                );
            }
        }
    }
    for s in 1..=25 {
        point(format!("s{s}"), 360.0 + f64::from(s) * 100.0, 180.0, 1);
    }
    let plan = plan(&demand, &[], &[], &PlanParams::default());
    let found: Vec<&ClusterCoverage> = plan
        .clusters
        .iter()
        .filter(|c| c.source == ClusterSource::Density)
        .collect();
    assert!(found.len() >= 2, "{found:?}");
    // The two largest are the parks, each whole, each around its own centre.
    let mut parks = Vec::new();
    for c in found.iter().take(2) {
        assert!(c.demand_points >= 100 && c.demand_points < 130, "{c:?}");
        let park = [180.0, 3_180.0].into_iter().position(|east| {
            let (lat, lon) = at(east, 180.0);
            distance_m(c.lat, c.lon, lat, lon) < 250.0
        });
        parks.push(park);
    }
    parks.sort();
    assert_eq!(parks, [Some(0), Some(1)], "{found:?}");
}
