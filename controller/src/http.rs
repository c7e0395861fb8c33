//! The controller's HTTP API: the runtime's `/healthz`, `/readyz` and `/metrics`, plus
//! `/api/v1/status` and `/api/v1/services/{namespace}/{name}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ferrolb_api::status::{ControllerStatus, ServiceAllocation};
use ferrolb_runtime::http::Health;
use std::sync::Arc;

/// What the HTTP API reads besides the probes and metrics. The reconciler's shared state
/// implements it; its `Health::ready` is the first full sync, also on a follower (see
/// `docs/architecture.md`).
pub trait StatusSource: Health {
    /// The whole status document.
    fn status(&self) -> ControllerStatus;
    /// One Service's allocation, if ferrolb handles it.
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceAllocation>;
}

/// Builds the router over `source`.
pub fn router<S: StatusSource>(source: Arc<S>) -> Router {
    ferrolb_runtime::http::router::<S>()
        .route("/api/v1/status", get(status::<S>))
        .route("/api/v1/services/{namespace}/{name}", get(service::<S>))
        .with_state(source)
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
