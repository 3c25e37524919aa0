//! A plan as a GeoJSON FeatureCollection (RFC 7946), so it opens in QGIS or any web map as
//! it is: demand points, the sites in service (with their occupancy and the boxes a plan adds),
//! the recommended sites (with their walking radius) and each cluster's coverage before and
//! after. Every feature says what it is in `properties.kind`.

use serde_json::{Value, json};

use super::{DemandPoint, ExistingSite, Plan};

fn point(lat: f64, lon: f64, properties: Value) -> Value {
    // GeoJSON orders a position longitude first.
    json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": properties,
    })
}

/// The plan, the demand it was made from and the sites in service, as one FeatureCollection.
pub fn geojson(plan: &Plan, demand: &[DemandPoint], sites: &[ExistingSite]) -> Value {
    let mut features = Vec::new();
    for d in demand {
        features.push(point(
            d.lat,
            d.lon,
            json!({
                "kind": "demand_point", "id": d.id, "name": d.name,
                "enterprises": d.enterprises, "monthly_cases": d.monthly_cases,
                "cluster": d.cluster,
            }),
        ));
    }
    for s in sites {
        let add = plan
            .expansions
            .iter()
            .find(|e| e.site_id == s.id)
            .map_or(0, |e| e.add);
        features.push(point(
            s.lat,
            s.lon,
            json!({
                "kind": "existing_site", "id": s.id, "name": s.name, "boxes": s.boxes,
                "occupancy": s.occupancy, "peak_occupancy": s.peak_occupancy,
                "unmet_per_day": s.unmet_per_day, "add_boxes": add,
            }),
        ));
    }
    for r in &plan.recommendations {
        features.push(point(
            r.lat,
            r.lon,
            json!({
                "kind": "recommended_site", "rank": r.rank, "id": r.candidate_id,
                "name": r.name, "radius_m": plan.params.radius_m,
                "boxes": r.boxes.total, "boxes_s": r.boxes.s, "boxes_m": r.boxes.m,
                "boxes_l": r.boxes.l, "enterprises_covered": r.enterprises_covered,
                "cases_covered": r.cases_covered, "expected_usage": r.expected_usage,
                "overflow_probability": r.overflow_probability,
            }),
        ));
    }
    for c in &plan.clusters {
        features.push(point(
            c.lat,
            c.lon,
            json!({
                "kind": "cluster", "name": c.cluster, "enterprises": c.enterprises,
                "share_before": c.share_before, "share_after": c.share_after,
                "meets_target": c.meets_target,
            }),
        ));
    }
    json!({"type": "FeatureCollection", "features": features})
}
