//! HTTP edges: verify, parse, queue, answer.

mod gitlab;
mod ops;
pub mod slack;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::app::AppState;

/// GitLab's own limit for a webhook body; `builds` lists every job.
pub const GITLAB_BODY_LIMIT: usize = 25 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
    });
    Router::new()
        .route(
            "/gitlab/webhook",
            post(gitlab::webhook).layer(DefaultBodyLimit::max(GITLAB_BODY_LIMIT)),
        )
        .route("/slack/commands", post(slack::commands))
        .route("/slack/interactions", post(slack::interactions))
        .route("/slack/events", post(slack::events))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .layer(DefaultBodyLimit::max(slack::SLACK_BODY_LIMIT))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
