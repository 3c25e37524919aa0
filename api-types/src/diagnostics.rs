//! Remote diagnostics (`/api/v1/devices/{id}/diagnostics`): an operator asks a cabinet for its
//! recent log lines or a fresh `doctor` report; viewers read the answers.

use serde::{Deserialize, Serialize};

/// What to ask the cabinet for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticKind {
    /// The newest lines of the agent's log ring.
    #[default]
    Logs,
    /// The `doctor` checks, run now on the cabinet.
    Doctor,
}

impl DiagnosticKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticKind::Logs => "logs",
            DiagnosticKind::Doctor => "doctor",
        }
    }

    pub fn parse(s: &str) -> Option<DiagnosticKind> {
        match s {
            "logs" => Some(DiagnosticKind::Logs),
            "doctor" => Some(DiagnosticKind::Doctor),
            _ => None,
        }
    }
}

/// `POST /api/v1/devices/{id}/diagnostics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestDiagnostics {
    pub kind: DiagnosticKind,
    /// For `logs`: how many of the newest lines (1–1000, default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u16>,
    /// Wait up to this many seconds (at most 30) for the answer before replying; 0 or
    /// absent: reply at once with the pending request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u32>,
}

/// One log line as the cabinet logged it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct LogLine {
    /// Cabinet time (epoch ms).
    pub at: i64,
    pub level: String,
    pub target: String,
    pub text: String,
}

/// One `doctor` check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DoctorCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What the cabinet answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiagnosticReport {
    Logs {
        /// Oldest first.
        lines: Vec<LogLine>,
        /// Lines the cabinet's ring let go since the agent started.
        dropped: u64,
        /// The level the agent logs at now.
        level: String,
    },
    Doctor {
        checks: Vec<DoctorCheck>,
    },
    /// The cabinet would not answer, and why.
    Refused {
        reason: String,
    },
}

/// One diagnostics request and, once the cabinet answered, its report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Diagnostic {
    pub id: String,
    pub device_id: String,
    pub kind: DiagnosticKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<u16>,
    /// `pending` (waiting for the cabinet, sent again until it answers), `answered` or
    /// `expired` (the cabinet was away until the deadline).
    pub state: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub expires_at: i64,
    /// Last sent to the cabinet (server time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<i64>,
    /// Server time the answer arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<i64>,
    /// One line: `200 lines, 3 warnings`, `5 of 6 checks pass`, or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The answer; left out of lists (read one request for it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<DiagnosticReport>,
}

/// `GET /api/v1/devices/{id}/diagnostics`: the device's recent requests, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Diagnostics {
    pub diagnostics: Vec<Diagnostic>,
}
