//! The one error shape of the API: JSON `{"error": "..."}` saying what was wrong and what
//! to do, and how each lower layer's error maps to a status.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) use api_types::ErrorBody;

use crate::commands::CommandError;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    retry_after: Option<Duration>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Invalid(why) = e {
            return ApiError::bad_request(why);
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
            CommandError::UnknownDevice(_) | CommandError::UnknownBox { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
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
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ServiceError::Store(s) => s.into(),
            ServiceError::Secret(s) => {
                tracing::error!(error = %s, "secret handling failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, s.to_string())
            }
        }
    }
}
