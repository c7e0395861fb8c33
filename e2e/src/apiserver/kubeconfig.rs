//! The kubeconfig a server writes for its admin: the HTTPS address, the CA that signed the
//! server's certificate, and the admin token.

use std::net::SocketAddr;
use std::path::PathBuf;

pub(super) fn default_kubeconfig_path(addr: SocketAddr) -> PathBuf {
    std::env::temp_dir()
        .join(format!(
            "ferrolb-apiserver-{}-{}",
            std::process::id(),
            addr.port()
        ))
        .join("kubeconfig")
}

/// A kubeconfig for the admin user of the server at `addr` (HTTPS, trusting `ca_pem`).
pub fn kubeconfig_text(addr: SocketAddr, ca_pem: &str, admin_token: &str) -> String {
    use base64::Engine;
    // A JSON string is a YAML double-quoted scalar: any token stays one value.
    let token = serde_json::Value::String(admin_token.to_string());
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb-e2e\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca}\ncontexts:\n- name: ferrolb-e2e\n  context:\n    cluster: ferrolb-e2e\n    user: ferrolb-e2e\n    namespace: default\ncurrent-context: ferrolb-e2e\nusers:\n- name: ferrolb-e2e\n  user:\n    token: {token}\npreferences: {{}}\n"
    )
}
