//! The Kubernetes protobuf wire format: the 4 bytes `k8s\0`, then a `runtime.Unknown` whose
//! `typeMeta` names the object's apiVersion and kind and whose `raw` holds the object's own
//! message.

use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;

use super::error::ProtobufError;

/// What every protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// An unwrapped body: the object's type and its encoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub api_version: String,
    pub kind: String,
    pub raw: Vec<u8>,
}

/// Splits a body into its type and message.
pub fn open(body: &[u8]) -> Result<Envelope, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingPrefix(body.len()))?;
    let unknown = Unknown::decode(rest).map_err(ProtobufError::Envelope)?;
    if let Some(enc) = unknown.content_encoding.filter(|e| !e.is_empty()) {
        return Err(ProtobufError::ContentEncoding(enc));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    Ok(Envelope {
        api_version: type_meta.api_version.unwrap_or_default(),
        kind: type_meta.kind.unwrap_or_default(),
        raw: unknown.raw.unwrap_or_default(),
    })
}

/// Wraps an encoded message, as the server writes protobuf responses.
pub fn seal(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_gives_the_type_and_message_back() {
        let body = seal("v1", "Namespace", vec![10, 0]);
        assert!(body.starts_with(b"k8s\0"));
        let env = open(&body).unwrap();
        assert_eq!(
            env,
            Envelope {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                raw: vec![10, 0]
            }
        );
    }

    #[test]
    fn a_body_without_the_prefix_is_rejected() {
        let err = open(b"{\"kind\":\"Namespace\"}").unwrap_err();
        assert!(err.to_string().contains("k8s\\x00"), "{err}");
    }

    #[test]
    fn a_truncated_envelope_is_an_error_not_a_panic() {
        let body = seal("v1", "Namespace", vec![1, 2, 3, 4, 5]);
        for cut in 4..body.len() {
            // Every prefix either decodes to something or fails cleanly.
            let _ = open(&body[..cut]);
        }
        let err = open(b"k8s\0\x0a\xff\xff").unwrap_err();
        assert!(matches!(err, ProtobufError::Envelope(_)), "{err}");
    }

    #[test]
    fn an_encoded_payload_is_refused() {
        let unknown = Unknown {
            type_meta: None,
            raw: Some(vec![]),
            content_encoding: Some("gzip".into()),
            content_type: None,
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        assert!(matches!(
            open(&body),
            Err(ProtobufError::ContentEncoding(e)) if e == "gzip"
        ));
    }
}
