//! Extractors whose rejections use the API's error shape, and parsers of path ids.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use protocol::{BoxNo, DeviceId};
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;

/// JSON body whose rejections use our error shape.
pub(crate) struct Body<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rej) => {
                let e = ApiError::new(
                    rej.status(),
                    format!("invalid request body: {}", rej.body_text()),
                );
                // Too large keeps its own code; everything else is a body not understood.
                Err(if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    e
                } else {
                    e.code(api_types::codes::INVALID_BODY)
                })
            }
        }
    }
}

/// Query string whose rejections use our error shape.
pub(crate) struct Q<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(rej) => Err(ApiError::bad_request(format!(
                "invalid query string: {}",
                rej.body_text()
            ))),
        }
    }
}

/// Path parameters whose rejections (a box number out of range, bad percent-encoding) use
/// our error shape instead of axum's plain text.
pub(crate) struct P<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(P(v)),
            Err(rej) => Err(ApiError::bad_request(format!(
                "invalid path: {}",
                rej.body_text()
            ))),
        }
    }
}

pub(crate) fn device_id(s: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(crate) fn box_no(n: u16) -> Result<BoxNo, ApiError> {
    BoxNo::new(n).map_err(|e| ApiError::bad_request(e.to_string()))
}
