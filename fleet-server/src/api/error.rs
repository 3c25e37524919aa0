//! The one error shape of the API: JSON `{"code": "...", "error": "..."}` — a stable machine
//! code (`api_types::codes`) and, for a person, what was wrong and what to do — and how each
//! lower layer's error maps to a status and a code.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) use api_types::ErrorBody;
use api_types::codes;

use crate::commands::CommandError;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with the status's general code ([`default_code`]).
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: default_code(status),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error with a more specific code.
    pub(crate) fn code(self, code: &'static str) -> ApiError {
        ApiError { code, ..self }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 for a device id the server has never heard from.
    pub(crate) fn never_connected(device: &protocol::DeviceId) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown device {device}: it has never connected"),
        )
        .code(codes::UNKNOWN_DEVICE)
    }

    /// Also answer `Retry-After` (whole seconds, rounded up).
    pub(crate) fn retry_after(self, wait: Duration) -> ApiError {
        ApiError {
            retry_after: Some(wait),
            ..self
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                code: self.code.to_owned(),
                error: self.message,
            }),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

/// The general code of a status.
fn default_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => codes::INVALID_REQUEST,
        StatusCode::UNAUTHORIZED => codes::UNAUTHORIZED,
        StatusCode::FORBIDDEN => codes::FORBIDDEN,
        StatusCode::NOT_FOUND => codes::NOT_FOUND,
        StatusCode::CONFLICT => codes::CONFLICT,
        StatusCode::PAYLOAD_TOO_LARGE => codes::TOO_LARGE,
        StatusCode::UNPROCESSABLE_ENTITY => codes::INVALID_FIELD,
        StatusCode::TOO_MANY_REQUESTS => codes::RATE_LIMITED,
        StatusCode::SERVICE_UNAVAILABLE => codes::UNAVAILABLE,
        s if s.is_client_error() => codes::INVALID_REQUEST,
        _ => codes::INTERNAL,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(why) => return ApiError::bad_request(why),
            // A conflict the caller resolves (retry after concurrent allocation or no distinct
            // code drawn; another key after an idempotency key reused): not the server's fault.
            StoreError::Conflict(why) => return ApiError::new(StatusCode::CONFLICT, why),
            _ => {}
        }
        tracing::error!(error = %e, "storage error in API request");
        match e {
            StoreError::Db(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the database is unavailable ({e}); retry shortly"),
            ),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::UnknownDevice(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string()).code(codes::UNKNOWN_DEVICE)
            }
            CommandError::UnknownBox { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string()).code(codes::UNKNOWN_BOX)
            }
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            ServiceError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            ServiceError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            e @ ServiceError::NoFreeBox { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string()).code(codes::NO_FREE_BOX)
            }
            ServiceError::Store(s) => s.into(),
            ServiceError::Secret(s) => {
                tracing::error!(error = %s, "secret handling failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, s.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_published_code_and_the_body_carries_it() {
        for s in 400..600u16 {
            let status = StatusCode::from_u16(s).expect("status");
            assert!(codes::ALL.contains(&default_code(status)), "{s}");
        }
        let e = ApiError::never_connected(&protocol::DeviceId::parse("cab-9").expect("id"));
        assert_eq!(
            (e.status(), e.code),
            (StatusCode::NOT_FOUND, codes::UNKNOWN_DEVICE)
        );
        let mut seen = std::collections::HashSet::new();
        assert!(
            codes::ALL.iter().all(|c| seen.insert(c)),
            "codes are distinct"
        );
    }
}
