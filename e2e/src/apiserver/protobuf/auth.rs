//! authentication.k8s.io/v1 and authorization.k8s.io/v1 request bodies kubectl sends as
//! protobuf: TokenRequest (`create token`), SelfSubjectAccessReview (`auth can-i`),
//! SelfSubjectRulesReview (`auth can-i --list`), SelfSubjectReview (`auth whoami`), and the
//! TokenReview and (Local)SubjectAccessReview that client-go components send. Only what a
//! request carries is converted (metadata and spec); the server writes the status.

use std::collections::BTreeMap;

use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::error::ProtobufError;
use super::json::JsonObject;
use super::meta;

fn with_meta(
    kind: &str,
    m: Option<ObjectMeta>,
    spec: Option<Value>,
) -> Result<Value, ProtobufError> {
    Ok(JsonObject::new()
        .value_kept("metadata", Some(meta::object_meta(kind, m)?))
        .value_kept(
            "spec",
            Some(spec.unwrap_or_else(|| JsonObject::new().build())),
        )
        .build())
}

pub fn token_request(r: authn::TokenRequest) -> Result<Value, ProtobufError> {
    let spec = r.spec.map(|s| {
        let bound = s.bound_object_ref.map(|b| {
            JsonObject::new()
                .string("kind", b.kind)
                .string("apiVersion", b.api_version)
                .string("name", b.name)
                .string("uid", b.u_id)
                .build()
        });
        JsonObject::new()
            .strings("audiences", s.audiences)
            .int_ptr("expirationSeconds", s.expiration_seconds)
            .value("boundObjectRef", bound)
            .build()
    });
    with_meta("TokenRequest", r.metadata, spec)
}

pub fn token_review(r: authn::TokenReview) -> Result<Value, ProtobufError> {
    let spec = r.spec.map(|s| {
        JsonObject::new()
            .string("token", s.token)
            .strings("audiences", s.audiences)
            .build()
    });
    with_meta("TokenReview", r.metadata, spec)
}

pub fn self_subject_review(r: authn::SelfSubjectReview) -> Result<Value, ProtobufError> {
    with_meta("SelfSubjectReview", r.metadata, None)
}

fn resource_attributes(a: authz::ResourceAttributes) -> Value {
    JsonObject::new()
        .string("namespace", a.namespace)
        .string("verb", a.verb)
        .string("group", a.group)
        .string("version", a.version)
        .string("resource", a.resource)
        .string("subresource", a.subresource)
        .string("name", a.name)
        .build()
}

fn non_resource_attributes(a: authz::NonResourceAttributes) -> Value {
    JsonObject::new()
        .string("path", a.path)
        .string("verb", a.verb)
        .build()
}

/// `resourceAttributes` and `nonResourceAttributes` are pointers: present means set, even
/// when empty.
fn attributes(
    res: Option<authz::ResourceAttributes>,
    non: Option<authz::NonResourceAttributes>,
) -> JsonObject {
    JsonObject::new()
        .value_kept("resourceAttributes", res.map(resource_attributes))
        .value_kept("nonResourceAttributes", non.map(non_resource_attributes))
}

fn subject_access_review_spec(s: authz::SubjectAccessReviewSpec) -> Value {
    let extra: BTreeMap<String, Value> = s
        .extra
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                Value::Array(v.items.into_iter().map(Value::String).collect()),
            )
        })
        .collect();
    let mut spec = attributes(s.resource_attributes, s.non_resource_attributes)
        .string("user", s.user)
        .strings("groups", s.groups)
        .string("uid", s.uid);
    if !extra.is_empty() {
        spec = spec.value_kept("extra", Some(Value::Object(extra.into_iter().collect())));
    }
    spec.build()
}

pub fn subject_access_review(r: authz::SubjectAccessReview) -> Result<Value, ProtobufError> {
    let spec = r.spec.map(subject_access_review_spec);
    with_meta("SubjectAccessReview", r.metadata, spec)
}

pub fn local_subject_access_review(
    r: authz::LocalSubjectAccessReview,
) -> Result<Value, ProtobufError> {
    let spec = r.spec.map(subject_access_review_spec);
    with_meta("LocalSubjectAccessReview", r.metadata, spec)
}

pub fn self_subject_access_review(
    r: authz::SelfSubjectAccessReview,
) -> Result<Value, ProtobufError> {
    let spec = r
        .spec
        .map(|s| attributes(s.resource_attributes, s.non_resource_attributes).build());
    with_meta("SelfSubjectAccessReview", r.metadata, spec)
}

pub fn self_subject_rules_review(r: authz::SelfSubjectRulesReview) -> Result<Value, ProtobufError> {
    let spec = r
        .spec
        .map(|s| JsonObject::new().string("namespace", s.namespace).build());
    with_meta("SelfSubjectRulesReview", r.metadata, spec)
}

#[cfg(test)]
mod tests {
    use k8s_pb::api::authentication::v1 as authn;
    use k8s_pb::api::authorization::v1 as authz;
    use prost::Message;
    use serde_json::json;

    use super::super::{decode_object, envelope};

    #[test]
    fn a_token_request_keeps_a_zero_expiration_as_a_value() {
        let req = authn::TokenRequest {
            metadata: None,
            spec: Some(authn::TokenRequestSpec {
                audiences: vec!["ferrolb".into()],
                expiration_seconds: Some(0),
                bound_object_ref: None,
            }),
            status: None,
        };
        let body = envelope::seal(
            "authentication.k8s.io/v1",
            "TokenRequest",
            req.encode_to_vec(),
        );
        let v = decode_object(&body, ("", "")).unwrap();
        assert_eq!(
            v["spec"],
            json!({"audiences": ["ferrolb"], "expirationSeconds": 0})
        );
    }

    #[test]
    fn an_access_review_tells_resource_from_non_resource_attributes() {
        let ssar = authz::SelfSubjectAccessReview {
            metadata: None,
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    namespace: Some("default".into()),
                    verb: Some("update".into()),
                    group: Some(String::new()),
                    resource: Some("services".into()),
                    subresource: Some("status".into()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: None,
        };
        let body = envelope::seal(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            ssar.encode_to_vec(),
        );
        let v = decode_object(&body, ("", "")).unwrap();
        assert_eq!(
            v["spec"],
            json!({"resourceAttributes": {"namespace": "default", "verb": "update", "resource": "services", "subresource": "status"}})
        );
        let sar = authz::SubjectAccessReview {
            metadata: None,
            spec: Some(authz::SubjectAccessReviewSpec {
                non_resource_attributes: Some(authz::NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                user: Some("system:serviceaccount:ferrolb-system:speaker".into()),
                groups: vec!["system:serviceaccounts".into()],
                ..Default::default()
            }),
            status: None,
        };
        let body = envelope::seal(
            "authorization.k8s.io/v1",
            "SubjectAccessReview",
            sar.encode_to_vec(),
        );
        let v = decode_object(&body, ("", "")).unwrap();
        assert_eq!(
            v["spec"],
            json!({"nonResourceAttributes": {"path": "/metrics", "verb": "get"},
                   "user": "system:serviceaccount:ferrolb-system:speaker",
                   "groups": ["system:serviceaccounts"]})
        );
    }
}
