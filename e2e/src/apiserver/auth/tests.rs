//! Request attributes, denial messages and RBAC decisions over a store, against what
//! kube-apiserver answers.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::store::{Snapshot, SnapshotObject, Store};
use super::attributes::{Attributes, from_request};
use super::authorizer::{authorize, rules_for};
use super::bootstrap;
use super::user::UserInfo;

fn attrs(method: &str, path: &str, query: &[(&str, &str)]) -> Attributes {
    let q: HashMap<String, String> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    from_request(method, path, &q)
}

#[test]
fn attributes_follow_kubes_request_info() {
    let a = attrs("GET", "/api/v1/namespaces/default/services", &[]);
    assert_eq!(
        (a.verb.as_str(), a.resource.as_str(), a.namespace.as_str()),
        ("list", "services", "default")
    );
    assert!(a.resource_request);
    let a = attrs("GET", "/api/v1/services", &[("watch", "true")]);
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", ""));
    let a = attrs("GET", "/api/v1/watch/namespaces/default/services", &[]);
    assert_eq!(
        (a.verb.as_str(), a.resource.as_str()),
        ("watch", "services")
    );
    let a = attrs("PUT", "/api/v1/namespaces/default/services/web/status", &[]);
    assert_eq!(
        (a.verb.as_str(), a.name.as_str(), a.subresource.as_str()),
        ("update", "web", "status")
    );
    let a = attrs(
        "DELETE",
        "/apis/ferrolb.io/v1beta1/namespaces/x/ipaddresspools",
        &[],
    );
    assert_eq!(
        (a.verb.as_str(), a.api_group.as_str()),
        ("deletecollection", "ferrolb.io")
    );
    let a = attrs(
        "PATCH",
        "/apis/coordination.k8s.io/v1/namespaces/x/leases/l",
        &[],
    );
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("patch", "l"));
    let a = attrs(
        "POST",
        "/api/v1/namespaces/ns/serviceaccounts/sa/token",
        &[],
    );
    assert_eq!(
        (a.verb.as_str(), a.combined_resource().as_str()),
        ("create", "serviceaccounts/token")
    );
    // A namespace is its own namespace; its status is a subresource.
    let a = attrs("GET", "/api/v1/namespaces/x", &[]);
    assert_eq!(
        (
            a.verb.as_str(),
            a.resource.as_str(),
            a.name.as_str(),
            a.namespace.as_str()
        ),
        ("get", "namespaces", "x", "x")
    );
    let a = attrs("PUT", "/api/v1/namespaces/x/finalize", &[]);
    assert_eq!((a.name.as_str(), a.subresource.as_str()), ("x", "finalize"));
    let a = attrs(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[("fieldSelector", "metadata.name=lock")],
    );
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "lock"));
}

#[test]
fn discovery_and_other_paths_are_non_resource_requests() {
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/version",
        "/metrics",
        "/openapi/v3/apis/apps/v1",
    ] {
        let a = attrs("GET", path, &[]);
        assert!(!a.resource_request, "{path}");
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", path));
    }
    assert_eq!(attrs("POST", "/metrics", &[]).verb, "post");
}

#[test]
fn denials_use_kubes_words() {
    let user = "system:serviceaccount:ferrolb-system:speaker";
    let e = attrs("PUT", "/api/v1/namespaces/default/services/web", &[]).forbidden(user, "");
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        "services \"web\" is forbidden: User \"system:serviceaccount:ferrolb-system:speaker\" cannot update resource \"services\" in API group \"\" in the namespace \"default\""
    );
    assert_eq!(e.details, Some(json!({"name": "web", "kind": "services"})));
    let e = attrs("GET", "/api/v1/services", &[]).forbidden(user, "");
    assert_eq!(
        e.message,
        "services is forbidden: User \"system:serviceaccount:ferrolb-system:speaker\" cannot list resource \"services\" in API group \"\" at the cluster scope"
    );
    let e = attrs("PUT", "/api/v1/namespaces/default/services/web/status", &[]).forbidden("u", "");
    assert!(
        e.message
            .contains("cannot update resource \"services/status\""),
        "{}",
        e.message
    );
    let e = attrs(
        "PATCH",
        "/apis/ferrolb.io/v1beta1/namespaces/x/ipaddresspools/p",
        &[],
    )
    .forbidden(
        "u",
        "RBAC: role.rbac.authorization.k8s.io \"gone\" not found",
    );
    assert_eq!(
        e.message,
        "ipaddresspools.ferrolb.io \"p\" is forbidden: User \"u\" cannot patch resource \"ipaddresspools\" in API group \"ferrolb.io\" in the namespace \"x\": RBAC: role.rbac.authorization.k8s.io \"gone\" not found"
    );
    assert_eq!(
        e.details,
        Some(json!({"name": "p", "group": "ferrolb.io", "kind": "ipaddresspools"}))
    );
    let e = attrs("GET", "/metrics", &[]).forbidden("system:anonymous", "");
    assert_eq!(
        e.message,
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );
    assert_eq!(e.details, Some(json!({})));
}

fn rbac(resource: &str, object: Value) -> SnapshotObject {
    SnapshotObject {
        group: "rbac.authorization.k8s.io".into(),
        resource: resource.into(),
        object,
    }
}

fn store_with(objects: Vec<SnapshotObject>) -> Store {
    let store = Store::new(
        100,
        Some(Snapshot {
            resource_version: 1,
            objects,
            service_account_signing_key: None,
        }),
    );
    bootstrap::ensure(&store).unwrap();
    store
}

fn sa_user(ns: &str, name: &str) -> UserInfo {
    UserInfo {
        name: format!("system:serviceaccount:{ns}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
        ..UserInfo::default()
    }
}

fn role(kind: &str, ns: &str, name: &str, rules: Value) -> Value {
    json!({"kind": kind, "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn binding(
    kind: &str,
    ns: &str,
    name: &str,
    role_kind: &str,
    role: &str,
    subjects: Value,
) -> Value {
    json!({"kind": kind, "metadata": {"name": name, "namespace": ns},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": subjects})
}

#[test]
fn rbac_grants_what_bindings_say_and_nothing_more() {
    let store = store_with(vec![
        rbac(
            "roles",
            role(
                "Role",
                "default",
                "svc-reader",
                json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]),
            ),
        ),
        rbac(
            "rolebindings",
            binding(
                "RoleBinding",
                "default",
                "speaker-reads",
                "Role",
                "svc-reader",
                json!([{"kind": "ServiceAccount", "name": "speaker", "namespace": "ferrolb-system"}]),
            ),
        ),
        rbac(
            "clusterroles",
            role(
                "ClusterRole",
                "",
                "lease-writer",
                json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]),
            ),
        ),
        rbac(
            "rolebindings",
            binding(
                "RoleBinding",
                "ferrolb-system",
                "leases",
                "ClusterRole",
                "lease-writer",
                json!([{"kind": "Group", "name": "system:serviceaccounts:ferrolb-system"}]),
            ),
        ),
        rbac(
            "rolebindings",
            binding(
                "RoleBinding",
                "ferrolb-system",
                "dangling",
                "Role",
                "gone",
                json!([{"kind": "ServiceAccount", "name": "speaker"}]),
            ),
        ),
    ]);
    let view = store.lock();
    let speaker = sa_user("ferrolb-system", "speaker");
    let svc = |verb: &str| Attributes::resource(verb, "", "services", "default").named("web");
    let d = authorize(&view, &speaker, &svc("get"));
    assert!(d.allowed);
    assert_eq!(
        d.reason,
        "RBAC: allowed by RoleBinding \"speaker-reads/default\" of Role \"svc-reader\" to ServiceAccount \"speaker/ferrolb-system\""
    );
    assert!(!authorize(&view, &speaker, &svc("update")).allowed);
    assert!(!authorize(&view, &sa_user("default", "speaker"), &svc("get")).allowed);
    // A ClusterRole through a RoleBinding grants in that namespace only.
    let lease =
        |ns: &str| Attributes::resource("update", "coordination.k8s.io", "leases", ns).named("l");
    assert!(authorize(&view, &speaker, &lease("ferrolb-system")).allowed);
    assert!(!authorize(&view, &speaker, &lease("default")).allowed);
    assert!(!authorize(&view, &speaker, &lease("")).allowed);
    // A binding to a missing role is reported in the denial.
    let d = authorize(
        &view,
        &speaker,
        &Attributes::resource("get", "", "secrets", "ferrolb-system"),
    );
    assert!(!d.allowed);
    assert_eq!(
        d.reason,
        "RBAC: role.rbac.authorization.k8s.io \"gone\" not found"
    );
    // Bootstrap roles: discovery and self reviews for the authenticated, health for all.
    assert!(
        authorize(
            &view,
            &speaker,
            &Attributes::non_resource("get", "/apis/apps/v1")
        )
        .allowed
    );
    assert!(
        !authorize(
            &view,
            &speaker,
            &Attributes::non_resource("get", "/metrics")
        )
        .allowed
    );
    let anon = UserInfo::anonymous();
    assert!(authorize(&view, &anon, &Attributes::non_resource("get", "/healthz")).allowed);
    assert!(!authorize(&view, &anon, &Attributes::non_resource("get", "/api")).allowed);
    let ssar = Attributes::resource(
        "create",
        "authorization.k8s.io",
        "selfsubjectaccessreviews",
        "",
    );
    assert!(authorize(&view, &speaker, &ssar).allowed);
    assert!(!authorize(&view, &anon, &ssar).allowed);
    let admin = UserInfo {
        name: "admin".into(),
        groups: vec!["system:masters".into()],
        ..UserInfo::default()
    };
    assert!(
        authorize(
            &view,
            &admin,
            &Attributes::non_resource("delete", "/anything")
        )
        .allowed
    );
}

#[test]
fn rules_for_lists_cluster_then_namespace_rules() {
    let store = store_with(vec![
        rbac(
            "roles",
            role(
                "Role",
                "default",
                "r",
                json!([{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]),
            ),
        ),
        rbac(
            "rolebindings",
            binding(
                "RoleBinding",
                "default",
                "b",
                "Role",
                "r",
                json!([{"kind": "User", "name": "alice"}]),
            ),
        ),
    ]);
    let view = store.lock();
    let alice = UserInfo {
        name: "alice".into(),
        groups: vec!["system:authenticated".into()],
        ..UserInfo::default()
    };
    let (rules, error) = rules_for(&view, &alice, "default");
    assert_eq!(error, None);
    let resources: Vec<&Vec<String>> = rules
        .iter()
        .filter(|r| !r.resources.is_empty())
        .map(|r| &r.resources)
        .collect();
    assert_eq!(
        resources,
        vec![
            &vec![
                "selfsubjectaccessreviews".to_string(),
                "selfsubjectrulesreviews".to_string()
            ],
            &vec!["selfsubjectreviews".to_string()],
            &vec!["services".to_string()],
        ]
    );
    assert!(
        rules
            .iter()
            .any(|r| r.non_resource_urls.contains(&"/version".to_string()))
    );
    let (in_other, _) = rules_for(&view, &alice, "kube-system");
    assert!(
        !in_other
            .iter()
            .any(|r| r.resources.contains(&"services".to_string()))
    );
}
