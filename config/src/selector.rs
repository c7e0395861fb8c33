//! Label selectors parsed once into requirements that can be matched without allocation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// The label exists and its value is one of these.
    In(String, BTreeSet<String>),
    /// The label is absent or its value is none of these.
    NotIn(String, BTreeSet<String>),
    /// The label exists.
    Exists(String),
    /// The label does not exist.
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

/// A parsed label selector: every requirement must hold. No requirement matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The requirements, all of which must hold.
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// A selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Parses a Kubernetes `LabelSelector`. The error says what is wrong with which expression,
    /// relative to the selector (`matchExpressions[1].operator: …`).
    pub fn parse(sel: &LabelSelector) -> Result<Self, (String, String)> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            check_label_key(k).map_err(|m| (format!("matchLabels.{k}"), m))?;
            check_label_value(v).map_err(|m| (format!("matchLabels.{k}"), m))?;
            requirements.push(Requirement::In(k.clone(), BTreeSet::from([v.clone()])));
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            let at = |f: &str| format!("matchExpressions[{i}].{f}");
            check_label_key(&e.key).map_err(|m| (at("key"), m))?;
            let values: BTreeSet<String> = e.values.iter().flatten().cloned().collect();
            for v in &values {
                check_label_value(v).map_err(|m| (at("values"), m))?;
            }
            let r = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err((
                        at("values"),
                        format!("operator {} needs at least one value", e.operator),
                    ));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err((
                        at("values"),
                        format!("operator {} takes no values", e.operator),
                    ));
                }
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err((
                        at("operator"),
                        format!(
                            "unknown operator {other:?}; accepted: In, NotIn, Exists, DoesNotExist"
                        ),
                    ));
                }
            };
            requirements.push(r);
        }
        Ok(Self { requirements })
    }
}

/// Whether any selector of a list matches; an empty list matches everything (the convention of
/// every `…Selectors` field of our CRDs).
pub fn any_matches(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

fn check_name_part(s: &str, what: &str) -> Result<(), String> {
    let ok_ends = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    if s.is_empty() || s.len() > 63 || !s.chars().all(is_name_char) || !ok_ends(s) {
        return Err(format!(
            "{what} {s:?} is invalid: up to 63 characters of [A-Za-z0-9-_.], starting and ending \
             with a letter or digit"
        ));
    }
    Ok(())
}

fn check_label_key(k: &str) -> Result<(), String> {
    match k.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                });
            if !prefix_ok {
                return Err(format!(
                    "label key prefix {prefix:?} is not a DNS subdomain (lowercase letters, \
                     digits, '-' and '.')"
                ));
            }
            check_name_part(name, "label key name")
        }
        None => check_name_part(k, "label key"),
    }
}

fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    check_name_part(v, "label value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions_all_must_hold() {
        let sel = Selector::parse(&LabelSelector {
            match_labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
            match_expressions: Some(vec![
                expr("tier", "In", &["web", "api"]),
                expr("canary", "DoesNotExist", &[]),
            ]),
        })
        .expect("valid");
        assert!(sel.matches(&labels(&[("zone", "a"), ("tier", "web")])));
        assert!(!sel.matches(&labels(&[("zone", "b"), ("tier", "web")])));
        assert!(!sel.matches(&labels(&[("zone", "a"), ("tier", "db")])));
        assert!(!sel.matches(&labels(&[("zone", "a"), ("tier", "web"), ("canary", "")])));
    }

    #[test]
    fn not_in_matches_absent_label() {
        let sel = Selector::parse(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("env", "NotIn", &["prod"])]),
        })
        .expect("valid");
        assert!(sel.matches(&labels(&[])));
        assert!(sel.matches(&labels(&[("env", "dev")])));
        assert!(!sel.matches(&labels(&[("env", "prod")])));
    }

    #[test]
    fn empty_list_matches_everything() {
        assert!(any_matches(&[], &labels(&[])));
        assert!(Selector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn bad_selectors_name_the_expression() {
        let err = Selector::parse(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("ok", "Exists", &[]), expr("k", "Equals", &["v"])]),
        })
        .expect_err("bad operator");
        assert_eq!(err.0, "matchExpressions[1].operator");
        assert!(
            err.1.contains("accepted: In, NotIn, Exists, DoesNotExist"),
            "{}",
            err.1
        );

        let err = Selector::parse(&LabelSelector {
            match_labels: Some(BTreeMap::from([("bad key!".into(), "v".into())])),
            match_expressions: None,
        })
        .expect_err("bad key");
        assert!(err.1.contains("label key"), "{}", err.1);

        let err = Selector::parse(&LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("k", "In", &[])]),
        })
        .expect_err("In without values");
        assert!(err.1.contains("at least one value"), "{}", err.1);
    }
}
