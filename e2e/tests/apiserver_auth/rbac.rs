//! Roles and bindings grant exactly their rules, with kube-apiserver's 403 messages; the
//! objects are made with kubectl's generators (protobuf bodies) where kubectl has one.

use ferrolb_e2e::apiserver::ApiServerOptions;
use ferrolb_e2e::tools::Tool;

use super::Kubectl;
use crate::with_both_kubectls;

with_both_kubectls!(roles_and_bindings_grant_exactly_their_rules);

const SPEAKER: &str = "User \"system:serviceaccount:ferrolb-system:speaker\"";

const STATUS_AND_NAMES_ROLE: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: status-and-names, namespace: default}
rules:
- {apiGroups: [\"\"], resources: [services/status], verbs: [get, patch]}
- {apiGroups: [\"\"], resources: [configmaps], resourceNames: [lock], verbs: [get, list, watch]}
- {apiGroups: [\"\"], resources: [secrets], verbs: [list]}
";

const LEASE: &str = "apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: ferrolb-controller}
spec: {holderIdentity: controller-0}
";

async fn roles_and_bindings_grant_exactly_their_rules(tool: Tool) {
    let Some(k) = Kubectl::new(tool, "rbac", ApiServerOptions::default()).await else {
        return;
    };
    let v = k.version.clone();
    let token = k
        .service_account_token("ferrolb-system", "speaker", &[])
        .await;
    let t = Some(token.as_str());
    // The generators still work for the admin (protobuf bodies).
    let out = k
        .ok(&[
            "create",
            "service",
            "loadbalancer",
            "web",
            "--tcp=80:8080",
            "-n",
            "default",
        ])
        .await;
    assert!(out.contains("service/web created"), "{v}: {out}");
    let out = k
        .ok(&[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=k=v",
            "-n",
            "default",
        ])
        .await;
    assert!(out.contains("secret/s created"), "{v}: {out}");
    k.ok(&["create", "configmap", "lock", "-n", "default"])
        .await;
    k.ok(&["create", "configmap", "other", "-n", "default"])
        .await;

    // get, nothing else.
    k.ok(&[
        "create",
        "role",
        "svc-reader",
        "--verb=get",
        "--resource=services",
        "-n",
        "default",
    ])
    .await;
    k.ok(&[
        "create",
        "rolebinding",
        "speaker-svc",
        "--role=svc-reader",
        "--serviceaccount=ferrolb-system:speaker",
        "-n",
        "default",
    ])
    .await;
    let out = k
        .ok_as(t, &["get", "service", "web", "-n", "default", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "service/web", "{v}");
    let manifest = k
        .ok(&["get", "service", "web", "-n", "default", "-o", "yaml"])
        .await;
    let file = k.write("web.yaml", &manifest);
    let err = k.fails_as(t, &["replace", "-f", &file]).await;
    assert!(
        err.contains(&format!("services \"web\" is forbidden: {SPEAKER} cannot update resource \"services\" in API group \"\" in the namespace \"default\"")),
        "{v}: {err}"
    );
    let err = k.fails_as(t, &["get", "services", "-n", "default"]).await;
    assert!(
        err.contains(&format!("services is forbidden: {SPEAKER} cannot list resource \"services\" in API group \"\" in the namespace \"default\"")),
        "{v}: {err}"
    );
    let err = k
        .fails_as(t, &["get", "service", "web", "-n", "kube-system"])
        .await;
    assert!(
        err.contains("in the namespace \"kube-system\""),
        "{v}: {err}"
    );

    // services/status is its own resource; resourceNames need a named request; list is not watch.
    let role = k.write("role.yaml", STATUS_AND_NAMES_ROLE);
    k.ok(&["apply", "-f", &role]).await;
    k.ok(&[
        "create",
        "rolebinding",
        "speaker-status",
        "--role=status-and-names",
        "--serviceaccount=ferrolb-system:speaker",
        "-n",
        "default",
    ])
    .await;
    let status_patch = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"10.200.0.200"}]}}}"#;
    k.ok_as(
        t,
        &[
            "patch",
            "service",
            "web",
            "-n",
            "default",
            "--subresource=status",
            "--type=merge",
            "-p",
            status_patch,
        ],
    )
    .await;
    let ip = k
        .ok(&[
            "get",
            "service",
            "web",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])
        .await;
    assert_eq!(ip, "10.200.0.200", "{v}");
    let err = k
        .fails_as(
            t,
            &[
                "patch",
                "service",
                "web",
                "-n",
                "default",
                "--type=merge",
                "-p",
                r#"{"metadata":{"labels":{"a":"b"}}}"#,
            ],
        )
        .await;
    assert!(
        err.contains(&format!("services \"web\" is forbidden: {SPEAKER} cannot patch resource \"services\" in API group \"\" in the namespace \"default\"")),
        "{v}: {err}"
    );
    k.ok_as(t, &["get", "configmap", "lock", "-n", "default"])
        .await;
    let err = k
        .fails_as(t, &["get", "configmap", "other", "-n", "default"])
        .await;
    assert!(
        err.contains(&format!("configmaps \"other\" is forbidden: {SPEAKER} cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\"")),
        "{v}: {err}"
    );
    let err = k.fails_as(t, &["get", "configmaps", "-n", "default"]).await;
    assert!(
        err.contains("cannot list resource \"configmaps\""),
        "{v}: {err}"
    );
    let out = k
        .ok_as(
            t,
            &[
                "get",
                "configmaps",
                "-n",
                "default",
                "--field-selector=metadata.name=lock",
                "-o",
                "name",
            ],
        )
        .await;
    assert_eq!(out.trim(), "configmap/lock", "{v}");
    let out = k
        .ok_as(t, &["get", "secrets", "-n", "default", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "secret/s", "{v}");
    // kubectl 1.29 prints a denied watch as "Forbidden: unknown (get secrets)", 1.35 with
    // the server's message; the raw request shows the message with both.
    let err = k
        .fails_as(
            t,
            &[
                "get",
                "secrets",
                "-n",
                "default",
                "--watch-only",
                "--request-timeout=10s",
            ],
        )
        .await;
    assert!(
        err.contains("Forbidden") && err.contains("secrets"),
        "{v}: {err}"
    );
    let err = k
        .fails_as(
            t,
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/default/secrets?watch=true",
            ],
        )
        .await;
    assert!(
        err.contains(&format!("secrets is forbidden: {SPEAKER} cannot watch resource \"secrets\" in API group \"\" in the namespace \"default\"")),
        "{v}: {err}"
    );

    // A ClusterRole through a RoleBinding grants in that namespace only.
    k.ok(&[
        "create",
        "clusterrole",
        "lease-editor",
        "--verb=get,create,update",
        "--resource=leases.coordination.k8s.io",
    ])
    .await;
    k.ok(&[
        "create",
        "rolebinding",
        "speaker-leases",
        "--clusterrole=lease-editor",
        "--serviceaccount=ferrolb-system:speaker",
        "-n",
        "ferrolb-system",
    ])
    .await;
    let lease = k.write("lease.yaml", LEASE);
    let out = k
        .ok_as(t, &["create", "-f", &lease, "-n", "ferrolb-system"])
        .await;
    assert!(
        out.contains("lease.coordination.k8s.io/ferrolb-controller created"),
        "{v}: {out}"
    );
    let err = k
        .fails_as(t, &["create", "-f", &lease, "-n", "default"])
        .await;
    assert!(
        err.contains(&format!("leases.coordination.k8s.io is forbidden: {SPEAKER} cannot create resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"default\"")),
        "{v}: {err}"
    );
    let err = k.fails_as(t, &["get", "leases", "-A"]).await;
    assert!(err.contains("cannot list resource \"leases\" in API group \"coordination.k8s.io\" at the cluster scope"), "{v}: {err}");

    // A group subject: every ServiceAccount of the namespace, and no other.
    k.ok(&[
        "create",
        "clusterrole",
        "cm-reader",
        "--verb=get,list",
        "--resource=configmaps",
    ])
    .await;
    k.ok(&[
        "create",
        "rolebinding",
        "ns-sas",
        "--clusterrole=cm-reader",
        "--group=system:serviceaccounts:ferrolb-system",
        "-n",
        "kube-public",
    ])
    .await;
    k.ok(&["create", "configmap", "info", "-n", "kube-public"])
        .await;
    let out = k
        .ok_as(t, &["get", "configmaps", "-n", "kube-public", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "configmap/info", "{v}");
    let outsider = k.service_account_token("default", "outsider", &[]).await;
    let err = k
        .fails_as(Some(&outsider), &["get", "configmaps", "-n", "kube-public"])
        .await;
    assert!(
        err.contains(
            "User \"system:serviceaccount:default:outsider\" cannot list resource \"configmaps\""
        ),
        "{v}: {err}"
    );

    // RBAC is read on every request: removing a binding takes effect at once.
    k.ok(&["delete", "rolebinding", "speaker-svc", "-n", "default"])
        .await;
    let err = k
        .fails_as(t, &["get", "service", "web", "-n", "default"])
        .await;
    assert!(
        err.contains("cannot get resource \"services\""),
        "{v}: {err}"
    );
    k.finish().await;
}
