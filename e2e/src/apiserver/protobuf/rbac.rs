//! rbac.authorization.k8s.io/v1 kinds kubectl's `create role`, `create clusterrole`,
//! `create rolebinding` and `create clusterrolebinding` send as protobuf.

use k8s_pb::api::rbac::v1 as pb;
use k8s_pb::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::error::ProtobufError;
use super::json::{JsonObject, each};
use super::meta;

fn policy_rule(r: pb::PolicyRule) -> Value {
    JsonObject::new()
        .strings("verbs", r.verbs)
        .strings("apiGroups", r.api_groups)
        .strings("resources", r.resources)
        .strings("resourceNames", r.resource_names)
        .strings("nonResourceURLs", r.non_resource_ur_ls)
        .build()
}

/// `rules` has no `omitempty`: an empty list is written.
fn rules(rules: Vec<pb::PolicyRule>) -> Option<Value> {
    Some(Value::Array(each(rules, policy_rule)))
}

fn label_selector(s: LabelSelector) -> Value {
    JsonObject::new()
        .string_map("matchLabels", s.match_labels)
        .list(
            "matchExpressions",
            each(s.match_expressions, |e| {
                JsonObject::new()
                    .string("key", e.key)
                    .string("operator", e.operator)
                    .strings("values", e.values)
                    .build()
            }),
        )
        .build()
}

fn subject(s: pb::Subject) -> Value {
    JsonObject::new()
        .string("kind", s.kind)
        .string("apiGroup", s.api_group)
        .string("name", s.name)
        .string("namespace", s.namespace)
        .build()
}

fn role_ref(r: Option<pb::RoleRef>) -> Option<Value> {
    let r = r.unwrap_or_default();
    Some(
        JsonObject::new()
            .string("apiGroup", r.api_group)
            .string("kind", r.kind)
            .string("name", r.name)
            .build(),
    )
}

pub fn role(r: pb::Role) -> Result<Value, ProtobufError> {
    Ok(JsonObject::new()
        .value_kept("metadata", Some(meta::object_meta("Role", r.metadata)?))
        .value_kept("rules", rules(r.rules))
        .build())
}

pub fn cluster_role(r: pb::ClusterRole) -> Result<Value, ProtobufError> {
    let aggregation = r.aggregation_rule.map(|a| {
        JsonObject::new()
            .list(
                "clusterRoleSelectors",
                each(a.cluster_role_selectors, label_selector),
            )
            .build()
    });
    Ok(JsonObject::new()
        .value_kept(
            "metadata",
            Some(meta::object_meta("ClusterRole", r.metadata)?),
        )
        .value_kept("rules", rules(r.rules))
        .value_kept("aggregationRule", aggregation)
        .build())
}

pub fn role_binding(b: pb::RoleBinding) -> Result<Value, ProtobufError> {
    Ok(JsonObject::new()
        .value_kept(
            "metadata",
            Some(meta::object_meta("RoleBinding", b.metadata)?),
        )
        .list("subjects", each(b.subjects, subject))
        .value_kept("roleRef", role_ref(b.role_ref))
        .build())
}

pub fn cluster_role_binding(b: pb::ClusterRoleBinding) -> Result<Value, ProtobufError> {
    Ok(JsonObject::new()
        .value_kept(
            "metadata",
            Some(meta::object_meta("ClusterRoleBinding", b.metadata)?),
        )
        .list("subjects", each(b.subjects, subject))
        .value_kept("roleRef", role_ref(b.role_ref))
        .build())
}
