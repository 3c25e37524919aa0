//! The planner's answer (`GET /api/v1/planning/recommendations`). The plan itself is the
//! planner's own output type (`domain::planner`), re-exported so clients need one import.

use serde::{Deserialize, Serialize};

pub use domain::planner::{
    BoxesBySize, ClusterCoverage, DemandPoint, ExistingSite, Expansion, Plan, PlanParams,
    Recommendation, Weight,
};

/// A plan and what it was measured from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanAnswer {
    /// Days of usage the existing sites were judged by.
    pub measured_days: u32,
    /// Mean dwell (hours) measured over them; absent when nothing was used.
    pub measured_dwell_hours: Option<f64>,
    /// The sites in service the plan judged, with what they measured.
    #[serde(default)]
    pub existing_sites: Vec<ExistingSite>,
    #[serde(flatten)]
    pub plan: Plan,
}

/// `GET /api/v1/planning/demand`: the demand points as uploaded (the console's map).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DemandList {
    pub points: Vec<DemandPoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Uploaded {
    /// Entries stored (they replace the previous upload).
    pub stored: usize,
}
