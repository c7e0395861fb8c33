//! Who a request acts as: kube's `user.Info` (name, uid, groups, extra) and the fixed names
//! of ServiceAccount users and groups.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub const ANONYMOUS: &str = "system:anonymous";
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// Members are allowed everything, before RBAC is asked (kube's privileged-group authorizer).
pub const MASTERS: &str = "system:masters";
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
const SA_PREFIX: &str = "system:serviceaccount:";
/// The user extra naming the token a ServiceAccount user authenticated with.
pub const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// An authenticated (or anonymous, or impersonated) user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: ANONYMOUS.to_string(),
            groups: vec![ALL_UNAUTHENTICATED.to_string()],
            ..UserInfo::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The `authentication.k8s.io/v1 UserInfo` JSON form (TokenReview, SelfSubjectReview).
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "username": self.name });
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.groups.is_empty() {
            v["groups"] = json!(self.groups);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// `system:serviceaccount:NS:NAME`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SA_PREFIX}{namespace}:{name}")
}

/// The groups every ServiceAccount of `namespace` is in (without `system:authenticated`).
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        SERVICE_ACCOUNTS.to_string(),
        format!("{SERVICE_ACCOUNTS}:{namespace}"),
    ]
}

/// (namespace, name) of a ServiceAccount username; `None` for any other name (kube's
/// `SplitUsername`: exactly two non-empty parts after the prefix).
pub fn split_service_account_username(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SA_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    if ns.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some((ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_usernames_split_only_when_well_formed() {
        assert_eq!(
            split_service_account_username("system:serviceaccount:ferrolb-system:speaker"),
            Some(("ferrolb-system", "speaker"))
        );
        for bad in [
            "system:serviceaccount:ns",
            "system:serviceaccount::x",
            "system:serviceaccount:ns:",
            "system:serviceaccount:a:b:c",
            "admin",
        ] {
            assert_eq!(split_service_account_username(bad), None, "{bad}");
        }
        assert_eq!(
            service_account_username("ns", "sa"),
            "system:serviceaccount:ns:sa"
        );
    }
}
