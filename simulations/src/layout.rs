//! The demo's fleet as the platform knows it: sites, cabinets with their box sizes, station
//! devices and one helper per site. The live configuration (through the API) and the history
//! (written before the server starts) both take it from here, so they never disagree.

use api_types::cabinets::{BoxBody, CabinetBody};
use api_types::sites::SiteBody;
use api_types::staff::StaffBody;
use protocol::{BoxNo, DeviceId};

use crate::fleet::{FleetSpec, cabinet_id, station_id};

/// Site kinds in turn: site 1 is the service hall, then two enterprise clusters, a station,
/// and round again.
const KINDS: [&str; 4] = [
    "service_hall",
    "enterprise_cluster",
    "enterprise_cluster",
    "station",
];

#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// 1-based, as in the device ids `site-S-...`.
    pub n: usize,
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Cabinet {
    pub id: DeviceId,
    pub site: usize,
    /// Box number, size (S, M, L), accessible.
    pub boxes: Vec<(BoxNo, &'static str, bool)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Helper {
    pub id: String,
    pub name: String,
    pub site: usize,
    /// The card credential they open boxes with.
    pub card: String,
    pub phone: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub sites: Vec<Site>,
    pub cabinets: Vec<Cabinet>,
    /// Station devices and their site (no boxes).
    pub stations: Vec<(DeviceId, usize)>,
    pub helpers: Vec<Helper>,
}

pub(crate) fn site_id(n: usize) -> String {
    format!("site-{n}")
}

/// The site number in a demo device id `site-S-...`.
pub(crate) fn site_of(id: &str) -> Option<usize> {
    id.strip_prefix("site-")?.split('-').next()?.parse().ok()
}

pub(crate) fn staff_card(site: usize) -> String {
    format!("card-{site:04}")
}

/// The size of box `b` of `boxes`: the lower half S, then M up to 80%, then L.
fn size_of(b: u16, boxes: u16) -> &'static str {
    let share = f64::from(b) / f64::from(boxes.max(1));
    if share <= 0.5 {
        "S"
    } else if share <= 0.8 {
        "M"
    } else {
        "L"
    }
}

impl Layout {
    pub(crate) fn of(spec: &FleetSpec) -> Layout {
        let sites = (1..=spec.sites)
            .map(|n| {
                let kind = KINDS[(n - 1) % KINDS.len()];
                Site {
                    n,
                    id: site_id(n),
                    kind,
                    name: format!("{} {n}", kind.replace('_', " ")),
                    address: format!("{n} Service Road"),
                    lat: 23.10 + 0.01 * n as f64,
                    lon: 113.25 + 0.008 * n as f64,
                }
            })
            .collect();
        let cabinets = (0..spec.cabinets)
            .map(|n| {
                let id = cabinet_id(spec, n);
                let site = site_of(id.as_str()).unwrap_or(1);
                let boxes = (1..=spec.boxes)
                    .filter_map(|b| Some((BoxNo::new(b).ok()?, size_of(b, spec.boxes), b <= 2)))
                    .collect();
                Cabinet { id, site, boxes }
            })
            .collect();
        let stations = (0..spec.stations)
            .map(|n| {
                let id = station_id(spec, n).0;
                let site = site_of(id.as_str()).unwrap_or(1);
                (id, site)
            })
            .collect();
        let helpers = (1..=spec.sites)
            .map(|n| Helper {
                id: format!("helper-{n}"),
                name: format!("Helper {n}"),
                site: n,
                card: staff_card(n),
                phone: format!("+86139000000{n:02}"),
            })
            .collect();
        Layout {
            sites,
            cabinets,
            stations,
            helpers,
        }
    }

    /// Boxes at site `n`.
    pub(crate) fn boxes_at(&self, n: usize) -> usize {
        self.cabinets
            .iter()
            .filter(|c| c.site == n)
            .map(|c| c.boxes.len())
            .sum()
    }
}

impl Site {
    /// `PUT /api/v1/sites/{id}`.
    pub(crate) fn body(&self) -> SiteBody {
        SiteBody {
            id: None,
            kind: self.kind.to_owned(),
            name: self.name.clone(),
            address: self.address.clone(),
            lat: self.lat,
            lon: self.lon,
        }
    }
}

impl Cabinet {
    /// `PUT /api/v1/cabinets/{id}`.
    pub(crate) fn body(&self) -> CabinetBody {
        CabinetBody {
            site_id: site_id(self.site),
            name: None,
            boxes: self
                .boxes
                .iter()
                .map(|(b, size, accessible)| BoxBody {
                    box_no: b.get(),
                    size: (*size).to_owned(),
                    accessible: *accessible,
                })
                .collect(),
        }
    }
}

impl Helper {
    /// `POST /api/v1/staff`.
    pub(crate) fn body(&self) -> StaffBody {
        StaffBody {
            id: self.id.clone(),
            name: self.name.clone(),
            site_id: Some(site_id(self.site)),
            credential: self.card.clone(),
            phone: Some(self.phone.clone()),
            on_duty: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_demo_fleet_spreads_evenly_with_one_helper_per_site() {
        let l = Layout::of(&FleetSpec {
            stations: 6,
            ..FleetSpec::default()
        });
        assert_eq!(l.sites.len(), 5);
        assert_eq!(l.sites[0].kind, "service_hall");
        assert!((1..=5).all(|n| l.boxes_at(n) == 240));
        assert_eq!(l.stations.len(), 6);
        assert_eq!(l.helpers[2].card, "card-0003");
        let sizes: Vec<&str> = l.cabinets[0].boxes.iter().map(|b| b.1).collect();
        assert_eq!(sizes.iter().filter(|s| **s == "S").count(), 12);
        assert_eq!(sizes.iter().filter(|s| **s == "L").count(), 5);
        assert_eq!(l.cabinets[0].boxes.iter().filter(|b| b.2).count(), 2);
    }
}
