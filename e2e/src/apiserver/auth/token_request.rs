//! TokenRequest (`POST .../serviceaccounts/NAME/token`), as kube-apiserver's token REST:
//! a JWT for the ServiceAccount, bound to its uid, valid for `spec.expirationSeconds`
//! (default one hour, at least the server's minimum) and for `spec.audiences` (default the
//! API server's).

use serde_json::{Value, json};

use super::super::error::{ApiError, ApiResult, FieldError};
use super::super::store::{Inner, core};
use super::super::time;
use super::AuthSettings;
use super::authn::api_audiences;
use super::tokens::Claims;

const GROUP: &str = "authentication.k8s.io";
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// kube says "10 minutes" for its minimum; other minimums are named the same way.
fn duration_words(seconds: i64) -> String {
    if seconds % 60 == 0 {
        let minutes = seconds / 60;
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    } else {
        format!("{seconds} second{}", if seconds == 1 { "" } else { "s" })
    }
}

/// Issues a token for ServiceAccount `namespace/name`; `request` is the TokenRequest body.
pub fn issue(
    settings: &AuthSettings,
    view: &Inner,
    namespace: &str,
    name: &str,
    mut request: Value,
) -> ApiResult<Value> {
    let invalid = |field: &str, value: &Value, detail: &str| {
        ApiError::invalid(
            GROUP,
            "TokenRequest",
            name,
            vec![FieldError::invalid(field, value, detail)],
        )
    };
    let meta = &request["metadata"];
    if let Some(n) = meta["name"]
        .as_str()
        .filter(|n| !n.is_empty() && *n != name)
    {
        return Err(invalid(
            "metadata.name",
            &json!(n),
            "must match the service account name if specified",
        ));
    }
    if let Some(ns) = meta["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty() && *ns != namespace)
    {
        return Err(invalid(
            "metadata.namespace",
            &json!(ns),
            "must match the service account namespace if specified",
        ));
    }
    let sa = view
        .get(&core("serviceaccounts"), namespace, name)
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let uid = sa["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let spec = &request["spec"];
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => api_audiences(),
    };
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "TokenRequest spec.expirationSeconds must be an integer, got {v}"
            ))
        })?,
    };
    let min = settings.min_token_expiration.as_secs() as i64;
    if seconds < min {
        return Err(ApiError::invalid(
            GROUP,
            "TokenRequest",
            "",
            vec![FieldError::invalid(
                "spec.expirationSeconds",
                &json!(seconds),
                &format!(
                    "may not specify a duration less than {}",
                    duration_words(min)
                ),
            )],
        ));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return Err(ApiError::invalid(
            GROUP,
            "TokenRequest",
            "",
            vec![FieldError::invalid(
                "spec.expirationSeconds",
                &json!(seconds),
                "may not specify a duration larger than 2^32 seconds",
            )],
        ));
    }
    if let Some(kind) = spec["boundObjectRef"]["kind"].as_str() {
        return Err(ApiError::bad_request(format!(
            "cannot bind token to object of kind {kind:?}: this server issues tokens bound to their ServiceAccount only"
        )));
    }
    let now = time::now_secs();
    let claims = Claims::new(namespace, name, &uid, audiences.clone(), now, seconds);
    let token = settings.signing_key.sign(&claims);
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "creationTimestamp": time::rfc3339(now),
    });
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["spec"]["boundObjectRef"] = Value::Null;
    request["status"] = json!({
        "token": token,
        "expirationTimestamp": time::rfc3339(now + seconds),
    });
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::duration_words;

    #[test]
    fn minimums_are_named_in_words() {
        assert_eq!(duration_words(600), "10 minutes");
        assert_eq!(duration_words(60), "1 minute");
        assert_eq!(duration_words(2), "2 seconds");
    }
}
