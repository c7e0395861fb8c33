//! The HTTP skeleton both binaries serve: `/healthz`, `/readyz` and `/metrics`. Each binary
//! adds its status routes to [`router`] and serves the result as an [`HttpApi`], protected as
//! its [`HttpSecurityArgs`] say: HTTPS ([`tls`]) with every path but the probes behind a
//! bearer token the API server authenticates and authorizes ([`access`], [`require_access`]),
//! or plain HTTP on loopback for development.

pub mod access;
pub mod access_cache;
pub mod kube_reviewer;
pub mod require_access;
pub mod security;
pub mod serve;
pub mod tls;

pub use security::{HttpSecurity, HttpSecurityArgs, HttpSecurityError};
pub use serve::HttpApi;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// What the probes and `/metrics` read; a binary's shared state implements it.
pub trait Health: Send + Sync + 'static {
    /// Ready once the first full sync is done (each binary says what else it waits for).
    fn ready(&self) -> bool;
    /// Metrics in the Prometheus text format.
    fn metrics_text(&self) -> String;
}

/// `/healthz`, `/readyz` and `/metrics` over the state `S`; add routes, then `with_state`.
pub fn router<S: Health>() -> Router<Arc<S>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
}

async fn readyz<S: Health>(State(s): State<Arc<S>>) -> Response {
    if s.ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: initial sync not done",
        )
            .into_response()
    }
}

async fn metrics<S: Health>(State(s): State<Arc<S>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics_text(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinSet;

    struct Probe(AtomicBool);

    impl Health for Probe {
        fn ready(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
        fn metrics_text(&self) -> String {
            "ferrolb_test_up 1\n# EOF\n".into()
        }
    }

    /// The whole HTTP/1.0 response to `GET path` (the server closes after it).
    async fn fetch(addr: std::net::SocketAddr, path: &str) -> String {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.0\r\n\r\n");
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await.expect("read");
        String::from_utf8_lossy(&response).into_owned()
    }

    #[tokio::test]
    async fn serves_probes_metrics_and_the_binary_s_routes() {
        let probe = Arc::new(Probe(AtomicBool::new(false)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router::<Probe>()
            .route("/api/v1/status", get(|| async { "status" }))
            .with_state(probe.clone());
        let mut tasks = JoinSet::new();
        let api = HttpApi::with_reviewer(
            app,
            HttpSecurity::InsecureLoopback,
            access::tests::FakeReviewer::default(),
        );
        assert!(!api.is_tls());
        api.serve(listener, &mut tasks);

        assert!(fetch(addr, "/healthz").await.ends_with("ok"));
        let r = fetch(addr, "/readyz").await;
        assert!(r.starts_with("HTTP/1.0 503"), "{r}");
        assert!(r.ends_with("not ready: initial sync not done"), "{r}");
        probe.0.store(true, Ordering::Relaxed);
        assert!(fetch(addr, "/readyz").await.ends_with("\r\n\r\nready"));
        let m = fetch(addr, "/metrics").await;
        assert!(
            m.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "{m}"
        );
        assert!(m.ends_with("ferrolb_test_up 1\n# EOF\n"), "{m}");
        assert!(fetch(addr, "/api/v1/status").await.ends_with("status"));
    }
}
