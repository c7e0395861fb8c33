//! The default ClusterRoles and ClusterRoleBindings every kube-apiserver creates at start
//! (its `rbac/bootstrap-roles` post-start hook) that clients rely on: `cluster-admin` for
//! `system:masters`, discovery and self-reviews for every authenticated user, version and
//! health for everyone, and `system:auth-delegator` (not bound) for components that review
//! tokens and access. Like kube, missing ones are created at every start and existing ones
//! are left as they are.

use serde_json::{Value, json};

use super::super::error::ApiResult;
use super::super::objects;
use super::super::resources::GroupResource;
use super::super::store::{Store, Write};

fn labelled(kind: &str, name: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
    })
}

fn cluster_role(name: &str, rules: Value) -> Value {
    let mut role = labelled("ClusterRole", name);
    role["rules"] = rules;
    role
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let mut b = labelled("ClusterRoleBinding", name);
    b["roleRef"] =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role});
    b["subjects"] = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    b
}

/// The bootstrap ClusterRoles, with kube's rules.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
        ),
        cluster_role(
            "system:discovery",
            json!([{
                "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                    "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }]),
        ),
        cluster_role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"],
                 "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                 "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"],
                 "resources": ["selfsubjectreviews"],
                 "verbs": ["create"]},
            ]),
        ),
        cluster_role(
            "system:public-info-viewer",
            json!([{
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"],
            }]),
        ),
        cluster_role(
            "system:auth-delegator",
            json!([
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ]),
        ),
    ]
}

/// The bootstrap ClusterRoleBindings, bound as kube binds them.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &["system:masters"]),
        binding(
            "system:discovery",
            "system:discovery",
            &["system:authenticated"],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            &["system:authenticated"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
    ]
}

/// Creates the bootstrap objects that are missing.
pub fn ensure(store: &Store) -> ApiResult<()> {
    let wanted = cluster_roles()
        .into_iter()
        .map(|o| ("clusterroles", o))
        .chain(
            cluster_role_bindings()
                .into_iter()
                .map(|o| ("clusterrolebindings", o)),
        );
    for (resource, obj) in wanted {
        let gr = GroupResource {
            group: "rbac.authorization.k8s.io".to_string(),
            resource: resource.to_string(),
        };
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        store.write(&gr, "", &name, |view, current| {
            if let Some(existing) = current {
                return Ok(Write::Put(existing.clone()));
            }
            let rt = view
                .types()
                .iter()
                .find(|t| t.group == gr.group && t.plural == gr.resource)
                .cloned()
                .ok_or_else(super::super::error::ApiError::no_route)?;
            Ok(Write::Put(objects::prepare_create(
                view,
                &rt,
                "",
                obj.clone(),
                None,
            )?))
        })?;
    }
    Ok(())
}
