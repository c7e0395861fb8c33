//! The authorizer: members of `system:masters` may do anything (kube's privileged-group
//! authorizer runs before RBAC); everyone else gets what RBAC grants, read from the store
//! on every decision so a changed Role or binding takes effect with the next request.
//!
//! As kube-apiserver's RBAC authorizer: ClusterRoleBindings are visited first, then the
//! RoleBindings of the request's namespace; a RoleBinding may reference a ClusterRole, whose
//! rules then apply in that namespace only; non-resource URLs are granted only through
//! ClusterRoleBindings (a non-resource request has no namespace); a binding whose role is
//! missing grants nothing and is reported in the denial's reason.

use serde_json::Value;

use super::super::resources::GroupResource;
use super::super::store::Inner;
use super::attributes::Attributes;
use super::rbac::{PolicyRule, describe_subject, rule_allows, subject_applies};
use super::user::{MASTERS, UserInfo};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn rbac(resource: &str) -> GroupResource {
    GroupResource {
        group: RBAC_GROUP.to_string(),
        resource: resource.to_string(),
    }
}

/// An authorization decision and kube's reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The rules a binding grants, or kube's lister error naming the missing role.
fn role_rules(
    view: &Inner,
    role_ref: &Value,
    binding_namespace: &str,
) -> Result<Vec<PolicyRule>, String> {
    let name = role_ref["name"].as_str().unwrap_or("");
    let (found, singular) = match role_ref["kind"].as_str().unwrap_or("") {
        "ClusterRole" => (view.get(&rbac("clusterroles"), "", name), "clusterrole"),
        "Role" => (view.get(&rbac("roles"), binding_namespace, name), "role"),
        other => return Err(format!("unsupported role reference kind: {other:?}")),
    };
    found
        .map(PolicyRule::all_of)
        .ok_or_else(|| format!("{singular}.{RBAC_GROUP} {name:?} not found"))
}

/// One binding that applies to the user: where it is described from, and its rules.
struct Grant {
    source: String,
    rules: Result<Vec<PolicyRule>, String>,
}

/// Every binding that applies to `user`, cluster-wide first, then in `namespace`.
fn grants(view: &Inner, user: &UserInfo, namespace: &str) -> Vec<Grant> {
    let mut out = Vec::new();
    for (_, b) in view.list(&rbac("clusterrolebindings"), None) {
        let subjects = b["subjects"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let Some(subject) = subjects.iter().find(|s| subject_applies(s, user, "")) else {
            continue;
        };
        out.push(Grant {
            source: format!(
                "ClusterRoleBinding {:?} of {} {:?} to {}",
                b["metadata"]["name"].as_str().unwrap_or(""),
                b["roleRef"]["kind"].as_str().unwrap_or(""),
                b["roleRef"]["name"].as_str().unwrap_or(""),
                describe_subject(subject, "")
            ),
            rules: role_rules(view, &b["roleRef"], ""),
        });
    }
    if namespace.is_empty() {
        return out;
    }
    for (_, b) in view.list(&rbac("rolebindings"), Some(namespace)) {
        let subjects = b["subjects"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let Some(subject) = subjects
            .iter()
            .find(|s| subject_applies(s, user, namespace))
        else {
            continue;
        };
        out.push(Grant {
            source: format!(
                "RoleBinding {:?} of {} {:?} to {}",
                format!(
                    "{}/{namespace}",
                    b["metadata"]["name"].as_str().unwrap_or("")
                ),
                b["roleRef"]["kind"].as_str().unwrap_or(""),
                b["roleRef"]["name"].as_str().unwrap_or(""),
                describe_subject(subject, namespace)
            ),
            rules: role_rules(view, &b["roleRef"], namespace),
        });
    }
    out
}

/// Go's `utilerrors.NewAggregate(...).Error()`: one message alone, several in brackets.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Whether `user` may do what `attrs` describe.
pub fn authorize(view: &Inner, user: &UserInfo, attrs: &Attributes) -> Decision {
    if user.in_group(MASTERS) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let namespace = if attrs.resource_request {
        attrs.namespace.as_str()
    } else {
        ""
    };
    let mut errors = Vec::new();
    for grant in grants(view, user, namespace) {
        match grant.rules {
            Ok(rules) if rules.iter().any(|r| rule_allows(attrs, r)) => {
                return Decision {
                    allowed: true,
                    reason: format!("RBAC: allowed by {}", grant.source),
                };
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    Decision {
        allowed: false,
        reason: if errors.is_empty() {
            String::new()
        } else {
            format!("RBAC: {}", aggregate(&errors))
        },
    }
}

/// Every rule that applies to `user` in `namespace` (a rules review), and the errors met on
/// the way (bindings to missing roles), aggregated as kube reports them.
pub fn rules_for(
    view: &Inner,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<PolicyRule>, Option<String>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for grant in grants(view, user, namespace) {
        match grant.rules {
            Ok(r) => rules.extend(r),
            Err(e) => errors.push(e),
        }
    }
    let error = (!errors.is_empty()).then(|| aggregate(&errors));
    (rules, error)
}
