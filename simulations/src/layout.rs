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

/// The Chinese service centre of the source document: a 政务服务大厅, three 企业聚集区 and a
/// 驿站 (`--lang zh-CN`), with the names such places have.
const ZH_SITES: [(&str, &str); 5] = [
    ("service_hall", "市民中心政务服务大厅"),
    ("enterprise_cluster", "科技园企业聚集区"),
    ("enterprise_cluster", "高新产业园企业聚集区"),
    ("enterprise_cluster", "创业孵化基地企业聚集区"),
    ("station", "软件园“互联网+政务服务”驿站"),
];

/// Helpers (帮办人员) of a Chinese centre, one per site in turn.
const ZH_HELPERS: [&str; 8] = [
    "张敏", "李娜", "王强", "刘洋", "陈静", "杨帆", "赵磊", "黄丽",
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
    /// The language of its citizens' SMS (the Chinese centre's: zh-CN).
    pub lang: Option<l10n::Lang>,
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
    /// The English demo's fleet.
    pub(crate) fn of(spec: &FleetSpec) -> Layout {
        Layout::in_lang(spec, l10n::Lang::En)
    }

    /// The fleet with its names in `lang` (zh-CN: the source document's centre, site 4 an
    /// enterprise cluster): the same ids, cabinets and boxes in both.
    pub(crate) fn in_lang(spec: &FleetSpec, lang: l10n::Lang) -> Layout {
        let zh = lang == l10n::Lang::ZhCn;
        let sites = (1..=spec.sites)
            .map(|n| {
                let (kind, name, address) = if zh {
                    let (kind, name) = ZH_SITES[(n - 1) % ZH_SITES.len()];
                    let round = (n - 1) / ZH_SITES.len();
                    let name = if round == 0 {
                        name.to_owned()
                    } else {
                        format!("{name}（{}）", round + 1)
                    };
                    (kind, name, format!("服务大道 {n} 号"))
                } else {
                    let kind = KINDS[(n - 1) % KINDS.len()];
                    (
                        kind,
                        format!("{} {n}", kind.replace('_', " ")),
                        format!("{n} Service Road"),
                    )
                };
                Site {
                    n,
                    id: site_id(n),
                    kind,
                    name,
                    address,
                    lat: 23.10 + 0.01 * n as f64,
                    lon: 113.25 + 0.008 * n as f64,
                    lang: zh.then_some(l10n::Lang::ZhCn),
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
                name: if zh {
                    ZH_HELPERS[(n - 1) % ZH_HELPERS.len()].to_owned()
                } else {
                    format!("Helper {n}")
                },
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
            lang: self.lang.map(|l| l.tag().to_owned()),
            time_zone: None,
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

    #[test]
    fn the_chinese_demo_is_a_service_centre_of_the_source_document() {
        let spec = FleetSpec::default();
        let zh = Layout::in_lang(&spec, l10n::Lang::ZhCn);
        let kinds: Vec<&str> = zh.sites.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                "service_hall",
                "enterprise_cluster",
                "enterprise_cluster",
                "enterprise_cluster",
                "station"
            ]
        );
        assert_eq!(zh.sites[0].name, "市民中心政务服务大厅");
        assert!(
            zh.sites[1..4]
                .iter()
                .all(|s| s.name.ends_with("企业聚集区"))
        );
        assert!(zh.sites[4].name.ends_with("驿站"));
        assert_eq!(zh.helpers[0].name, "张敏");
        // The same ids and boxes as the English fleet: a data dir serves both.
        let en = Layout::of(&spec);
        assert_eq!(
            zh.cabinets.iter().map(|c| &c.id).collect::<Vec<_>>(),
            en.cabinets.iter().map(|c| &c.id).collect::<Vec<_>>()
        );
    }
}
