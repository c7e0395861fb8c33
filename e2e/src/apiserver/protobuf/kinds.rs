//! Which kinds have a protobuf conversion, by apiVersion and kind.

use prost::Message;
use serde_json::Value;

use super::error::ProtobufError;
use super::{auth, core, meta, rbac};

fn decode<M: Message + Default>(
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Result<M, ProtobufError> {
    M::decode(raw).map_err(|source| ProtobufError::Message {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        source,
    })
}

/// The JSON form of one object message, with its apiVersion and kind set.
pub fn object_to_json(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
    use k8s_pb::api::core::v1 as core_pb;
    let mut obj = match (api_version, kind) {
        ("v1", "Namespace") => {
            core::namespace(decode::<core_pb::Namespace>(api_version, kind, raw)?)?
        }
        ("v1", "Service") => core::service(decode::<core_pb::Service>(api_version, kind, raw)?)?,
        ("v1", "Secret") => core::secret(decode::<core_pb::Secret>(api_version, kind, raw)?)?,
        ("v1", "ConfigMap") => {
            core::config_map(decode::<core_pb::ConfigMap>(api_version, kind, raw)?)?
        }
        ("v1", "ServiceAccount") => {
            core::service_account(decode::<core_pb::ServiceAccount>(api_version, kind, raw)?)?
        }
        ("rbac.authorization.k8s.io/v1", "Role") => rbac::role(decode(api_version, kind, raw)?)?,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            rbac::cluster_role(decode(api_version, kind, raw)?)?
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            rbac::role_binding(decode(api_version, kind, raw)?)?
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            rbac::cluster_role_binding(decode(api_version, kind, raw)?)?
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            auth::token_request(decode(api_version, kind, raw)?)?
        }
        ("authentication.k8s.io/v1", "TokenReview") => {
            auth::token_review(decode(api_version, kind, raw)?)?
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            auth::self_subject_review(decode(api_version, kind, raw)?)?
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            auth::subject_access_review(decode(api_version, kind, raw)?)?
        }
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => {
            auth::local_subject_access_review(decode(api_version, kind, raw)?)?
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            auth::self_subject_access_review(decode(api_version, kind, raw)?)?
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            auth::self_subject_rules_review(decode(api_version, kind, raw)?)?
        }
        _ => {
            return Err(ProtobufError::UnsupportedKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            });
        }
    };
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version.to_string()));
        m.insert("kind".into(), Value::String(kind.to_string()));
    }
    Ok(obj)
}

/// `DeleteOptions` (client-go labels it `meta.k8s.io/v1` or with the resource's version).
pub fn delete_options_to_json(raw: &[u8]) -> Result<Value, ProtobufError> {
    let opts = decode::<k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions>(
        "meta.k8s.io/v1",
        "DeleteOptions",
        raw,
    )?;
    Ok(meta::delete_options(opts))
}
