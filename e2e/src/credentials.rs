//! The identities the lab's processes run as: an admin token for test set-up, and a
//! ServiceAccount token (TokenRequest API) plus its own kubeconfig for each component, so the
//! controller and the speakers run under the RBAC that was installed, as a kubelet-projected
//! token makes them run in a cluster.

use anyhow::{Context, anyhow};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::{Api, PostParams};
use std::path::{Path, PathBuf};

/// Lifetime asked for component tokens: longer than any lab run, so a token never expires
/// under a running component (a kubelet would rotate it; the lab does not).
pub const COMPONENT_TOKEN_SECONDS: i64 = 24 * 3600;

/// A fresh random admin token, written to `path` (mode 0600) for the API server's
/// `--admin-token-file`.
pub fn write_admin_token(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the admin token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::private_file::write(path, token.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Asks the API server for a token of ServiceAccount `namespace/name` (TokenRequest).
pub async fn service_account_token(
    client: Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<String> {
    let api: Api<ServiceAccount> = Api::namespaced(client, namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(COMPONENT_TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for ServiceAccount {namespace}/{name}"))?;
    answer
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("TokenRequest for {namespace}/{name}: no token in the answer"))
}

/// Applies `deploy/rbac.yaml` (its namespace `ferrolb-system` must exist) with the admin
/// client and returns a token of ServiceAccount `ferrolb-system/<account>`: what a test that
/// runs a component in-process gives it, so it runs under the shipped RBAC.
pub async fn deploy_rbac_token(admin: Client, account: &str) -> anyhow::Result<String> {
    crate::cluster::apply_manifest(
        admin.clone(),
        crate::cluster::DEPLOY_RBAC.to_string(),
        "ferrolb-test",
    )
    .await
    .context("applying deploy/rbac.yaml")?;
    service_account_token(admin, "ferrolb-system", account).await
}

/// Writes `dir/kubeconfig-<who>` (mode 0600): the cluster of `admin_kubeconfig` (its HTTPS
/// address and CA), authenticating with `token`; returns its path.
pub fn write_kubeconfig(
    dir: &Path,
    who: &str,
    admin_kubeconfig: &Path,
    token: &str,
) -> anyhow::Result<PathBuf> {
    let admin = std::fs::read_to_string(admin_kubeconfig)
        .with_context(|| format!("reading {}", admin_kubeconfig.display()))?;
    let text = kubeconfig_as(&admin, who, token)
        .with_context(|| format!("the kubeconfig {}", admin_kubeconfig.display()))?;
    let path = dir.join(format!("kubeconfig-{who}"));
    crate::private_file::write(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `admin` (a kubeconfig) with its current context's cluster, as user `who` with `token`.
fn kubeconfig_as(admin: &str, who: &str, token: &str) -> anyhow::Result<String> {
    let doc: serde_json::Value = serde_saphyr::from_str(admin)?;
    let current = doc["current-context"]
        .as_str()
        .ok_or_else(|| anyhow!("no current-context"))?;
    let context = doc["contexts"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == current))
        .ok_or_else(|| anyhow!("no context {current}"))?;
    let cluster_name = context["context"]["cluster"]
        .as_str()
        .ok_or_else(|| anyhow!("context {current} names no cluster"))?;
    let cluster = doc["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == cluster_name))
        .ok_or_else(|| anyhow!("no cluster {cluster_name}"))?;
    let out = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{ "name": who, "user": { "token": token } }],
        "contexts": [{
            "name": who,
            "context": { "cluster": cluster_name, "user": who, "namespace": "default" },
        }],
        "current-context": who,
    });
    // JSON is YAML: every kubeconfig reader takes it.
    Ok(serde_json::to_string_pretty(&out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_kubeconfig_keeps_the_cluster_and_swaps_the_user() -> anyhow::Result<()> {
        let admin = "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    \
                     server: https://10.200.0.2:6443\n    certificate-authority-data: Q0E=\n\
                     users:\n- name: admin\n  user:\n    token: admin-secret\ncontexts:\n\
                     - name: admin\n  context:\n    cluster: lab\n    user: admin\n\
                     current-context: admin\n";
        let text = kubeconfig_as(admin, "speaker", "abc")?;
        kube::config::Kubeconfig::from_yaml(&text)?;
        let doc: serde_json::Value = serde_saphyr::from_str(&text)?;
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://10.200.0.2:6443"
        );
        assert_eq!(
            doc["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(doc["users"][0]["user"]["token"], "abc");
        assert_eq!(doc["current-context"], "speaker");
        assert!(!text.contains("admin-secret"));
        Ok(())
    }
}
