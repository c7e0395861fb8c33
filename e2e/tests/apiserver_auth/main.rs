//! Authentication, impersonation and RBAC of the in-memory API server, checked with the
//! pinned kubectl (1.35 and 1.29) and kube-rs against what kube-apiserver documents:
//! ServiceAccount tokens from `kubectl create token` (whoami, expiry, bound to their
//! ServiceAccount, kept across a restart), Roles and bindings granting exactly their rules
//! (verbs, subresources, resourceNames, watch vs list, ClusterRoles through RoleBindings,
//! group subjects) with kube's 403 messages, `kubectl auth can-i` (also `--list` and `--as`),
//! TokenReview and SubjectAccessReview as components call them, anonymous requests and
//! kube's 401.
//!
//! A missing kubectl fails the test when `CI` is set and otherwise skips it with a printed
//! reason (`ferrolb_e2e::tools::for_test`).

mod can_i;
mod rbac;
mod reviews;
mod tokens;

use std::path::PathBuf;
use std::time::Duration;

use ferrolb_e2e::apiserver::{ApiServer, ApiServerHandle, ApiServerOptions};
use ferrolb_e2e::tools::{self, Tool};
use serde_json::Value;
use tokio::process::Command;

/// One `#[tokio::test]` per pinned kubectl for a test body `async fn body(tool: Tool)`.
#[macro_export]
macro_rules! with_both_kubectls {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kubectl_1_35() {
                super::$body(ferrolb_e2e::tools::Tool::Kubectl).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kubectl_1_29() {
                super::$body(ferrolb_e2e::tools::Tool::Kubectl129).await;
            }
        }
    };
}

/// A server and the pinned kubectl, run with the server's admin kubeconfig; `as_token`
/// replaces the admin with another bearer token.
pub struct Kubectl {
    bin: PathBuf,
    /// `kubectl v1.35.2` etc., in every failure message.
    pub version: String,
    pub server: ApiServerHandle,
    dir: PathBuf,
}

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    pub async fn new(tool: Tool, test: &str, options: ApiServerOptions) -> Option<Kubectl> {
        let version = format!("kubectl {}", tool.pinned_version());
        let bin = tools::for_test(tool, &format!("{test} ({version})"))?;
        let server = ApiServer::start(options).await.expect("start apiserver");
        let dir = std::env::temp_dir().join(format!(
            "ferrolb-auth-{test}-{}-{}-{}",
            tool.file_name(),
            std::process::id(),
            server.addr().port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Some(Kubectl {
            bin,
            version,
            server,
            dir,
        })
    }

    async fn run_with(&self, token: Option<&str>, args: &[&str]) -> Out {
        let mut c = Command::new(&self.bin);
        c.arg("--kubeconfig")
            .arg(self.server.kubeconfig_path())
            .arg("--cache-dir")
            .arg(self.dir.join("cache"));
        if let Some(t) = token {
            c.arg(format!("--token={t}"));
        }
        c.args(args)
            // A private HOME: nothing from the developer's ~/.kube leaks in.
            .env("HOME", &self.dir)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), c.output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} timed out", self.version))
            .expect("run kubectl");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs as the admin and requires success.
    pub async fn ok(&self, args: &[&str]) -> String {
        self.ok_as(None, args).await
    }

    /// Runs with `token` (or as the admin) and requires success.
    pub async fn ok_as(&self, token: Option<&str>, args: &[&str]) -> String {
        let o = self.run_with(token, args).await;
        assert!(
            o.ok,
            "{} {args:?} failed:\n{}\n{}",
            self.version, o.stdout, o.stderr
        );
        o.stdout
    }

    /// Runs with `token` and requires failure; returns stderr.
    pub async fn fails_as(&self, token: Option<&str>, args: &[&str]) -> String {
        let o = self.run_with(token, args).await;
        assert!(
            !o.ok,
            "{} {args:?} should have failed:\n{}",
            self.version, o.stdout
        );
        o.stderr
    }

    /// Runs with `token`, success or not.
    pub async fn run_as(&self, token: Option<&str>, args: &[&str]) -> Out {
        self.run_with(token, args).await
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write manifest");
        p.display().to_string()
    }

    /// `kubectl create namespace NS` and `kubectl create serviceaccount SA -n NS` (both sent
    /// as protobuf), then a token for it from `kubectl create token`.
    pub async fn service_account_token(&self, ns: &str, sa: &str, extra: &[&str]) -> String {
        // Namespace and ServiceAccount may exist from an earlier call.
        if !self.run_as(None, &["get", "namespace", ns]).await.ok {
            self.ok(&["create", "namespace", ns]).await;
        }
        if !self
            .run_as(None, &["get", "serviceaccount", sa, "-n", ns])
            .await
            .ok
        {
            self.ok(&["create", "serviceaccount", sa, "-n", ns]).await;
        }
        let mut args = vec!["create", "token", sa, "-n", ns];
        args.extend(extra);
        let token = self.ok(&args).await.trim().to_string();
        assert_eq!(
            token.split('.').count(),
            3,
            "{}: not a JWT: {token}",
            self.version
        );
        token
    }

    pub async fn finish(self) {
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The JSON claims of a JWT.
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// One HTTP/1.1 request with an optional bearer token: (status code, JSON body).
pub async fn http(
    server: &ApiServerHandle,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.addr();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let code = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {out}"));
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (code, json)
}
