//! The OpenAPI 3.1 document of the HTTP API (`GET /api/v1/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` annotations and the request and response types they use.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{api, api_alarms, api_flows, api_live, api_planning, api_tokens, api_usage};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LockerFleet fleet server",
        description = "Devices, remote open, the locker service flows (sites, cabinets, staff, reservations with one-time codes, work lists) and operations. Every error is `{\"error\": \"...\"}` saying what was wrong and what to do. See PROTOCOL.md for the MQTT side, webhooks and SMS."
    ),
    paths(
        api::healthz,
        api::metrics,
        api::list_devices,
        api::device,
        api::events,
        api::presence,
        api::open_box,
        api::command,
        api::audit,
        api_tokens::create_token,
        api_tokens::list_tokens,
        api_tokens::revoke_token,
        api_flows::list_sites,
        api_flows::create_site,
        api_flows::site,
        api_flows::put_site,
        api_flows::list_cabinets,
        api_flows::cabinet,
        api_flows::put_cabinet,
        api_flows::box_service,
        api_flows::list_staff,
        api_flows::create_staff,
        api_flows::deactivate_staff,
        api_flows::set_duty,
        api_flows::reserve,
        api_flows::cancel,
        api_flows::list_items,
        api_flows::item,
        api_flows::worklist_collect,
        api_flows::worklist_deposit,
        api_flows::worklist_overdue,
        api_flows::unmet_demand,
        api_alarms::list_alarms,
        api_alarms::alarm,
        api_alarms::ack,
        api_alarms::clear,
        api_live::overview,
        api_live::stream,
        api_live::me,
        api_usage::usage,
        api_usage::saturation,
        api_usage::sites,
        api_planning::put_demand,
        api_planning::put_candidates,
        api_planning::recommendations,
    ),
    modifiers(&Bearer)
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

#[cfg(test)]
mod tests {
    /// The documented routes, as a reviewable list; the end-to-end test
    /// `openapi_documents_routes_the_server_serves` checks each one against the real router.
    #[test]
    fn paths_and_methods() {
        let doc = super::document();
        let mut lines = Vec::new();
        for (path, item) in &doc.paths.paths {
            let methods = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            for (m, present) in methods {
                if present {
                    lines.push(format!("{m} {path}"));
                }
            }
        }
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn every_operation_documents_its_errors() {
        let doc = serde_json::to_value(super::document()).expect("serialises");
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("ops") {
                if path == "/healthz" || path == "/metrics" {
                    continue;
                }
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.contains_key("4XX"),
                    "{method} {path} has no error response"
                );
                assert_eq!(
                    op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
            }
        }
    }
}
