//! What a person reads, in their language: the message catalogues (Project Fluent, one file
//! per component and language under `locales/`), how a process chooses the language
//! (`--lang`, config, `LC_ALL`/`LC_MESSAGES`/`LANG`), and the domain glossary the catalogues
//! are checked against (`glossary.toml`). English is the fallback for anything missing.
//!
//! Messages are looked up by literal id with [`t!`]; the catalogue tests walk every `t!` in the
//! workspace, so an id the code uses and a catalogue lacks fails CI, as does a message one
//! language has and the other does not (ADR 0023).

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use fluent_bundle::FluentResource;
use fluent_bundle::concurrent::FluentBundle;

pub use fluent_bundle::{FluentArgs, FluentValue};

/// A language the catalogues are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// English: the fallback.
    #[default]
    En,
    /// Simplified Chinese as used in mainland China's service centres.
    ZhCn,
}

/// A language name that is not one of ours (said with the ones that are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?}: choose en or zh-CN")]
pub struct UnknownLang(pub String);

/// One catalogue file: the component it belongs to and its Fluent source.
#[derive(Debug, Clone, Copy)]
pub struct Catalogue {
    pub component: &'static str,
    pub source: &'static str,
}

macro_rules! catalogues {
    ($lang:literal: $($component:literal),+) => {
        &[$(Catalogue {
            component: $component,
            source: include_str!(concat!("../locales/", $lang, "/", $component, ".ftl")),
        }),+]
    };
}

const EN: &[Catalogue] = catalogues!("en": "domain", "console", "doctor", "demo", "sms", "planner");
const ZH_CN: &[Catalogue] =
    catalogues!("zh-CN": "domain", "console", "doctor", "demo", "sms", "planner");

/// The glossary of domain terms (English, the source document's Chinese), shared by the
/// catalogues and the domain description; the tests hold every catalogue to it.
pub const GLOSSARY: &str = include_str!("../glossary.toml");

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// The BCP 47 tag (`en`, `zh-CN`), as `--lang` takes it and the API reports it.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// The time zone a site shows its clock in when none is configured.
    pub fn default_time_zone(self) -> &'static str {
        match self {
            Lang::En => "UTC",
            Lang::ZhCn => "Asia/Shanghai",
        }
    }

    /// This language's catalogue files.
    pub fn catalogues(self) -> &'static [Catalogue] {
        match self {
            Lang::En => EN,
            Lang::ZhCn => ZH_CN,
        }
    }

    /// A POSIX locale (`zh_CN.UTF-8`, `en_GB`, `C`) or a language tag, as the environment has
    /// it. Chinese in any form reads the Simplified catalogue; anything else not ours is
    /// `None` (the caller falls back to English).
    pub fn from_locale(locale: &str) -> Option<Lang> {
        // `language[_territory][.codeset][@modifier]`; tags use `-`.
        let base = locale.split(['.', '@']).next().unwrap_or_default();
        let language = base.split(['_', '-']).next().unwrap_or_default();
        match language.to_ascii_lowercase().as_str() {
            "zh" => Some(Lang::ZhCn),
            "en" | "c" | "posix" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language the environment asks for: the first set of `LC_ALL`, `LC_MESSAGES` and
    /// `LANG` (POSIX's order), English when none names one of ours.
    pub fn from_env() -> Lang {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any variable lookup (tests pass a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| var(k).filter(|v| !v.is_empty()))
            .next()
            .and_then(|v| Lang::from_locale(&v))
            .unwrap_or_default()
    }

    /// The language a process speaks: an explicit choice (`--lang` or the config file, which
    /// must name one of ours), else the environment's.
    pub fn choose(explicit: Option<&str>) -> Result<Lang, UnknownLang> {
        match explicit {
            Some(s) => s.parse(),
            None => Ok(Lang::from_env()),
        }
    }

    /// The message `id` with `args`, in this language, else in English, else the id itself
    /// (the catalogue tests keep that last case from ever shipping).
    pub fn text(self, id: &str, args: Option<&FluentArgs>) -> String {
        for lang in [self, Lang::En] {
            let bundle = bundle(lang);
            if let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                let text = bundle.format_pattern(pattern, args, &mut errors);
                return text.into_owned();
            }
        }
        id.to_owned()
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

impl FromStr for Lang {
    type Err = UnknownLang;

    fn from_str(s: &str) -> Result<Lang, UnknownLang> {
        // An explicit choice names a language; `C` is a locale, not one.
        let t = s.trim();
        if t.eq_ignore_ascii_case("c") || t.eq_ignore_ascii_case("posix") {
            return Err(UnknownLang(s.to_owned()));
        }
        Lang::from_locale(t).ok_or_else(|| UnknownLang(s.to_owned()))
    }
}

impl<'de> serde::Deserialize<'de> for Lang {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lang, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Lang {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.tag())
    }
}

type Bundle = FluentBundle<FluentResource>;

fn bundle(lang: Lang) -> &'static Bundle {
    static BUNDLES: OnceLock<[Bundle; 2]> = OnceLock::new();
    let all = BUNDLES.get_or_init(|| Lang::ALL.map(build));
    &all[lang as usize]
}

/// One language's bundle from its embedded catalogues. A syntax error or a duplicate id
/// keeps the rest of the catalogue usable; the catalogue tests refuse both.
fn build(lang: Lang) -> Bundle {
    let id: unic_langid::LanguageIdentifier = lang
        .tag()
        .parse()
        .unwrap_or_else(|_| unic_langid::LanguageIdentifier::default());
    let mut bundle = Bundle::new_concurrent(vec![id]);
    // Unicode isolation marks around arguments are for bidirectional text; in a terminal
    // they are invisible characters that shift every column after them.
    bundle.set_use_isolating(false);
    for c in lang.catalogues() {
        let resource = FluentResource::try_new(c.source.to_owned()).unwrap_or_else(|(r, _)| r);
        let _ = bundle.add_resource(resource);
    }
    bundle
}

/// Turns a value into a message argument (numbers stay numbers, so plurals select on them).
pub fn arg<'a>(v: impl Into<FluentValue<'a>>) -> FluentValue<'a> {
    v.into()
}

/// `t!(lang, ID)`, `t!(lang, ID, name = value, …)` or `t!(lang, ID; &args)` (prepared
/// [`FluentArgs`]) with ID a string literal: the message in `lang`. The id must be a literal: the catalogue tests find every use by it.
#[macro_export]
macro_rules! t {
    ($lang:expr, $id:literal) => {
        $crate::Lang::text($lang, $id, None)
    };
    ($lang:expr, $id:literal; $args:expr) => {
        $crate::Lang::text($lang, $id, Some($args))
    };
    ($lang:expr, $id:literal, $($key:ident = $value:expr),+ $(,)?) => {{
        let mut args = $crate::FluentArgs::new();
        $( args.set(stringify!($key), $crate::arg($value)); )+
        $crate::Lang::text($lang, $id, Some(&args))
    }};
}

/// A fault's or alarm's evidence (an English sentence of `protocol::evidence`) in `lang`;
/// a sentence from elsewhere as it was written.
pub fn evidence(lang: Lang, text: &str) -> String {
    use protocol::evidence::Code;
    let Some((code, values)) = protocol::evidence::parse(text) else {
        return text.to_owned();
    };
    let v = |i: usize| values.get(i).cloned().unwrap_or_default();
    // Values that are words of the domain are said in the language too.
    let (a, b) = match code {
        Code::OccupancyAgain | Code::OccupancyChanged => {
            (t!(lang, "domain-occupancy", state = v(0)), v(1))
        }
        Code::StationReports | Code::StationClears => (
            t!(lang, "domain-profile", profile = v(0)),
            t!(lang, "domain-alarm-kind", kind = v(1)),
        ),
        _ => (v(0), v(1)),
    };
    t!(lang, "domain-evidence", code = code.name(), a = a, b = b)
}

/// A `device-agent doctor` check's name (its stable key: `config`, `certificate`, `clock`,
/// `server`, `lock board`, `disk`) as a person reads it; an unknown key as is.
pub fn doctor_check(lang: Lang, name: &str) -> String {
    match name {
        "config" => t!(lang, "doctor-name-config"),
        "certificate" => t!(lang, "doctor-name-certificate"),
        "clock" => t!(lang, "doctor-name-clock"),
        "server" => t!(lang, "doctor-name-server"),
        "lock board" => t!(lang, "doctor-name-board"),
        "disk" => t!(lang, "doctor-name-disk"),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests;
