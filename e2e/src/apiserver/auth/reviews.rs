//! The review APIs, answered as kube-apiserver answers them (nothing is stored):
//! `authorization.k8s.io/v1` SubjectAccessReview, LocalSubjectAccessReview,
//! SelfSubjectAccessReview and SelfSubjectRulesReview; `authentication.k8s.io/v1`
//! TokenReview and SelfSubjectReview.

use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult, FieldError};
use super::super::store::Inner;
use super::AuthSettings;
use super::attributes::Attributes;
use super::authn::{AuthnError, authenticate_token};
use super::authorizer::{authorize, rules_for};
use super::user::UserInfo;

const AUTHZ_GROUP: &str = "authorization.k8s.io";

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The request object with its status, as the response (metadata as sent, never stored).
fn answer(mut review: Value, status: Value) -> Value {
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    review
}

/// The attributes a SubjectAccessReview spec asks about, or kube's validation errors.
fn spec_attributes(spec: &Value) -> Result<Attributes, Vec<FieldError>> {
    let res = &spec["resourceAttributes"];
    let non = &spec["nonResourceAttributes"];
    match (res.is_object(), non.is_object()) {
        (true, true) => Err(vec![FieldError::invalid(
            "spec.nonResourceAttributes",
            non,
            "cannot be specified in combination with resourceAttributes",
        )]),
        (false, false) => Err(vec![FieldError::invalid(
            "spec.resourceAttributes",
            &Value::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )]),
        (true, false) => Ok(Attributes {
            verb: text(&res["verb"]).to_string(),
            resource_request: true,
            path: String::new(),
            api_group: text(&res["group"]).to_string(),
            api_version: text(&res["version"]).to_string(),
            namespace: text(&res["namespace"]).to_string(),
            resource: text(&res["resource"]).to_string(),
            subresource: text(&res["subresource"]).to_string(),
            name: text(&res["name"]).to_string(),
        }),
        (false, true) => Ok(Attributes::non_resource(
            text(&non["verb"]),
            text(&non["path"]),
        )),
    }
}

fn access_status(view: &Inner, user: &UserInfo, attrs: &Attributes) -> Value {
    let decision = authorize(view, user, attrs);
    let mut status = json!({ "allowed": decision.allowed });
    if !decision.reason.is_empty() {
        status["reason"] = json!(decision.reason);
    }
    status
}

fn invalid(kind: &str, errors: Vec<FieldError>) -> ApiError {
    ApiError::invalid(AUTHZ_GROUP, kind, "", errors)
}

/// SelfSubjectAccessReview: may the caller do this?
pub fn self_subject_access(view: &Inner, user: &UserInfo, review: Value) -> ApiResult<Value> {
    let attrs =
        spec_attributes(&review["spec"]).map_err(|e| invalid("SelfSubjectAccessReview", e))?;
    let status = access_status(view, user, &attrs);
    Ok(answer(review, status))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| text(s).to_string()).collect())
        .unwrap_or_default()
}

/// SubjectAccessReview (`local_namespace` for a LocalSubjectAccessReview): may the user in
/// the spec do this?
pub fn subject_access(
    view: &Inner,
    review: Value,
    local_namespace: Option<&str>,
) -> ApiResult<Value> {
    let kind = match local_namespace {
        Some(_) => "LocalSubjectAccessReview",
        None => "SubjectAccessReview",
    };
    let spec = &review["spec"];
    let mut errors = Vec::new();
    let attrs = spec_attributes(spec).map_err(|e| errors.extend(e)).ok();
    let user = UserInfo {
        name: text(&spec["user"]).to_string(),
        uid: text(&spec["uid"]).to_string(),
        groups: strings(&spec["groups"]),
        extra: spec["extra"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
            .unwrap_or_default(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        errors.push(FieldError::invalid(
            "spec.user",
            &json!(""),
            "at least one of user or group must be specified",
        ));
    }
    if let Some(ns) = local_namespace {
        if spec["nonResourceAttributes"].is_object() {
            errors.push(FieldError::invalid(
                "spec.nonResourceAttributes",
                &spec["nonResourceAttributes"],
                "disallowed on this kind of request",
            ));
        }
        if let Some(a) = attrs
            .as_ref()
            .filter(|a| a.resource_request && a.namespace != ns)
        {
            errors.push(FieldError::invalid(
                "spec.resourceAttributes.namespace",
                &json!(a.namespace),
                "must match metadata.namespace",
            ));
        }
    }
    match attrs {
        Some(attrs) if errors.is_empty() => {
            let status = access_status(view, &user, &attrs);
            Ok(answer(review, status))
        }
        _ => Err(invalid(kind, errors)),
    }
}

/// SelfSubjectRulesReview: every rule that applies to the caller in `spec.namespace`.
pub fn self_subject_rules(view: &Inner, user: &UserInfo, review: Value) -> ApiResult<Value> {
    let namespace = text(&review["spec"]["namespace"]).to_string();
    if namespace.is_empty() {
        return Err(ApiError::bad_request("no namespace on request"));
    }
    let (rules, error) = rules_for(view, user, &namespace);
    let resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.resources.is_empty())
        .map(|r| r.resource_rule_json())
        .collect();
    let non_resource_rules: Vec<Value> = rules
        .iter()
        .filter(|r| !r.non_resource_urls.is_empty())
        .map(|r| r.non_resource_rule_json())
        .collect();
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    if let Some(e) = error {
        status["evaluationError"] = json!(e);
    }
    Ok(answer(review, status))
}

/// TokenReview: who does `spec.token` authenticate, for `spec.audiences`?
pub fn token(settings: &AuthSettings, view: &Inner, review: Value, now: i64) -> ApiResult<Value> {
    let token = text(&review["spec"]["token"]).to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication.k8s.io",
        ));
    }
    let audiences = strings(&review["spec"]["audiences"]);
    let status = match authenticate_token(settings, view, &token, &audiences, now) {
        Ok(a) => json!({
            "authenticated": true,
            "user": a.user.to_json(),
            "audiences": a.audiences,
        }),
        Err(AuthnError::Unknown) => json!({ "user": {} }),
        Err(AuthnError::Rejected(e)) => json!({ "user": {}, "error": e }),
    };
    Ok(answer(review, status))
}

/// SelfSubjectReview: the caller's own user information.
pub fn self_subject(user: &UserInfo, review: Value) -> Value {
    answer(review, json!({ "userInfo": user.to_json() }))
}
