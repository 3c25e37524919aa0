//! SMS templates: administrators write what citizens read with their code, per site (or for
//! the fleet), language and flow; placeholders are checked when saved, and every answer shows
//! the text rendered with example values.

use api_types::codes;
use api_types::sms::{SmsTemplate, SmsTemplateBody, SmsTemplates, SmsTemplatesQuery};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::flows::Flow;
use domain::sms::{Template, Values};
use l10n::Lang;

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, Q};
use crate::api::state::AppState;
use crate::sms_text::{SmsBook, Source};
use crate::store::SmsTemplateRow;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/sms-templates", get(list).put(set).delete(reset))
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m).code(codes::INVALID_FIELD)
}

fn lang_of(s: &str) -> Result<Lang, ApiError> {
    s.parse().map_err(|e| invalid(format!("lang: {e}")))
}

fn flow_of(s: &str) -> Result<Flow, ApiError> {
    Flow::parse(s).ok_or_else(|| {
        invalid(format!(
            "flow {s:?} is unknown; use one of: {}",
            Flow::choices()
        ))
    })
}

/// The template as the API shows it, with an example a citizen would read.
fn view(book: &SmsBook, site: Option<&str>, lang: Lang, flow: Flow) -> SmsTemplate {
    let (template, source, row) = book.template(site, lang, flow);
    let example_site = site.unwrap_or("site-1");
    SmsTemplate {
        site_id: match source {
            Source::Site => site.map(str::to_owned),
            _ => None,
        },
        lang: lang.tag().to_owned(),
        flow: flow.as_str().to_owned(),
        text: template.source().to_owned(),
        source: source.as_str().to_owned(),
        updated_by: row.map(|r| r.updated_by.clone()),
        updated_at: row.map(|r| r.updated_at),
        example: template.render(&Values {
            code: "12345678",
            case: "GZ-2026-000123",
            cabinet: "hall-cab-01",
            box_no: 7,
            site: example_site,
            until: &book.local_time(example_site, lang, crate::clock::now_ms() + 86_400_000),
        }),
    }
}

async fn book(s: &AppState) -> Result<SmsBook, ApiError> {
    Ok(SmsBook::load(
        &s.store,
        s.service.settings.lang,
        s.service.settings.utc_offset_minutes,
    )
    .await?)
}

#[utoipa::path(get, path = "/api/v1/sms-templates", tag = "sms", security(("bearer" = [])),
    params(SmsTemplatesQuery),
    responses((status = 200, body = SmsTemplates), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SmsTemplatesQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(site) = &q.site_id {
        caller.require_site(site)?;
    }
    let book = book(&s).await?;
    let langs = match &q.lang {
        Some(l) => vec![lang_of(l)?],
        None => Lang::ALL.to_vec(),
    };
    let flows = match &q.flow {
        Some(f) => vec![flow_of(f)?],
        None => Flow::ALL.to_vec(),
    };
    let mut templates = Vec::new();
    for lang in &langs {
        for flow in &flows {
            templates.push(view(&book, q.site_id.as_deref(), *lang, *flow));
        }
    }
    Ok(Json(SmsTemplates { templates }).into_response())
}

#[utoipa::path(put, path = "/api/v1/sms-templates", tag = "sms", security(("bearer" = [])),
    request_body = SmsTemplateBody,
    responses((status = 200, body = SmsTemplate), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn set(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<SmsTemplateBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    match &body.site_id {
        Some(site) => {
            caller.require_site(site)?;
            if s.store.site(site).await?.is_none() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("unknown site {site:?}: create it first (POST /api/v1/sites)"),
                ));
            }
        }
        None => caller.require_fleet("setting the fleet's SMS template")?,
    }
    let lang = lang_of(&body.lang)?;
    let flow = flow_of(&body.flow)?;
    let template = Template::parse(&body.text).map_err(|e| invalid(format!("text: {e}")))?;
    s.store
        .set_sms_template(&SmsTemplateRow {
            site_id: body.site_id.clone(),
            lang,
            flow,
            body: template.source().to_owned(),
            updated_by: caller.name.clone(),
            updated_at: crate::clock::now_ms(),
        })
        .await?;
    let book = book(&s).await?;
    Ok(Json(view(&book, body.site_id.as_deref(), lang, flow)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/sms-templates", tag = "sms", security(("bearer" = [])),
    params(SmsTemplatesQuery),
    responses((status = 204), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn reset(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SmsTemplatesQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    match &q.site_id {
        Some(site) => caller.require_site(site)?,
        None => caller.require_fleet("resetting the fleet's SMS template")?,
    }
    let (Some(lang), Some(flow)) = (&q.lang, &q.flow) else {
        return Err(ApiError::bad_request(
            "say which template: ?lang=…&flow=… (and site_id=… for a site's)",
        ));
    };
    let (lang, flow) = (lang_of(lang)?, flow_of(flow)?);
    if s.store
        .reset_sms_template(
            q.site_id.as_deref(),
            lang,
            flow,
            &caller.name,
            crate::clock::now_ms(),
        )
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no {flow} template in {lang} was written there; the built-in text applies"),
        ))
    }
}
