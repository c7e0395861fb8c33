//! Authentication and authorization of every request, as kube-apiserver does them:
//!
//! 1. **Authentication** ([`authn`]): `Authorization: Bearer <token>` with the server's static
//!    admin token (user `admin`, groups `system:masters`, `system:authenticated`) or a
//!    ServiceAccount token this server issued through the TokenRequest API ([`tokens`]). No
//!    bearer token is the anonymous user (`system:anonymous`, `system:unauthenticated`); an
//!    unknown, malformed or expired token, or one whose ServiceAccount is gone, is 401.
//! 2. **Impersonation** ([`impersonation`]): `Impersonate-*` headers, each value authorized
//!    with the `impersonate` verb.
//! 3. **Authorization** ([`authorizer`], [`rbac`]): `system:masters` may do anything, everyone
//!    else what RBAC grants, judged on the request's [`attributes`]; a denial is kube's 403.
//!
//! The review APIs (TokenReview, SelfSubjectReview, SubjectAccessReview and its local and
//! self forms, SelfSubjectRulesReview) and TokenRequest are served by [`endpoints`]; the
//! default roles clients rely on are created by [`bootstrap`].

pub mod attributes;
pub mod authn;
pub mod authorizer;
pub mod bootstrap;
pub mod endpoints;
pub mod impersonation;
pub mod rbac;
mod reviews;
mod token_request;
pub mod tokens;
pub mod user;

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Query;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, Uri};

use super::Shared;
use super::error::{ApiError, ApiResult};
use tokens::SigningKey;
use user::UserInfo;

/// What authentication needs to know; kept across restarts with the server's state.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The static admin token (never empty once a server runs).
    pub admin_token: String,
    /// Signs and verifies ServiceAccount tokens.
    pub signing_key: SigningKey,
    /// The shortest `expirationSeconds` a TokenRequest may ask for (kube: 10 minutes).
    pub min_token_expiration: Duration,
    /// Tolerance of token time checks (kube's JWT library: one minute).
    pub token_leeway: Duration,
}

/// The token of an `Authorization: Bearer <token>` header. Another scheme or an empty
/// token is no bearer token at all (the request is then anonymous, as in kube).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Who is asking: the authenticated (or anonymous) user, after impersonation, if that user
/// may do what the request asks; otherwise kube's 401 or 403.
pub fn admit(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<UserInfo> {
    let view = shared.store.lock();
    let requester = match bearer_token(headers) {
        None => UserInfo::anonymous(),
        Some(token) => {
            let now = super::time::now_secs();
            match authn::authenticate_token(&shared.auth, &view, token, &[], now) {
                Ok(a) => a.user,
                Err(e) => {
                    tracing::debug!(%uri, "authentication failed: {e}");
                    return Err(ApiError::unauthorized());
                }
            }
        }
    };
    let user = impersonation::apply(&view, requester, headers)?;
    let query: HashMap<String, String> = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(v)| v.into_iter().collect())
        .unwrap_or_default();
    let attrs = attributes::from_request(method.as_str(), uri.path(), &query);
    let decision = authorizer::authorize(&view, &user, &attrs);
    if let Some(log) = &shared.audit {
        log.record(&super::audit::AuditRecord::new(
            &user,
            &attrs,
            decision.allowed,
        ));
    }
    if !decision.allowed {
        return Err(attrs.forbidden(&user.name, &decision.reason));
    }
    Ok(user)
}

#[cfg(test)]
mod tests;
