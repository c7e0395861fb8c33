//! Bearer-token authentication, as kube-apiserver's token authenticators answer: the static
//! admin token, then ServiceAccount JWTs of this server, which are bound to their
//! ServiceAccount (deleted, or recreated with another uid, and the token is refused).
//!
//! Audiences: a token is good for the audiences requested (a TokenReview's
//! `spec.audiences`, the API server's own otherwise) that it carries; the admin token, like
//! kube's static tokens, is good for the API server's audiences only.

use std::collections::BTreeMap;

use super::super::store::{Inner, core};
use super::AuthSettings;
use super::tokens::{ISSUER, TokenError};
use super::user::{
    ALL_AUTHENTICATED, CREDENTIAL_ID, MASTERS, UserInfo, service_account_groups,
    service_account_username,
};

/// The user a token authenticates, and the audiences it is good for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user: UserInfo,
    pub audiences: Vec<String>,
}

/// Why a token is not accepted. `Unknown` is no error in a TokenReview (no authenticator
/// knew the token); the others are reported with kube's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("invalid bearer token")]
    Unknown,
    #[error("{0}")]
    Rejected(String),
}

/// The API server's own audiences.
pub fn api_audiences() -> Vec<String> {
    vec![ISSUER.to_string()]
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

/// The user behind `token`, for `requested` audiences (empty: the API server's).
pub fn authenticate_token(
    settings: &AuthSettings,
    view: &Inner,
    token: &str,
    requested: &[String],
    now: i64,
) -> Result<Authenticated, AuthnError> {
    let implicit = api_audiences();
    let requested = if requested.is_empty() {
        implicit.clone()
    } else {
        requested.to_vec()
    };
    if !settings.admin_token.is_empty() && token == settings.admin_token {
        let audiences = intersect(&implicit, &requested);
        if audiences.is_empty() {
            return Err(AuthnError::Unknown);
        }
        return Ok(Authenticated {
            user: UserInfo {
                name: "admin".to_string(),
                groups: vec![MASTERS.to_string(), ALL_AUTHENTICATED.to_string()],
                ..UserInfo::default()
            },
            audiences,
        });
    }
    let leeway = settings.token_leeway.as_secs() as i64;
    let claims = match settings.signing_key.verify(token, now, leeway) {
        Ok(c) => c,
        Err(TokenError::NotOurs) => return Err(AuthnError::Unknown),
        Err(e) => return Err(AuthnError::Rejected(e.to_string())),
    };
    let audiences = intersect(&claims.aud, &requested);
    if audiences.is_empty() {
        return Err(AuthnError::Rejected(format!(
            "token audiences {} is invalid for the target audiences {}",
            quoted(&claims.aud),
            quoted(&requested)
        )));
    }
    let ns = &claims.kubernetes.namespace;
    let sa = &claims.kubernetes.serviceaccount;
    if claims.sub != service_account_username(ns, &sa.name) {
        return Err(AuthnError::Rejected(
            "service account token claims could not be validated: sub does not name the service account"
                .to_string(),
        ));
    }
    let Some(live) = view.get(&core("serviceaccounts"), ns, &sa.name) else {
        return Err(AuthnError::Rejected(format!(
            "serviceaccounts {:?} not found",
            sa.name
        )));
    };
    let live_uid = live["metadata"]["uid"].as_str().unwrap_or("");
    if live_uid != sa.uid {
        return Err(AuthnError::Rejected(format!(
            "service account UID ({live_uid}) does not match claim ({})",
            sa.uid
        )));
    }
    let mut groups = service_account_groups(ns);
    groups.push(ALL_AUTHENTICATED.to_string());
    let mut extra = BTreeMap::new();
    extra.insert(
        CREDENTIAL_ID.to_string(),
        vec![format!("JTI={}", claims.jti)],
    );
    Ok(Authenticated {
        user: UserInfo {
            name: claims.sub,
            uid: sa.uid.clone(),
            groups,
            extra,
        },
        audiences,
    })
}
