//! The speaker's HTTP API: the runtime's `/healthz`, `/readyz` and `/metrics`, plus
//! `/api/v1/status`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ferrolb_api::status::SpeakerStatus;
use ferrolb_runtime::http::Health;
use std::sync::Arc;

/// What the HTTP API reads besides the probes and metrics; the speaker's shared state
/// implements it. Its `Health::ready` waits for the first full sync and the announcements
/// being applied.
pub trait StatusSource: Health {
    /// The status document.
    fn status(&self) -> SpeakerStatus;
}

/// Builds the router over `source`.
pub fn router<S: StatusSource>(source: Arc<S>) -> Router {
    ferrolb_runtime::http::router::<S>()
        .route(
            "/api/v1/status",
            get(|State(s): State<Arc<S>>| async move { Json(s.status()) }),
        )
        .with_state(source)
}
