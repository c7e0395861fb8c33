//! The axum middleware in front of a component's routes: the probes (`/healthz`, `/readyz`)
//! stay open, so an API server outage never fails them; every other path needs
//! `Authorization: Bearer TOKEN` of a user the API server allows to `get` it.
//!
//! Answers: 401 without a valid token, 403 when the user may not read the path, 503 when the
//! API server could not be asked. Bodies are plain text saying why; neither they nor the logs
//! ever hold the token.

use super::access::{Access, Decision, Reviewer};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Paths served without authentication: the kubelet's probes.
pub const OPEN_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The bearer token of `headers`, or why there is none.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err("this path needs an Authorization: Bearer header with a Kubernetes token");
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not visible ASCII")?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or("the Authorization header is not of the form \"Bearer TOKEN\"")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization header's scheme is not Bearer");
    }
    let token = token.trim();
    if token.is_empty() {
        return Err("the Authorization header's bearer token is empty");
    }
    Ok(token)
}

/// The middleware: lets the probes through and asks `access` about every other request.
pub async fn require_access<R: Reviewer>(
    State(access): State<Arc<Access<R>>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if OPEN_PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let decision = match bearer_token(request.headers()) {
        Ok(token) => access.decide(token, &path).await,
        Err(why) => Decision::Unauthenticated(why.into()),
    };
    match decision {
        Decision::Allowed { user } => {
            tracing::debug!(%user, %path, "HTTP API request allowed");
            next.run(request).await
        }
        Decision::Unauthenticated(why) => {
            tracing::debug!(%path, reason = %why, "HTTP API request unauthenticated");
            let mut r =
                (StatusCode::UNAUTHORIZED, format!("Unauthorized: {why}\n")).into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        Decision::Forbidden { user, reason } => {
            tracing::debug!(%user, %path, %reason, "HTTP API request forbidden");
            let because = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            (
                StatusCode::FORBIDDEN,
                format!(
                    "Forbidden: user {user:?} may not get {path} (grant it with an RBAC rule \
                     on nonResourceURLs){because}\n"
                ),
            )
                .into_response()
        }
        Decision::Unavailable(why) => {
            tracing::warn!(%path, error = %why, "cannot check an HTTP API request's access");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Service Unavailable: the API server could not check the token: {why}\n"),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn reads_the_bearer_token() {
        assert_eq!(bearer_token(&with("Bearer abc.def")), Ok("abc.def"));
        assert_eq!(bearer_token(&with("bearer abc")), Ok("abc"));
        assert_eq!(
            bearer_token(&HeaderMap::new()),
            Err("this path needs an Authorization: Bearer header with a Kubernetes token")
        );
        assert_eq!(
            bearer_token(&with("Basic dXNlcjpwdw==")),
            Err("the Authorization header's scheme is not Bearer")
        );
        assert_eq!(
            bearer_token(&with("Bearer  ")),
            Err("the Authorization header's bearer token is empty")
        );
        assert_eq!(
            bearer_token(&with("Bearer")),
            Err("the Authorization header is not of the form \"Bearer TOKEN\"")
        );
    }
}
