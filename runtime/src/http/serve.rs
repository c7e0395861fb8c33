//! Serving a component's HTTP API as its flags say: HTTPS with the access check in front of
//! the routes, or plain HTTP on loopback.

use super::access::{Access, Reviewer};
use super::kube_reviewer::KubeReviewer;
use super::require_access::require_access;
use super::security::HttpSecurity;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a client may take for the TLS handshake: a connection that stalls there holds a
/// task and a socket, nothing more, and not for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// A component's HTTP API ready to serve: its routes, behind the access check when served
/// over TLS.
pub struct HttpApi {
    router: Router,
    tls: Option<Arc<ServerConfig>>,
}

impl HttpApi {
    /// `router` protected as `security` says, tokens checked with the API server of `client`.
    pub fn new(router: Router, security: HttpSecurity, client: &kube::Client) -> Self {
        Self::with_reviewer(router, security, KubeReviewer::new(client.clone()))
    }

    /// `router` protected as `security` says, tokens checked by `reviewer`.
    pub fn with_reviewer<R: Reviewer>(router: Router, security: HttpSecurity, reviewer: R) -> Self {
        match security {
            HttpSecurity::InsecureLoopback => Self { router, tls: None },
            HttpSecurity::Tls(config) => Self {
                router: router.layer(axum::middleware::from_fn_with_state(
                    Arc::new(Access::new(reviewer)),
                    require_access::<R>,
                )),
                tls: Some(config),
            },
        }
    }

    /// Whether requests are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves the API on `listener` in `tasks` until the set is dropped.
    pub fn serve(self, listener: TcpListener, tasks: &mut JoinSet<()>) {
        match self.tls {
            None => {
                let router = self.router;
                tasks.spawn(async move {
                    if let Err(e) = axum::serve(listener, router).await {
                        tracing::error!(error = %e, "HTTP API stopped");
                    }
                });
            }
            Some(config) => {
                tasks.spawn(serve_tls(listener, self.router, TlsAcceptor::from(config)));
            }
        }
    }
}

/// Accepts connections on `listener`, each handled in its own task (aborted with this one):
/// the TLS handshake, then HTTP/1.1 or HTTP/2 as the client's ALPN chose.
async fn serve_tls(listener: TcpListener, router: Router, acceptor: TlsAcceptor) {
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP API: accepting a connection failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "HTTP API: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "HTTP API: TLS handshake timed out");
                    return;
                }
            };
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTP API: connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::access::tests::FakeReviewer;
    use crate::http::tls;
    use axum::routing::get;
    use rustls::pki_types::ServerName;
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The whole HTTP/1.0 response to `GET path` over TLS with `headers`, checking the server
    /// against `cert`.
    async fn fetch(
        addr: std::net::SocketAddr,
        cert: &rustls::pki_types::CertificateDer<'static>,
        path: &str,
        headers: &str,
    ) -> String {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).expect("trust the test certificate");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let mut conn = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake with a certificate naming localhost");
        let request = format!("GET {path} HTTP/1.0\r\n{headers}\r\n");
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        // A server closing without close_notify ends the read with UnexpectedEof after the
        // whole response.
        let _ = conn.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    }

    fn status_of(response: &str) -> &str {
        response.get(9..12).unwrap_or(response)
    }

    #[tokio::test]
    async fn tls_with_the_access_check_in_front_of_all_but_the_probes() {
        let (cert, key) = tls::self_signed_pair(&["localhost".into()], &[]).expect("certificate");
        let config = tls::from_der(cert.clone(), key).expect("config");
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ready" }))
            .route("/metrics", get(|| async { "ferrolb_up 1\n" }))
            .route("/api/v1/status", get(|| async { "{}" }));
        let reviewer = FakeReviewer::default();
        let api = HttpApi::with_reviewer(router, HttpSecurity::Tls(Arc::new(config)), reviewer);
        assert!(api.is_tls());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut tasks = JoinSet::new();
        api.serve(listener, &mut tasks);

        // The probes are open.
        let r = fetch(addr, &cert, "/healthz", "").await;
        assert_eq!(status_of(&r), "200", "{r}");
        assert!(r.ends_with("ok"), "{r}");
        assert_eq!(status_of(&fetch(addr, &cert, "/readyz", "").await), "200");

        // No token: 401 with the reason and the challenge.
        let r = fetch(addr, &cert, "/metrics", "").await;
        assert_eq!(status_of(&r), "401", "{r}");
        assert!(r.contains("www-authenticate: Bearer"), "{r}");
        assert!(
            r.ends_with(
                "Unauthorized: this path needs an Authorization: Bearer header with a \
                 Kubernetes token\n"
            ),
            "{r}"
        );

        // An invalid token: 401, and the token is not in the answer.
        let r = fetch(
            addr,
            &cert,
            "/metrics",
            "Authorization: Bearer stale-secret\r\n",
        )
        .await;
        assert_eq!(status_of(&r), "401", "{r}");
        assert!(
            r.ends_with(
                "Unauthorized: the API server did not accept the bearer token: token expired\n"
            ),
            "{r}"
        );
        assert!(!r.contains("stale-secret"), "{r}");

        // A valid token: allowed on /metrics, forbidden on /api/v1/status.
        let good = "Authorization: Bearer good\r\n";
        let r = fetch(addr, &cert, "/metrics", good).await;
        assert_eq!(status_of(&r), "200", "{r}");
        assert!(r.ends_with("ferrolb_up 1\n"), "{r}");
        let r = fetch(addr, &cert, "/api/v1/status", good).await;
        assert_eq!(status_of(&r), "403", "{r}");
        assert!(
            r.ends_with(
                "Forbidden: user \"system:serviceaccount:monitoring:prometheus\" may not get \
                 /api/v1/status (grant it with an RBAC rule on nonResourceURLs): no RBAC \
                 policy matched\n"
            ),
            "{r}"
        );
        // Unknown paths need a token too.
        assert_eq!(status_of(&fetch(addr, &cert, "/debug", "").await), "401");
    }

    #[tokio::test]
    async fn an_api_server_outage_fails_checked_paths_but_not_the_probes() {
        let (cert, key) = tls::self_signed_pair(&["localhost".into()], &[]).expect("certificate");
        let config = tls::from_der(cert.clone(), key).expect("config");
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ready" }))
            .route("/metrics", get(|| async { "ferrolb_up 1\n" }));
        let reviewer = FakeReviewer::default();
        reviewer.down.store(true, Ordering::SeqCst);
        let api = HttpApi::with_reviewer(router, HttpSecurity::Tls(Arc::new(config)), reviewer);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut tasks = JoinSet::new();
        api.serve(listener, &mut tasks);

        let r = fetch(addr, &cert, "/metrics", "Authorization: Bearer good\r\n").await;
        assert_eq!(status_of(&r), "503", "{r}");
        assert!(
            r.ends_with(
                "Service Unavailable: the API server could not check the token: the \
                 TokenReview could not be made: connection refused\n"
            ),
            "{r}"
        );
        assert_eq!(status_of(&fetch(addr, &cert, "/healthz", "").await), "200");
        assert_eq!(status_of(&fetch(addr, &cert, "/readyz", "").await), "200");
    }

    #[tokio::test]
    async fn a_client_that_does_not_finish_the_handshake_does_not_block_others() {
        let (cert, key) = tls::self_signed_pair(&["localhost".into()], &[]).expect("certificate");
        let config = tls::from_der(cert.clone(), key).expect("config");
        let router = Router::new().route("/healthz", get(|| async { "ok" }));
        let api = HttpApi::with_reviewer(
            router,
            HttpSecurity::Tls(Arc::new(config)),
            FakeReviewer::default(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut tasks = JoinSet::new();
        api.serve(listener, &mut tasks);
        let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let r = tokio::time::timeout(Duration::from_secs(5), fetch(addr, &cert, "/healthz", ""))
            .await
            .expect("served beside a stalled handshake");
        assert_eq!(status_of(&r), "200", "{r}");
    }
}
