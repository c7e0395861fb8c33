//! Impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-<key>` headers), as kube-apiserver's impersonation filter: every
//! impersonated value needs the `impersonate` verb on it — `users`, `groups` (core group),
//! `serviceaccounts` in the ServiceAccount's namespace for a ServiceAccount username,
//! `uids` and `userextras/<key>` (authentication.k8s.io) — and the request then runs as the
//! impersonated user. A ServiceAccount username without groups gets the ServiceAccount
//! groups; a non-anonymous user gets `system:authenticated` unless a group says otherwise.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

use super::super::error::{ApiError, ApiResult};
use super::super::store::Inner;
use super::attributes::Attributes;
use super::authorizer::authorize;
use super::user::{
    ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, UserInfo, service_account_groups,
    split_service_account_username,
};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// `%XX` escapes of an extra key in a header name.
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The user the request acts as: `requester` itself without impersonation headers.
pub fn apply(view: &Inner, requester: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
    let user = values(headers, USER).first().map(|s| s.to_string());
    let groups: Vec<String> = values(headers, GROUP)
        .into_iter()
        .map(str::to_string)
        .collect();
    let uid = values(headers, UID).first().map(|s| s.to_string());
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = value.to_str()
        {
            extra.entry(unescape(key)).or_default().push(v.to_string());
        }
    }
    let Some(username) = user else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return Ok(requester);
        }
        return Err(ApiError::internal(
            "requested impersonation of groups, extra or uid without impersonating a user",
        ));
    };
    let check = |attrs: Attributes| -> ApiResult<()> {
        let decision = authorize(view, &requester, &attrs);
        if decision.allowed {
            Ok(())
        } else {
            Err(attrs.forbidden(&requester.name, &decision.reason))
        }
    };
    let mut effective_groups = Vec::new();
    match split_service_account_username(&username) {
        Some((ns, name)) => {
            check(Attributes::resource("impersonate", "", "serviceaccounts", ns).named(name))?;
            if groups.is_empty() {
                effective_groups = service_account_groups(ns);
            }
        }
        None => check(Attributes::resource("impersonate", "", "users", "").named(&username))?,
    }
    for g in &groups {
        check(Attributes::resource("impersonate", "", "groups", "").named(g))?;
        effective_groups.push(g.clone());
    }
    for (key, vals) in &extra {
        for v in vals {
            check(
                Attributes::resource("impersonate", "authentication.k8s.io", "userextras", "")
                    .subresource(key)
                    .named(v),
            )?;
        }
    }
    if let Some(u) = &uid {
        check(Attributes::resource("impersonate", "authentication.k8s.io", "uids", "").named(u))?;
    }
    let has = |g: &str| effective_groups.iter().any(|x| x == g);
    if username != ANONYMOUS {
        if !has(ALL_AUTHENTICATED) && !has(ALL_UNAUTHENTICATED) {
            effective_groups.push(ALL_AUTHENTICATED.to_string());
        }
    } else if !has(ALL_UNAUTHENTICATED) {
        effective_groups.push(ALL_UNAUTHENTICATED.to_string());
    }
    Ok(UserInfo {
        name: username,
        uid: uid.unwrap_or_default(),
        groups: effective_groups,
        extra,
    })
}
