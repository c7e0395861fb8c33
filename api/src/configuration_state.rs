//! `ConfigurationState`: whether a component's configuration is valid, and if not why — one
//! object per component (`controller`, `speaker-<node>`), as MetalLB writes them. The same
//! kind and status fields as MetalLB's.

use crate::status::ConfigStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition type ferrolb reports.
pub const CONDITION_TYPE: &str = "ConfigurationValid";

/// No desired state: the object only reports.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    namespaced,
    status = "ConfigurationStateStatus",
    derive = "PartialEq",
    derive = "Default",
    category = "ferrolb",
    doc = "ConfigurationState reports whether a component's configuration is valid. One object per component: controller, speaker-<node>.",
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(
        name = "ErrorSummary",
        type_ = "string",
        json_path = ".status.errorSummary"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ConfigurationStateSpec {}

/// What a component reports about its configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// `Valid`, `Invalid`, or `Unknown` before the component has loaded any configuration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub result: String,
    /// The errors of the latest configuration, one per line; empty when it is valid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_summary: String,
    /// The condition `ConfigurationValid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl ConfigurationStateStatus {
    /// The status reporting `config`; `since` is the condition's `lastTransitionTime` (the
    /// caller keeps it while the result stays the same).
    pub fn of(config: &ConfigStatus, since: Time) -> Self {
        let (result, reason) = if !config.errors.is_empty() && !config.valid {
            ("Invalid", "ConfigurationError")
        } else if config.loaded {
            ("Valid", "ConfigurationValid")
        } else {
            ("Unknown", "NotLoaded")
        };
        let error_summary = if result == "Invalid" {
            config
                .errors
                .iter()
                .map(|e| {
                    let object = if e.namespace.is_empty() {
                        e.name.clone()
                    } else {
                        format!("{}/{}", e.namespace, e.name)
                    };
                    format!("{} {object}: {}: {}", e.kind, e.field, e.message)
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            String::new()
        };
        let message = match result {
            "Invalid" => {
                "the latest configuration is invalid; the last valid one stays in force".into()
            }
            "Valid" => "the configuration in force is valid".to_string(),
            _ => "no valid configuration has been loaded yet".to_string(),
        };
        Self {
            result: result.into(),
            error_summary,
            conditions: vec![Condition {
                type_: CONDITION_TYPE.into(),
                status: if result == "Valid" { "True" } else { "False" }.into(),
                reason: reason.into(),
                message,
                last_transition_time: since,
                observed_generation: None,
            }],
        }
    }

    /// Whether `other` says the same apart from the transition time.
    pub fn same_as(&self, other: &Self) -> bool {
        let strip = |s: &Self| {
            let mut s = s.clone();
            for c in &mut s.conditions {
                c.last_transition_time = Time(Default::default());
            }
            s
        };
        strip(self) == strip(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ConfigProblem;

    fn at() -> Time {
        Time(Default::default())
    }

    #[test]
    fn valid_invalid_and_unknown_as_metallb_reports_them() {
        let unknown = ConfigurationStateStatus::of(&ConfigStatus::default(), at());
        assert_eq!(unknown.result, "Unknown");
        let valid = ConfigurationStateStatus::of(
            &ConfigStatus {
                valid: true,
                loaded: true,
                ..ConfigStatus::default()
            },
            at(),
        );
        assert_eq!(valid.result, "Valid");
        assert_eq!(valid.conditions[0].status, "True");
        assert!(valid.error_summary.is_empty());
        let invalid = ConfigurationStateStatus::of(
            &ConfigStatus {
                valid: false,
                loaded: true,
                errors: vec![ConfigProblem {
                    kind: "IPAddressPool".into(),
                    namespace: "metallb-system".into(),
                    name: "lan".into(),
                    field: "spec.addresses[0]".into(),
                    message: "not an address".into(),
                }],
                ..ConfigStatus::default()
            },
            at(),
        );
        assert_eq!(invalid.result, "Invalid");
        assert_eq!(
            invalid.error_summary,
            "IPAddressPool metallb-system/lan: spec.addresses[0]: not an address"
        );
        assert_eq!(invalid.conditions[0].status, "False");
        assert!(!valid.same_as(&invalid));
    }

    #[test]
    fn status_fields_are_metallbs() {
        let s = ConfigurationStateStatus {
            result: "Valid".into(),
            error_summary: "x".into(),
            conditions: vec![],
        };
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["result"], "Valid");
        assert_eq!(json["errorSummary"], "x");
    }
}
