//! What the console knows: the fleet server's answers, deserialised leniently (a newer server
//! may add fields), and the connection's state. The data task fills it; drawing only reads it.

pub use api_types::alarms::{Alarm, AlarmsList};
pub use api_types::audit::{AuditEntry, AuditList};
pub use api_types::cabinets::{BoxView, Cabinet, CabinetDetail, CabinetsList};
pub use api_types::commands::Command;
pub use api_types::config::DeviceConfig;
pub use api_types::deployments::{Deployment, DeploymentDetail, DeploymentState, DeviceRollout};
pub use api_types::diagnostics::{Diagnostic, DiagnosticKind, DiagnosticReport};
pub use api_types::items::{Item, Worklist};
pub use api_types::live::{Overview, SiteOverview};
pub use api_types::planning::{
    BoxesBySize, ClusterCoverage, DemandPoint, ExistingSite, Expansion, Plan, PlanParams,
    Recommendation,
};

/// What the planning map draws besides the plan: where demand comes from, and the sites in
/// service with what they measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanMap {
    pub demand: Vec<DemandPoint>,
    pub existing: Vec<ExistingSite>,
}
pub use api_types::usage::{Saturation, SiteHours, SiteSaturation, SitesHours};

/// The three work lists of the helpers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Worklists {
    pub collect: Vec<Item>,
    pub deposit: Vec<Item>,
    pub overdue: Vec<Item>,
}

/// The live link to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    Connecting,
    /// The change stream is up since this server time.
    Live,
    /// Down; retrying. The error says why.
    Down(String),
}

/// Everything fetched, with when (server time) the newest answer was produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub link: Link,
    /// The usage screen: each site's last 24 hours and its last 7 days.
    pub usage: Option<Usage>,
    /// The planning screen: the plan, or why there is none.
    pub plan: Option<Result<Plan, String>>,
    /// The planning map's demand points and existing sites.
    pub plan_map: PlanMap,
    /// Who we are (`GET /api/v1/me`): name and role.
    pub me: Option<(String, String)>,
    pub overview: Overview,
    pub alarms: Vec<Alarm>,
    /// Cabinets of the site on screen.
    pub cabinets: Vec<Cabinet>,
    /// The cabinet on screen, with its boxes.
    pub cabinet: Option<CabinetDetail>,
    pub worklists: Worklists,
    pub audit: Vec<AuditEntry>,
    /// The fleet screen: rollouts and configuration drift, or why not (`None`: loading).
    pub fleet: Option<Result<Fleet, String>>,
    /// Server time of the latest data (the overview's `at`), for the header's data age.
    pub data_at: Option<i64>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            link: Link::Connecting,
            usage: None,
            plan: None,
            plan_map: PlanMap::default(),
            me: None,
            overview: Overview::default(),
            alarms: Vec::new(),
            cabinets: Vec::new(),
            cabinet: None,
            worklists: Worklists::default(),
            audit: Vec::new(),
            fleet: None,
            data_at: None,
        }
    }
}

/// The fleet screen's data: deployments newest first, the selected one in detail, and the
/// devices whose configuration drifts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    pub deployments: Vec<Deployment>,
    pub detail: Option<DeploymentDetail>,
    pub drift: Vec<DeviceConfig>,
}

/// A case number as operators may see it: enough to match a paper file, not the whole.
pub fn mask_case(case: &str) -> String {
    let chars: Vec<char> = case.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let keep = 3.min(chars.len() / 3);
    let head: String = chars[..keep].iter().collect();
    let tail: String = chars[chars.len() - keep..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 2 * keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_are_masked() {
        assert_eq!(mask_case("GZ-2026-0001"), "GZ-******001");
        assert_eq!(mask_case("abcd"), "****");
        assert_eq!(mask_case("abcdef"), "ab**ef");
    }

    #[test]
    fn answers_with_unknown_and_missing_fields_parse() {
        let a: Alarm = serde_json::from_str(
            r#"{"id":"a1","device_id":"cab-1","box":3,"kind":"forced_open","severity":"critical",
                "state":"active","count":2,"suppressed":true,"brand_new_field":1}"#,
        )
        .expect("alarm");
        assert_eq!(a.box_no, Some(3));
        assert!(a.suppressed);
        let c: Command =
            serde_json::from_str(r#"{"command_id":"c","status":"jammed"}"#).expect("command");
        assert!(c.is_final());
    }
}

/// `GET /api/v1/usage/sites?hours=24` joined with `GET /api/v1/usage/saturation`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Start of the first hour of the heatmap (epoch ms).
    pub from: i64,
    pub hours: Vec<SiteHours>,
    pub saturation: Saturation,
}
