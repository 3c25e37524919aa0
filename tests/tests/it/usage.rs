//! Usage reports over HTTP: JSON and CSV from a real server, refused reservations counted as
//! unmet demand, clear errors for bad parameters, and the saturation list.

use serde_json::{Value, json};

use crate::export::{CAB, site_and_cabinet};
use crate::harness::{World, now_ms};

#[tokio::test]
async fn usage_reports_in_json_and_csv_with_clear_errors() {
    let world = World::new(&[CAB]);
    let server = world.server();
    let api = server.api();
    site_and_cabinet(&api).await;
    let (s, body) = api
        .post(
            "/api/v1/tokens",
            json!({"name": "platform", "role": "platform"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let platform = api.with_token(body["token"].as_str().expect("token"));
    // Eight M boxes: eight reservations hold them all, the ninth is refused (unmet demand).
    for i in 0..9 {
        let (s, r) = platform
            .post(
                "/api/v1/reservations",
                json!({"flow": "dropoff", "case_number": format!("GZ-{i}"), "phone": "13812345678",
                       "site_id": "hall", "size": "M"}),
            )
            .await;
        assert_eq!(s, if i < 8 { 201 } else { 409 }, "reservation {i}: {r}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let from = now_ms() - 3_600_000;
    let (s, r) = api
        .get(&format!(
            "/api/v1/usage?scope=site&id=hall&bucket=hour&from={from}"
        ))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["scope"].as_str(), r["id"].as_str(), r["boxes"].as_i64()),
        (Some("site"), Some("hall"), Some(8))
    );
    let buckets = r["buckets"].as_array().expect("buckets");
    assert!((1..=3).contains(&buckets.len()), "{r}");
    let t = &r["totals"];
    assert_eq!(t["unmet"], json!(1), "{r}");
    assert_eq!(t["uses"], json!(0), "nothing placed yet: {r}");
    assert_eq!(t["occupancy"], json!(0.0));
    let held = t["held_rate"].as_f64().expect("held_rate");
    assert!(held > 0.9, "all boxes held since they exist: {r}");

    // The same as CSV: a header and one row per bucket.
    let csv = api
        .get_text(&format!(
            "/api/v1/usage?scope=site&id=hall&bucket=hour&from={from}&format=csv"
        ))
        .await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("scope,id,start,start_ms,box_hours"),
        "{csv}"
    );
    assert_eq!(lines.len(), buckets.len() + 1, "{csv}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("site,hall,20")),
        "{csv}"
    );
    let unmet: i64 = lines[1..]
        .iter()
        .filter_map(|l| l.rsplit(',').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(unmet, 1, "{csv}");

    // Box and fleet scopes.
    let (s, r) = api
        .get(&format!("/api/v1/usage?scope=box&id={CAB}/1"))
        .await;
    assert_eq!((s, r["boxes"].as_i64()), (200, Some(1)), "{r}");
    let (s, r) = api.get("/api/v1/usage").await;
    assert_eq!((s, r["scope"].as_str()), (200, Some("fleet")), "{r}");
    assert_eq!(
        r["buckets"].as_array().map(Vec::len),
        Some(8),
        "7 days and today: {r}"
    );

    // Every site's last hours in one answer (the console's heatmap).
    let (s, r) = api.get("/api/v1/usage/sites?hours=24").await;
    assert_eq!(s, 200, "{r}");
    let hall = &r["sites"][0];
    assert_eq!(
        (
            hall["site_id"].as_str(),
            hall["occupancy"].as_array().map(Vec::len)
        ),
        (Some("hall"), Some(24))
    );
    assert_eq!(
        hall["unmet"]
            .as_array()
            .map(|u| u.iter().filter_map(Value::as_i64).sum::<i64>()),
        Some(1)
    );
    let (s, _) = api.get("/api/v1/usage/sites?hours=500").await;
    assert_eq!(s, 400);

    // Bad parameters say what was wrong.
    for (query, status, says) in [
        ("scope=site", 400, "needs an id"),
        ("scope=site&id=nowhere", 404, "no site"),
        ("scope=planet", 400, "not one of"),
        ("scope=box&id=cab-export", 400, "CABINET/BOX"),
        ("scope=box&id=cab-export/99", 404, "no box 99"),
        ("bucket=week", 400, "hour, day"),
        ("from=yesterday", 400, "YYYY-MM-DD"),
        ("from=2026-01-01&to=2025-01-01", 400, "must be after"),
        ("from=2020-01-01&bucket=hour", 400, "at most"),
        ("format=xml", 400, "json, csv"),
        ("colour=red", 400, "unknown field"),
    ] {
        let (s, r) = api.get(&format!("/api/v1/usage?{query}")).await;
        assert_eq!(s, status, "{query}: {r}");
        let e = r["error"].as_str().unwrap_or_default();
        assert!(e.contains(says), "{query}: {e}");
    }

    // Saturation: the hall is new, so no whole day above the rate yet.
    let (s, r) = api.get("/api/v1/usage/saturation").await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["rate"].as_f64(), r["days"].as_u64(), r["window"].as_u64()),
        (Some(0.8), Some(5), Some(7))
    );
    let hall: &Value = r["sites"].as_array().and_then(|s| s.first()).expect("hall");
    assert_eq!(
        (hall["site_id"].as_str(), hall["saturated"].as_bool()),
        (Some("hall"), Some(false))
    );
    let (s, r) = api.get("/api/v1/usage/saturation?rate=1.5").await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = api.get("/api/v1/usage/saturation?days=9&window=7").await;
    assert_eq!(s, 400, "{r}");
}

/// The example city in `docs/planning`: three enterprise parks in scattered demand.
fn example(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/planning")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The candidates CSV as a GeoJSON FeatureCollection, so both input formats are exercised.
fn as_geojson(csv: &str) -> String {
    let features: Vec<Value> = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let (lat, lon) = (
                f.get(2)?.parse::<f64>().ok()?,
                f.get(3)?.parse::<f64>().ok()?,
            );
            Some(
                json!({"type": "Feature", "id": f[0], "properties": {"name": f[1]},
                        "geometry": {"type": "Point", "coordinates": [lon, lat]}}),
            )
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[tokio::test]
async fn planning_finds_the_three_parks_over_http_and_from_the_cli() {
    let world = World::new(&[]);
    let server = world.server();
    let api = server.api();
    let (s, r) = api.get("/api/v1/planning/recommendations").await;
    assert_eq!(s, 409, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("PUT /api/v1/planning/demand")
    );
    let token = |role: &'static str| {
        let api = &api;
        async move {
            let (s, body) = api
                .post("/api/v1/tokens", json!({"name": role, "role": role}))
                .await;
            assert_eq!(s, 201, "{body}");
            api.with_token(body["token"].as_str().expect("token"))
        }
    };
    let (viewer, platform) = (token("viewer").await, token("platform").await);
    let demand = example("demand.csv");
    let (s, _) = viewer
        .put_text("/api/v1/planning/demand", "text/csv", demand.clone())
        .await;
    assert_eq!(s, 403, "a viewer cannot replace the demand");
    let broken = format!("{demand}b999,x,not-a-latitude,113.2,3,4,\n");
    let (s, r) = platform
        .put_text("/api/v1/planning/demand", "text/csv", broken)
        .await;
    assert_eq!(s, 400, "{r}");
    let e = r["error"].as_str().unwrap_or_default();
    assert!(e.contains("line 202") && e.contains("lat"), "{e}");
    let (s, r) = platform
        .put_text("/api/v1/planning/demand", "text/csv", demand)
        .await;
    assert_eq!((s, r["stored"].as_u64()), (200, Some(200)), "{r}");
    let geo = as_geojson(&example("candidates.csv"));
    let (s, r) = platform
        .put_text("/api/v1/planning/candidates", "application/geo+json", geo)
        .await;
    assert_eq!((s, r["stored"].as_u64()), (200, Some(676)), "{r}");

    let (s, plan) = viewer
        .get("/api/v1/planning/recommendations?new_sites=3")
        .await;
    assert_eq!(s, 200, "{plan}");
    let recs = plan["recommendations"].as_array().expect("recommendations");
    assert_eq!(recs.len(), 3, "{plan}");
    for r in recs {
        assert!(r["boxes"]["total"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(
            r["overflow_probability"].as_f64().unwrap_or(1.0) <= 0.05,
            "{r}"
        );
    }
    let parks = [
        "Science Park",
        "Harbour Trade Zone",
        "North Industrial Park",
    ];
    for park in parks {
        let c = plan["clusters"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["cluster"] == json!(park)))
            .unwrap_or_else(|| panic!("no cluster {park}: {plan}"));
        assert_eq!(c["share_before"], json!(0.0), "{c}");
        assert_eq!(c["meets_target"], json!(true), "{park} reaches 50%: {c}");
    }
    assert_eq!(plan["measured_days"], json!(30));
    // The same plan as GeoJSON for a map: longitude first, every kind of feature.
    let (s, geo) = viewer
        .get("/api/v1/planning/recommendations?new_sites=3&format=geojson")
        .await;
    assert_eq!(s, 200, "{geo}");
    assert_eq!(geo["type"], "FeatureCollection");
    let features = geo["features"].as_array().expect("features");
    let of_kind = |k: &str| {
        features
            .iter()
            .filter(|f| f["properties"]["kind"] == k)
            .count()
    };
    assert_eq!(of_kind("recommended_site"), 3, "{geo}");
    assert_eq!(of_kind("demand_point"), 200, "every demand point");
    assert!(of_kind("cluster") >= 3, "{geo}");
    let lon = features[0]["geometry"]["coordinates"][0]
        .as_f64()
        .unwrap_or(0.0);
    assert!((100.0..130.0).contains(&lon), "longitude first: {lon}");
    let (s, r) = viewer
        .get("/api/v1/planning/recommendations?format=kml")
        .await;
    assert_eq!(s, 400, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("json, geojson"),
        "{r}"
    );
    let (s, r) = viewer
        .get("/api/v1/planning/recommendations?radius_m=-5")
        .await;
    assert_eq!(s, 400, "{r}");
    assert!(r["error"].as_str().unwrap_or_default().contains("radius_m"));

    // The command line gives the same recommendation from the same files.
    let dir = world.path("plan-data");
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/planning");
    let out = std::process::Command::new(crate::harness::bin("fleet-server"))
        .args([
            "--data-dir",
            &dir.display().to_string(),
            "plan",
            "--lang",
            "en",
            "--json",
            "--new-sites",
            "3",
            "--geojson",
            &world.path("plan.geojson").display().to_string(),
        ])
        .args(["--demand", &docs.join("demand.csv").display().to_string()])
        .args([
            "--candidates",
            &docs.join("candidates.csv").display().to_string(),
        ])
        .output()
        .expect("fleet-server plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    let ids = |p: &Value| -> Vec<String> {
        p["recommendations"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["candidate_id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ids(&cli), ids(&plan));
    let written: Value = serde_json::from_slice(
        &std::fs::read(world.path("plan.geojson")).expect("the GeoJSON file"),
    )
    .expect("GeoJSON");
    let geo_ids: Vec<String> = written["features"]
        .as_array()
        .expect("features")
        .iter()
        .filter(|f| f["properties"]["kind"] == "recommended_site")
        .filter_map(|f| f["properties"]["id"].as_str().map(String::from))
        .collect();
    assert_eq!(
        geo_ids,
        ids(&plan),
        "the file holds the same recommendations"
    );
    // A plan from files alone creates no database: the named data dir holds none, so the
    // plan says so and counts no site in service.
    assert!(!dir.exists(), "plan created {}", dir.display());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no fleet database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // As a new user runs it: tables, in a directory of their own, no --data-dir.
    let cwd = world.path("planner-cwd");
    std::fs::create_dir_all(&cwd).expect("cwd");
    let tables = |lang: &str| {
        let out = std::process::Command::new(crate::harness::bin("fleet-server"))
            .current_dir(&cwd)
            .args(["plan", "--lang", lang, "--new-sites", "3"])
            .args(["--demand", &docs.join("demand.csv").display().to_string()])
            .args([
                "--candidates",
                &docs.join("candidates.csv").display().to_string(),
            ])
            .output()
            .expect("fleet-server plan");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), err)
    };
    let (text, err) = tables("en");
    assert_eq!(
        std::fs::read_dir(&cwd).expect("cwd").count(),
        0,
        "the plan left files where it ran"
    );
    assert!(
        err.contains("planning: 200 demand points") && err.contains("planned in"),
        "{err}"
    );
    // Each recommended site with where it is.
    for r in plan["recommendations"].as_array().expect("recommendations") {
        let lat = format!("{:.6}", r["lat"].as_f64().expect("lat"));
        assert!(text.contains(&lat), "no {lat} in\n{text}");
    }
    // The example's points name their parks: the report says those are the clusters.
    assert!(text.contains("as the demand points name them"), "{text}");
    // In Chinese for a planner who reads Chinese.
    let (text, err) = tables("zh-CN");
    assert!(text.contains("距信包箱 500 米内的企业"), "{text}");
    assert!(err.contains("规划用时"), "{err}");

    // Demand without monthly cases: coverage by enterprises plans, by cases is refused.
    let example = std::fs::read_to_string(docs.join("demand.csv")).expect("demand.csv");
    let at = example
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .position(|c| c == "monthly_cases")
        .expect("the example has monthly_cases");
    let no_cases: String = example
        .lines()
        .map(|line| {
            let mut cols: Vec<&str> = line.split(',').collect();
            cols.remove(at);
            cols.join(",") + "\n"
        })
        .collect();
    let (s, r) = api
        .put_text("/api/v1/planning/demand", "text/csv", no_cases)
        .await;
    assert_eq!((s, r["stored"].as_u64()), (200, Some(200)), "{r}");
    let (s, again) = viewer
        .get("/api/v1/planning/recommendations?new_sites=3")
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(ids(&again), ids(&plan), "the same sites by enterprises");
    assert_eq!(again["points_without_cases"], json!(200), "{again}");
    let (s, r) = viewer
        .get("/api/v1/planning/recommendations?weight=cases")
        .await;
    assert_eq!(s, 400, "{r}");
    let e = r["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("monthly_cases") && e.contains("200 have none"),
        "{e}"
    );
    // A bad file is refused with its name and line.
    let bad = world.path("bad.csv");
    std::fs::write(&bad, "id,lat,lon\nc1,23.1\n").expect("write");
    let out = std::process::Command::new(crate::harness::bin("fleet-server"))
        .args(["--data-dir", &dir.display().to_string(), "plan"])
        .args(["--demand", &docs.join("demand.csv").display().to_string()])
        .args(["--candidates", &bad.display().to_string()])
        .output()
        .expect("fleet-server plan");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.csv") && err.contains("line 2"),
        "{err}"
    );
}
