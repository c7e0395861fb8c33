//! The controller's HTTP API: `/healthz`, `/readyz`, `/metrics`, `/api/v1/status` and
//! `/api/v1/services/{namespace}/{name}`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ferrolb_api::status::{ControllerStatus, ServiceAllocation};
use std::sync::Arc;

/// What the HTTP API reads. The reconciler's shared state implements it.
pub trait StatusSource: Send + Sync + 'static {
    /// Ready once the first full sync is done (see `docs/architecture.md` for the follower case).
    fn ready(&self) -> bool;
    /// Metrics in the Prometheus text format.
    fn metrics_text(&self) -> String;
    /// The whole status document.
    fn status(&self) -> ControllerStatus;
    /// One Service's allocation, if ferrolb handles it.
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceAllocation>;
}

/// Builds the router over `source`.
pub fn router<S: StatusSource>(source: Arc<S>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/api/v1/status", get(status::<S>))
        .route("/api/v1/services/{namespace}/{name}", get(service::<S>))
        .with_state(source)
}

async fn readyz<S: StatusSource>(State(s): State<Arc<S>>) -> Response {
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

async fn metrics<S: StatusSource>(State(s): State<Arc<S>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics_text(),
    )
        .into_response()
}

async fn status<S: StatusSource>(State(s): State<Arc<S>>) -> Json<ControllerStatus> {
    Json(s.status())
}

async fn service<S: StatusSource>(
    State(s): State<Arc<S>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match s.service(&namespace, &name) {
        Some(a) => Json(a).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!(
                "service {namespace}/{name} is not a LoadBalancer Service handled by ferrolb\n"
            ),
        )
            .into_response(),
    }
}
