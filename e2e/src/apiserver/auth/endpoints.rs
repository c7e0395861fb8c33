//! Where the authentication and authorization APIs are served, and how discovery lists
//! them: create-only resources that store nothing (kubectl finds them through discovery
//! before `auth can-i`, `auth whoami` or `create token`).

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult};
use super::super::{Shared, protobuf, time};
use super::user::UserInfo;
use super::{reviews, token_request};

/// Bodies of review requests are small; kube's own limit for any object is 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;

const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";

/// The API groups these resources live in (each served at `v1`).
pub const GROUPS: [&str; 2] = [AUTHN, AUTHZ];

fn resource(name: &str, kind: &str, namespaced: bool) -> Value {
    json!({
        "name": name,
        "singularName": kind.to_lowercase(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": ["create"],
    })
}

/// The discovery entries of `group/version`, if it is one of [`GROUPS`] at `v1`.
pub fn discovery_resources(group: &str, version: &str) -> Option<Vec<Value>> {
    match (group, version) {
        (AUTHN, "v1") => Some(vec![
            resource("selfsubjectreviews", "SelfSubjectReview", false),
            resource("tokenreviews", "TokenReview", false),
        ]),
        (AUTHZ, "v1") => Some(vec![
            resource(
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                true,
            ),
            resource("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
            resource("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
            resource("subjectaccessreviews", "SubjectAccessReview", false),
        ]),
        _ => None,
    }
}

/// The `serviceaccounts/token` subresource entry of core v1 discovery.
pub fn service_account_token_resource() -> Value {
    json!({
        "name": "serviceaccounts/token",
        "singularName": "",
        "namespaced": true,
        "group": AUTHN,
        "version": "v1",
        "kind": "TokenRequest",
        "verbs": ["create"],
    })
}

/// One endpoint of this module.
enum Endpoint {
    TokenRequest { namespace: String, name: String },
    TokenReview,
    SelfSubjectReview,
    SubjectAccessReview,
    LocalSubjectAccessReview { namespace: String },
    SelfSubjectAccessReview,
    SelfSubjectRulesReview,
}

impl Endpoint {
    fn of(path: &str) -> Option<Endpoint> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        Some(match segs.as_slice() {
            [
                "api",
                "v1",
                "namespaces",
                ns,
                "serviceaccounts",
                name,
                "token",
            ] => Endpoint::TokenRequest {
                namespace: ns.to_string(),
                name: name.to_string(),
            },
            ["apis", AUTHN, "v1", "tokenreviews"] => Endpoint::TokenReview,
            ["apis", AUTHN, "v1", "selfsubjectreviews"] => Endpoint::SelfSubjectReview,
            ["apis", AUTHZ, "v1", "subjectaccessreviews"] => Endpoint::SubjectAccessReview,
            [
                "apis",
                AUTHZ,
                "v1",
                "namespaces",
                ns,
                "localsubjectaccessreviews",
            ] => Endpoint::LocalSubjectAccessReview {
                namespace: ns.to_string(),
            },
            ["apis", AUTHZ, "v1", "selfsubjectaccessreviews"] => Endpoint::SelfSubjectAccessReview,
            ["apis", AUTHZ, "v1", "selfsubjectrulesreviews"] => Endpoint::SelfSubjectRulesReview,
            _ => return None,
        })
    }

    /// (apiVersion, kind) of the request body.
    fn body_type(&self) -> (&'static str, &'static str) {
        match self {
            Endpoint::TokenRequest { .. } => ("authentication.k8s.io/v1", "TokenRequest"),
            Endpoint::TokenReview => ("authentication.k8s.io/v1", "TokenReview"),
            Endpoint::SelfSubjectReview => ("authentication.k8s.io/v1", "SelfSubjectReview"),
            Endpoint::SubjectAccessReview => ("authorization.k8s.io/v1", "SubjectAccessReview"),
            Endpoint::LocalSubjectAccessReview { .. } => {
                ("authorization.k8s.io/v1", "LocalSubjectAccessReview")
            }
            Endpoint::SelfSubjectAccessReview => {
                ("authorization.k8s.io/v1", "SelfSubjectAccessReview")
            }
            Endpoint::SelfSubjectRulesReview => {
                ("authorization.k8s.io/v1", "SelfSubjectRulesReview")
            }
        }
    }
}

/// Either the answer of one of these endpoints, or the request back for the REST handlers.
pub enum Routed {
    Answered(Response),
    NotOurs(Request),
}

/// The body as a JSON object (decoding protobuf for the kind the path implies).
async fn body_object(req: Request, (api_version, kind): (&str, &str)) -> ApiResult<Value> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("failed to read the request body: {e}")))?;
    let mut obj = if protobuf::is_protobuf(&content_type) {
        protobuf::decode_object(&body, (api_version, kind))?
    } else {
        serde_json::from_slice::<Value>(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?
    };
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a {kind} object"
        )));
    }
    for key in ["metadata", "spec"] {
        match &obj[key] {
            Value::Null => obj[key] = json!({}),
            Value::Object(_) => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "{kind} {key} must be an object, got {other}"
                )));
            }
        }
    }
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

/// Serves `req` if it addresses one of these APIs (`user` is the caller, already allowed to
/// create the resource).
pub async fn serve(shared: &Shared, user: &UserInfo, req: Request) -> ApiResult<Routed> {
    let Some(endpoint) = Endpoint::of(req.uri().path()) else {
        return Ok(Routed::NotOurs(req));
    };
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "{} is not supported on this path: {} only accepts create",
            req.method(),
            endpoint.body_type().1
        )));
    }
    let body = body_object(req, endpoint.body_type()).await?;
    let view = shared.store.lock();
    let answer = match endpoint {
        Endpoint::TokenRequest { namespace, name } => {
            token_request::issue(&shared.auth, &view, &namespace, &name, body)?
        }
        Endpoint::TokenReview => reviews::token(&shared.auth, &view, body, time::now_secs())?,
        Endpoint::SelfSubjectReview => reviews::self_subject(user, body),
        Endpoint::SubjectAccessReview => reviews::subject_access(&view, body, None)?,
        Endpoint::LocalSubjectAccessReview { namespace } => {
            let mut body = body;
            match body["metadata"]["namespace"].as_str() {
                None | Some("") => body["metadata"]["namespace"] = json!(namespace),
                Some(ns) if ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                Some(_) => {}
            }
            reviews::subject_access(&view, body, Some(&namespace))?
        }
        Endpoint::SelfSubjectAccessReview => reviews::self_subject_access(&view, user, body)?,
        Endpoint::SelfSubjectRulesReview => reviews::self_subject_rules(&view, user, body)?,
    };
    drop(view);
    let bytes = serde_json::to_vec(&answer)
        .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))?;
    Ok(Routed::Answered(
        (
            StatusCode::CREATED,
            [(CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
    ))
}
