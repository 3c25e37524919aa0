//! HTTP routes of the planner: the service platform uploads demand points and candidate
//! sites (CSV or GeoJSON); planners read recommendations computed from them and from the
//! sites' measured usage. `fleet-server plan` does the same from files.

pub(crate) use api_types::planning::PlanAnswer;
use api_types::planning::{DemandList, Uploaded};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use domain::planner::{self, Candidate, DemandPoint, PlanParams, Weight};
use serde::Deserialize;

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::Q;
use crate::api::state::AppState;
use crate::store::{Store, StoreError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/planning/demand", put(put_demand).get(demand))
        .route("/api/v1/planning/candidates", put(put_candidates))
        .route("/api/v1/planning/recommendations", get(recommendations))
        // A city's demand export runs to megabytes.
        .layer(DefaultBodyLimit::max(32 * 1024 * 1024))
}

/// Plan parameters, as query parameters or `fleet-server plan` flags; unset ones take
/// [`PlanParams::default`] or, for dwell time, what the fleet measured.
#[derive(Debug, Clone, Default, Deserialize, clap::Args, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlanOptions {
    /// Walking distance a locker serves, metres (500), measured along the great circle
    /// (haversine, Earth radius 6,371,000 m) between the demand point and the site.
    #[arg(long)]
    #[serde(default)]
    pub radius_m: Option<f64>,
    /// New sites to recommend at most (3; 100 at the most).
    #[arg(long)]
    #[serde(default)]
    pub new_sites: Option<usize>,
    /// Boxes across the new sites at most (no limit).
    #[arg(long)]
    #[serde(default)]
    pub max_boxes: Option<u32>,
    /// Target chance an item finds no box of its size at the peak (0.05).
    #[arg(long)]
    #[serde(default)]
    pub overflow: Option<f64>,
    /// Coverage counts `enterprises` (default) or `cases`.
    #[arg(long)]
    #[serde(default)]
    pub weight: Option<String>,
    /// Days of measured usage the existing sites are judged by (30).
    #[arg(long)]
    #[serde(default)]
    pub days: Option<u32>,
    /// Locker uses per case (2: a drop-off and a pick-up).
    #[arg(long)]
    #[serde(default)]
    pub uses_per_case: Option<f64>,
    /// Busiest hour's arrivals over the average hour's (2).
    #[arg(long)]
    #[serde(default)]
    pub peak_factor: Option<f64>,
    /// Mean hours an item stays in its box (default: measured, else 24).
    #[arg(long)]
    #[serde(default)]
    pub dwell_hours: Option<f64>,
    /// `geojson`: the plan as a GeoJSON FeatureCollection (demand points, sites in service,
    /// recommended sites with their walking radius, clusters) instead of the JSON answer.
    #[arg(skip)]
    #[serde(default)]
    pub format: Option<String>,
}

impl PlanOptions {
    /// A refusal of [`PlanOptions::params`] as the command line says it: the parameters by
    /// their flags (`--new-sites`), not by their query names (`new_sites`).
    pub fn as_flags(refusal: &str) -> String {
        const NAMES: [&str; 9] = [
            "radius_m",
            "new_sites",
            "max_boxes",
            "overflow",
            "weight",
            "days",
            "uses_per_case",
            "peak_factor",
            "dwell_hours",
        ];
        let mut out = String::with_capacity(refusal.len() + 16);
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            if NAMES.contains(&word.as_str()) {
                out.push_str("--");
                out.push_str(&word.replace('_', "-"));
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for c in refusal.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
        flush(&mut word, &mut out);
        out
    }

    pub fn params(&self, measured_dwell: Option<f64>) -> Result<PlanParams, String> {
        if let Some(f) = self.format.as_deref()
            && f != "json"
            && f != "geojson"
        {
            return Err(format!("format {f:?} is not one of: json, geojson"));
        }
        let d = PlanParams::default();
        let weight = match self.weight.as_deref() {
            None | Some("enterprises") => Weight::Enterprises,
            Some("cases") => Weight::Cases,
            Some(other) => {
                return Err(format!(
                    "weight {other:?} is not one of: enterprises, cases"
                ));
            }
        };
        let p = PlanParams {
            radius_m: self.radius_m.unwrap_or(d.radius_m),
            new_sites: self.new_sites.unwrap_or(d.new_sites),
            max_boxes: self.max_boxes,
            overflow: self.overflow.unwrap_or(d.overflow),
            weight,
            uses_per_case: self.uses_per_case.unwrap_or(d.uses_per_case),
            peak_factor: self.peak_factor.unwrap_or(d.peak_factor),
            dwell_hours: self
                .dwell_hours
                .or(measured_dwell.filter(|h| *h > 0.0))
                .unwrap_or(d.dwell_hours),
            ..d
        };
        p.check()?;
        if self.days.is_some_and(|d| !(1..=366).contains(&d)) {
            return Err("days must be 1 to 366".into());
        }
        Ok(p)
    }
}

/// One plan computes at a time: a city's plan is seconds of one core, and plans asked for
/// together would take the cores the service needs.
static PLANNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Plans from `demand` and `candidates` and the fleet's measured usage (`store`; none: no
/// site in service is known), off the runtime's threads, telling `progress` what it does.
pub async fn plan_with(
    store: Option<&Store>,
    options: &PlanOptions,
    demand: &[DemandPoint],
    candidates: &[Candidate],
    now: i64,
    utc_offset_ms: i64,
    mut progress: Box<dyn FnMut(planner::Progress) + Send>,
) -> Result<Result<PlanAnswer, String>, StoreError> {
    let days = options.days.unwrap_or(30).clamp(1, 366);
    let measured = match store {
        Some(store) => store.measured(now, utc_offset_ms, days).await?,
        None => crate::store::Measured {
            sites: Vec::new(),
            dwell_hours: None,
        },
    };
    let params = match options.params(measured.dwell_hours) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    if params.weight == Weight::Cases {
        let lacking: Vec<&str> = demand
            .iter()
            .filter(|d| d.monthly_cases.is_none())
            .map(|d| d.id.as_str())
            .collect();
        if let Some(first) = lacking.first() {
            return Ok(Err(format!(
                "weight cases needs monthly_cases on every demand point, but {} have none (the first: {first:?}): give them, or weigh enterprises",
                lacking.len()
            )));
        }
    }
    let Ok(_turn) = PLANNING.acquire().await else {
        return Ok(Err("planning is closed: the server is shutting down".into()));
    };
    let (demand, candidates, sites) = (demand.to_vec(), candidates.to_vec(), measured.sites);
    let work = tokio::task::spawn_blocking(move || {
        let plan = planner::plan_with(&demand, &candidates, &sites, &params, &mut *progress);
        (plan, sites)
    });
    let (plan, existing_sites) = match work.await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => {
            return Ok(Err(
                "planning was cancelled: the server is shutting down".into()
            ));
        }
    };
    Ok(Ok(PlanAnswer {
        measured_days: days,
        measured_dwell_hours: measured.dwell_hours,
        existing_sites,
        plan,
    }))
}

/// Replaces the demand points: CSV with a header `id,lat,lon,enterprises` (optional
/// `monthly_cases`, `name`, `cluster`), or a GeoJSON FeatureCollection of Points with those
/// properties.
#[utoipa::path(put, path = "/api/v1/planning/demand", tag = "planning", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "CSV or GeoJSON"),
    responses((status = 200, body = Uploaded), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn put_demand(
    caller: Caller,
    State(s): State<AppState>,
    body: String,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    caller.require_fleet("planning")?;
    let points = domain::planner_input::demand(&body)
        .map_err(|e| ApiError::bad_request(format!("demand points refused: {e}")))?;
    s.store.replace_demand(&points).await?;
    Ok(Json(Uploaded {
        stored: points.len(),
    })
    .into_response())
}

/// The demand points as uploaded, for a map (viewers and up).
#[utoipa::path(get, path = "/api/v1/planning/demand", tag = "planning", security(("bearer" = [])),
    responses((status = 200, body = DemandList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn demand(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_fleet("planning")?;
    Ok(Json(DemandList {
        points: s.store.demand_points().await?,
    })
    .into_response())
}

/// Replaces the candidate sites: CSV `id,lat,lon` (optional `name`, `max_boxes`) or GeoJSON.
#[utoipa::path(put, path = "/api/v1/planning/candidates", tag = "planning", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv", description = "CSV or GeoJSON"),
    responses((status = 200, body = Uploaded), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn put_candidates(
    caller: Caller,
    State(s): State<AppState>,
    body: String,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    caller.require_fleet("planning")?;
    let list = domain::planner_input::candidates(&body)
        .map_err(|e| ApiError::bad_request(format!("candidate sites refused: {e}")))?;
    s.store.replace_candidates(&list).await?;
    Ok(Json(Uploaded { stored: list.len() }).into_response())
}

/// Ranked new sites (demand covered, boxes by size for the overflow target, expected usage),
/// existing sites that need more boxes, and enterprise coverage per cluster before and after.
#[utoipa::path(get, path = "/api/v1/planning/recommendations", tag = "planning", security(("bearer" = [])),
    params(PlanOptions),
    responses((status = 200, body = PlanAnswer), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn recommendations(
    caller: Caller,
    State(s): State<AppState>,
    Q(o): Q<PlanOptions>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_fleet("planning")?;
    let demand = s.store.demand_points().await?;
    if demand.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no demand points yet: upload them with PUT /api/v1/planning/demand (CSV or GeoJSON)",
        ));
    }
    let candidates = s.store.candidate_sites().await?;
    if candidates.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no candidate sites yet: upload them with PUT /api/v1/planning/candidates",
        ));
    }
    let offset = i64::from(s.service.settings.utc_offset_minutes) * 60_000;
    match plan_with(
        Some(&s.store),
        &o,
        &demand,
        &candidates,
        crate::clock::now_ms(),
        offset,
        Box::new(|_| {}),
    )
    .await?
    {
        Ok(answer) if o.format.as_deref() == Some("geojson") => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/geo+json")],
            Json(planner::geojson(
                &answer.plan,
                &demand,
                &answer.existing_sites,
            )),
        )
            .into_response()),
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(why) => Err(ApiError::bad_request(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::PlanOptions;
    use clap::Args;

    #[test]
    fn refusals_on_the_command_line_name_the_flags() {
        let o = PlanOptions {
            new_sites: Some(101),
            ..PlanOptions::default()
        };
        let why = o.params(None).expect_err("refused");
        assert_eq!(why, "new_sites 101 must be at most 100", "the API's words");
        assert_eq!(
            PlanOptions::as_flags(&why),
            "--new-sites 101 must be at most 100"
        );
        assert_eq!(
            PlanOptions::as_flags(
                "uses_per_case and dwell_hours must be above 0, peak_factor at least 1"
            ),
            "--uses-per-case and --dwell-hours must be above 0, --peak-factor at least 1"
        );
    }

    #[test]
    fn the_help_says_how_distance_is_measured_and_how_many_sites_at_most() {
        let help = PlanOptions::augment_args(clap::Command::new("plan"))
            .render_long_help()
            .to_string();
        assert!(
            help.contains("haversine, Earth radius 6,371,000 m"),
            "{help}"
        );
        assert!(help.contains("100 at the most"), "{help}");
    }
}
