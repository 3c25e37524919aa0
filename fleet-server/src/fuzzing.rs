//! The HTTP request bodies as the API decodes them, for the cargo-fuzz target `api_bodies`:
//! arbitrary bytes through the same extractor every handler uses ([`crate::api::extract::Body`]).

use axum::extract::FromRequest;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// Decodes `bytes` as each request body type of the API. A body is either accepted or refused
/// with a client error (4xx) in the API's error shape; anything else panics (a bug to find).
pub async fn decode_every_body(bytes: &[u8]) {
    use crate::api::commands;
    use crate::service;
    use api_types::{alarms, cabinets, sites, staff, tokens};
    one::<commands::OpenBody>(bytes).await;
    one::<alarms::NoteBody>(bytes).await;
    one::<sites::SiteBody>(bytes).await;
    one::<cabinets::CabinetBody>(bytes).await;
    one::<cabinets::ServiceBody>(bytes).await;
    one::<staff::StaffBody>(bytes).await;
    one::<staff::DutyBody>(bytes).await;
    one::<service::ReservationRequest>(bytes).await;
    one::<tokens::TokenBody>(bytes).await;
}

async fn one<T: DeserializeOwned>(bytes: &[u8]) {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(bytes.to_vec()))
        .unwrap_or_default();
    if let Err(e) = crate::api::extract::Body::<T>::from_request(req, &()).await {
        let status: StatusCode = e.status();
        assert!(
            status.is_client_error(),
            "a request body was answered {status}: {}",
            e.message()
        );
    }
}

#[cfg(test)]
mod tests {
    /// The fuzz target's property on a few inputs, so it cannot rot between fuzz runs.
    #[tokio::test]
    async fn bodies_are_accepted_or_refused_as_client_errors() {
        for bytes in [
            &b"{}"[..],
            b"",
            b"not json",
            b"[1,2,3]",
            br#"{"reason":"citizen cannot open box 3","ttl_secs":60}"#,
            br#"{"flow":"dropoff","case_number":"GZ-1","phone":"13800000000","site_id":"s\u0000"}"#,
            &[0xff, 0xfe, 0x00][..],
        ] {
            super::decode_every_body(bytes).await;
        }
    }
}
