//! The speaker's HTTP API: `/healthz`, `/readyz`, `/metrics` and `/api/v1/status`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use ferrolb_api::status::SpeakerStatus;
use std::sync::Arc;

/// What the HTTP API reads; the speaker's shared state implements it.
pub trait StatusSource: Send + Sync + 'static {
    /// Ready once the first full sync is done and announcements are applied.
    fn ready(&self) -> bool;
    /// Metrics in the Prometheus text format.
    fn metrics_text(&self) -> String;
    /// The status document.
    fn status(&self) -> SpeakerStatus;
}

/// Builds the router over `source`.
pub fn router<S: StatusSource>(source: Arc<S>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<Arc<S>>| async move {
                if s.ready() {
                    (StatusCode::OK, "ready").into_response()
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: initial sync not done",
                    )
                        .into_response()
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<Arc<S>>| async move {
                let ct = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([(header::CONTENT_TYPE, ct)], s.metrics_text()).into_response()
            }),
        )
        .route(
            "/api/v1/status",
            get(|State(s): State<Arc<S>>| async move { Json(s.status()) }),
        )
        .with_state(source)
}
