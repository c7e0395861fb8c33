//! meta/v1 and intstr messages objects share: ObjectMeta, Time, Condition, DeleteOptions,
//! IntOrString.

use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::super::time;
use super::error::ProtobufError;
use super::json::{JsonObject, each};

/// `metav1.Time`: RFC 3339 at second precision; the zero time (what Go writes for an unset
/// non-pointer `Time`) is absent.
pub fn time(t: Option<pb::Time>) -> Option<Value> {
    let t = t?;
    let secs = t.seconds.unwrap_or(0);
    (secs != 0 || t.nanos.unwrap_or(0) != 0).then(|| Value::String(time::rfc3339(secs)))
}

pub fn object_meta(kind: &str, m: Option<pb::ObjectMeta>) -> Result<Value, ProtobufError> {
    let Some(m) = m else {
        return Ok(Value::Object(Default::default()));
    };
    let mut managed = Vec::with_capacity(m.managed_fields.len());
    for (i, e) in m.managed_fields.into_iter().enumerate() {
        managed.push(managed_fields_entry(kind, i, e)?);
    }
    Ok(JsonObject::new()
        .string("name", m.name)
        .string("generateName", m.generate_name)
        .string("namespace", m.namespace)
        .string("selfLink", m.self_link)
        .string("uid", m.uid)
        .string("resourceVersion", m.resource_version)
        .int("generation", m.generation)
        .value("creationTimestamp", time(m.creation_timestamp))
        .value("deletionTimestamp", time(m.deletion_timestamp))
        .int_ptr(
            "deletionGracePeriodSeconds",
            m.deletion_grace_period_seconds,
        )
        .string_map("labels", m.labels)
        .string_map("annotations", m.annotations)
        .list("ownerReferences", each(m.owner_references, owner_reference))
        .strings("finalizers", m.finalizers)
        .list("managedFields", managed)
        .build())
}

fn owner_reference(r: pb::OwnerReference) -> Value {
    JsonObject::new()
        .string("apiVersion", r.api_version)
        .string("kind", r.kind)
        .string("name", r.name)
        .string("uid", r.uid)
        .flag_ptr("controller", r.controller)
        .flag_ptr("blockOwnerDeletion", r.block_owner_deletion)
        .build()
}

fn managed_fields_entry(
    kind: &str,
    index: usize,
    e: pb::ManagedFieldsEntry,
) -> Result<Value, ProtobufError> {
    // fieldsV1 carries JSON bytes.
    let fields = match e.fields_v1.and_then(|f| f.raw) {
        Some(raw) if !raw.is_empty() => {
            Some(serde_json::from_slice::<Value>(&raw).map_err(|err| {
                ProtobufError::field(
                    kind,
                    &format!("metadata.managedFields[{index}].fieldsV1"),
                    format!("is not JSON: {err}"),
                )
            })?)
        }
        _ => None,
    };
    Ok(JsonObject::new()
        .string("manager", e.manager)
        .string("operation", e.operation)
        .string("apiVersion", e.api_version)
        .value("time", time(e.time))
        .string("fieldsType", e.fields_type)
        .value_kept("fieldsV1", fields)
        .string("subresource", e.subresource)
        .build())
}

pub fn condition(c: pb::Condition) -> Value {
    JsonObject::new()
        .string("type", c.r#type)
        .string("status", c.status)
        .int("observedGeneration", c.observed_generation)
        .value("lastTransitionTime", time(c.last_transition_time))
        .string("reason", c.reason)
        .string("message", c.message)
        .build()
}

/// `intstr.IntOrString`: type 0 is an int, 1 a string.
pub fn int_or_string(v: Option<IntOrString>) -> Option<Value> {
    let v = v?;
    Some(match v.r#type.unwrap_or(0) {
        1 => Value::String(v.str_val.unwrap_or_default()),
        _ => Value::from(v.int_val.unwrap_or(0)),
    })
}

pub fn delete_options(o: pb::DeleteOptions) -> Value {
    let preconditions = o.preconditions.map(|p| {
        JsonObject::new()
            .string_ptr("uid", p.uid)
            .string_ptr("resourceVersion", p.resource_version)
            .build()
    });
    JsonObject::new()
        .int_ptr("gracePeriodSeconds", o.grace_period_seconds)
        .value("preconditions", preconditions)
        .flag_ptr("orphanDependents", o.orphan_dependents)
        .string_ptr("propagationPolicy", o.propagation_policy)
        .strings("dryRun", o.dry_run)
        .flag_ptr(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            o.ignore_store_read_error_with_cluster_breaking_potential,
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_meta_keeps_every_set_field_and_drops_go_zero_values() {
        let m = pb::ObjectMeta {
            name: Some("web".into()),
            generate_name: Some(String::new()),
            namespace: Some("default".into()),
            uid: Some("u-1".into()),
            resource_version: Some("7".into()),
            generation: Some(0),
            creation_timestamp: Some(pb::Time {
                seconds: Some(0),
                nanos: Some(0),
            }),
            deletion_timestamp: Some(pb::Time {
                seconds: Some(1_795_000_000),
                nanos: Some(0),
            }),
            deletion_grace_period_seconds: Some(0),
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: [("note".to_string(), String::new())].into(),
            owner_references: vec![pb::OwnerReference {
                api_version: Some("apps/v1".into()),
                kind: Some("Deployment".into()),
                name: Some("d".into()),
                uid: Some("u-0".into()),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            finalizers: vec!["f".into()],
            managed_fields: vec![pb::ManagedFieldsEntry {
                manager: Some("kubectl".into()),
                operation: Some("Update".into()),
                api_version: Some("v1".into()),
                time: None,
                fields_type: Some("FieldsV1".into()),
                fields_v1: Some(pb::FieldsV1 {
                    raw: Some(br#"{"f:data":{}}"#.to_vec()),
                }),
                subresource: Some(String::new()),
            }],
            self_link: None,
        };
        assert_eq!(
            object_meta("Secret", Some(m)).unwrap(),
            json!({
                "name": "web",
                "namespace": "default",
                "uid": "u-1",
                "resourceVersion": "7",
                "deletionTimestamp": time::rfc3339(1_795_000_000),
                "deletionGracePeriodSeconds": 0,
                "labels": {"app": "web"},
                "annotations": {"note": ""},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d",
                    "uid": "u-0", "controller": true, "blockOwnerDeletion": false}],
                "finalizers": ["f"],
                "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}],
            })
        );
    }

    #[test]
    fn managed_fields_that_are_not_json_name_the_field() {
        let m = pb::ObjectMeta {
            managed_fields: vec![pb::ManagedFieldsEntry {
                fields_v1: Some(pb::FieldsV1 {
                    raw: Some(b"{not json".to_vec()),
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = object_meta("ConfigMap", Some(m)).unwrap_err().to_string();
        assert!(
            err.contains("ConfigMap metadata.managedFields[0].fieldsV1"),
            "{err}"
        );
    }

    #[test]
    fn int_or_string_follows_its_type_tag() {
        let int = IntOrString {
            r#type: Some(0),
            int_val: Some(8080),
            str_val: Some(String::new()),
        };
        let name = IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: Some("http".into()),
        };
        assert_eq!(int_or_string(Some(int)), Some(json!(8080)));
        assert_eq!(int_or_string(Some(name)), Some(json!("http")));
        assert_eq!(int_or_string(None), None);
    }

    #[test]
    fn delete_options_keep_pointer_zero_values() {
        let o = pb::DeleteOptions {
            grace_period_seconds: Some(0),
            propagation_policy: Some("Foreground".into()),
            preconditions: Some(pb::Preconditions {
                uid: Some("u-1".into()),
                resource_version: None,
            }),
            dry_run: vec!["All".into()],
            ..Default::default()
        };
        assert_eq!(
            delete_options(o),
            json!({"gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
                   "preconditions": {"uid": "u-1"}, "dryRun": ["All"]})
        );
    }

    #[test]
    fn conditions() {
        let c = pb::Condition {
            r#type: Some("Ready".into()),
            status: Some("True".into()),
            observed_generation: Some(3),
            last_transition_time: Some(pb::Time {
                seconds: Some(86_400),
                nanos: Some(0),
            }),
            reason: Some("Up".into()),
            message: Some(String::new()),
        };
        assert_eq!(
            condition(c),
            json!({"type": "Ready", "status": "True", "observedGeneration": 3,
                   "lastTransitionTime": "1970-01-02T00:00:00Z", "reason": "Up"})
        );
    }
}
