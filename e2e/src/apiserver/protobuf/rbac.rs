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

#[cfg(test)]
mod tests {
    use k8s_pb::api::rbac::v1 as pb;
    use prost::Message;
    use serde_json::json;

    use super::super::{decode_object, envelope};

    #[test]
    fn a_role_binding_from_kubectl_create_rolebinding_becomes_its_json() {
        let binding = pb::RoleBinding {
            metadata: Some(k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("speaker-svc".into()),
                ..Default::default()
            }),
            subjects: vec![pb::Subject {
                kind: Some("ServiceAccount".into()),
                api_group: Some(String::new()),
                name: Some("speaker".into()),
                namespace: Some("ferrolb-system".into()),
            }],
            role_ref: Some(pb::RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: Some("Role".into()),
                name: Some("svc-reader".into()),
            }),
        };
        let body = envelope::seal(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            binding.encode_to_vec(),
        );
        let v = decode_object(&body, ("", "")).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "speaker-svc"},
                "subjects": [{"kind": "ServiceAccount", "name": "speaker", "namespace": "ferrolb-system"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "svc-reader"},
            })
        );
    }

    #[test]
    fn a_cluster_role_keeps_its_rules_and_non_resource_urls() {
        let role = pb::ClusterRole {
            metadata: None,
            rules: vec![
                pb::PolicyRule {
                    verbs: vec!["get".into()],
                    api_groups: vec![String::new()],
                    resources: vec!["services/status".into()],
                    resource_names: vec!["web".into()],
                    non_resource_ur_ls: vec![],
                },
                pb::PolicyRule {
                    verbs: vec!["get".into()],
                    non_resource_ur_ls: vec!["/metrics".into()],
                    ..Default::default()
                },
            ],
            aggregation_rule: None,
        };
        let body = envelope::seal(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            role.encode_to_vec(),
        );
        let v = decode_object(&body, ("", "")).unwrap();
        assert_eq!(
            v["rules"],
            json!([
                {"verbs": ["get"], "apiGroups": [""], "resources": ["services/status"], "resourceNames": ["web"]},
                {"verbs": ["get"], "nonResourceURLs": ["/metrics"]},
            ])
        );
    }
}
