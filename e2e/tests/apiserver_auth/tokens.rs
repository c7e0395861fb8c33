//! ServiceAccount tokens: `kubectl create token`, what they authenticate as, expiry, the
//! binding to their ServiceAccount, restarts, and the admin token of the `apiserver`
//! subcommand's kubeconfig.

use std::time::Duration;

use ferrolb_e2e::apiserver::{ApiServer, ApiServerOptions};
use ferrolb_e2e::tools::Tool;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::{Kubectl, http, jwt_claims};
use crate::with_both_kubectls;

with_both_kubectls!(create_token_whoami_and_binding_to_the_service_account);
with_both_kubectls!(an_expired_token_is_unauthorized);

const SA_GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:ferrolb-system",
    "system:authenticated",
];

async fn whoami(k: &Kubectl, token: Option<&str>) -> Value {
    let out = k.ok_as(token, &["auth", "whoami", "-o", "json"]).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: whoami JSON: {e}\n{out}", k.version))
}

async fn create_token_whoami_and_binding_to_the_service_account(tool: Tool) {
    let Some(k) = Kubectl::new(tool, "token", ApiServerOptions::default()).await else {
        return;
    };
    let v = k.version.clone();
    let token = k
        .service_account_token("ferrolb-system", "speaker", &[])
        .await;
    let uid = k
        .ok(&[
            "get",
            "sa",
            "speaker",
            "-n",
            "ferrolb-system",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .await;
    let claims = jwt_claims(&token);
    assert_eq!(
        claims["sub"], "system:serviceaccount:ferrolb-system:speaker",
        "{v}: {claims}"
    );
    assert_eq!(
        claims["iss"], "https://kubernetes.default.svc.cluster.local",
        "{v}"
    );
    assert_eq!(
        claims["aud"],
        json!(["https://kubernetes.default.svc.cluster.local"]),
        "{v}"
    );
    assert_eq!(
        claims["kubernetes.io"]["namespace"], "ferrolb-system",
        "{v}"
    );
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["name"], "speaker",
        "{v}"
    );
    assert_eq!(
        claims["kubernetes.io"]["serviceaccount"]["uid"],
        uid.as_str(),
        "{v}"
    );
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    assert_eq!(lifetime, 3600, "{v}: default expirationSeconds");
    assert_eq!(claims["nbf"], claims["iat"], "{v}");

    // The token is a bearer token for the ServiceAccount's user.
    let me = whoami(&k, Some(&token)).await;
    let info = &me["status"]["userInfo"];
    assert_eq!(
        info["username"], "system:serviceaccount:ferrolb-system:speaker",
        "{v}: {me}"
    );
    assert_eq!(info["uid"], uid.as_str(), "{v}: {me}");
    assert_eq!(info["groups"], json!(SA_GROUPS), "{v}: {me}");
    let admin = whoami(&k, None).await;
    assert_eq!(
        admin["status"]["userInfo"]["username"], "admin",
        "{v}: {admin}"
    );
    assert_eq!(
        admin["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"]),
        "{v}: {admin}"
    );
    // It has no rights beyond the defaults.
    let err = k
        .fails_as(Some(&token), &["get", "services", "-n", "default"])
        .await;
    assert!(
        err.contains("Error from server (Forbidden): services is forbidden: User \"system:serviceaccount:ferrolb-system:speaker\" cannot list resource \"services\" in API group \"\" in the namespace \"default\""),
        "{v}: {err}"
    );

    // kube's limits and errors.
    let err = k
        .fails_as(
            None,
            &[
                "create",
                "token",
                "speaker",
                "-n",
                "ferrolb-system",
                "--duration=5m",
            ],
        )
        .await;
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{v}: {err}"
    );
    let err = k
        .fails_as(None, &["create", "token", "nobody", "-n", "ferrolb-system"])
        .await;
    assert!(
        err.contains("serviceaccounts \"nobody\" not found"),
        "{v}: {err}"
    );
    let long = k
        .service_account_token("ferrolb-system", "speaker", &["--duration=2h"])
        .await;
    let c = jwt_claims(&long);
    assert_eq!(
        c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0),
        7200,
        "{v}"
    );

    // Bound: deleting the ServiceAccount, or recreating it (another uid), revokes it.
    k.ok(&["delete", "sa", "speaker", "-n", "ferrolb-system"])
        .await;
    let err = k.fails_as(Some(&token), &["auth", "whoami"]).await;
    assert!(err.contains("Unauthorized"), "{v}: {err}");
    k.ok(&["create", "sa", "speaker", "-n", "ferrolb-system"])
        .await;
    let err = k.fails_as(Some(&token), &["auth", "whoami"]).await;
    assert!(err.contains("Unauthorized"), "{v}: {err}");
    let fresh = k
        .service_account_token("ferrolb-system", "speaker", &[])
        .await;
    let me = whoami(&k, Some(&fresh)).await;
    assert_eq!(
        me["status"]["userInfo"]["username"], "system:serviceaccount:ferrolb-system:speaker",
        "{v}"
    );
    // A token of no known issuer is 401 as well.
    let err = k.fails_as(Some("not-a-token"), &["get", "ns"]).await;
    assert!(err.contains("Unauthorized"), "{v}: {err}");
    k.finish().await;
}

async fn an_expired_token_is_unauthorized(tool: Tool) {
    let options = ApiServerOptions {
        min_token_expiration: Duration::from_secs(1),
        token_expiry_leeway: Duration::ZERO,
        ..ApiServerOptions::default()
    };
    let Some(k) = Kubectl::new(tool, "expiry", options).await else {
        return;
    };
    let v = k.version.clone();
    let token = k
        .service_account_token("ferrolb-system", "speaker", &["--duration=2s"])
        .await;
    let c = jwt_claims(&token);
    assert_eq!(
        c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0),
        2,
        "{v}"
    );
    whoami(&k, Some(&token)).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let err = k.fails_as(Some(&token), &["auth", "whoami"]).await;
    assert!(err.contains("Unauthorized"), "{v}: {err}");
    let (code, body) = http(&k.server, "GET", "/api/v1/namespaces", Some(&token)).await;
    assert_eq!(code, 401, "{v}: {body}");
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        "{v}"
    );
    k.finish().await;
}

fn token_request(seconds: i64) -> TokenRequest {
    serde_json::from_value(json!({"spec": {"expirationSeconds": seconds}})).expect("TokenRequest")
}

async fn username(client: kube::Client) -> Result<String, kube::Error> {
    let reviews: Api<SelfSubjectReview> = Api::all(client);
    let review: SelfSubjectReview = serde_json::from_value(json!({})).expect("review");
    let r = reviews.create(&PostParams::default(), &review).await?;
    Ok(r.status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default())
}

#[tokio::test]
async fn tokens_and_the_admin_token_survive_a_restart() {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("start");
    let admin = server.client().expect("client");
    let nss: Api<Namespace> = Api::all(admin.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "ferrolb-system"}})).expect("ns"),
    )
    .await
    .expect("create namespace");
    let sas: Api<ServiceAccount> = Api::namespaced(admin, "ferrolb-system");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "controller"}})).expect("sa"),
    )
    .await
    .expect("create serviceaccount");
    let issued = sas
        .create_token_request("controller", &PostParams::default(), &token_request(3600))
        .await
        .expect("token request");
    let status = issued.status.expect("status");
    assert!(
        status.expiration_timestamp.0 > jiff_now_plus(3500),
        "{:?}",
        status.expiration_timestamp
    );
    let token = status.token;
    let as_sa = server.client_with_token(&token).expect("client");
    assert_eq!(
        username(as_sa).await.expect("whoami"),
        "system:serviceaccount:ferrolb-system:controller"
    );
    let admin_token = server.admin_token().to_string();
    let kubeconfig = std::fs::read_to_string(server.kubeconfig_path()).expect("kubeconfig");
    assert!(
        kubeconfig.contains(&format!("token: \"{admin_token}\"")),
        "{kubeconfig}"
    );

    let server = server.restart().await.expect("restart");
    assert_eq!(server.admin_token(), admin_token);
    let as_sa = server.client_with_token(&token).expect("client");
    assert_eq!(
        username(as_sa).await.expect("whoami after restart"),
        "system:serviceaccount:ferrolb-system:controller"
    );
    assert_eq!(
        username(server.client().expect("client"))
            .await
            .expect("admin"),
        "admin"
    );
    let err = username(server.client_with_token("bogus").expect("client"))
        .await
        .expect_err("401");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 401 && s.reason == "Unauthorized"),
        "{err:?}"
    );
    server.shutdown().await;
}

fn jiff_now_plus(seconds: u64) -> k8s_openapi::jiff::Timestamp {
    let now = std::time::SystemTime::now() + Duration::from_secs(seconds);
    k8s_openapi::jiff::Timestamp::try_from(now).expect("timestamp")
}

#[tokio::test]
async fn the_apiserver_command_writes_a_kubeconfig_with_the_admin_token() {
    use tokio::io::AsyncBufReadExt;
    let dir = std::env::temp_dir().join(format!("ferrolb-auth-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, "fixed-admin-token-0123\n").expect("token file");
    let kubeconfig = dir.join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-e2e"))
        .args(["apiserver", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--admin-token-file")
        .arg(&token_file)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn ferrolb-e2e apiserver");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut ready = false;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await
    {
        if line.starts_with("kubeconfig ") {
            ready = true;
            break;
        }
    }
    assert!(ready, "the apiserver command printed no kubeconfig line");
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    let parsed = kube::config::Kubeconfig::from_yaml(&text).expect("kubeconfig parses");
    let config =
        kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    assert_eq!(username(client.clone()).await.expect("whoami"), "admin");
    let nss: Api<Namespace> = Api::all(client);
    let names: Vec<String> = nss
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"kube-system".to_string()), "{names:?}");
    child.start_kill().expect("stop apiserver");
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
}
