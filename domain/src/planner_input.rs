//! The planner's inputs as the service platform exports them: demand points and candidate
//! sites, as CSV (with a header row) or GeoJSON (a FeatureCollection of Points). Every
//! refusal names the line or feature and the field, and says what was expected.

use std::collections::HashSet;

use serde::Deserialize;

use crate::planner::{Candidate, DemandPoint};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct InputError(pub String);

fn err(s: impl Into<String>) -> InputError {
    InputError(s.into())
}

/// Demand points from CSV (`id,lat,lon,enterprises[,monthly_cases][,name][,cluster]`) or
/// GeoJSON (property `enterprises`, optional `monthly_cases`, `id`, `name`, `cluster`). A
/// point without monthly cases counts for coverage by enterprises; sizing boxes needs them.
pub fn demand(text: &str) -> Result<Vec<DemandPoint>, InputError> {
    let points: Vec<DemandPoint> = if is_geojson(text) {
        features(text)?
            .into_iter()
            .map(|(n, id, lat, lon, p)| {
                let num = |k: &str| -> Result<f64, InputError> {
                    p.get(k)
                        .and_then(serde_json::Value::as_f64)
                        .ok_or_else(|| err(format!("feature {n}: property {k:?} must be a number")))
                };
                let enterprises = num("enterprises")?;
                if enterprises < 0.0
                    || enterprises.fract() != 0.0
                    || enterprises > f64::from(u32::MAX)
                {
                    return Err(err(format!(
                        "feature {n}: enterprises must be a whole number from 0 to {}",
                        u32::MAX
                    )));
                }
                Ok(DemandPoint {
                    id,
                    name: text_prop(&p, "name"),
                    lat,
                    lon,
                    enterprises: enterprises as u32,
                    monthly_cases: match p.get("monthly_cases") {
                        None | Some(serde_json::Value::Null) => None,
                        Some(_) => Some(num("monthly_cases")?),
                    },
                    cluster: Some(text_prop(&p, "cluster")).filter(|c| !c.is_empty()),
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        rows::<DemandPoint>(text, &["id", "lat", "lon", "enterprises"])?
            .into_iter()
            .map(|(_, mut d)| {
                d.cluster = d.cluster.filter(|c| !c.trim().is_empty());
                d
            })
            .collect()
    };
    for (i, d) in points.iter().enumerate() {
        check_place(i, &d.id, d.lat, d.lon)?;
        if d.monthly_cases
            .is_some_and(|c| !(c.is_finite() && c >= 0.0))
        {
            return Err(err(format!("{}: monthly_cases must be 0 or more", d.id)));
        }
    }
    unique(points.iter().map(|d| d.id.as_str()))?;
    if points.is_empty() {
        return Err(err("no demand points: give at least one row or feature"));
    }
    Ok(points)
}

/// Candidate sites from CSV (`id,lat,lon[,name][,max_boxes]`) or GeoJSON (optional
/// properties `id`, `name`, `max_boxes`).
pub fn candidates(text: &str) -> Result<Vec<Candidate>, InputError> {
    let out: Vec<Candidate> = if is_geojson(text) {
        features(text)?
            .into_iter()
            .map(|(n, id, lat, lon, p)| {
                let max_boxes = match p.get("max_boxes") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => Some(v.as_u64().and_then(|b| u32::try_from(b).ok()).ok_or_else(
                        || err(format!("feature {n}: max_boxes must be a whole number")),
                    )?),
                };
                Ok(Candidate {
                    id,
                    name: text_prop(&p, "name"),
                    lat,
                    lon,
                    max_boxes,
                })
            })
            .collect::<Result<_, InputError>>()?
    } else {
        rows::<Candidate>(text, &["id", "lat", "lon"])?
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    };
    for (i, c) in out.iter().enumerate() {
        check_place(i, &c.id, c.lat, c.lon)?;
    }
    unique(out.iter().map(|c| c.id.as_str()))?;
    if out.is_empty() {
        return Err(err("no candidate sites: give at least one row or feature"));
    }
    Ok(out)
}

fn is_geojson(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

fn text_prop(p: &serde_json::Map<String, serde_json::Value>, k: &str) -> String {
    match p.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// CSV rows with the header checked first, so a missing column is named, not guessed.
fn rows<T: for<'de> Deserialize<'de>>(
    text: &str,
    required: &[&str],
) -> Result<Vec<(u64, T)>, InputError> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = r
        .headers()
        .map_err(|e| err(format!("CSV header: {e}")))?
        .clone();
    for col in required {
        if !headers.iter().any(|h| h == *col) {
            return Err(err(format!(
                "CSV header lacks column {col:?}: the header must name {}",
                required.join(", ")
            )));
        }
    }
    let mut out = Vec::new();
    for rec in r.deserialize::<T>() {
        match rec {
            Ok(v) => out.push((0, v)),
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                let what = match e.kind() {
                    csv::ErrorKind::Deserialize { err, .. } => {
                        // The parser's own words ("invalid digit found in string") do not
                        // say what was expected.
                        let expected = match err.kind() {
                            csv::DeserializeErrorKind::ParseInt(_) => {
                                format!("must be a whole number from 0 to {}", u32::MAX)
                            }
                            csv::DeserializeErrorKind::ParseFloat(_) => "must be a number".into(),
                            other => other.to_string(),
                        };
                        match err.field() {
                            Some(f) => format!(
                                "column {:?} {expected}",
                                headers.get(f as usize).unwrap_or("?")
                            ),
                            None => expected,
                        }
                    }
                    other => format!("{other:?}"),
                };
                return Err(err(format!("CSV line {line}: {what}")));
            }
        }
    }
    Ok(out)
}

type Feature = (
    usize,
    String,
    f64,
    f64,
    serde_json::Map<String, serde_json::Value>,
);

/// The Point features of a FeatureCollection: (number, id, lat, lon, properties).
fn features(text: &str) -> Result<Vec<Feature>, InputError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(format!("GeoJSON is not valid JSON: {e}")))?;
    if v.get("type").and_then(|t| t.as_str()) != Some("FeatureCollection") {
        return Err(err("GeoJSON must be a FeatureCollection"));
    }
    let list = v
        .get("features")
        .and_then(|f| f.as_array())
        .ok_or_else(|| err("GeoJSON FeatureCollection has no \"features\" array"))?;
    let mut out = Vec::with_capacity(list.len());
    for (n, f) in list.iter().enumerate() {
        let n = n + 1;
        let g = f.get("geometry");
        if g.and_then(|g| g.get("type")).and_then(|t| t.as_str()) != Some("Point") {
            return Err(err(format!("feature {n}: geometry must be a Point")));
        }
        let c = g
            .and_then(|g| g.get("coordinates"))
            .and_then(|c| c.as_array())
            .filter(|c| c.len() >= 2)
            .ok_or_else(|| err(format!("feature {n}: Point needs coordinates [lon, lat]")))?;
        let (lon, lat) = match (c[0].as_f64(), c[1].as_f64()) {
            (Some(lon), Some(lat)) => (lon, lat),
            _ => {
                return Err(err(format!(
                    "feature {n}: coordinates must be numbers [lon, lat]"
                )));
            }
        };
        let props = f
            .get("properties")
            .and_then(|p| p.as_object())
            .cloned()
            .unwrap_or_default();
        let id = match f.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(x)) => x.to_string(),
            _ => Some(text_prop(&props, "id"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("feature-{n}")),
        };
        out.push((n, id, lat, lon, props));
    }
    Ok(out)
}

fn check_place(i: usize, id: &str, lat: f64, lon: f64) -> Result<(), InputError> {
    if id.trim().is_empty() || id.len() > 128 {
        return Err(err(format!(
            "entry {}: id must be 1 to 128 characters",
            i + 1
        )));
    }
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(err(format!("{id}: lat {lat} is not a latitude (-90..90)")));
    }
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(err(format!(
            "{id}: lon {lon} is not a longitude (-180..180)"
        )));
    }
    Ok(())
}

fn unique<'a>(ids: impl Iterator<Item = &'a str>) -> Result<(), InputError> {
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(err(format!("id {id:?} appears twice: ids must be unique")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_geojson_give_the_same_points() {
        let csv = "id,name,lat,lon,enterprises,monthly_cases,cluster\n\
                   p1,Tower A,23.1,113.2,12,40.5,North Park\n\
                   p2,,23.2,113.3,3,7,\n";
        let geo = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":"p1","geometry":{"type":"Point","coordinates":[113.2,23.1]},
             "properties":{"name":"Tower A","enterprises":12,"monthly_cases":40.5,"cluster":"North Park"}},
            {"type":"Feature","geometry":{"type":"Point","coordinates":[113.3,23.2]},
             "properties":{"id":"p2","enterprises":3,"monthly_cases":7}}]}"#;
        let a = demand(csv).expect("csv");
        assert_eq!(a, demand(geo).expect("geojson"));
        assert_eq!(a[0].cluster.as_deref(), Some("North Park"));
        assert_eq!(a[1].cluster, None);
    }

    #[test]
    fn bad_input_says_where_and_what() {
        let e = |r: Result<Vec<DemandPoint>, InputError>| r.expect_err("refused").0;
        assert!(e(demand("id,lat,lon,enterprise\np,1,2,3\n")).contains("enterprises"));
        let bad = e(demand(
            "id,lat,lon,enterprises,monthly_cases\np,1,2,3,4\nq,x,2,3,4\n",
        ));
        assert!(bad.contains("line 3") && bad.contains("\"lat\""), "{bad}");
        assert!(
            e(demand("id,lat,lon,enterprises,monthly_cases\np,91,2,3,4\n")).contains("latitude")
        );
        assert!(
            e(demand(
                "id,lat,lon,enterprises,monthly_cases\np,1,2,3,4\np,1,2,3,4\n"
            ))
            .contains("twice")
        );
        assert!(e(demand("id,lat,lon,enterprises,monthly_cases\n")).contains("no demand points"));
        assert!(e(demand("{\"type\":\"Feature\"}")).contains("FeatureCollection"));
        let c = candidates(r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"LineString","coordinates":[]}}]}"#)
            .expect_err("line");
        assert!(c.0.contains("feature 1") && c.0.contains("Point"), "{c}");
        // Counts are whole, within 32 bits, in both formats, and the refusal says so.
        for n in ["2.5", "5000000000", "-1"] {
            let bad = e(demand(&format!(
                "id,lat,lon,enterprises,monthly_cases\np,1,2,{n},4\n"
            )));
            assert!(
                bad.contains("\"enterprises\" must be a whole number from 0 to 4294967295"),
                "{n}: {bad}"
            );
            let geo = format!(
                r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","geometry":{{"type":"Point","coordinates":[2,1]}},"properties":{{"enterprises":{n},"monthly_cases":4}}}}]}}"#
            );
            assert!(
                e(demand(&geo)).contains("enterprises must be a whole number from 0 to 4294967295"),
                "{n}"
            );
        }
        assert!(
            e(demand(
                "id,lat,lon,enterprises,monthly_cases\np,1,2,3,many\n"
            ))
            .contains("\"monthly_cases\" must be a number")
        );
        let c = candidates("id,lat,lon,max_boxes\nc1,23,113,\nc2,23,113,40\n").expect("csv");
        assert_eq!((c[0].max_boxes, c[1].max_boxes), (None, Some(40)));
    }

    proptest::proptest! {
        /// Whatever text arrives, parsing answers (a list or an error), never panics.
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = demand(&s);
            let _ = candidates(&s);
            let _ = demand(&format!("id,lat,lon,enterprises,monthly_cases\n{s}"));
        }
    }
}
