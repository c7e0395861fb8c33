//! RBAC's matching rules, as kube-apiserver's `rbac/validation` applies them: a PolicyRule
//! allows a request when its verbs, API groups, resources (with `*`, `resource/subresource`
//! and `*/subresource`) and resourceNames all match, or, for a non-resource request, its
//! verbs and nonResourceURLs (`*` suffix wildcards); a binding's subject applies to a user by
//! name (User), membership (Group) or ServiceAccount username, a ServiceAccount subject
//! without a namespace taking the binding's.

use serde_json::{Value, json};

use super::attributes::Attributes;
use super::user::{UserInfo, service_account_username};

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    pub fn from_json(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    /// The rules of a stored Role or ClusterRole.
    pub fn all_of(role: &Value) -> Vec<PolicyRule> {
        role["rules"]
            .as_array()
            .map(|rules| rules.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    /// The `ResourceRule` JSON of a rules review (`resourceNames` only when set).
    pub fn resource_rule_json(&self) -> Value {
        let mut v = json!({
            "verbs": self.verbs,
            "apiGroups": self.api_groups,
            "resources": self.resources,
        });
        if !self.resource_names.is_empty() {
            v["resourceNames"] = json!(self.resource_names);
        }
        v
    }

    /// The `NonResourceRule` JSON of a rules review.
    pub fn non_resource_rule_json(&self) -> Value {
        json!({ "verbs": self.verbs, "nonResourceURLs": self.non_resource_urls })
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == "*" || g == group)
}

fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// A rule with resourceNames matches only requests that name one of them: never a list,
/// watch or create without a name.
fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == name)
}

fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether `rule` allows the request.
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if attrs.resource_request {
        verb_matches(rule, &attrs.verb)
            && api_group_matches(rule, &attrs.api_group)
            && resource_matches(rule, &attrs.combined_resource(), &attrs.subresource)
            && resource_name_matches(rule, &attrs.name)
    } else {
        verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, &attrs.path)
    }
}

/// Whether a binding subject names `user`; `binding_namespace` is empty for a
/// ClusterRoleBinding.
pub fn subject_applies(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" => user.name == name,
        "Group" => user.in_group(name),
        "ServiceAccount" => {
            let ns = match subject["namespace"].as_str() {
                Some(ns) if !ns.is_empty() => ns,
                _ => binding_namespace,
            };
            !ns.is_empty() && user.name == service_account_username(ns, name)
        }
        _ => false,
    }
}

/// `User "x"`, `Group "x"`, `ServiceAccount "name/namespace"` as kube's reasons name them.
pub fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = subject["kind"].as_str().unwrap_or("");
    let name = subject["name"].as_str().unwrap_or("");
    if kind == "ServiceAccount" {
        let ns = match subject["namespace"].as_str() {
            Some(ns) if !ns.is_empty() => ns,
            _ => binding_namespace,
        };
        return format!("{kind} {:?}", format!("{name}/{ns}"));
    }
    format!("{kind} {name:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_json(&v)
    }

    fn res(verb: &str, group: &str, resource: &str) -> Attributes {
        Attributes::resource(verb, group, resource, "default")
    }

    #[test]
    fn verbs_groups_and_resources_must_all_match() {
        let r =
            rule(json!({"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}));
        assert!(rule_allows(&res("get", "", "services"), &r));
        assert!(rule_allows(&res("list", "", "services"), &r));
        assert!(!rule_allows(&res("watch", "", "services"), &r));
        assert!(!rule_allows(&res("update", "", "services"), &r));
        assert!(!rule_allows(&res("get", "apps", "services"), &r));
        assert!(!rule_allows(&res("get", "", "secrets"), &r));
    }

    #[test]
    fn wildcards_match_everything_of_their_kind() {
        let r = rule(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        assert!(rule_allows(
            &res("deletecollection", "ferrolb.io", "ipaddresspools"),
            &r
        ));
        assert!(rule_allows(
            &res("update", "", "services").subresource("status"),
            &r
        ));
        assert!(!rule_allows(
            &Attributes::non_resource("get", "/metrics"),
            &r
        ));
    }

    #[test]
    fn a_subresource_is_its_own_resource() {
        let main = rule(json!({"apiGroups": [""], "resources": ["services"], "verbs": ["update"]}));
        let status =
            rule(json!({"apiGroups": [""], "resources": ["services/status"], "verbs": ["update"]}));
        let any_status =
            rule(json!({"apiGroups": [""], "resources": ["*/status"], "verbs": ["update"]}));
        let svc_status = res("update", "", "services")
            .named("web")
            .subresource("status");
        let svc = res("update", "", "services").named("web");
        assert!(!rule_allows(&svc_status, &main));
        assert!(rule_allows(&svc, &main));
        assert!(rule_allows(&svc_status, &status));
        assert!(!rule_allows(&svc, &status));
        assert!(rule_allows(&svc_status, &any_status));
        assert!(!rule_allows(&svc, &any_status));
        let scale = res("update", "", "services")
            .named("web")
            .subresource("scale");
        assert!(!rule_allows(&scale, &any_status));
    }

    #[test]
    fn resource_names_need_a_named_request() {
        let r = rule(
            json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["lock"], "verbs": ["get", "list", "watch", "create", "update"]}),
        );
        assert!(rule_allows(&res("get", "", "configmaps").named("lock"), &r));
        assert!(rule_allows(
            &res("update", "", "configmaps").named("lock"),
            &r
        ));
        assert!(!rule_allows(
            &res("get", "", "configmaps").named("other"),
            &r
        ));
        assert!(!rule_allows(&res("list", "", "configmaps"), &r));
        assert!(!rule_allows(&res("watch", "", "configmaps"), &r));
        assert!(!rule_allows(&res("create", "", "configmaps"), &r));
        // A list narrowed to the name by a field selector carries the name.
        assert!(rule_allows(
            &res("list", "", "configmaps").named("lock"),
            &r
        ));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_star_suffix() {
        let r =
            rule(json!({"nonResourceURLs": ["/healthz", "/api/*", "/openapi*"], "verbs": ["get"]}));
        let get = |p: &str| Attributes::non_resource("get", p);
        assert!(rule_allows(&get("/healthz"), &r));
        assert!(!rule_allows(&get("/healthz/etcd"), &r));
        assert!(rule_allows(&get("/api/v1"), &r));
        assert!(!rule_allows(&get("/api"), &r));
        assert!(rule_allows(&get("/openapi/v3/apis/apps/v1"), &r));
        assert!(!rule_allows(
            &Attributes::non_resource("post", "/healthz"),
            &r
        ));
        assert!(!rule_allows(&res("get", "", "healthz"), &r));
        let all = rule(json!({"nonResourceURLs": ["*"], "verbs": ["*"]}));
        assert!(rule_allows(
            &Attributes::non_resource("put", "/anything"),
            &all
        ));
    }

    #[test]
    fn subjects_apply_by_name_group_or_service_account() {
        let user = UserInfo {
            name: "system:serviceaccount:ferrolb-system:speaker".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:ferrolb-system".into(),
                "system:authenticated".into(),
            ],
            ..UserInfo::default()
        };
        let sa =
            json!({"kind": "ServiceAccount", "name": "speaker", "namespace": "ferrolb-system"});
        let sa_no_ns = json!({"kind": "ServiceAccount", "name": "speaker"});
        assert!(subject_applies(&sa, &user, ""));
        assert!(subject_applies(&sa_no_ns, &user, "ferrolb-system"));
        assert!(!subject_applies(&sa_no_ns, &user, "default"));
        assert!(!subject_applies(&sa_no_ns, &user, ""));
        let group = json!({"kind": "Group", "name": "system:serviceaccounts:ferrolb-system"});
        assert!(subject_applies(&group, &user, "default"));
        let other_group = json!({"kind": "Group", "name": "system:serviceaccounts:default"});
        assert!(!subject_applies(&other_group, &user, ""));
        let as_user =
            json!({"kind": "User", "name": "system:serviceaccount:ferrolb-system:speaker"});
        assert!(subject_applies(&as_user, &user, ""));
        assert_eq!(
            describe_subject(&sa_no_ns, "ferrolb-system"),
            "ServiceAccount \"speaker/ferrolb-system\""
        );
        assert_eq!(
            describe_subject(&group, ""),
            "Group \"system:serviceaccounts:ferrolb-system\""
        );
    }
}
