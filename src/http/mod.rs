//! HTTP edges: verify, parse, queue, answer.

mod budget;
mod gitlab;
mod ops;
mod slack;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, Request},
    middleware::from_fn_with_state,
    routing::{get, post},
};
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::state::AppState;

/// GitLab's own limit for a webhook body; `builds` lists every job.
pub const GITLAB_BODY_LIMIT: usize = 25 * 1024 * 1024;

/// Megabytes of large webhook bodies read and parsed at once; see [`budget`].
const LARGE_BODY_BUDGET_MIB: usize = 64;

/// A random UUID from the thread's generator: `MakeRequestUuid` makes a
/// system call for each one.
#[derive(Debug, Clone, Copy)]
struct RequestUuid;

impl MakeRequestId for RequestUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
            .ok()
            .map(RequestId::new)
    }
}

pub fn router(state: AppState) -> Router {
    let gate = state.clone();
    let budget = budget::BodyBudget::new(LARGE_BODY_BUDGET_MIB, GITLAB_BODY_LIMIT)
        .with_precheck(move |headers| gitlab::headers_authentic(&gate, headers));
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
            post(gitlab::webhook)
                .layer(DefaultBodyLimit::max(GITLAB_BODY_LIMIT))
                .layer(from_fn_with_state(budget, budget::limit_large_bodies)),
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
        .layer(SetRequestIdLayer::x_request_id(RequestUuid))
        .with_state(state)
}
