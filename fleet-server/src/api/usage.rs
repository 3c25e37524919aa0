//! HTTP routes for planners: usage reports (JSON or CSV) from the hourly rollups, and the
//! sites saturated by the document's yardstick (box usage above 80%).

use api_types::usage::{SaturationParams, SitesParams, UsageParams};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::flows::SiteKind;

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::Q;
use crate::api::state::AppState;
use crate::clock::local_time;
use api_types::usage::{Saturation, SiteHours, SitesHours, UsageReport};

use crate::store::usage::{Bucket, DAY_MS, Scope, UsageQuery};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/usage", get(usage))
        .route("/api/v1/usage/saturation", get(saturation))
        .route("/api/v1/usage/sites", get(sites))
}

/// Occupancy rate, turnover, peak hour and unmet demand for a box, cabinet, site, site kind
/// or the fleet, per hour or per day. Read from rollups kept as items move.
#[utoipa::path(get, path = "/api/v1/usage", tag = "usage", security(("bearer" = [])),
    params(UsageParams),
    responses((status = 200, body = UsageReport, description = "JSON, or CSV (`format=csv`) with one row per bucket"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn usage(
    caller: Caller,
    State(s): State<AppState>,
    Q(p): Q<UsageParams>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let offset_ms = i64::from(s.service.settings.utc_offset_minutes) * 60_000;
    let now = crate::clock::now_ms();
    let scope = scope(&caller, &s, p.scope.as_deref(), p.id.as_deref()).await?;
    let to = match p.to.as_deref() {
        None => now,
        Some(t) => parse_time("to", t, offset_ms, true)?,
    };
    let from = match p.from.as_deref() {
        None => to - 7 * DAY_MS,
        Some(t) => parse_time("from", t, offset_ms, false)?,
    };
    let bucket = match p.bucket.as_deref() {
        None | Some("day") => Bucket::Day,
        Some("hour") => Bucket::Hour,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "bucket {other:?} is not one of: hour, day"
            )));
        }
    };
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format {other:?} is not one of: json, csv"
            )));
        }
    };
    let report = s
        .store
        .usage(&UsageQuery {
            scope,
            from,
            to,
            bucket,
            utc_offset_ms: offset_ms,
            now,
        })
        .await?;
    if csv {
        return Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"usage.csv\"",
                ),
            ],
            to_csv(&report, offset_ms),
        )
            .into_response());
    }
    Ok(Json(report).into_response())
}

/// The report as CSV: one row per bucket, local start time first, rates as fractions.
pub(crate) fn to_csv(r: &UsageReport, offset_ms: i64) -> String {
    let mut out = String::from(
        "scope,id,start,start_ms,box_hours,occupied_hours,held_hours,occupancy,held_rate,uses,turnover,unmet\n",
    );
    let id = r.id.as_deref().unwrap_or("");
    // Ids are checked to [A-Za-z0-9_-] (and `/` for a box), so no field needs quoting.
    for b in &r.buckets {
        out.push_str(&format!(
            "{},{},{},{},{:.3},{:.3},{:.3},{:.4},{:.4},{},{:.4},{}\n",
            r.scope,
            id,
            local_time(b.start, offset_ms),
            b.start,
            b.box_hours,
            b.occupied_hours,
            b.held_hours,
            b.occupancy,
            b.held_rate,
            b.uses,
            b.turnover,
            b.unmet
        ));
    }
    out
}

/// Epoch ms, or a local date (`end`: the end of that day).
pub(crate) fn parse_time(name: &str, s: &str, offset_ms: i64, end: bool) -> Result<i64, ApiError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &format).map_err(|_| {
        ApiError::bad_request(format!(
            "{name} {s:?} is neither epoch milliseconds nor a date YYYY-MM-DD"
        ))
    })?;
    let midnight_utc = date.midnight().assume_utc().unix_timestamp() * 1000;
    Ok(midnight_utc - offset_ms + if end { DAY_MS } else { 0 })
}

async fn scope(
    caller: &Caller,
    s: &AppState,
    scope: Option<&str>,
    id: Option<&str>,
) -> Result<Scope, ApiError> {
    let need_id = |what: &str| {
        id.filter(|i| !i.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("scope {what} needs an id (`id=...`)")))
    };
    let not_found = |what: String| ApiError::new(StatusCode::NOT_FOUND, what);
    Ok(match scope.unwrap_or("fleet") {
        "fleet" => {
            caller.require_fleet("usage of the whole fleet")?;
            Scope::Fleet
        }
        "kind" => {
            caller.require_fleet("usage of a site kind")?;
            let k = need_id("kind")?;
            if SiteKind::parse(k).is_none() {
                return Err(ApiError::bad_request(format!(
                    "site kind {k:?} is not one of: {}",
                    SiteKind::choices()
                )));
            }
            Scope::Kind(k.to_owned())
        }
        "site" => {
            let site = need_id("site")?;
            caller.require_site(site)?;
            if s.store.site(site).await?.is_none() {
                return Err(not_found(format!("no site {site:?}")));
            }
            Scope::Site(site.to_owned())
        }
        "cabinet" => {
            let cab = need_id("cabinet")?;
            caller
                .require_device(&s.store, &cabinet(s, cab).await?)
                .await?;
            Scope::Cabinet(cab.to_owned())
        }
        "box" => {
            let id = need_id("box")?;
            let (cab, n) = id
                .rsplit_once('/')
                .and_then(|(c, n)| Some((c, n.parse::<u16>().ok()?)))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "box id {id:?} is not CABINET/BOX, e.g. cab-01/3"
                    ))
                })?;
            let device = cabinet(s, cab).await?;
            caller.require_device(&s.store, &device).await?;
            let boxes = s.store.box_views(&device).await?;
            if !boxes.iter().any(|b| b.config.box_no == i64::from(n)) {
                return Err(not_found(format!("cabinet {cab} has no box {n}")));
            }
            Scope::Box(cab.to_owned(), i64::from(n))
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "scope {other:?} is not one of: fleet, kind, site, cabinet, box"
            )));
        }
    })
}

async fn cabinet(s: &AppState, id: &str) -> Result<protocol::DeviceId, ApiError> {
    let device = protocol::DeviceId::parse(id)
        .map_err(|e| ApiError::bad_request(format!("cabinet id {id:?}: {e}")))?;
    if s.store.cabinet(&device).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no cabinet {id:?}"),
        ));
    }
    Ok(device)
}

/// Every site's daily occupancy over the last `window` whole days, flagged saturated when
/// it reached `rate` on at least `days` of them.
#[utoipa::path(get, path = "/api/v1/usage/saturation", tag = "usage", security(("bearer" = [])),
    params(SaturationParams),
    responses((status = 200, body = Saturation), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn saturation(
    caller: Caller,
    State(s): State<AppState>,
    Q(p): Q<SaturationParams>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let d = s.saturation;
    let (rate, days, window) = (
        p.rate.unwrap_or(d.rate),
        p.days.unwrap_or(d.days),
        p.window.unwrap_or(d.window_days),
    );
    if !(rate > 0.0 && rate <= 1.0) {
        return Err(ApiError::bad_request(format!(
            "rate {rate} must be above 0 and at most 1 (0.8 means 80%)"
        )));
    }
    if !(1..=366).contains(&window) || days == 0 || days > window {
        return Err(ApiError::bad_request(format!(
            "need 1 <= days <= window <= 366 (got days {days}, window {window})"
        )));
    }
    let offset_ms = i64::from(s.service.settings.utc_offset_minutes) * 60_000;
    let now = crate::clock::now_ms();
    let mut sites = s
        .store
        .saturation(now, offset_ms, rate, days, window)
        .await?;
    sites.retain(|site| caller.may(&site.site_id));
    let today = crate::store::usage::day_start(now, offset_ms);
    Ok(Json(Saturation {
        rate,
        days,
        window,
        from: today - i64::from(window) * DAY_MS,
        sites,
    })
    .into_response())
}

/// Every site's occupancy, uses and unmet demand per hour over the last hours, in one answer
/// (the console's site × hour heatmap).
#[utoipa::path(get, path = "/api/v1/usage/sites", tag = "usage", security(("bearer" = [])),
    params(SitesParams),
    responses((status = 200, body = SitesHours), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn sites(
    caller: Caller,
    State(s): State<AppState>,
    Q(p): Q<SitesParams>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let n = p.hours.unwrap_or(24);
    if !(1..=168).contains(&n) {
        return Err(ApiError::bad_request(format!("hours {n} must be 1 to 168")));
    }
    let now = crate::clock::now_ms();
    let from = now.div_euclid(crate::store::usage::HOUR_MS) * crate::store::usage::HOUR_MS
        - (n as i64 - 1) * crate::store::usage::HOUR_MS;
    let rows = s.store.site_hours(from, n, now).await?;
    let sites = rows
        .into_iter()
        .filter(|(site_id, _, _)| caller.may(site_id))
        .map(|(site_id, kind, h)| SiteHours {
            site_id,
            kind,
            occupancy: h.iter().map(|x| x.occupancy).collect(),
            uses: h.iter().map(|x| x.uses).collect(),
            unmet: h.iter().map(|x| x.unmet).collect(),
        })
        .collect();
    Ok(Json(SitesHours { from, sites }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_local_days() {
        // 2026-11-28 at UTC+8 starts at 2026-11-27T16:00Z.
        let off = 8 * 3_600_000;
        let start = parse_time("from", "2026-11-28", off, false).expect("date");
        assert_eq!(local_time(start, off), "2026-11-28T00:00:00+08:00");
        let end = parse_time("to", "2026-11-28", off, true).expect("date");
        assert_eq!(end - start, DAY_MS);
        assert_eq!(
            parse_time("to", "1764288000000", off, true).ok(),
            Some(1_764_288_000_000)
        );
        assert!(parse_time("from", "28/11/2026", off, false).is_err());
    }
}
