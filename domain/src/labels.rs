//! Labels an administrator puts on devices (`board=modbus-v2`, `district=福田区`): what a
//! label may look like, and whether a device's labels match a selector. Deployments and
//! central configuration select devices by them.

use std::collections::BTreeMap;

/// A device's labels, key → value, in key order (deterministic on the wire and in storage).
pub type Labels = BTreeMap<String, String>;

/// At most this many labels on one device.
pub const MAX_LABELS: usize = 32;
/// Longest key and longest value, in characters.
pub const MAX_LEN: usize = 63;

/// Why a label was refused, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "label key {0:?} is not valid: use 1–63 lower-case letters, digits, '-', '_', '.' or '/', starting with a letter or digit"
    )]
    Key(String),
    #[error(
        "label {key}={value:?} has an invalid value: use 0–63 characters without spaces, '=', ',' or control characters"
    )]
    Value { key: String, value: String },
    #[error("{0} labels is too many: a device carries at most {MAX_LABELS}")]
    TooMany(usize),
    #[error("label selector {0:?} is not KEY=VALUE")]
    Selector(String),
}

/// Checks one key: lower-case ASCII so that `Board` and `board` never become two labels.
pub fn check_key(key: &str) -> Result<(), LabelError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_LEN
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LabelError::Key(key.to_string()))
    }
}

/// Checks one value: any script (district names are Chinese), but nothing that would make
/// `key=value,key=value` ambiguous.
pub fn check_value(key: &str, value: &str) -> Result<(), LabelError> {
    let ok = value.chars().count() <= MAX_LEN
        && value
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '=' && c != ',');
    if ok {
        Ok(())
    } else {
        Err(LabelError::Value {
            key: key.to_string(),
            value: value.to_string(),
        })
    }
}

/// Checks a whole set, the first bad label named.
pub fn check(labels: &Labels) -> Result<(), LabelError> {
    if labels.len() > MAX_LABELS {
        return Err(LabelError::TooMany(labels.len()));
    }
    for (k, v) in labels {
        check_key(k)?;
        check_value(k, v)?;
    }
    Ok(())
}

/// Parses `key=value` (a selector term or a CLI argument).
pub fn parse_pair(s: &str) -> Result<(String, String), LabelError> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| LabelError::Selector(s.to_string()))?;
    check_key(k)?;
    check_value(k, v)?;
    Ok((k.to_string(), v.to_string()))
}

/// Whether a device carries every label of the selector (an empty selector matches all).
pub fn matches(labels: &Labels, selector: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_lower_case_and_values_any_script() {
        assert!(check(&labels(&[("board", "modbus-v2"), ("district", "福田区")])).is_ok());
        assert!(check(&labels(&[("site.tier/zone", "")])).is_ok());
        assert_eq!(
            check_key("Board"),
            Err(LabelError::Key("Board".to_string()))
        );
        assert!(check_key("").is_err());
        assert!(check_key("-x").is_err());
        assert!(check_key(&"k".repeat(64)).is_err());
        assert!(check_value("k", "a b").is_err());
        assert!(check_value("k", "a=b").is_err());
        assert!(check_value("k", "a,b").is_err());
        assert!(check_value("k", &"区".repeat(63)).is_ok());
        assert!(check_value("k", &"区".repeat(64)).is_err());
        let many: Labels = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(check(&many), Err(LabelError::TooMany(33)));
    }

    #[test]
    fn a_selector_matches_devices_with_all_its_labels() {
        let device = labels(&[("board", "modbus-v2"), ("district", "福田区")]);
        assert!(matches(&device, &Labels::new()));
        assert!(matches(&device, &labels(&[("board", "modbus-v2")])));
        assert!(!matches(&device, &labels(&[("board", "gpio")])));
        assert!(!matches(
            &device,
            &labels(&[("board", "modbus-v2"), ("floor", "2")])
        ));
    }

    #[test]
    fn pairs_parse_with_the_reason_when_not() {
        assert_eq!(
            parse_pair("district=南山区"),
            Ok(("district".into(), "南山区".into()))
        );
        assert_eq!(
            parse_pair("district"),
            Err(LabelError::Selector("district".into()))
        );
        assert!(parse_pair("District=x").is_err());
    }

    proptest! {
        #[test]
        fn whatever_parses_prints_back_the_same(s in "\\PC{0,80}") {
            if let Ok((k, v)) = parse_pair(&s) {
                prop_assert_eq!(format!("{k}={v}"), s);
                prop_assert!(check(&[(k, v)].into_iter().collect()).is_ok());
            }
        }
    }
}
