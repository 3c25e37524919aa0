//! The domain's words on screen: wire values (states, kinds, flows) in the operator's
//! language, from the catalogues' `domain-*` messages.

use l10n::{Lang, t};

pub fn site_kind(lang: Lang, kind: &str) -> String {
    t!(lang, "domain-site-kind", kind = kind)
}

pub fn box_state(lang: Lang, state: &str) -> String {
    t!(lang, "domain-box-state", state = state)
}

pub fn severity(lang: Lang, severity: &str) -> String {
    t!(lang, "domain-severity", severity = severity)
}

pub fn alarm_state(lang: Lang, state: &str) -> String {
    t!(lang, "domain-alarm-state", state = state)
}

pub fn alarm_kind(lang: Lang, kind: &str) -> String {
    t!(lang, "domain-alarm-kind", kind = kind)
}

pub fn flow(lang: Lang, flow: &str) -> String {
    t!(lang, "domain-flow", flow = flow)
}

pub fn item_state(lang: Lang, state: &str) -> String {
    t!(lang, "domain-item-state", state = state)
}

pub fn command_status(lang: Lang, status: &str) -> String {
    t!(lang, "domain-command-status", status = status)
}

pub fn deployment_state(lang: Lang, state: &str) -> String {
    t!(lang, "domain-deployment-state", state = state)
}

pub fn rollout_state(lang: Lang, state: &str) -> String {
    t!(lang, "domain-rollout-state", state = state)
}

pub fn role(lang: Lang, role: &str) -> String {
    t!(lang, "domain-role", role = role)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value the server sends has its Chinese word (a new enum variant without one
    /// would show in English on a Chinese screen).
    #[test]
    fn every_wire_value_reads_in_chinese() {
        let zh = Lang::ZhCn;
        let han = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
        let mut missing = Vec::new();
        let mut check = |what: &str, value: &str, text: String| {
            if !han(&text) {
                missing.push(format!("{what} {value}: {text}"));
            }
        };
        for k in api_types::SiteKind::ALL {
            check("site kind", k.as_str(), site_kind(zh, k.as_str()));
        }
        for s in api_types::BoxStatus::ALL {
            check("box state", s.as_str(), box_state(zh, s.as_str()));
        }
        for s in api_types::Severity::ALL {
            check("severity", s.as_str(), severity(zh, s.as_str()));
        }
        for s in api_types::AlarmState::ALL {
            check("alarm state", s.as_str(), alarm_state(zh, s.as_str()));
        }
        for k in api_types::AlarmKind::all() {
            check("alarm kind", k.as_str(), alarm_kind(zh, k.as_str()));
        }
        for f in api_types::Flow::ALL {
            check("flow", f.as_str(), flow(zh, f.as_str()));
        }
        for s in api_types::ItemState::ALL {
            check("item state", s.as_str(), item_state(zh, s.as_str()));
        }
        for s in api_types::CommandStatus::ALL {
            check("command status", s.as_str(), command_status(zh, s.as_str()));
        }
        for s in api_types::deployments::DeploymentState::ALL {
            check(
                "deployment state",
                s.as_str(),
                deployment_state(zh, s.as_str()),
            );
        }
        for s in api_types::deployments::DeviceRollout::ALL {
            check("rollout state", s.as_str(), rollout_state(zh, s.as_str()));
        }
        for r in api_types::Role::ALL {
            check("role", r.as_str(), role(zh, r.as_str()));
        }
        assert_eq!(missing, Vec::<String>::new());
        // An unknown value (a newer server) shows as sent, not as nothing.
        assert_eq!(alarm_kind(zh, "solar_flare"), "solar_flare");
    }
}
