//! The OpenAPI 3.1 document of the HTTP API (`GET /api/v1/openapi.json`), generated from the
//! handlers' `#[utoipa::path]` annotations and the request and response types they use.

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{
    alarms, audit, cabinets, commands, config, deployments, devices, diagnostics, items, live,
    planning, releases, sites, sms, staff, system, tokens, usage, worklists,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "LockerFleet fleet server",
        description = "Devices, remote open, the locker service flows (sites, cabinets, staff, reservations with one-time codes, work lists) and operations. Every error is `{\"error\": \"...\"}` saying what was wrong and what to do. See PROTOCOL.md for the MQTT side, webhooks and SMS."
    ),
    paths(
        system::healthz,
        system::metrics,
        system::event_gaps,
        system::retention,
        devices::list_devices,
        devices::device,
        devices::events,
        devices::presence,
        devices::labels,
        devices::set_labels,
        commands::open_box,
        commands::command,
        audit::audit,
        tokens::create_token,
        tokens::list_tokens,
        tokens::revoke_token,
        sites::list_sites,
        sites::create_site,
        sites::site,
        sites::put_site,
        sms::list,
        sms::set,
        sms::reset,
        cabinets::list_cabinets,
        cabinets::cabinet,
        cabinets::put_cabinet,
        cabinets::box_service,
        staff::list_staff,
        staff::create_staff,
        staff::deactivate_staff,
        staff::set_duty,
        items::reserve,
        items::cancel,
        items::list_items,
        items::item,
        worklists::worklist_collect,
        worklists::worklist_deposit,
        worklists::worklist_overdue,
        worklists::unmet_demand,
        alarms::list_alarms,
        alarms::alarm,
        alarms::ack,
        alarms::clear,
        live::overview,
        live::stream,
        live::me,
        usage::usage,
        usage::saturation,
        usage::sites,
        planning::put_demand,
        planning::demand,
        planning::put_candidates,
        planning::recommendations,
        releases::register,
        releases::upload_binary,
        releases::list,
        releases::describe,
        releases::withdraw,
        releases::offer,
        deployments::create,
        deployments::list,
        deployments::describe,
        deployments::act,
        config::overview,
        config::devices,
        config::set_fleet,
        config::set_layer,
        config::device,
        diagnostics::request,
        diagnostics::list,
        diagnostics::describe,
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

/// `GET /api/v1/openapi.json`: the document, built once per request (it is small and rarely read).
pub(crate) async fn serve() -> Response {
    Json(document()).into_response()
}

/// `GET /api/v1/asyncapi.json`: the device protocol's AsyncAPI contract, for whoever writes a
/// cabinet's firmware against this server (the same as `protocol/asyncapi.json`).
pub(crate) async fn serve_asyncapi() -> Response {
    Json(protocol::contract::asyncapi()).into_response()
}

pub(crate) fn document() -> utoipa::openapi::OpenApi {
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

    /// The service's enums are documented as the wire spells them (`service_hall`, `in_box`),
    /// not as Rust names them: schemathesis would find every answer off its schema.
    #[test]
    fn enums_are_documented_as_they_are_sent() {
        use domain::flows::{BoxStatus, Flow, ItemState, SiteKind, Size};
        let doc = serde_json::to_value(super::document()).expect("serialises");
        let schemas = &doc["components"]["schemas"];
        let spelled = |name: &str| -> Vec<String> {
            schemas[name]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} has an enum schema"))
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let strs = |all: Vec<&str>| all.into_iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            spelled("SiteKind"),
            strs(SiteKind::ALL.iter().map(|k| k.as_str()).collect())
        );
        assert_eq!(
            spelled("Flow"),
            strs(Flow::ALL.iter().map(|k| k.as_str()).collect())
        );
        assert_eq!(
            spelled("Size"),
            strs(Size::ALL.iter().map(|k| k.as_str()).collect())
        );
        assert_eq!(
            spelled("ItemState"),
            strs(ItemState::ALL.iter().map(|k| k.as_str()).collect())
        );
        assert_eq!(
            spelled("BoxStatus"),
            strs(BoxStatus::ALL.iter().map(|k| k.as_str()).collect())
        );
        assert_eq!(
            spelled("ClusterSource"),
            strs(vec!["named", "density", "scattered"])
        );
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
