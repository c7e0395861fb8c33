//! TokenReview and SubjectAccessReview as ferrolb's components call them through kube-rs
//! to protect their HTTP APIs, and anonymous requests.

use ferrolb_e2e::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::http;

fn obj<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("object")
}

async fn service_account_token(server: &ApiServerHandle, name: &str) -> String {
    let sas: Api<ServiceAccount> =
        Api::namespaced(server.client().expect("client"), "ferrolb-system");
    sas.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": name}})),
    )
    .await
    .expect("create serviceaccount");
    let req: TokenRequest = obj(json!({"spec": {}}));
    sas.create_token_request(name, &PostParams::default(), &req)
        .await
        .expect("token request")
        .status
        .expect("status")
        .token
}

async fn bind_cluster_role(server: &ApiServerHandle, binding: &str, role: &str, sa: &str) {
    let crbs: Api<ClusterRoleBinding> = Api::all(server.client().expect("client"));
    crbs.create(
        &PostParams::default(),
        &obj(json!({
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "ferrolb-system"}],
        })),
    )
    .await
    .expect("create clusterrolebinding");
}

fn token_review(token: &str, audiences: &[&str]) -> TokenReview {
    obj(json!({"spec": {"token": token, "audiences": audiences}}))
}

fn metrics_access(user: &str, groups: &[&str]) -> SubjectAccessReview {
    obj(json!({"spec": {"user": user, "groups": groups,
                        "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}}))
}

const SPEAKER: &str = "system:serviceaccount:ferrolb-system:speaker";
const SPEAKER_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:ferrolb-system",
    "system:authenticated",
];

#[tokio::test]
async fn components_review_tokens_and_access_through_kube_rs() {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("start");
    let nss: Api<Namespace> = Api::all(server.client().expect("client"));
    nss.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "ferrolb-system"}})),
    )
    .await
    .expect("namespace");
    let controller = service_account_token(&server, "controller").await;
    let speaker = service_account_token(&server, "speaker").await;
    bind_cluster_role(
        &server,
        "controller-auth",
        "system:auth-delegator",
        "controller",
    )
    .await;
    let as_controller = server.client_with_token(&controller).expect("client");
    let reviews: Api<TokenReview> = Api::all(as_controller.clone());
    let pp = PostParams::default();

    let r = reviews
        .create(&pp, &token_review(&speaker, &[]))
        .await
        .expect("token review");
    let status = r.status.expect("status");
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.expect("user");
    assert_eq!(user.username.as_deref(), Some(SPEAKER));
    assert_eq!(user.groups, Some(SPEAKER_GROUPS.map(String::from).to_vec()));
    assert!(user.uid.is_some_and(|u| !u.is_empty()));
    assert_eq!(
        status.audiences,
        Some(vec![
            "https://kubernetes.default.svc.cluster.local".to_string()
        ])
    );
    assert_eq!(status.error, None);

    let r = reviews
        .create(&pp, &token_review(&speaker, &["ferrolb-controller"]))
        .await
        .expect("review");
    let status = r.status.expect("status");
    assert_ne!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(
        status.error.as_deref(),
        Some(
            "token audiences [\"https://kubernetes.default.svc.cluster.local\"] is invalid for the target audiences [\"ferrolb-controller\"]"
        )
    );
    let r = reviews
        .create(&pp, &token_review("garbage", &[]))
        .await
        .expect("review");
    let status = r.status.expect("status");
    assert_ne!(status.authenticated, Some(true), "{status:?}");

    // SubjectAccessReview: /metrics is granted only once a role says so.
    let sars: Api<SubjectAccessReview> = Api::all(as_controller);
    let r = sars
        .create(&pp, &metrics_access(SPEAKER, &SPEAKER_GROUPS))
        .await
        .expect("sar");
    assert!(!r.status.expect("status").allowed);
    let crs: Api<ClusterRole> = Api::all(server.client().expect("client"));
    crs.create(
        &pp,
        &obj(json!({"metadata": {"name": "metrics-reader"},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]})),
    )
    .await
    .expect("clusterrole");
    bind_cluster_role(&server, "speaker-metrics", "metrics-reader", "speaker").await;
    let r = sars
        .create(&pp, &metrics_access(SPEAKER, &SPEAKER_GROUPS))
        .await
        .expect("sar");
    let status = r.status.expect("status");
    assert!(status.allowed, "{status:?}");
    assert_eq!(
        status.reason.as_deref(),
        Some(
            "RBAC: allowed by ClusterRoleBinding \"speaker-metrics\" of ClusterRole \"metrics-reader\" to ServiceAccount \"speaker/ferrolb-system\""
        )
    );
    let resource: SubjectAccessReview = obj(
        json!({"spec": {"user": SPEAKER, "groups": SPEAKER_GROUPS,
        "resourceAttributes": {"verb": "create", "group": "authorization.k8s.io", "resource": "selfsubjectaccessreviews"}}}),
    );
    assert!(
        sars.create(&pp, &resource)
            .await
            .expect("sar")
            .status
            .expect("status")
            .allowed
    );
    let err = sars
        .create(
            &pp,
            &obj(json!({"spec": {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}})),
        )
        .await
        .expect_err("no user");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("spec.user: Invalid value: \"\": at least one of user or group must be specified")),
        "{err:?}"
    );

    // Without system:auth-delegator the speaker may not review tokens.
    let as_speaker: Api<TokenReview> =
        Api::all(server.client_with_token(&speaker).expect("client"));
    let err = as_speaker
        .create(&pp, &token_review(&controller, &[]))
        .await
        .expect_err("403");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403 && s.message == "tokenreviews.authentication.k8s.io is forbidden: User \"system:serviceaccount:ferrolb-system:speaker\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"),
        "{err:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn anonymous_requests_get_public_information_only() {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("start");
    let (code, body) = http(&server, "GET", "/version", None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["gitVersion"].is_string(), "{body}");
    assert_eq!(http(&server, "GET", "/healthz", None).await.0, 200);
    let (code, body) = http(&server, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "namespaces is forbidden: User \"system:anonymous\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
               "reason": "Forbidden", "details": {"kind": "namespaces"}, "code": 403})
    );
    let (code, body) = http(&server, "GET", "/metrics", None).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );
    assert_eq!(body["details"], json!({}));
    let (code, body) = http(&server, "GET", "/api", None).await;
    assert_eq!(code, 403, "discovery needs an authenticated user: {body}");
    let (code, body) = http(&server, "GET", "/api/v1/namespaces", Some("bad-token")).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["message"], "Unauthorized");
    let (code, body) = http(
        &server,
        "GET",
        "/api/v1/namespaces",
        Some(server.admin_token()),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    server.shutdown().await;
}
