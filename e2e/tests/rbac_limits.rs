//! What ferrolb's ServiceAccounts cannot do under `deploy/rbac.yaml` (and the chart's copy),
//! asked of the API server's RBAC authorizer with SubjectAccessReviews, and the
//! `kubectl auth can-i --list` listing the README shows. That each rule is needed is
//! `least_privilege.rs`; this is the other half: nothing more is granted.

use ferrolb_e2e::apiserver::{ApiServer, ApiServerOptions};
use ferrolb_e2e::cluster::{DEPLOY_RBAC, apply_manifest};
use ferrolb_e2e::fixtures::ensure_namespace;
use ferrolb_e2e::tools::{self, Tool};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};

const NS: &str = "ferrolb-system";

fn account(name: &str) -> (String, Vec<String>) {
    (
        format!("system:serviceaccount:{NS}:{name}"),
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{NS}"),
            "system:authenticated".into(),
        ],
    )
}

/// `verb group/resource[/subresource] [name] in namespace` as one request.
#[derive(Clone, Copy, Debug)]
struct Ask {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    namespace: &'static str,
    name: &'static str,
}

const fn ask(verb: &'static str, group: &'static str, resource: &'static str) -> Ask {
    Ask {
        verb,
        group,
        resource,
        subresource: "",
        namespace: "",
        name: "",
    }
}

impl Ask {
    const fn ns(mut self, namespace: &'static str) -> Ask {
        self.namespace = namespace;
        self
    }
    const fn sub(mut self, subresource: &'static str) -> Ask {
        self.subresource = subresource;
        self
    }
    const fn named(mut self, name: &'static str) -> Ask {
        self.name = name;
        self
    }
}

async fn allowed(client: &Client, who: &str, a: Ask) -> bool {
    let (user, groups) = account(who);
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user),
            groups: Some(groups),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(a.verb.into()),
                group: Some(a.group.into()),
                resource: Some(a.resource.into()),
                subresource: opt(a.subresource),
                namespace: opt(a.namespace),
                name: opt(a.name),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| panic!("SubjectAccessReview {who} {a:?}: {e}"));
    answer.status.is_some_and(|s| s.allowed)
}

/// What both accounts must never do: escalate, act as others, run workloads, mint tokens.
const NEITHER: &[Ask] = &[
    ask("create", "rbac.authorization.k8s.io", "roles").ns(NS),
    ask("create", "rbac.authorization.k8s.io", "rolebindings").ns(NS),
    ask("create", "rbac.authorization.k8s.io", "clusterroles"),
    ask("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ask("escalate", "rbac.authorization.k8s.io", "clusterroles"),
    ask("bind", "rbac.authorization.k8s.io", "clusterroles"),
    ask("update", "rbac.authorization.k8s.io", "roles").ns(NS),
    ask("impersonate", "", "users"),
    ask("impersonate", "", "serviceaccounts").ns(NS),
    ask("impersonate", "", "groups"),
    ask("create", "", "pods").ns(NS),
    ask("create", "apps", "daemonsets").ns(NS),
    ask("create", "", "serviceaccounts")
        .sub("token")
        .ns(NS)
        .named("controller"),
    ask("create", "", "serviceaccounts")
        .sub("token")
        .ns(NS)
        .named("speaker"),
    ask("update", "", "nodes"),
    ask("delete", "", "nodes"),
    ask("delete", "", "services").ns("default"),
    ask("create", "", "services").ns("default"),
    ask("get", "", "secrets").ns("default"),
    ask("list", "", "secrets"),
    ask("get", "", "secrets").ns("kube-system"),
    ask("update", "", "configmaps").ns(NS),
    ask(
        "update",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ),
    ask("create", "ferrolb.io", "ipaddresspools").ns(NS),
    ask("update", "ferrolb.io", "bgppeers").ns(NS),
];

/// The speaker reads; it never writes a Service or anything the controller owns.
const SPEAKER_NEVER: &[Ask] = &[
    ask("get", "", "secrets").ns(NS).named("memberlist"),
    ask("get", "ferrolb.io", "servicel2statuses").ns(NS),
    ask("update", "", "services").ns("default"),
    ask("patch", "", "services").ns("default"),
    ask("patch", "", "services").sub("status").ns("default"),
    ask("update", "", "services").sub("status").ns("default"),
    ask("patch", "ferrolb.io", "ipaddresspools")
        .sub("status")
        .ns(NS),
    ask("update", "coordination.k8s.io", "leases").ns(NS),
    ask("create", "", "secrets").ns(NS),
    ask("update", "", "secrets").ns(NS),
    ask("delete", "", "secrets").ns(NS),
    ask("get", "", "secrets").ns("metallb-system"),
];

/// The controller never reads a Secret, not even the membership key it creates.
const CONTROLLER_NEVER: &[Ask] = &[
    ask("get", "", "secrets").ns(NS).named("memberlist"),
    ask("get", "", "secrets").ns(NS),
    ask("list", "", "secrets").ns(NS),
    ask("watch", "", "secrets").ns(NS),
    ask("update", "", "secrets").ns(NS),
    ask("delete", "", "secrets").ns(NS),
    ask("update", "", "services").ns("default"),
    ask("list", "", "nodes"),
    ask("list", "discovery.k8s.io", "endpointslices"),
    ask("create", "ferrolb.io", "servicel2statuses").ns(NS),
    ask("update", "", "services")
        .sub("status")
        .ns("default")
        .named("web"),
];

/// What each needs (so the denials above are not a server that denies everything).
const SPEAKER_NEEDS: &[Ask] = &[
    ask("watch", "", "services"),
    ask("list", "", "secrets").ns(NS),
    ask("watch", "", "secrets").ns(NS),
    ask("create", "ferrolb.io", "servicel2statuses").ns(NS),
    ask("list", "discovery.k8s.io", "endpointslices"),
];
const CONTROLLER_NEEDS: &[Ask] = &[
    ask("patch", "", "services")
        .sub("status")
        .ns("default")
        .named("web"),
    ask("create", "", "secrets").ns(NS),
    ask("update", "coordination.k8s.io", "leases")
        .ns(NS)
        .named("ferrolb-controller"),
];

async fn server_with_rbac() -> (ferrolb_e2e::apiserver::ApiServerHandle, Client) {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("start apiserver");
    let client = server.client().expect("admin client");
    ensure_namespace(&client, NS).await.expect("namespace");
    apply_manifest(client.clone(), DEPLOY_RBAC.to_string(), "test")
        .await
        .expect("apply deploy/rbac.yaml");
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_are_denied_what_they_do_not_need() {
    let (_server, client) = server_with_rbac().await;
    let mut wrong = Vec::new();
    for (who, never, needs) in [
        ("speaker", SPEAKER_NEVER, SPEAKER_NEEDS),
        ("controller", CONTROLLER_NEVER, CONTROLLER_NEEDS),
    ] {
        for a in NEITHER.iter().chain(never) {
            if allowed(&client, who, *a).await {
                wrong.push(format!("{who} may {a:?}"));
            }
        }
        for a in needs {
            if !allowed(&client, who, *a).await {
                wrong.push(format!("{who} may not {a:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `kubectl auth can-i --list --as=…` for both accounts (the README shows this output): the
/// speaker's list names its status objects and Secrets in its namespace; the controller's has
/// no Secret it may read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_can_i_list_shows_each_account() {
    let Some(kubectl) = tools::for_test(Tool::Kubectl, "kubectl_can_i_list_shows_each_account")
    else {
        return;
    };
    let (server, _client) = server_with_rbac().await;
    let dir = std::env::temp_dir().join(format!(
        "ferrolb-can-i-{}-{}",
        std::process::id(),
        server.addr().port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut listings = Vec::new();
    for who in ["speaker", "controller"] {
        let out = tokio::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(server.kubeconfig_path())
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args(["auth", "can-i", "--list", "-n", NS])
            .arg(format!("--as=system:serviceaccount:{NS}:{who}"))
            .env("HOME", &dir)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .output()
            .await
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl auth can-i --list as {who}: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ kubectl auth can-i --list -n {NS} --as=system:serviceaccount:{NS}:{who}");
        println!("{stdout}");
        listings.push((who, stdout));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let line = |text: &str, resource: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(resource))
            .map(str::to_string)
    };
    let (_, speaker) = &listings[0];
    let (_, controller) = &listings[1];
    assert!(
        line(speaker, "servicel2statuses.ferrolb.io").is_some_and(|l| l.contains("create")),
        "{speaker}"
    );
    assert!(
        line(speaker, "secrets").is_some_and(|l| l.contains("[list watch]")),
        "{speaker}"
    );
    assert!(
        line(speaker, "services").is_some_and(|l| !l.contains("update") && !l.contains("patch")),
        "{speaker}"
    );
    assert!(
        line(controller, "secrets").is_some_and(|l| l.contains("[create]")),
        "{controller}"
    );
    assert!(
        line(controller, "services/status").is_some_and(|l| l.contains("patch")),
        "{controller}"
    );
}
