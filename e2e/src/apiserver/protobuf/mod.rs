//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`), as kubectl's
//! generators (`create namespace|service|secret|configmap|serviceaccount|role|rolebinding|
//! clusterrole|clusterrolebinding|token`, `auth can-i|whoami`) and client-go typed clients
//! (helm's release storage) send them.
//!
//! k8s-pb has the messages but no JSON form, so each supported kind has a conversion to the
//! JSON the store keeps ([`kinds`] lists them). A kind without one is 415, as it would be for
//! a CRD on kube-apiserver; a body that is not valid protobuf is 400.

mod auth;
mod core;
pub mod envelope;
pub mod error;
mod json;
mod kinds;
mod meta;
mod rbac;

use serde_json::Value;

pub use envelope::MEDIA_TYPE;
pub use error::ProtobufError;

/// The media type of a Content-Type or Accept entry, without parameters.
fn media_type(entry: &str) -> &str {
    entry.split(';').next().unwrap_or("").trim()
}

/// Whether a Content-Type names Kubernetes protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    media_type(content_type).eq_ignore_ascii_case(MEDIA_TYPE)
}

/// Whether an Accept header allows a JSON answer. An empty header allows anything.
pub fn accepts_json(accept: &str) -> bool {
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').map(media_type).any(|m| {
        m.eq_ignore_ascii_case("application/json")
            || m.eq_ignore_ascii_case("application/*")
            || m == "*/*"
            // Table requests are `application/json;as=Table;...`; YAML and JSON share a codec.
            || m.eq_ignore_ascii_case("application/yaml")
    })
}

/// Decodes an object body; `fallback` is the (apiVersion, kind) the request path implies,
/// used when the envelope leaves its type empty.
pub fn decode_object(body: &[u8], fallback: (&str, &str)) -> Result<Value, ProtobufError> {
    let env = envelope::open(body)?;
    let (api_version, kind) = if env.kind.is_empty() {
        fallback
    } else {
        (env.api_version.as_str(), env.kind.as_str())
    };
    if kind.is_empty() {
        return Err(ProtobufError::NoKind);
    }
    kinds::object_to_json(api_version, kind, &env.raw)
}

/// Decodes a DELETE body, which must hold `DeleteOptions`.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ProtobufError> {
    let env = envelope::open(body)?;
    if !env.kind.is_empty() && env.kind != "DeleteOptions" {
        return Err(ProtobufError::UnsupportedKind {
            api_version: env.api_version,
            kind: env.kind,
        });
    }
    kinds::delete_options_to_json(&env.raw)
}

#[cfg(test)]
mod tests;
