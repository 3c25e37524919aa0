//! Remote diagnostics: the server asks a cabinet for its recent log lines or a fresh `doctor`
//! report on `devices/{id}/diagnose`; the cabinet answers on `devices/{id}/diagnostics`. Both
//! are bounded so that one answer always fits in a packet and never crowds out events.

use serde::{Deserialize, Serialize};

use super::{
    DecodeError, Message, REQUEST_ID, TEXT, check_request_id, check_text, v1, version_schema,
};

/// Most log lines one request may ask for.
pub const MAX_LOG_LINES: u16 = 1000;
/// Most bytes of one log line's message (longer ones are cut on a character boundary).
pub const MAX_LOG_LINE_BYTES: usize = 512;
/// Most bytes of all log lines in one report: the newest lines that fit are sent.
pub const MAX_LOG_BYTES: usize = 128 * 1024;
/// Most doctor checks in one report.
pub const MAX_CHECKS: usize = 32;

/// What the server asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiagnosticsAsk {
    /// The newest `lines` lines of the agent's in-memory log ring.
    Logs {
        #[schemars(range(min = 1, max = MAX_LOG_LINES))]
        lines: u16,
    },
    /// The `doctor` checks, run now by the running agent.
    Doctor,
}

/// `devices/{id}/diagnose`: one diagnostics request. Re-sent until answered or expired; the
/// device may answer a re-sent request again (the server keeps the first answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiagnosticsRequest {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    #[schemars(pattern(REQUEST_ID))]
    pub request_id: String,
    /// Server time (epoch ms) after which the answer is no longer wanted.
    pub expires_at: i64,
    #[serde(flatten)]
    pub ask: DiagnosticsAsk,
}

impl Message for DiagnosticsRequest {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        check_request_id(&self.request_id)?;
        if let DiagnosticsAsk::Logs { lines } = self.ask
            && (lines == 0 || lines > MAX_LOG_LINES)
        {
            return Err(DecodeError::Invalid(format!(
                "lines {lines} is outside 1..={MAX_LOG_LINES}"
            )));
        }
        Ok(())
    }
}

/// One line of the agent's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogLine {
    /// Cabinet time (epoch ms).
    pub at: i64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    #[schemars(length(min = 1, max = 8), pattern(TEXT))]
    pub level: String,
    /// The module that logged it.
    #[schemars(length(max = 128), pattern(TEXT))]
    pub target: String,
    /// The message and its fields, as the agent's own log shows them.
    #[schemars(length(max = MAX_LOG_LINE_BYTES), pattern(TEXT))]
    pub text: String,
}

/// One `doctor` check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DoctorCheck {
    #[schemars(length(min = 1, max = 32), pattern(TEXT))]
    pub name: String,
    pub ok: bool,
    #[schemars(length(max = 1024), pattern(TEXT))]
    pub detail: String,
}

/// What the device found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiagnosticsBody {
    Logs {
        /// Oldest first.
        #[schemars(length(max = MAX_LOG_LINES))]
        lines: Vec<LogLine>,
        /// Lines the ring has let go since the agent started (it keeps the newest).
        dropped: u64,
        /// The level the agent logs at now (`info`, or what central configuration set).
        #[schemars(length(max = 64), pattern(TEXT))]
        level: String,
    },
    Doctor {
        #[schemars(length(max = MAX_CHECKS))]
        checks: Vec<DoctorCheck>,
    },
    /// The device will not answer this request, and why (e.g. it expired on the way).
    Refused {
        #[schemars(length(max = 256), pattern(TEXT))]
        reason: String,
    },
}

/// `devices/{id}/diagnostics`: the answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiagnosticsReport {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    #[schemars(pattern(REQUEST_ID))]
    pub request_id: String,
    /// Cabinet time (epoch ms) the report was made.
    pub at: i64,
    #[serde(flatten)]
    pub body: DiagnosticsBody,
}

impl Message for DiagnosticsReport {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        check_request_id(&self.request_id)?;
        let bad = |m: String| Err(DecodeError::Invalid(m));
        match &self.body {
            DiagnosticsBody::Logs {
                lines,
                level,
                dropped: _,
            } => {
                if lines.len() > usize::from(MAX_LOG_LINES) {
                    return bad(format!("at most {MAX_LOG_LINES} log lines are allowed"));
                }
                check_text("level", level, 64).map_err(DecodeError::Invalid)?;
                for l in lines {
                    check_text("line level", &l.level, 8).map_err(DecodeError::Invalid)?;
                    check_text("line target", &l.target, 128).map_err(DecodeError::Invalid)?;
                    check_text("line text", &l.text, MAX_LOG_LINE_BYTES)
                        .map_err(DecodeError::Invalid)?;
                }
            }
            DiagnosticsBody::Doctor { checks } => {
                if checks.len() > MAX_CHECKS {
                    return bad(format!("at most {MAX_CHECKS} checks are allowed"));
                }
                for c in checks {
                    check_text("check name", &c.name, 32).map_err(DecodeError::Invalid)?;
                    check_text("check detail", &c.detail, 1024).map_err(DecodeError::Invalid)?;
                }
            }
            DiagnosticsBody::Refused { reason } => {
                check_text("reason", reason, 256).map_err(DecodeError::Invalid)?;
            }
        }
        Ok(())
    }
}

/// Cuts `s` to at most `max` (≥ 3) bytes on a character boundary, marking the cut with `…`.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};
    use proptest::prelude::*;

    #[test]
    fn requests_and_reports_round_trip_and_limits_hold() {
        let r = DiagnosticsRequest {
            v: 1,
            request_id: "d-1".into(),
            expires_at: 5,
            ask: DiagnosticsAsk::Logs { lines: 10 },
        };
        assert_eq!(decode::<DiagnosticsRequest>(&encode(&r)).expect("ok"), r);
        let too_many = br#"{"v":1,"request_id":"d-1","expires_at":5,"kind":"logs","lines":1001}"#;
        let e = decode::<DiagnosticsRequest>(too_many).expect_err("too many");
        assert!(e.to_string().contains("1..=1000"), "{e}");
        let bad_id = br#"{"v":1,"request_id":"a/b","expires_at":5,"kind":"doctor"}"#;
        assert!(decode::<DiagnosticsRequest>(bad_id).is_err());
        let report = br#"{"v":1,"request_id":"d-1","at":1,"kind":"logs","lines":[{"at":1,"level":"INFO","target":"x","text":"a\u0000b"}],"dropped":0,"level":"info"}"#;
        let e = decode::<DiagnosticsReport>(report).expect_err("NUL");
        assert!(e.to_string().contains("control"), "{e}");
    }

    proptest! {
        #[test]
        fn clip_never_splits_a_character_and_respects_the_limit(s in "\\PC{0,80}", max in 4usize..64) {
            let c = clip(&s, max);
            if s.len() <= max {
                prop_assert_eq!(c, s);
            } else {
                prop_assert!(c.ends_with('…'));
                prop_assert!(s.starts_with(c.trim_end_matches('…')));
                prop_assert!(c.len() <= max);
            }
        }
    }
}
