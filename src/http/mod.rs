//! HTTP edges: verify, parse, queue, answer.

mod budget;
mod gitlab;
mod ops;
mod serve;
mod slack;

pub use serve::{bind, serve};

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
pub const GITLAB_BODY_LIMIT: usize = crate::gitlab::MAX_BODY;

/// Slack request bodies read at once, before their signatures are checked: at 256 KiB the
/// largest, 64 of them; at the usual few KiB, thousands.
const SLACK_BUDGET: usize = 16 * 1024 * 1024;
/// Of which one peer may hold this much.
const SLACK_PEER_BUDGET: usize = 4 * 1024 * 1024;

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

/// The app's routes. `/metrics` is among them unless `ARMBOT_METRICS_LISTEN` is set, which
/// moves it to [`metrics_router`] on its own listener.
pub fn router(state: AppState) -> Router {
    let http = &state.settings.http;
    let pace = budget::Pace::from(http);
    let app = state.clone();
    let gitlab_gate = budget::BodyGate::new(
        budget::Budget::new(http.body_budget, http.peer_budget),
        GITLAB_BODY_LIMIT,
        pace,
        state.metrics.clone(),
    )
    .with_precheck(move |headers| gitlab::precheck(&app, headers));
    let app = state.clone();
    let slack_gate = budget::BodyGate::new(
        budget::Budget::new(SLACK_BUDGET, SLACK_PEER_BUDGET),
        slack::SLACK_BODY_LIMIT,
        pace,
        state.metrics.clone(),
    )
    .with_precheck(move |headers| slack::precheck(&app, headers));
    let slack_body = || from_fn_with_state(slack_gate.clone(), budget::read_body);
    let trace = TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
    });
    let routes = Router::new()
        .route(
            "/gitlab/webhook",
            post(gitlab::webhook)
                .layer(DefaultBodyLimit::max(GITLAB_BODY_LIMIT))
                .layer(from_fn_with_state(gitlab_gate, budget::read_body)),
        )
        .route("/slack/commands", post(slack::commands).layer(slack_body()))
        .route(
            "/slack/interactions",
            post(slack::interactions).layer(slack_body()),
        )
        .route("/slack/events", post(slack::events).layer(slack_body()))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz));
    let routes = if state.settings.metrics_listen.is_some() {
        routes
    } else {
        routes.route("/metrics", get(ops::metrics))
    };
    routes
        .layer(DefaultBodyLimit::max(slack::SLACK_BODY_LIMIT))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RequestUuid))
        .with_state(state)
}

/// `/metrics` alone, for the listener `ARMBOT_METRICS_LISTEN` names.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}
