//! What a citizen's SMS says: the template for the site, language and flow (the site's own,
//! else the fleet's, else the built-in text of the catalogues), with the times in the site's
//! time zone, 24-hour. The code is only ever put into the text here, which is sealed at once.

use std::collections::HashMap;

use serde::Deserialize;

use domain::flows::Flow;
use domain::sms::{Template, Values};
use l10n::{Lang, t};

use crate::store::{AlarmRow, SmsTemplateRow, Store, StoreError};

/// An IANA time zone from the bundled database, or what to write instead.
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|_| {
        format!("unknown time zone {name:?}: use an IANA name such as Asia/Shanghai or UTC")
    })
}

/// The catalogue's text for `flow` in `lang`, as a template.
pub fn builtin(lang: Lang, flow: Flow) -> Template {
    // The placeholders go in as themselves: the catalogue's wording, our template syntax.
    let mut args = l10n::FluentArgs::new();
    for (name, placeholder) in [
        ("code", "{code}"),
        ("case", "{case}"),
        ("cabinet", "{cabinet}"),
        ("box_no", "{box}"),
        ("site", "{site}"),
        ("until", "{until}"),
    ] {
        args.set(name, placeholder);
    }
    let text = match flow {
        Flow::Dropoff => t!(lang, "sms-dropoff"; &args),
        Flow::Supplement => t!(lang, "sms-supplement"; &args),
        Flow::Pickup => t!(lang, "sms-pickup"; &args),
    };
    // The catalogue tests parse every built-in text; the fallback only keeps a code flowing.
    Template::parse(&text).unwrap_or_else(|_| minimal())
}

fn minimal() -> Template {
    match Template::parse("LockerFleet {code} {cabinet} #{box}") {
        Ok(t) => t,
        Err(_) => unreachable!("a constant template parses"),
    }
}

/// Where a template in effect comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Builtin,
    Fleet,
    Site,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::Fleet => "fleet",
            Source::Site => "site",
        }
    }
}

/// A site as its SMS need it.
#[derive(Debug, Clone)]
struct Place {
    name: String,
    lang: Option<Lang>,
    time_zone: Option<String>,
}

/// Sites and templates, read once per reservation (both are small).
#[derive(Debug, Clone)]
pub struct SmsBook {
    places: HashMap<String, Place>,
    templates: Vec<SmsTemplateRow>,
    default_lang: Lang,
    utc_offset_minutes: i32,
}

/// One provider template: its id and the values it takes, in order (Tencent fills
/// `TemplateParamSet` in this order; Alibaba sends `TemplateParam` by these names). Names
/// are those of [`MESSAGES`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub id: String,
    #[serde(default)]
    pub params: Vec<String>,
}

/// One SMS as the outbox keeps it: the text, for gateways that take text, and what it says
/// as a message kind, language and named values, for gateways that send templates approved
/// in advance (Alibaba Cloud, Tencent Cloud: `runtime::sms_gateways`).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// `dropoff`, `supplement`, `pickup`, `reminder` or `alarm` ([`MESSAGES`]).
    pub message: &'static str,
    pub lang: Lang,
    pub text: String,
    pub params: Vec<(&'static str, String)>,
}

/// Each message kind and the values it carries, by name (what a provider template's
/// `params` may name).
pub const MESSAGES: &[(&str, &[&str])] = &[
    ("dropoff", FLOW_PARAMS),
    ("supplement", FLOW_PARAMS),
    ("pickup", FLOW_PARAMS),
    ("reminder", &["case", "cabinet", "box", "site", "until"]),
    (
        "alarm",
        &["severity", "kind", "device", "box", "site", "id", "state"],
    ),
];

const FLOW_PARAMS: &[&str] = &["code", "case", "cabinet", "box", "site", "until"];

impl Outgoing {
    /// The JSON the outbox row holds for one recipient (sealed when it carries a code).
    pub fn body(&self, to: &str) -> String {
        let params: serde_json::Map<String, serde_json::Value> = self
            .params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(v.as_str())))
            .collect();
        serde_json::json!({
            "to": to,
            "text": self.text,
            "message": self.message,
            "lang": self.lang.tag(),
            "params": params,
        })
        .to_string()
    }
}

/// One SMS to write.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub site: &'a str,
    /// The applicant's language, when the service platform said.
    pub lang: Option<Lang>,
    pub flow: Flow,
    pub case: &'a str,
    pub cabinet: &'a str,
    pub box_no: u16,
    pub code: &'a str,
    pub until_ms: i64,
}

impl SmsBook {
    pub async fn load(
        store: &Store,
        default_lang: Lang,
        utc_offset_minutes: i32,
    ) -> Result<SmsBook, StoreError> {
        let places = store
            .sites()
            .await?
            .into_iter()
            .map(|s| {
                (
                    s.id,
                    Place {
                        name: s.name,
                        lang: s.lang,
                        time_zone: s.time_zone,
                    },
                )
            })
            .collect();
        Ok(SmsBook {
            places,
            templates: store.sms_templates().await?,
            default_lang,
            utc_offset_minutes,
        })
    }

    /// The language of SMS to `site`'s citizens.
    pub fn lang_of(&self, site: &str) -> Lang {
        self.places
            .get(site)
            .and_then(|p| p.lang)
            .unwrap_or(self.default_lang)
    }

    /// The template in effect, and where it comes from.
    pub fn template(
        &self,
        site: Option<&str>,
        lang: Lang,
        flow: Flow,
    ) -> (Template, Source, Option<&SmsTemplateRow>) {
        let find = |s: Option<&str>| {
            self.templates
                .iter()
                .find(|t| t.site_id.as_deref() == s && t.lang == lang && t.flow == flow)
        };
        for (row, source) in [
            (site.and_then(|s| find(Some(s))), Source::Site),
            (find(None), Source::Fleet),
        ] {
            if let Some(row) = row
                && let Ok(t) = Template::parse(&row.body)
            {
                return (t, source, Some(row));
            }
        }
        (builtin(lang, flow), Source::Builtin, None)
    }

    /// `ms` as the site's clock reads it, 24-hour.
    pub fn local_time(&self, site: &str, lang: Lang, ms: i64) -> String {
        let named = self
            .places
            .get(site)
            .and_then(|p| p.time_zone.as_deref())
            .or(match lang {
                Lang::ZhCn => Some(lang.default_time_zone()),
                Lang::En => None,
            })
            .and_then(|name| time_zone(name).ok());
        let tz = named.unwrap_or_else(|| {
            jiff::tz::TimeZone::fixed(
                jiff::tz::Offset::from_seconds(self.utc_offset_minutes.saturating_mul(60))
                    .unwrap_or(jiff::tz::Offset::UTC),
            )
        });
        // Out of jiff's range (years beyond ±9999): no reservation gets there; said plainly.
        let Ok(at) = jiff::Timestamp::from_millisecond(ms) else {
            return format!("{ms} ms");
        };
        let zoned = at.to_zoned(tz);
        match lang {
            Lang::ZhCn => zoned.strftime("%Y年%m月%d日 %H:%M").to_string(),
            Lang::En => zoned.strftime("%Y-%m-%d %H:%M UTC%:z").to_string(),
        }
    }

    /// The reminder before a pick-up code expires, in the site's language (it carries no
    /// code: the citizen has it).
    pub fn reminder(
        &self,
        site: &str,
        case: &str,
        cabinet: &str,
        box_no: i64,
        until_ms: i64,
    ) -> Outgoing {
        let lang = self.lang_of(site);
        let place = self.places.get(site).map_or(site, |p| p.name.as_str());
        let until = self.local_time(site, lang, until_ms);
        Outgoing {
            message: "reminder",
            lang,
            text: t!(
                lang,
                "sms-reminder",
                case = case,
                site = place,
                cabinet = cabinet,
                box_no = box_no,
                until = until.as_str()
            ),
            params: vec![
                ("case", case.to_owned()),
                ("cabinet", cabinet.to_owned()),
                ("box", box_no.to_string()),
                ("site", place.to_owned()),
                ("until", until),
            ],
        }
    }

    /// What on-duty staff read of an alarm, in their site's language.
    pub fn alarm(&self, a: &AlarmRow, escalated: bool) -> String {
        let site = a.site_id.as_deref().unwrap_or("");
        let lang = self.lang_of(site);
        let place = match a.site_id.as_deref() {
            Some(s) => self.places.get(s).map_or(s, |p| p.name.as_str()),
            None => "",
        };
        t!(
            lang,
            "sms-alarm",
            escalated = if escalated { "yes" } else { "no" },
            severity = t!(lang, "domain-severity", severity = a.severity.as_str()),
            kind = t!(lang, "domain-alarm-kind", kind = a.kind.as_str()),
            device = a.device_id.as_str(),
            box_no = a
                .box_no
                .map_or_else(|| "none".to_owned(), |b| b.get().to_string()),
            site = place,
            evidence = l10n::evidence(lang, a.evidence.as_deref().unwrap_or("")),
            cleared = if a.state == domain::alarms::AlarmState::Cleared {
                "yes"
            } else {
                "no"
            },
            id = a.id.as_str()
        )
    }

    /// An alarm's SMS to on-duty staff: the text and the values a provider template takes
    /// (severity, kind and state in the site's language).
    pub fn alarm_sms(&self, a: &AlarmRow, escalated: bool) -> Outgoing {
        let site = a.site_id.as_deref().unwrap_or("");
        let lang = self.lang_of(site);
        let place = match a.site_id.as_deref() {
            Some(s) => self.places.get(s).map_or(s, |p| p.name.as_str()),
            None => "",
        };
        let state = if escalated && a.state != domain::alarms::AlarmState::Cleared {
            t!(lang, "domain-alarm-state", state = "escalated")
        } else {
            t!(lang, "domain-alarm-state", state = a.state.as_str())
        };
        Outgoing {
            message: "alarm",
            lang,
            text: self.alarm(a, escalated),
            params: vec![
                (
                    "severity",
                    t!(lang, "domain-severity", severity = a.severity.as_str()),
                ),
                (
                    "kind",
                    t!(lang, "domain-alarm-kind", kind = a.kind.as_str()),
                ),
                ("device", a.device_id.as_str().to_owned()),
                (
                    "box",
                    a.box_no
                        .map_or_else(|| "-".to_owned(), |b| b.get().to_string()),
                ),
                ("site", place.to_owned()),
                ("id", a.id.as_str().to_owned()),
                ("state", state),
            ],
        }
    }

    /// The SMS text, in the applicant's language or the site's.
    pub fn text(&self, m: &Message<'_>) -> String {
        self.compose(m).text
    }

    /// The SMS of a reservation: its text and the values a provider template takes.
    pub fn compose(&self, m: &Message<'_>) -> Outgoing {
        let lang = m.lang.unwrap_or_else(|| self.lang_of(m.site));
        let (template, _, _) = self.template(Some(m.site), lang, m.flow);
        let site = self.places.get(m.site).map_or(m.site, |p| p.name.as_str());
        let until = self.local_time(m.site, lang, m.until_ms);
        let text = template.render(&Values {
            code: m.code,
            case: m.case,
            cabinet: m.cabinet,
            box_no: m.box_no,
            site,
            until: &until,
        });
        Outgoing {
            message: m.flow.as_str(),
            lang,
            text,
            params: vec![
                ("code", m.code.to_owned()),
                ("case", m.case.to_owned()),
                ("cabinet", m.cabinet.to_owned()),
                ("box", m.box_no.to_string()),
                ("site", site.to_owned()),
                ("until", until),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_text_is_a_valid_template_in_every_language() {
        for lang in Lang::ALL {
            for flow in Flow::ALL {
                let text = builtin(lang, *flow);
                assert_ne!(
                    text,
                    minimal(),
                    "{lang} {flow}: the catalogue's text did not parse"
                );
                assert!(text.source().contains("{code}"), "{lang} {flow}");
            }
        }
    }

    #[test]
    fn a_chinese_site_reads_its_times_in_beijing_time_24_hour() {
        let book = SmsBook {
            places: HashMap::from([(
                "hall".to_owned(),
                Place {
                    name: "市民中心政务服务大厅".into(),
                    lang: Some(Lang::ZhCn),
                    time_zone: None,
                },
            )]),
            templates: Vec::new(),
            default_lang: Lang::En,
            utc_offset_minutes: 0,
        };
        // 2026-12-05 10:30 UTC is 18:30 in Shanghai.
        let ms = 1_796_466_600_000;
        assert_eq!(
            book.local_time("hall", Lang::ZhCn, ms),
            "2026年12月05日 18:30"
        );
        assert_eq!(
            book.local_time("other", Lang::En, ms),
            "2026-12-05 10:30 UTC+00:00"
        );
        let text = book.text(&Message {
            site: "hall",
            lang: None,
            flow: Flow::Pickup,
            case: "GZ-1",
            cabinet: "hall-cab-01",
            box_no: 3,
            code: "48151623",
            until_ms: ms,
        });
        assert!(
            text.contains("48151623") && text.contains("18:30"),
            "{text}"
        );
        assert!(
            text.contains("市民中心政务服务大厅") && text.contains("取件码"),
            "{text}"
        );
    }

    #[test]
    fn staff_read_an_alarm_in_their_sites_language() {
        use domain::alarms::{AlarmKind, AlarmState, Severity};
        let place = |lang| Place {
            name: "市民中心政务服务大厅".into(),
            lang,
            time_zone: None,
        };
        let mut book = SmsBook {
            places: HashMap::from([("hall".to_owned(), place(Some(Lang::ZhCn)))]),
            templates: Vec::new(),
            default_lang: Lang::En,
            utc_offset_minutes: 0,
        };
        let alarm = AlarmRow {
            id: "a1".into(),
            device_id: protocol::DeviceId::parse("hall-cab-01").expect("id"),
            box_no: protocol::BoxNo::new(3).ok(),
            kind: AlarmKind::Fault(protocol::FaultKind::ForcedOpen),
            severity: Severity::Critical,
            state: AlarmState::Active,
            site_id: Some("hall".into()),
            first_seen: 0,
            last_seen: 0,
            count: 1,
            evidence: Some(protocol::evidence::say(
                protocol::evidence::Code::ForcedOpen,
                &["3500"],
            )),
            acked_by: None,
            acked_at: None,
            ack_note: None,
            cleared_at: None,
            cleared_by: None,
            clear_note: None,
            escalated_at: None,
            notified_at: None,
            notify_outcome: None,
            suppressed: false,
        };
        assert_eq!(
            book.alarm(&alarm, true),
            "【已升级，无人确认】【LockerFleet】紧急告警：hall-cab-01 3 号箱格 箱门被撬（市民中心政务服务大厅）：箱门打开前 3500 毫秒内没有开锁脉冲。告警编号 a1"
        );
        book.places.insert("hall".into(), place(None));
        assert_eq!(
            book.alarm(&alarm, false),
            "LockerFleet critical alarm: forced open at hall-cab-01 box 3 (市民中心政务服务大厅): door opened with no unlock pulse in the preceding 3500 ms. Alarm a1"
        );
    }
}
