//! Why a protobuf body was not accepted.

use super::super::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error(
        "the protobuf body does not start with the Kubernetes prefix \"k8s\\x00\" (got {0} bytes)"
    )]
    MissingPrefix(usize),
    #[error("the protobuf envelope (runtime.Unknown) could not be decoded: {0}")]
    Envelope(prost::DecodeError),
    #[error(
        "the protobuf envelope has contentEncoding {0:?}; only unencoded objects are supported"
    )]
    ContentEncoding(String),
    #[error("the protobuf envelope names no kind and the request path implies none")]
    NoKind,
    #[error(
        "the body of the request could not be decoded as protobuf {kind} ({api_version}): {source}"
    )]
    Message {
        api_version: String,
        kind: String,
        source: prost::DecodeError,
    },
    #[error("{kind} {field}: {problem}")]
    Field {
        kind: String,
        field: String,
        problem: String,
    },
    #[error(
        "the server cannot decode {kind} ({api_version}) from protobuf; send it as application/json"
    )]
    UnsupportedKind { api_version: String, kind: String },
    #[error("the server cannot encode {kind} ({api_version}) as protobuf")]
    UnencodableKind { api_version: String, kind: String },
    #[error("{kind} {field}: {problem}; it cannot be encoded as protobuf")]
    Unencodable {
        kind: String,
        field: String,
        problem: String,
    },
}

impl ProtobufError {
    pub fn field(kind: &str, field: &str, problem: impl Into<String>) -> Self {
        ProtobufError::Field {
            kind: kind.to_string(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}

impl From<ProtobufError> for ApiError {
    fn from(e: ProtobufError) -> Self {
        match &e {
            // As kube-apiserver: a kind without a protobuf codec is an unsupported media type.
            ProtobufError::UnsupportedKind { .. } => {
                ApiError::unsupported_media_type_because(e.to_string())
            }
            ProtobufError::UnencodableKind { .. } | ProtobufError::Unencodable { .. } => {
                ApiError::not_acceptable(e.to_string())
            }
            _ => ApiError::bad_request(e.to_string()),
        }
    }
}
